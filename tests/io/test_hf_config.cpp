#define BOOST_TEST_MODULE hf_config
#include "test_support.h"

#include "peft/error.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"

using namespace peft::io;
using peft_test::TempDir;
namespace fs = std::filesystem;

namespace {
fs::path hf_fixture(const std::string& name) { return peft_test::fixtures_dir() / "io" / "hf" / name; }
nlohmann::json expected() { return read_json_file(hf_fixture("expected.json")); }
}  // namespace

BOOST_AUTO_TEST_CASE(whisper_tiny_en_tokenizer_json) {
  const auto tok = read_hf_tokenizer(peft_test::require_model_file("whisper-tiny.en/tokenizer.json"));
  BOOST_TEST(tok.model_type == "BPE");
  // The file's BPE vocab is GPT-2's 50257 pieces; its 107 added tokens run from
  // <|endoftext|> (50256) to <|notimestamps|> (50362). (The model's 51864-row
  // embedding also has timestamp ids this tokenizer.json does not list.)
  BOOST_TEST(tok.vocab.size() == 50257u);
  BOOST_TEST(tok.added_tokens.size() == 107u);
  BOOST_TEST(tok.id_count() == 50363);
  BOOST_TEST(tok.merges.size() == 50000u);
  BOOST_TEST(tok.merges.front().first == "\xc4\xa0");  // "Ġ t": Ġ is U+0120
  BOOST_TEST(tok.merges.front().second == "t");
  BOOST_TEST(tok.vocab.at("hello") == 31373);
  BOOST_TEST(!tok.unk_token.has_value());
  BOOST_TEST(!tok.byte_fallback);
  BOOST_TEST(tok.added_tokens.front().content == "<|endoftext|>");
  BOOST_TEST(tok.added_tokens.front().id == 50256);
  BOOST_TEST(tok.added_tokens.front().special);
  BOOST_TEST(tok.added_tokens.back().content == "<|notimestamps|>");
  BOOST_TEST(tok.pre_tokenizer["type"] == "ByteLevel");
  BOOST_TEST(tok.decoder["type"] == "ByteLevel");
  BOOST_TEST(tok.post_processor["type"] == "TemplateProcessing");
  BOOST_TEST(tok.normalizer.is_null());
}

BOOST_AUTO_TEST_CASE(unigram_tokenizer_from_tokenizers_library) {
  const auto want = expected()["tokenizer"];
  const auto tok = read_hf_tokenizer(hf_fixture("tokenizer.json"));
  BOOST_TEST(tok.model_type == "Unigram");
  BOOST_REQUIRE_EQUAL(tok.unigram_vocab.size(), want["pieces"].size());
  for (size_t i = 0; i < tok.unigram_vocab.size(); ++i) {
    BOOST_TEST(tok.unigram_vocab[i].first == want["pieces"][i][0].get<std::string>());
    BOOST_TEST(tok.unigram_vocab[i].second == want["pieces"][i][1].get<double>());
  }
  BOOST_TEST(tok.unk_token.value_or("") == "<unk>");
  BOOST_TEST(tok.vocab.empty());
  BOOST_REQUIRE_EQUAL(tok.added_tokens.size(), want["added_tokens"].size());
  for (size_t i = 0; i < tok.added_tokens.size(); ++i) {
    BOOST_TEST(tok.added_tokens[i].id == want["added_tokens"][i][0].get<int64_t>());
    BOOST_TEST(tok.added_tokens[i].content == want["added_tokens"][i][1].get<std::string>());
    BOOST_TEST(tok.added_tokens[i].special == want["added_tokens"][i][2].get<bool>());
  }
  BOOST_TEST(tok.id_count() == want["id_count"].get<int64_t>());
  BOOST_TEST(tok.normalizer["type"] == "NFKC");
  BOOST_TEST(tok.pre_tokenizer["type"] == "Metaspace");
  BOOST_TEST(tok.post_processor.is_null());
}

