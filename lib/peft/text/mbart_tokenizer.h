// MBart's tokenizers, as transformers' MBartTokenizer (mbart-large-cc25, 25 language
// codes) and MBart50Tokenizer (52) build them on fairseq's sentencepiece.bpe.model:
//   ids 0-3 are <s> <pad> </s> <unk>; SentencePiece id k > 0 is id k + 1 (the fairseq
//   offset; SentencePiece's own <unk>, id 0, becomes <unk> 3); then the language codes
//   ("ar_AR", "cs_CZ", ... in fairseq's order) at N + 1 ..., N = the .model's size; then
//   <mask> (which takes the whitespace before it, lstrip).
// Inputs: MBart  = tokens </s> src_lang_code; MBart-50 = src_lang_code tokens </s>. The
// decoder's first generated token is the target language code (forced_bos_token_id).
//
// A directory with only tokenizer.json (the fast tokenizer) is read as that file says:
// its Unigram vocabulary holds the codes, and its post-processor's template says where
// the language code goes and which one it was saved with.
//
//   auto tok = MBartTokenizer::load("models/mbart-large-50");
//   std::vector<int64_t> input = tok->wrap(tok->encode(text), "de_DE");
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "peft/text/tokenizer.h"

namespace peft::text {

class MBartTokenizer final : public Tokenizer {
 public:
  enum class Layout {
    mbart,    // tokens </s> lang (MBartTokenizer)
    mbart50,  // lang tokens </s> (MBart50Tokenizer)
  };

  // From a model directory: sentencepiece.bpe.model when present, else tokenizer.json;
  // NotFoundError naming sentencepiece.bpe.model when neither exists. The layout comes
  // from tokenizer_config.json's (else config.json's) tokenizer_class ("MBart50..." is
  // MBart-50), else from `model_vocab_size` (N + 54 is MBart-50's vocabulary), else it is
  // MBart's; for tokenizer.json, from its post-processor's template. The default source
  // language is tokenizer_config.json's src_lang, else the template's code, else "en_XX".
  static std::unique_ptr<MBartTokenizer> load(const std::filesystem::path& dir, int64_t model_vocab_size = 0);
  ~MBartTokenizer() override;

  // parse_special: special tokens written in the text ("<mask>", "en_XX", "</s>") are
  // their ids, as transformers' tokenizers read them by default.
  std::vector<int64_t> encode(const std::string& text, bool parse_special = false) const override;
  // As transformers' decode without clean-up: the pieces joined, "▁" as a space, the
  // ends stripped of whitespace.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  std::optional<int64_t> token_id(const std::string& token) const override;
  bool is_special(int64_t id) const override;
  int64_t vocab_size() const override;

  Layout layout() const { return layout_; }
  const std::vector<std::string>& language_codes() const { return codes_; }
  // ValueError naming the tokenizer file, the code and the known codes when unknown.
  int64_t language_id(const std::string& code) const;
  const std::string& default_source_language() const { return default_src_; }
  // tokenizer_config.json's tgt_lang, when it names one.
  const std::optional<std::string>& default_target_language() const { return default_tgt_; }
  // The encoder input for the ids of a text in language `lang` (see Layout), and the ids
  // that go before and after the text's.
  std::vector<int64_t> wrap(const std::vector<int64_t>& body, const std::string& lang) const;
  std::pair<std::vector<int64_t>, std::vector<int64_t>> around(const std::string& lang) const;
  // The file the vocabulary was read from.
  const std::string& source() const { return source_; }

 private:
  struct Impl;
  MBartTokenizer();
  std::unique_ptr<Impl> impl_;
  Layout layout_ = Layout::mbart;
  std::vector<std::string> codes_;
  std::string default_src_;
  std::optional<std::string> default_tgt_;
  std::string source_;
};

}  // namespace peft::text
