// MBart / MBart-50 tokenization (sentencepiece.bpe.model with the fairseq offset and the
// language codes, or tokenizer.json alone) and T5 with tokenizer.json alone, behind
// summarization::TextModel, against transformers' MBartTokenizer, MBart50Tokenizer,
// MBart50TokenizerFast and T5TokenizerFast and generate() on tiny random checkpoints
// (tests/reference/make_mbart_tokenizer_fixture.py).
#define BOOST_TEST_MODULE mbart_tokenizer
#include <boost/test/unit_test.hpp>

#include <nlohmann/json.hpp>

#include "models/generate_kwargs.h"
#include "peft/error.h"
#include "peft/runtime.h"
#include "peft/summarization/text_model.h"
#include "peft/text/mbart_tokenizer.h"
#include "test_support.h"

using namespace peft;
using namespace peft::summarization;
using text::MBartTokenizer;
namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;

namespace {

fs::path fixture() { return peft_test::fixtures_dir() / "text" / "mbart"; }

const nlohmann::json& reference() {
  static const nlohmann::json j = nlohmann::json::parse(peft_test::read_file(fixture() / "reference.json"));
  return j;
}

// Every reference string: plain ids, ids with the source-language layout, and strings
// holding special tokens read as markup (parse_special) and as text.
void check_strings(const text::Tokenizer& tok, const nlohmann::json& ref,
                   const std::function<Ids(const Ids&)>& wrap) {
  BOOST_TEST(tok.vocab_size() == ref.at("vocab_size").get<int64_t>());
  for (const auto& s : ref.at("strings")) {
    const std::string t = s.at("text").get<std::string>();
    const Ids ids = tok.encode(t);
    BOOST_TEST(ids == s.at("ids").get<Ids>(), t);
    BOOST_TEST(wrap(ids) == s.at("with_specials").get<Ids>(), t);
  }
  for (const auto& s : ref.at("special_strings")) {
    const std::string t = s.at("text").get<std::string>();
    BOOST_TEST(tok.encode(t, true) == s.at("ids").get<Ids>(), t);
    BOOST_TEST(tok.encode(t, false) == s.at("split_ids").get<Ids>(), t);
  }
}

// TextModel's input for the reference text and generate() as transformers ran it; the
// forced first token comes from the model (config or target language), not the kwargs.
void check_model(const TextModel& model, const nlohmann::json& ref,
                 const std::string& input_key = "input_ids") {
  const std::string text = ref.at("text").get<std::string>();
  BOOST_TEST(model.prompt("", text).ids == ref.at(input_key).get<Ids>());
  if (input_key != "input_ids") return;
  for (const auto& g : ref.at("generate")) {
    nlohmann::json kw = g.at("kwargs");
    kw.erase("forced_bos_token_id");
    const auto r = model.generate(model.prompt("", text), peft_test::options_from_kwargs(kw));
    BOOST_TEST(r.tokens == g.at("tokens").get<Ids>(), g.at("kwargs").dump());
    BOOST_TEST(r.text == g.at("text").get<std::string>(), g.at("kwargs").dump());
    Ids all{g.at("decoder_start_token_id").get<int64_t>()};
    all.insert(all.end(), r.tokens.begin(), r.tokens.end());
    BOOST_TEST(model.tokenizer().decode(all, false) == g.at("text_with_specials").get<std::string>());
  }
}

// MBart-50 with only its tokenizer.json: the fixture's file beside m50's model files.
fs::path m50_fast() {
  static peft_test::TempDir dir;
  const fs::path d = dir.path() / "m50_fast";
  if (!fs::exists(d)) {
    fs::create_directory(d);
    for (const char* f : {"config.json", "generation_config.json", "model.safetensors"})
      fs::copy_file(fixture() / "m50" / f, d / f);
    fs::copy_file(fixture() / "m50_fast" / "tokenizer.json", d / "tokenizer.json");
  }
  return d;
}

const MBartTokenizer& mbart_tokenizer(const TextModel& model) {
  return dynamic_cast<const MBartTokenizer&>(model.tokenizer());
}

}  // namespace

BOOST_AUTO_TEST_CASE(mbart_cc25_from_sentencepiece_bpe_model) {
  configure_runtime(0);
  const auto& ref = reference().at("cc25");
  const auto model = TextModel::load(fixture() / "cc25");
  BOOST_TEST(model->architecture() == "mbart");
  const auto& tok = mbart_tokenizer(*model);
  BOOST_TEST((tok.layout() == MBartTokenizer::Layout::mbart));
  BOOST_TEST(tok.language_codes().size() == 25u);
  BOOST_TEST(tok.default_source_language() == "en_XX");
  BOOST_TEST(model->source_language() == "en_XX");
  // forced_bos_token_id comes from the checkpoint (ro_RO), not tokenizer_config's tgt_lang.
  BOOST_TEST(model->target_language().empty());
  BOOST_TEST(tok.language_id("ro_RO") == ref.at("forced_bos_token_id").get<int64_t>());
  BOOST_TEST(*tok.token_id("<mask>") == tok.vocab_size() - 1);
  check_strings(tok, ref, [&](const Ids& ids) { return tok.wrap(ids, "en_XX"); });
  check_model(*model, ref);
}

