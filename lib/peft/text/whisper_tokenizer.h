// Whisper's tokenizer: byte-level BPE from the checkpoint's tokenizer.json (or
// openai-whisper's *.tiktoken ranks, the tokenizer of its .pt checkpoints) plus
// Whisper's special tokens (start of transcript, languages, tasks, timestamps). Ids are
// read from the file, never assumed: .en and multilingual vocabularies differ by one,
// large-v3 by two. Timestamp tokens <|0.00|> .. <|30.00|> follow <|notimestamps|> even
// where tokenizer.json does not list them (faster-whisper's files do not).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace peft::text {

class ByteLevelBpe;

class WhisperTokenizer {
 public:
  // `file`: a Hugging Face tokenizer.json, or a *.tiktoken file (openai-whisper's
  // multilingual.tiktoken / gpt2.tiktoken) whose special tokens are laid out as openai's
  // tokenizer.py does, with as many languages as `model_vocab_size` leaves room for (99,
  // or 100 for large-v3's 51866). `model_vocab_size`: the decoder's output size; the
  // tokenizer's ids (with the 1501 timestamp tokens) must fit it exactly, else
  // ValueError naming both sizes.
  WhisperTokenizer(const std::filesystem::path& file, int64_t model_vocab_size);
  ~WhisperTokenizer();
  WhisperTokenizer(WhisperTokenizer&&) noexcept;
  WhisperTokenizer& operator=(WhisperTokenizer&&) noexcept;

  // Text -> ids (ordinary tokens only; special-token text is encoded literally).
  std::vector<int64_t> encode(const std::string& text) const;
  // Ids -> text, skipping special and timestamp tokens. Incomplete UTF-8 at the end
  // (a token boundary inside a character) is replaced with U+FFFD.
  std::string decode(const std::vector<int64_t>& ids) const;
  // Ids -> text with timestamps written as "<|1.08|>" (two decimals, as openai). Like
  // faster-whisper, other special tokens are skipped and the text between timestamps is
  // decoded run by run.
  std::string decode_with_timestamps(const std::vector<int64_t>& ids) const;

  // openai's rule: language and task tokens present and a vocabulary of >= 51865
  // (English-only tokenizer files list language tokens too).
  bool multilingual() const { return multilingual_; }
  int64_t vocab_size() const { return vocab_size_; }  // == model_vocab_size

  // Special ids.
  int64_t eot() const { return eot_; }
  int64_t sot() const { return sot_; }
  int64_t sot_prev() const { return sot_prev_; }
  int64_t sot_lm() const { return sot_lm_; }
  int64_t no_speech() const { return no_speech_; }
  int64_t no_timestamps() const { return no_timestamps_; }
  int64_t timestamp_begin() const { return timestamp_begin_; }  // <|0.00|>
  std::optional<int64_t> translate() const { return translate_; }
  std::optional<int64_t> transcribe() const { return transcribe_; }
  bool is_timestamp(int64_t id) const { return id >= timestamp_begin_; }
  bool is_special(int64_t id) const { return id >= eot_; }

  // Language codes ("en", "fr", ...) in id order, and their tokens.
  const std::vector<std::string>& language_codes() const { return language_codes_; }
  std::optional<int64_t> language_token(const std::string& code) const;

  // [sot] for .en models; [sot, language, task] for multilingual ones (language
  // omitted when empty: it is detected first). Throws ValueError for an unknown
  // language or task, or a translate task on an English-only model.
  std::vector<int64_t> sot_sequence(const std::string& language, const std::string& task) const;

  // openai's non_speech_tokens: symbols and punctuation-only tokens that
  // suppress_tokens = [-1] expands to.
  std::vector<int64_t> non_speech_tokens() const;

  // Token id of a single-token string (e.g. " "), if the vocabulary has one.
  std::optional<int64_t> token_id(const std::string& token_text) const;

 private:
  std::unique_ptr<ByteLevelBpe> bpe_;
  bool multilingual_ = false;
  int64_t vocab_size_ = 0;
  int64_t eot_ = -1, sot_ = -1, sot_prev_ = -1, sot_lm_ = -1, no_speech_ = -1, no_timestamps_ = -1,
          timestamp_begin_ = -1;
  std::optional<int64_t> translate_, transcribe_;
  std::vector<std::string> language_codes_;
  std::vector<int64_t> language_tokens_;
  // Added tokens by id (content, special flag) and by content.
  std::string origin_;
  std::vector<std::pair<int64_t, std::string>> added_;  // sorted by id
  std::vector<bool> added_special_;
  std::vector<int64_t> non_speech_;

  const std::string* added_content(int64_t id, bool* special) const;
  std::optional<int64_t> added_id(const std::string& content) const;
  void append_token_bytes(int64_t id, std::string& out) const;
};

}  // namespace peft::text