BOOST_AUTO_TEST_CASE(bpe_merges_as_pairs_and_wordpiece) {
  TempDir dir;
  peft_test::write_file(dir / "bpe.json",
                        R"({"added_tokens": [], "model": {"type": "BPE", "unk_token": "<unk>",
      "byte_fallback": true, "vocab": {"<unk>": 0, "a": 1, "b": 2, "a b": 3},
      "merges": [["a", "b"], ["a b", "a"]]}})");
  const auto bpe = read_hf_tokenizer(dir / "bpe.json");
  BOOST_REQUIRE_EQUAL(bpe.merges.size(), 2u);
  BOOST_TEST(bpe.merges[1].first == "a b");  // a piece with a space survives the pair form
  BOOST_TEST(bpe.merges[1].second == "a");
  BOOST_TEST(bpe.byte_fallback);
  BOOST_TEST(bpe.unk_token.value_or("") == "<unk>");
  BOOST_TEST(bpe.id_count() == 4);

  peft_test::write_file(dir / "wp.json", R"({"model": {"type": "WordPiece", "unk_token": "[UNK]",
      "vocab": {"[UNK]": 0, "hello": 7}}, "added_tokens": [{"id": 9, "content": "[CLS]", "special": true}]})");
  const auto wp = read_hf_tokenizer(dir / "wp.json");
  BOOST_TEST(wp.model_type == "WordPiece");
  BOOST_TEST(wp.vocab.at("hello") == 7);
  BOOST_TEST(wp.id_count() == 10);

  peft_test::write_file(dir / "bad_merge.json",
                        R"({"model": {"type": "BPE", "vocab": {}, "merges": ["ab"]}})");
  PEFT_CHECK_THROW_MSG(read_hf_tokenizer(dir / "bad_merge.json"), peft::FormatError,
                       {"bad_merge.json", "model.merges[0]", "\"ab\""});
  peft_test::write_file(dir / "bad_type.json", R"({"model": {"type": "Magic"}})");
  PEFT_CHECK_THROW_MSG(read_hf_tokenizer(dir / "bad_type.json"), peft::FormatError,
                       {"bad_type.json", "model.type", "Magic"});
}

BOOST_AUTO_TEST_CASE(config_json_from_transformers) {
  const auto want = expected()["config"];
  const auto c = read_hf_config(hf_fixture("config.json"));
  BOOST_TEST(c.model_type == want["model_type"].get<std::string>());
  BOOST_TEST(c.architectures == want["architectures"].get<std::vector<std::string>>(),
             boost::test_tools::per_element());
  BOOST_TEST(c.vocab_size.value_or(-1) == want["vocab_size"].get<int64_t>());
  BOOST_TEST(json_get<int64_t>(c.raw, "d_model", c.path) == want["d_model"].get<int64_t>());
  BOOST_TEST(json_get<int32_t>(c.raw, "encoder_layers", c.path) == 4);
}

