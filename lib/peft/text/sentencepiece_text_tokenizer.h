// A SentencePiece .model (T5's spiece.model) behind the text::Tokenizer interface that
// generation and the summarizer use. Control pieces ("</s>", "<pad>") are the special
// tokens: parsed from text on request, dropped by decode unless asked. T5's tokenizer
// appends "</s>" to every input (add_eos).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "peft/text/sentencepiece_tokenizer.h"
#include "peft/text/tokenizer.h"

namespace peft::text {

class SentencePieceTextTokenizer final : public Tokenizer {
 public:
  static std::unique_ptr<SentencePieceTextTokenizer> load(const std::filesystem::path& model_file);

  std::vector<int64_t> encode(const std::string& text, bool parse_special = false) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  std::optional<int64_t> token_id(const std::string& token) const override { return sp_.id_of(token); }
  bool is_special(int64_t id) const override;
  int64_t vocab_size() const override { return sp_.vocab_size(); }

  const SentencePieceTokenizer& sentencepiece() const { return sp_; }

 private:
  explicit SentencePieceTextTokenizer(SentencePieceTokenizer sp);
  SentencePieceTokenizer sp_;
  std::vector<std::pair<std::string, int64_t>> controls_;  // longest first
};

}  // namespace peft::text
