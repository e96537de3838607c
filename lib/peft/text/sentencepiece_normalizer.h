// SentencePiece's text normalization (normalizer.cc): the precompiled charsmap rewrites
// the longest matching prefix at each position (NFKC and the like, compiled into a Darts
// double-array trie), then whitespace is trimmed and squeezed, a dummy "▁" prefix added
// and spaces written as U+2581 "▁". Both sentencepiece and HF tokenizers' "Precompiled"
// normalizer read the same charsmap blob.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "peft/text/sentencepiece_model.h"
#include "peft/text/sentencepiece_trie.h"

namespace peft::text {

// The blob: <uint32 LE trie size><trie: darts-clone double-array units><replacement
// strings, each NUL-terminated>; a trie value is the offset of its replacement.
class PrecompiledCharsMap {
 public:
  // Checks the layout and walks the whole trie once, so that every reachable rule
  // points at a terminated replacement inside the blob: FormatError "<origin>: <field>:
  // ..." otherwise.
  PrecompiledCharsMap(std::string blob, const std::string& origin, const std::string& field);

  // The longest rule matching a prefix of `text`: (bytes it covers, replacement);
  // (0, "") when no rule matches.
  std::pair<size_t, std::string_view> longest_match(std::string_view text) const;
  // HF tokenizers' Precompiled::transform: the replacement of the shortest rule matching
  // a prefix of `chunk` (the search stops at a NUL byte); nullopt when none does.
  std::optional<std::string_view> shortest_match(std::string_view chunk) const;

 private:
  uint32_t unit(size_t index) const;
  std::string blob_;
  size_t units_ = 0;    // trie units, starting at byte 4
  size_t strings_ = 0;  // byte offset of the replacement strings
};

class SentencePieceNormalizer {
 public:
  // `user_defined`: symbols copied unnormalized when they start at a position (the
  // model's USER_DEFINED pieces; empty for the denormalizer).
  SentencePieceNormalizer(const SentencePieceNormalizerSpec& spec, bool treat_whitespace_as_suffix,
                          SentencePieceTrie user_defined, const std::string& origin,
                          const std::string& field);

  // Normalized text, as SentencePieceProcessor::Normalize returns it. Invalid UTF-8
  // bytes become U+FFFD, one per byte.
  std::string normalize(std::string_view input) const;

 private:
  // What the next characters of `input` become, and how many bytes they take.
  std::pair<std::string_view, size_t> normalize_prefix(std::string_view input) const;

  SentencePieceNormalizerSpec spec_;
  bool treat_whitespace_as_suffix_;
  SentencePieceTrie user_defined_;
  std::vector<PrecompiledCharsMap> charsmap_;  // zero or one
};

// SentencePiece's UTF-8 rules (util.h): the sequence length announced by a lead byte
// (1 for a stray continuation byte), and whether `text` starts with a valid,
// shortest-form character; `length` is then its size, else 1.
size_t sentencepiece_char_length(char lead);
bool sentencepiece_valid_utf8_prefix(std::string_view text, size_t& length);

}  // namespace peft::text