BOOST_AUTO_TEST_CASE(generation_config_from_transformers) {
  const auto want = expected()["generation"];
  const auto g = read_hf_generation_config(hf_fixture("generation_config.json"));
  BOOST_TEST(g.eos_token_ids == want["eos_token_ids"].get<std::vector<int64_t>>(),
             boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(g.forced_decoder_ids.size(), want["forced_decoder_ids"].size());
  for (size_t i = 0; i < g.forced_decoder_ids.size(); ++i) {
    BOOST_TEST(g.forced_decoder_ids[i].first == want["forced_decoder_ids"][i][0].get<int64_t>());
    BOOST_TEST(g.forced_decoder_ids[i].second == want["forced_decoder_ids"][i][1].get<int64_t>());
  }
  BOOST_REQUIRE_EQUAL(g.alignment_heads.size(), want["alignment_heads"].size());
  BOOST_TEST(g.alignment_heads.back().second == want["alignment_heads"].back()[1].get<int64_t>());
  BOOST_TEST((g.lang_to_id == want["lang_to_id"].get<std::map<std::string, int64_t>>()));
  BOOST_TEST((g.task_to_id == want["task_to_id"].get<std::map<std::string, int64_t>>()));
  BOOST_TEST(g.no_timestamps_token_id.value_or(-1) == want["no_timestamps_token_id"].get<int64_t>());
  BOOST_TEST(g.is_multilingual.value_or(false));
  BOOST_TEST(g.max_length.value_or(-1) == want["max_length"].get<int64_t>());
  BOOST_TEST(g.suppress_tokens == want["suppress_tokens"].get<std::vector<int64_t>>(),
             boost::test_tools::per_element());
  BOOST_TEST(g.begin_suppress_tokens.size() == 2u);
  BOOST_TEST(g.decoder_start_token_id.value_or(-1) == 50258);
  BOOST_TEST(!g.temperature.has_value());

  // The other spellings: a single eos id, forced_decoder_ids null.
  TempDir dir;
  peft_test::write_file(dir / "g.json", R"({"eos_token_id": 2, "forced_decoder_ids": null, "top_k": 50,
      "temperature": 0.7, "do_sample": true, "max_new_tokens": null})");
  const auto s = read_hf_generation_config(dir / "g.json");
  BOOST_TEST(s.eos_token_ids == std::vector<int64_t>{2}, boost::test_tools::per_element());
  BOOST_TEST(s.forced_decoder_ids.empty());
  BOOST_TEST(s.top_k.value_or(-1) == 50);
  BOOST_TEST(s.temperature.value_or(0) == 0.7);
  BOOST_TEST(s.do_sample.value_or(false));
  BOOST_TEST(!s.max_new_tokens.has_value());
}

BOOST_AUTO_TEST_CASE(errors_name_file_and_key) {
  TempDir dir;
  peft_test::write_file(dir / "config.json", R"({"architectures": ["X"]})");
  PEFT_CHECK_THROW_MSG(read_hf_config(dir / "config.json"), peft::FormatError,
                       {"config.json", "key 'model_type'", "missing"});
  peft_test::write_file(dir / "config.json", R"({"model_type": "llama", "vocab_size": "many"})");
  PEFT_CHECK_THROW_MSG(read_hf_config(dir / "config.json"), peft::FormatError,
                       {"config.json", "key 'vocab_size'", "expected an integer", "got string"});
  peft_test::write_file(dir / "config.json", R"({"model_type": "llama", "architectures": ["A", 3]})");
  PEFT_CHECK_THROW_MSG(read_hf_config(dir / "config.json"), peft::FormatError,
                       {"config.json", "key 'architectures'[1]", "expected a string", "got number"});
  peft_test::write_file(dir / "broken.json", "{\"model_type\": \"x\",\n \"n\": }");
  PEFT_CHECK_THROW_MSG(read_hf_config(dir / "broken.json"), peft::FormatError,
                       {"broken.json", "byte 27", "invalid JSON"});
  peft_test::write_file(dir / "array.json", "[1]");
  PEFT_CHECK_THROW_MSG(read_hf_config(dir / "array.json"), peft::FormatError,
                       {"array.json", "expected a JSON object, got array"});
  PEFT_CHECK_THROW_MSG(read_hf_config(dir / "absent.json"), peft::IoError, {"absent.json", "cannot open"});
  PEFT_CHECK_THROW_MSG(read_hf_tokenizer(dir / "absent.json"), peft::IoError, {"absent.json"});

  peft_test::write_file(dir / "gen.json", R"({"forced_decoder_ids": [[1, 50259], [2]]})");
  PEFT_CHECK_THROW_MSG(read_hf_generation_config(dir / "gen.json"), peft::FormatError,
                       {"gen.json", "key 'forced_decoder_ids'[1]", "pair of integers"});
  peft_test::write_file(dir / "gen.json", R"({"eos_token_id": [1, "x"]})");
  PEFT_CHECK_THROW_MSG(read_hf_generation_config(dir / "gen.json"), peft::FormatError,
                       {"gen.json", "key 'eos_token_id'[1]", "expected an integer"});
  peft_test::write_file(dir / "gen.json", R"({"lang_to_id": {"<|en|>": "50259"}})");
  PEFT_CHECK_THROW_MSG(read_hf_generation_config(dir / "gen.json"), peft::FormatError,
                       {"gen.json", "lang_to_id", "key '<|en|>'", "expected an integer"});
  peft_test::write_file(dir / "tok.json", R"({"model": {"type": "Unigram", "vocab": [["a", "high"]]}})");
  PEFT_CHECK_THROW_MSG(read_hf_tokenizer(dir / "tok.json"), peft::FormatError,
                       {"tok.json", "model.vocab[0]", "[piece, score]"});
}

