// A tokenizer.json with a Unigram model (what transformers' fast tokenizers save for T5,
// mT5, flan-t5 and MBart: see HfUnigramTokenizer) behind the text::Tokenizer interface,
// for model directories that have no SentencePiece .model. The added tokens marked
// special are the special tokens; the post-processor's template (TemplateProcessing,
// "single") says which special tokens go around an input ("$A </s>" for T5).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "peft/text/sentencepiece_hf_unigram.h"
#include "peft/text/tokenizer.h"

namespace peft::text {

// The special tokens a post-processor puts before and after one sequence, by name and id.
struct InputTemplate {
  bool present = false;  // false: the file has no post-processor
  std::vector<std::pair<std::string, int64_t>> before, after;
};

class HfUnigramTextTokenizer final : public Tokenizer {
 public:
  // FormatError naming the file and key for what HfUnigramTokenizer refuses, and for a
  // post-processor other than TemplateProcessing (or one whose single template is not
  // special tokens around "$A"). bos/eos/pad ids are those of "<s>", "</s>", "<pad>" when
  // the vocabulary has them (T5's and MBart's names), unk the model's unk_id.
  static std::unique_ptr<HfUnigramTextTokenizer> load(const std::filesystem::path& tokenizer_json);

  // parse_special false reads the text of special tokens as text (tokenizers'
  // encode_special_tokens).
  std::vector<int64_t> encode(const std::string& text, bool parse_special = false) const override {
    return unigram_.encode(text, parse_special);
  }
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override {
    return unigram_.decode(ids, skip_special);
  }
  std::optional<int64_t> token_id(const std::string& token) const override { return unigram_.id_of(token); }
  bool is_special(int64_t id) const override { return unigram_.is_special(id); }
  int64_t vocab_size() const override { return vocab_size_; }

  const InputTemplate& input_template() const { return template_; }
  const std::string& source() const { return source_; }

 private:
  HfUnigramTextTokenizer() = default;
  HfUnigramTokenizer unigram_;
  InputTemplate template_;
  int64_t vocab_size_ = 0;
  std::string source_;
};

}  // namespace peft::text
