// The tokenizer.json that transformers' SentencePiece converters write for a unigram
// spiece.model (T5, mT5, flan-t5): a Unigram model, the normalizer Sequence
// [Precompiled charsmap, Strip right, Replace " {2,}" -> "▁"], a Metaspace pre-tokenizer
// and decoder, and special added tokens. Run as huggingface/tokenizers runs it, which
// is not quite sentencepiece: added tokens ("</s>", "<pad>"...) typed in the text are
// their ids; the charsmap is applied per grapheme cluster with the shortest matching
// rule (so "..." does not become "…"); scores are summed in double; a literal "▁" in
// the text is kept; an unknown run is one <unk> (or its bytes with byte_fallback).
// Checked against tokenizers 0.20.3 (tests/text/test_sentencepiece.cpp). Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace peft::text {

class HfUnigramTokenizer {
 public:
  // Reads tokenizer.json. FormatError naming the file and key for a model other than
  // Unigram, or a normalizer, pre-tokenizer, decoder or added-token option outside
  // what the SentencePiece converters write (listed in the .cpp).
  static HfUnigramTokenizer load(const std::filesystem::path& path);

  // Text -> ids without special tokens added (the post-processor's "</s>" is the
  // caller's). Invalid UTF-8 is first repaired with U+FFFD, as Python's str would need.
  // Added tokens are matched as tokenizers does (in the raw or the normalized text, with
  // their lstrip / rstrip); special ones only with `specials` (false: tokenizers'
  // encode_special_tokens, the text of "</s>" is ordinary text).
  // Const and thread-safe, like everything here.
  std::vector<int64_t> encode(const std::string& text, bool specials = true) const;
  std::vector<std::string> encode_tokens(const std::string& text, bool specials = true) const;

  // tokenizers' decode: special added tokens dropped when asked, the rest through the
  // Metaspace decoder ("▁" -> " ", none at the start of the first token).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;

  int64_t vocab_size() const;
  std::optional<int64_t> id_of(const std::string& token) const;
  const std::string& token(int64_t id) const;  // ValueError out of range
  std::optional<int64_t> unk_id() const;
  bool is_special(int64_t id) const;  // an added token marked special

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace peft::text