BOOST_AUTO_TEST_CASE(json_get_types_and_ranges) {
  const auto j = parse_json(R"({"i": 5, "neg": -3, "big": 4294967296, "f": 1.5, "s": "x", "b": true,
      "n": null, "v": [1, 2], "vs": ["a"], "vd": [1, 2.5]})",
                            "mem.json");
  BOOST_TEST(json_get<int32_t>(j, "i", "mem.json") == 5);
  BOOST_TEST(json_get<int64_t>(j, "neg", "mem.json") == -3);
  BOOST_TEST(json_get<uint64_t>(j, "big", "mem.json") == 4294967296u);
  BOOST_TEST(json_get<double>(j, "i", "mem.json") == 5.0);  // integers are numbers
  BOOST_TEST(json_get<float>(j, "f", "mem.json") == 1.5f);
  BOOST_TEST(json_get<bool>(j, "b", "mem.json"));
  BOOST_TEST(json_get<std::vector<double>>(j, "vd", "mem.json")[1] == 2.5);
  BOOST_TEST(json_get<std::vector<std::string>>(j, "vs", "mem.json")[0] == "a");
  BOOST_TEST(!json_get_optional<int64_t>(j, "n", "mem.json").has_value());  // null = unset
  BOOST_TEST(!json_get_optional<int64_t>(j, "absent", "mem.json").has_value());
  BOOST_TEST(json_get_or<std::string>(j, "absent", "dflt", "mem.json") == "dflt");
  PEFT_CHECK_THROW_MSG(json_get<int32_t>(j, "big", "mem.json"), peft::FormatError,
                       {"mem.json", "key 'big'", "out of range"});
  PEFT_CHECK_THROW_MSG(json_get<uint64_t>(j, "neg", "mem.json"), peft::FormatError,
                       {"key 'neg'", "non-negative", "-3"});
  PEFT_CHECK_THROW_MSG(json_get<int64_t>(j, "f", "mem.json"), peft::FormatError,
                       {"key 'f'", "expected an integer, got number 1.5"});
  PEFT_CHECK_THROW_MSG(json_get<bool>(j, "n", "mem.json"), peft::FormatError,
                       {"key 'n'", "expected a boolean, got null"});
  PEFT_CHECK_THROW_MSG(json_get<std::string>(j, "missing", "mem.json"), peft::FormatError,
                       {"mem.json", "key 'missing'", "missing"});
  PEFT_CHECK_THROW_MSG(json_get<std::vector<int64_t>>(j, "vd", "mem.json"), peft::FormatError,
                       {"key 'vd'[1]", "expected an integer"});
  PEFT_CHECK_THROW_MSG(json_get<int64_t>(j["v"], "x", "mem.json"), peft::FormatError,
                       {"mem.json", "key 'x'", "array"});
  PEFT_CHECK_THROW_MSG(parse_json("{\"a\": tru}", "t.json"), peft::FormatError,
                       {"t.json", "byte", "invalid JSON"});
}
