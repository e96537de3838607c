// A language model's byte-level BPE tokenizer (GPT-2, SmolLM/SmolLM2, Llama 3, Qwen2
// style) with its special and added tokens, read from a GGUF file's tokenizer.ggml.*
// metadata or a Hugging Face tokenizer.json (+ tokenizer_config.json). Pre-tokenizers:
// GPT-2's regex, optionally after splitting every digit on its own (SmolLM's
// Digits(individual_digits) + ByteLevel, llama.cpp's "smollm"/"starcoder" pre-type).
// Others are refused by name rather than tokenized differently from the reference.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "peft/text/byte_level_bpe.h"
#include "peft/text/tokenizer.h"

namespace peft::io {
class Checkpoint;
}

namespace peft::text {

class BpeTokenizer final : public Tokenizer {
 public:
  // From a GGUF checkpoint's metadata (tokenizer.ggml.model "gpt2"). Throws
  // NotFoundError / ValueError naming the file and key.
  static std::unique_ptr<BpeTokenizer> from_gguf(const io::Checkpoint& gguf);
  // From a directory's tokenizer.json (BPE model, ByteLevel pre-tokenizer) and, when
  // present, tokenizer_config.json (bos/eos tokens, add_bos_token, chat_template).
  static std::unique_ptr<BpeTokenizer> from_hf_dir(const std::filesystem::path& dir);

  std::vector<int64_t> encode(const std::string& text, bool parse_special = false) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  std::optional<int64_t> token_id(const std::string& token) const override;
  bool is_special(int64_t id) const override;
  int64_t vocab_size() const override { return vocab_size_; }

  bool splits_digits() const { return split_digits_; }

 private:
  BpeTokenizer() = default;
  // Ordinary text (no special tokens) -> ids.
  std::vector<int64_t> encode_ordinary(const std::string& text) const;

  std::unique_ptr<ByteLevelBpe> bpe_;
  bool split_digits_ = false;
  int64_t vocab_size_ = 0;
  // Special/added tokens matched in text before BPE (longest first), and their ids.
  std::vector<std::pair<std::string, int64_t>> added_;
  std::unordered_map<int64_t, std::string> special_text_;
};

}  // namespace peft::text
