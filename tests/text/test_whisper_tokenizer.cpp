// WhisperTokenizer against huggingface tokenizers on whisper-tiny.en's tokenizer.json
// (fixture made by tests/reference/make_tokenizer_fixture.py), a small hand-made
// multilingual tokenizer.json, and the errors for files or arguments that do not fit.
#define BOOST_TEST_MODULE whisper_tokenizer
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/text/whisper_tokenizer.h"
#include "test_support.h"

using peft::text::WhisperTokenizer;
using peft_test::fixtures_dir;
using Ids = std::vector<int64_t>;

namespace {

nlohmann::json load_json(const std::filesystem::path& p) {
  std::ifstream f(p);
  BOOST_REQUIRE_MESSAGE(f.good(), "cannot read " << p);
  return nlohmann::json::parse(f);
}

const nlohmann::json& fixture() {
  static const nlohmann::json fx = load_json(fixtures_dir() / "text" / "whisper_tiny_en.json");
  return fx;
}

const WhisperTokenizer& tiny_en() {
  static const WhisperTokenizer tok(peft_test::require_model_file("whisper-tiny.en/tokenizer.json"), 51864);
  return tok;
}

std::string str(const Ids& ids) {
  std::string s;
  for (auto id : ids) s += std::to_string(id) + " ";
  return s;
}

std::filesystem::path mini_path() { return fixtures_dir() / "text" / "multilingual_mini" / "tokenizer.json"; }

// The multilingual mini tokenizer.json with `edit` applied, written to `dir`.
std::filesystem::path edited_mini(const peft_test::TempDir& dir,
                                  const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = load_json(mini_path());
  edit(j);
  const auto p = dir / "tokenizer.json";
  peft_test::write_file(p, j.dump());
  return p;
}

void drop_added(nlohmann::json& j, const std::string& content) {
  auto& a = j["added_tokens"];
  for (auto it = a.begin(); it != a.end(); ++it)
    if ((*it)["content"] == content) {
      a.erase(it);
      return;
    }
  BOOST_FAIL("no added token " << content);
}

}  // namespace

BOOST_AUTO_TEST_CASE(tiny_en_special_ids) {
  const auto& t = tiny_en();
  const auto& s = fixture().at("special");
  BOOST_CHECK_EQUAL(t.eot(), 50256);
  BOOST_CHECK_EQUAL(t.sot(), 50257);
  BOOST_CHECK_EQUAL(t.no_timestamps(), 50362);
  BOOST_CHECK_EQUAL(t.timestamp_begin(), 50363);
  BOOST_CHECK_EQUAL(t.eot(), s.at("eot").get<int64_t>());
  BOOST_CHECK_EQUAL(t.sot_lm(), s.at("sot_lm").get<int64_t>());
  BOOST_CHECK_EQUAL(t.sot_prev(), s.at("sot_prev").get<int64_t>());
  BOOST_CHECK_EQUAL(t.no_speech(), s.at("no_speech").get<int64_t>());  // <|nocaptions|> in this file
  BOOST_CHECK(t.translate() == s.at("translate").get<int64_t>());
  BOOST_CHECK(t.transcribe() == s.at("transcribe").get<int64_t>());
  BOOST_CHECK_EQUAL(t.vocab_size(), 51864);
  BOOST_CHECK(!t.multilingual());
  BOOST_CHECK(t.is_timestamp(50363) && !t.is_timestamp(50362));
  BOOST_CHECK(t.is_special(50256) && !t.is_special(50255));
  // The file lists language tokens even though the model is English-only.
  BOOST_CHECK_EQUAL(t.language_codes().size(), 99u);
  BOOST_CHECK(t.language_token("en") == s.at("en").get<int64_t>());
  BOOST_CHECK(t.language_token("haw") == s.at("haw").get<int64_t>());
  BOOST_CHECK(t.language_token("su") == s.at("su").get<int64_t>());
  BOOST_CHECK(!t.language_token("xx"));
  BOOST_CHECK_EQUAL(str(t.sot_sequence("", "transcribe")), "50257 ");
  BOOST_CHECK_EQUAL(str(t.sot_sequence("en", "")), "50257 ");
  BOOST_CHECK(t.token_id(" ") == 220);
  BOOST_CHECK(t.token_id(" the") == 262);
  BOOST_CHECK(t.token_id("<|endoftext|>") == 50256);
  BOOST_CHECK(!t.token_id("not one token"));
}

