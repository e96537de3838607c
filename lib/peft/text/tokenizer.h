// What generation and the summarizer need from a language model's tokenizer, whatever
// its kind (byte-level BPE as GPT-2/Llama 3/SmolLM/Qwen use, SentencePiece as T5 and
// MBart use). Implementations are immutable after loading and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace peft::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. With parse_special, the text of special/added tokens ("<|im_start|>")
  // becomes their ids, as chat prompts need; otherwise it is ordinary text. Invalid
  // UTF-8 is replaced with U+FFFD first (see text::utf8_lossy); callers that must
  // report it check with text::utf8_lossy themselves.
  virtual std::vector<int64_t> encode(const std::string& text, bool parse_special = false) const = 0;
  // Ids -> text; special tokens are skipped with skip_special, else written as their
  // text. A character cut by the end of the ids becomes U+FFFD.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;

  // Id of a token's text (a special token's, or a vocabulary piece as stored).
  virtual std::optional<int64_t> token_id(const std::string& token) const = 0;
  virtual bool is_special(int64_t id) const = 0;
  virtual int64_t vocab_size() const = 0;

  std::optional<int64_t> bos_id, eos_id, pad_id, unk_id;
  bool add_bos = false;  // prepend bos_id to encoded prompts (Llama 2/3 do, SmolLM2 does not)
  bool add_eos = false;  // append eos_id to encoded inputs (T5 and BART inputs end with </s>)
  // The model's chat template (Jinja source) when the checkpoint has one.
  std::string chat_template;
};

}  // namespace peft::text
