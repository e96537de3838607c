// Byte-level BPE as GPT-2 defined it and huggingface/tokenizers implements it
// (ByteLevel pre-tokenizer with the GPT-2 regex, BPE model, ByteLevel decoder). Text is
// split into pre-tokens, each pre-token's UTF-8 bytes are written as printable code
// points (bytes_to_unicode), and merges are applied by rank. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace peft::text {

// GPT-2's reversible byte <-> code point table: printable Latin-1 bytes stand for
// themselves, the other 68 bytes map to U+0100.. in byte order. Returns UTF-8.
std::string bytes_to_unicode(const std::string& bytes);
// The inverse; nullopt if a code point is not in the table (or the input is not UTF-8).
std::optional<std::string> unicode_to_bytes(const std::string& text);

// Splits UTF-8 text like the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (leftmost alternative wins, as in a backtracking engine). The pieces concatenate to
// the input. Throws ValueError for invalid UTF-8, naming the byte offset.
std::vector<std::string> gpt2_pre_tokenize(const std::string& text);

class ByteLevelBpe {
 public:
  // `vocab`: byte-level token -> id; `merges`: pairs in priority order (rank = index).
  // `origin` names the file in errors: FormatError for a merge whose parts or result
  // are not in the vocabulary, or two tokens with one id.
  ByteLevelBpe(const std::map<std::string, int64_t>& vocab,
               const std::vector<std::pair<std::string, std::string>>& merges, std::string origin);

  // Ordinary text -> ids. Thread-safe (the word cache is locked).
  std::vector<int64_t> encode(const std::string& text) const;
  // One pre-token's byte-level pieces after merging (for tests and debugging).
  std::vector<std::string> merge_word(const std::string& byte_level_word) const;

  // The raw bytes a token id stands for; nullopt for an id not in the vocabulary.
  std::optional<std::string> token_bytes(int64_t id) const;
  // The byte-level token string of an id; nullopt if absent.
  const std::string* token(int64_t id) const;
  // Id of a byte-level token string.
  std::optional<int64_t> id_of(const std::string& byte_level_token) const;
  // Largest id + 1.
  int64_t id_count() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  std::vector<int64_t> encode_word(const std::string& byte_level_word) const;

  std::string origin_;
  std::unordered_map<std::string, int64_t> token_to_id_;
  std::vector<std::optional<std::string>> id_to_token_;
  // (left id, right id) -> (rank, merged id), keyed as one 64-bit value.
  std::unordered_map<uint64_t, std::pair<int32_t, int64_t>> merges_;
  // Pre-tokens repeat a lot in speech transcripts; caching their ids skips the merges.
  // Bounded so that a long-running element does not grow without limit.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

}  // namespace peft::text