BOOST_AUTO_TEST_CASE(tiny_en_encode_matches_tokenizers) {
  const auto& cases = fixture().at("encode");
  BOOST_REQUIRE_GE(cases.size(), 30u);
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    const Ids expected = c.at("ids");
    const Ids got = tiny_en().encode(text);
    BOOST_CHECK_MESSAGE(got == expected,
                        "\"" << text << "\": got " << str(got) << "expected " << str(expected));
  }
}

BOOST_AUTO_TEST_CASE(special_token_text_is_encoded_literally) {
  // Unlike tokenizers' encode, which matches added tokens in the text: a prompt that
  // happens to contain "<|endoftext|>" must not end the transcript.
  const Ids ids = tiny_en().encode("<|endoftext|>");
  BOOST_CHECK_GT(ids.size(), 1u);
  for (auto id : ids) BOOST_CHECK_LT(id, tiny_en().eot());
  BOOST_CHECK_EQUAL(tiny_en().decode(ids), "<|endoftext|>");
}

BOOST_AUTO_TEST_CASE(tiny_en_decode_matches_tokenizers) {
  const auto& cases = fixture().at("decode");
  BOOST_REQUIRE_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    const Ids ids = c.at("ids");
    const std::string text = c.at("text"), with_ts = c.at("with_timestamps");
    BOOST_CHECK_MESSAGE(tiny_en().decode(ids) == text, "decode(" << str(ids) << ") = \""
                                                                 << tiny_en().decode(ids) << "\", expected \""
                                                                 << text << "\"");
    BOOST_CHECK_MESSAGE(tiny_en().decode_with_timestamps(ids) == with_ts,
                        "decode_with_timestamps(" << str(ids) << ") = \""
                                                  << tiny_en().decode_with_timestamps(ids)
                                                  << "\", expected \"" << with_ts << "\"");
  }
  // Round trip of every encode case.
  for (const auto& c : fixture().at("encode")) {
    const std::string text = c.at("text");
    BOOST_CHECK_EQUAL(tiny_en().decode(tiny_en().encode(text)), text);
  }
}

BOOST_AUTO_TEST_CASE(timestamps_are_written_with_two_decimals) {
  const auto& t = tiny_en();
  const int64_t tb = t.timestamp_begin();
  BOOST_CHECK_EQUAL(t.decode_with_timestamps({tb, tb + 1, tb + 54, tb + 500, tb + 1500}),
                    "<|0.00|><|0.02|><|1.08|><|10.00|><|30.00|>");
  BOOST_CHECK_EQUAL(t.decode({tb, 1212, tb + 5}), t.decode({1212}));
  PEFT_CHECK_THROW_MSG(t.decode({51864}), peft::ValueError, {"51864", "tokenizer.json"});
  PEFT_CHECK_THROW_MSG(t.decode({-1}), peft::ValueError, {"-1"});
}

BOOST_AUTO_TEST_CASE(tiny_en_non_speech_tokens) {
  const Ids expected = fixture().at("non_speech_tokens");
  BOOST_CHECK_EQUAL(str(tiny_en().non_speech_tokens()), str(expected));
}

BOOST_AUTO_TEST_CASE(sot_sequence_errors_on_english_only) {
  const auto& t = tiny_en();
  PEFT_CHECK_THROW_MSG(t.sot_sequence("en", "translate"), peft::ValueError, {"English-only", "translate"});
  PEFT_CHECK_THROW_MSG(t.sot_sequence("fr", "transcribe"), peft::ValueError, {"English-only", "'fr'"});
  PEFT_CHECK_THROW_MSG(t.sot_sequence("", "summarize"), peft::ValueError, {"'summarize'"});
}