BOOST_AUTO_TEST_CASE(mbart50_from_sentencepiece_model_with_languages) {
  configure_runtime(0);
  const auto& ref = reference().at("m50");
  TextModelOptions o;
  o.target_language = ref.at("target_lang").get<std::string>();
  const auto model = TextModel::load(fixture() / "m50", o);
  const auto& tok = mbart_tokenizer(*model);
  BOOST_TEST((tok.layout() == MBartTokenizer::Layout::mbart50));
  BOOST_TEST(tok.language_codes().size() == 52u);
  BOOST_TEST(model->target_language() == "de_DE");
  check_strings(tok, ref, [&](const Ids& ids) { return tok.wrap(ids, "en_XX"); });
  check_model(*model, ref);
  o.source_language = "ja_XX";
  check_model(*TextModel::load(fixture() / "m50", o), ref, "input_ids_ja_XX");
}

BOOST_AUTO_TEST_CASE(mbart50_from_tokenizer_json_only) {
  configure_runtime(0);
  const auto& ref = reference().at("m50_fast");
  const fs::path dir = m50_fast();
  BOOST_TEST(!fs::exists(dir / "sentencepiece.bpe.model"));
  BOOST_TEST(!fs::exists(dir / "tokenizer_config.json"));
  TextModelOptions o;
  o.target_language = ref.at("target_lang").get<std::string>();
  const auto model = TextModel::load(dir, o);
  const auto& tok = mbart_tokenizer(*model);
  // The layout and the default source language are the post-processor template's.
  BOOST_TEST((tok.layout() == MBartTokenizer::Layout::mbart50));
  BOOST_TEST(tok.language_codes().size() == 52u);
  BOOST_TEST(model->source_language() == "fr_XX");
  check_strings(tok, ref, [&](const Ids& ids) { return tok.wrap(ids, "fr_XX"); });
  check_model(*model, ref);
  o.source_language = "ja_XX";
  check_model(*TextModel::load(dir, o), ref, "input_ids_ja_XX");
}

BOOST_AUTO_TEST_CASE(t5_from_tokenizer_json_only) {
  configure_runtime(0);
  const auto& ref = reference().at("t5_fast");
  peft_test::TempDir dir;
  fs::copy(fixture() / "t5_fast", dir.path() / "t5");
  fs::copy_file(peft_test::fixtures_dir() / "text" / "sentencepiece" / "t5_tokenizer" / "tokenizer.json",
                dir.path() / "t5" / "tokenizer.json");
  const auto model = TextModel::load(dir.path() / "t5");
  BOOST_TEST(model->architecture() == "t5");
  const text::Tokenizer& tok = model->tokenizer();
  check_strings(tok, ref, [&](const Ids& ids) {
    Ids out = ids;
    out.push_back(*tok.eos_id);
    return out;
  });
  check_model(*model, ref);
  // Languages are MBart's.
  TextModelOptions o;
  o.source_language = "en_XX";
  PEFT_CHECK_THROW_MSG(TextModel::load(dir.path() / "t5", o), ValueError, {"MBart", "t5"});
  // Neither tokenizer file: both are named.
  fs::remove(dir.path() / "t5" / "tokenizer.json");
  PEFT_CHECK_THROW_MSG(TextModel::load(dir.path() / "t5"), NotFoundError, {"spiece.model", "tokenizer.json"});
}

BOOST_AUTO_TEST_CASE(bad_languages_and_missing_files_are_named) {
  configure_runtime(0);
  TextModelOptions o;
  o.source_language = "xx_YY";
  PEFT_CHECK_THROW_MSG(TextModel::load(fixture() / "cc25", o), ValueError,
                       {"sentencepiece.bpe.model", "unknown language code 'xx_YY'", "en_XX"});
  o.source_language.clear();
  o.target_language = "af_ZA";  // MBart-50's, not MBart's
  PEFT_CHECK_THROW_MSG(TextModel::load(fixture() / "cc25", o), ValueError, {"'af_ZA'"});
  BOOST_CHECK_NO_THROW(TextModel::load(m50_fast(), o));
  o.target_language = "qq_QQ";
  PEFT_CHECK_THROW_MSG(TextModel::load(m50_fast(), o), ValueError,
                       {"tokenizer.json", "unknown language code 'qq_QQ'"});
  peft_test::TempDir dir;
  fs::create_directory(dir.path() / "mbart");
  for (const char* f :
       {"config.json", "generation_config.json", "model.safetensors", "tokenizer_config.json"})
    fs::copy_file(fixture() / "cc25" / f, dir.path() / "mbart" / f);
  PEFT_CHECK_THROW_MSG(TextModel::load(dir.path() / "mbart"), NotFoundError, {"sentencepiece.bpe.model"});
}

BOOST_AUTO_TEST_CASE(layout_from_the_model_vocabulary_without_tokenizer_config) {
  configure_runtime(0);
  // Without tokenizer_config.json (and no tokenizer_class in config.json), MBart-50 is
  // told from MBart by the model's vocabulary: N + 54 ids rather than N + 27.
  for (const auto& [name, layout, codes] : {std::tuple{"cc25", MBartTokenizer::Layout::mbart, 25u},
                                            std::tuple{"m50", MBartTokenizer::Layout::mbart50, 52u}}) {
    peft_test::TempDir dir;
    const fs::path d = dir.path() / name;
    fs::create_directory(d);
    for (const char* f :
         {"config.json", "generation_config.json", "model.safetensors", "sentencepiece.bpe.model"})
      fs::copy_file(fixture() / name / f, d / f);
    const auto model = TextModel::load(d);
    const auto& tok = mbart_tokenizer(*model);
    BOOST_TEST((tok.layout() == layout), name);
    BOOST_TEST(tok.language_codes().size() == codes, name);
    BOOST_TEST(model->source_language() == "en_XX", name);
    const auto& ref = reference().at(name);
    BOOST_TEST(model->prompt("", ref.at("text").get<std::string>()).ids == ref.at("input_ids").get<Ids>(),
               name);
  }
}