BOOST_AUTO_TEST_CASE(vocab_size_mismatch) {
  const auto path = peft_test::require_model_file("whisper-tiny.en/tokenizer.json");
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(path, 51865), peft::ValueError, {"51865", "51864", "tokenizer.json"});
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(path, 50364), peft::ValueError, {"50364", "51864"});
}

BOOST_AUTO_TEST_CASE(multilingual_mini) {
  const auto fx = load_json(fixtures_dir() / "text" / "multilingual_mini.json");
  const WhisperTokenizer t(mini_path(), fx.at("model_vocab_size").get<int64_t>());
  BOOST_CHECK(t.multilingual());
  BOOST_CHECK_EQUAL(t.eot(), 50257);
  BOOST_CHECK_EQUAL(t.sot(), 50258);
  BOOST_CHECK_EQUAL(t.no_speech(), 50362);
  BOOST_CHECK_EQUAL(t.timestamp_begin(), 50364);
  BOOST_REQUIRE_EQUAL(t.language_codes().size(), 5u);
  BOOST_CHECK_EQUAL(t.language_codes()[0], "en");
  BOOST_CHECK_EQUAL(t.language_codes()[3], "fr");
  BOOST_CHECK_EQUAL(t.language_codes()[4], "haw");
  BOOST_CHECK(t.language_token("fr") == 50265);
  BOOST_CHECK_EQUAL(str(t.sot_sequence("fr", "translate")), "50258 50265 50358 ");
  BOOST_CHECK_EQUAL(str(t.sot_sequence("en", "transcribe")), "50258 50259 50359 ");
  BOOST_CHECK_EQUAL(str(t.sot_sequence("", "")), "50258 50359 ");  // language detected first
  PEFT_CHECK_THROW_MSG(t.sot_sequence("xx", "transcribe"), peft::ValueError, {"'xx'", "tokenizer.json"});
  for (const auto& c : fx.at("encode")) {
    const std::string text = c.at("text");
    const Ids expected = c.at("ids");
    BOOST_CHECK_MESSAGE(t.encode(text) == expected, "\"" << text << "\": got " << str(t.encode(text)));
    BOOST_CHECK_EQUAL(t.decode(expected), text);
  }
  BOOST_CHECK_EQUAL(t.decode_with_timestamps({50258, 50265, 50359, 50364 + 27, 98, 259, 50364 + 100, 50257}),
                    "<|0.54|>bon<|2.00|>");
  // Ids in the gap between listed special tokens are special by position.
  BOOST_CHECK_EQUAL(t.decode({98, 50300}), "b");
}

BOOST_AUTO_TEST_CASE(missing_special_tokens) {
  for (const char* name : {"<|endoftext|>", "<|startoftranscript|>", "<|startoflm|>", "<|startofprev|>",
                           "<|nospeech|>", "<|notimestamps|>"}) {
    peft_test::TempDir dir;
    const auto p = edited_mini(dir, [&](nlohmann::json& j) { drop_added(j, name); });
    PEFT_CHECK_THROW_MSG(WhisperTokenizer(p, 51865), peft::FormatError,
                         {name, "tokenizer.json", "added_tokens"});
  }
}

BOOST_AUTO_TEST_CASE(without_tasks_not_multilingual) {
  // No <|translate|>: not multilingual, even with language tokens and a large vocabulary.
  peft_test::TempDir dir;
  const auto p = edited_mini(dir, [](nlohmann::json& j) { drop_added(j, "<|translate|>"); });
  const WhisperTokenizer t(p, 51865);
  BOOST_CHECK(!t.multilingual());
  BOOST_CHECK(!t.translate());
  BOOST_CHECK_EQUAL(t.language_codes().size(), 5u);
  PEFT_CHECK_THROW_MSG(t.sot_sequence("", "translate"), peft::ValueError, {"translate"});
}

BOOST_AUTO_TEST_CASE(not_a_bpe_file) {
  peft_test::TempDir dir;
  const auto p = edited_mini(dir, [](nlohmann::json& j) { j["model"]["merges"] = {"q z"}; });
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(p, 51865), peft::FormatError,
                       {"tokenizer.json", "model.merges[0]", "'qz'"});
}

// openai-whisper's own tokenizer files (*.tiktoken, fetched by models/fetch-default)
// against what openai-whisper's tokenizer (tiktoken) does with them
// (tests/reference/make_whisper_multilingual_fixture.py).
namespace {

const nlohmann::json& tiktoken_fixture() {
  static const nlohmann::json fx = load_json(fixtures_dir() / "text" / "whisper_tiktoken.json");
  return fx;
}

std::filesystem::path tiktoken_file(const std::string& name) {
  return peft_test::require_model_file("whisper-tokenizers/" + name);
}

void check_openai_layout(const WhisperTokenizer& t, const nlohmann::json& fx) {
  BOOST_CHECK(t.multilingual());
  BOOST_CHECK_EQUAL(t.vocab_size(), fx.at("model_vocab_size").get<int64_t>());
  BOOST_CHECK_EQUAL(t.eot(), fx.at("eot").get<int64_t>());
  BOOST_CHECK_EQUAL(t.sot(), fx.at("sot").get<int64_t>());
  BOOST_CHECK(t.translate() == fx.at("translate").get<int64_t>());
  BOOST_CHECK(t.transcribe() == fx.at("transcribe").get<int64_t>());
  BOOST_CHECK_EQUAL(t.sot_lm(), fx.at("sot_lm").get<int64_t>());
  BOOST_CHECK_EQUAL(t.sot_prev(), fx.at("sot_prev").get<int64_t>());
  BOOST_CHECK_EQUAL(t.no_speech(), fx.at("no_speech").get<int64_t>());
  BOOST_CHECK_EQUAL(t.no_timestamps(), fx.at("no_timestamps").get<int64_t>());
  BOOST_CHECK_EQUAL(t.timestamp_begin(), fx.at("timestamp_begin").get<int64_t>());
  const std::vector<std::string> codes = fx.at("language_codes");
  const Ids tokens = fx.at("language_tokens");
  BOOST_REQUIRE_EQUAL(t.language_codes().size(), codes.size());
  for (size_t i = 0; i < codes.size(); ++i) {
    BOOST_CHECK_EQUAL(t.language_codes()[i], codes[i]);
    BOOST_CHECK(t.language_token(codes[i]) == tokens[i]);
  }
  BOOST_CHECK_EQUAL(str(t.non_speech_tokens()), str(fx.at("non_speech_tokens").get<Ids>()));
  BOOST_CHECK_EQUAL(str(t.sot_sequence("fr", "translate")),
                    str(fx.at("sot_sequence_fr_translate").get<Ids>()));
}

}  // namespace

BOOST_AUTO_TEST_CASE(tiktoken_multilingual_99_languages) {
  const auto& fx = tiktoken_fixture();
  const WhisperTokenizer t(tiktoken_file("multilingual.tiktoken"), 51865);
  check_openai_layout(t, fx.at("languages_99"));
  BOOST_CHECK(!t.language_token("yue"));
  for (const auto& c : fx.at("encode")) {
    const std::string text = c.at("text");
    const Ids expected = c.at("ids");
    BOOST_CHECK_MESSAGE(t.encode(text) == expected,
                        "\"" << text << "\": got " << str(t.encode(text)) << "tiktoken " << str(expected));
    BOOST_CHECK_EQUAL(t.decode(expected), text);
  }
  BOOST_CHECK_EQUAL(t.decode({50256}), "");  // the file's empty token ("=")
}

// large-v3 and turbo: one more language (<|yue|>), every later special id one higher.
BOOST_AUTO_TEST_CASE(tiktoken_multilingual_100_languages) {
  const WhisperTokenizer t(tiktoken_file("multilingual.tiktoken"), 51866);
  check_openai_layout(t, tiktoken_fixture().at("languages_100"));
  BOOST_CHECK(t.language_token("yue") == 50358);
  BOOST_CHECK(t.translate() == 50359);
  BOOST_CHECK_EQUAL(t.timestamp_begin(), 50365);
}

// gpt2.tiktoken is what English-only models use: the same tokenizer as tiny.en's
// tokenizer.json.
BOOST_AUTO_TEST_CASE(tiktoken_gpt2_is_tiny_en) {
  const auto& fx = tiktoken_fixture().at("gpt2");
  const WhisperTokenizer t(tiktoken_file("gpt2.tiktoken"), 51864);
  BOOST_CHECK(!t.multilingual());
  BOOST_CHECK_EQUAL(t.eot(), fx.at("eot").get<int64_t>());
  BOOST_CHECK_EQUAL(t.eot(), tiny_en().eot());
  BOOST_CHECK_EQUAL(t.no_timestamps(), tiny_en().no_timestamps());
  BOOST_CHECK_EQUAL(str(t.non_speech_tokens()), str(tiny_en().non_speech_tokens()));
  for (const auto& c : fx.at("encode")) {
    const std::string text = c.at("text");
    BOOST_CHECK_EQUAL(str(t.encode(text)), str(c.at("ids").get<Ids>()));
  }
  for (const auto& c : fixture().at("encode")) {
    const std::string text = c.at("text");
    BOOST_CHECK_EQUAL(str(t.encode(text)), str(tiny_en().encode(text)));
  }
}

BOOST_AUTO_TEST_CASE(tiktoken_errors) {
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(tiktoken_file("multilingual.tiktoken"), 51000), peft::ValueError,
                       {"51000", "multilingual.tiktoken", "-766 language"});
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(tiktoken_file("multilingual.tiktoken"), 51867), peft::ValueError,
                       {"51867", "101 language"});
  peft_test::TempDir dir;
  peft_test::write_file(dir / "bad.tiktoken", "IQ== 0\nIg== 1\nI#== 2\n");
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(dir / "bad.tiktoken", 1520), peft::FormatError,
                       {"bad.tiktoken", "line 3", "base64"});
  peft_test::write_file(dir / "order.tiktoken", "IQ== 0\nIg== 2\n");
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(dir / "order.tiktoken", 1520), peft::FormatError,
                       {"order.tiktoken", "line 2", "expected 1"});
  // "ab" cannot be made from lower-ranked tokens when "b" is missing.
  peft_test::write_file(dir / "merge.tiktoken", "YQ== 0\nYWI= 1\n");
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(dir / "merge.tiktoken", 1520), peft::FormatError,
                       {"merge.tiktoken", "rank 1"});
}

// A tokenizer.json with large-v3's layout: <|yue|> after the other languages, the task
// and control tokens one id higher, vocabulary 51866.
BOOST_AUTO_TEST_CASE(tokenizer_json_with_an_extra_language) {
  peft_test::TempDir dir;
  const auto p = edited_mini(dir, [](nlohmann::json& j) {
    for (auto& a : j["added_tokens"])
      if (a["id"].get<int64_t>() >= 50358) a["id"] = a["id"].get<int64_t>() + 1;
    j["added_tokens"].push_back({{"id", 50358},
                                 {"content", "<|yue|>"},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", true}});
  });
  const WhisperTokenizer t(p, 51866);
  BOOST_CHECK(t.multilingual());
  BOOST_REQUIRE_EQUAL(t.language_codes().size(), 6u);
  BOOST_CHECK_EQUAL(t.language_codes().back(), "yue");
  BOOST_CHECK(t.language_token("yue") == 50358);
  BOOST_CHECK(t.translate() == 50359);
  BOOST_CHECK(t.transcribe() == 50360);
  BOOST_CHECK_EQUAL(t.no_timestamps(), 50364);
  BOOST_CHECK_EQUAL(t.timestamp_begin(), 50365);
  BOOST_CHECK_EQUAL(str(t.sot_sequence("yue", "translate")), "50258 50358 50359 ");
  PEFT_CHECK_THROW_MSG(WhisperTokenizer(p, 51865), peft::ValueError, {"51865", "51866"});
}
