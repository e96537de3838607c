// SentencePiece tokenization without the sentencepiece library: T5's spiece.model
// (unigram) and MBart's sentencepiece.bpe.model (BPE) give the ids and pieces
// SentencePieceProcessor gives (checked against sentencepiece 0.2.3 on trained models,
// tests/text/test_sentencepiece.cpp). Torch-free.
//
// encode = normalize (charsmap, whitespace, "▁") then segment: unigram takes the
// best-scoring path through all vocabulary pieces (Viterbi; an uncovered character is
// <unk> at the lowest score minus 10), BPE repeatedly merges the adjacent pair whose
// merged piece has the highest score. User-defined pieces are kept whole; with
// byte_fallback an <unk> is spelled as <0xXX> byte pieces, otherwise a run of unknown
// characters is one <unk> (its piece is the text it covers). No BOS/EOS are added.
//
// Invalid UTF-8 input is not an error: as in sentencepiece, each byte that does not
// start a valid character becomes U+FFFD (normally <unk>, or bytes EF BF BD with
// byte_fallback).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "peft/text/sentencepiece_model.h"

namespace peft::text {

class SentencePieceTokenizer {
 public:
  // Reads a .model file. IoError when it cannot be read; FormatError naming the file
  // and the field or offset when it is truncated or malformed, or its vocabulary is not
  // one sentencepiece would load (empty or duplicate pieces, no <unk>, byte pieces
  // without byte_fallback or not all 256 of them, a WORD or CHAR model).
  static SentencePieceTokenizer load(const std::filesystem::path& path);

  // From a decoded model; `origin` names it in errors.
  SentencePieceTokenizer(SentencePieceModelProto model, const std::string& origin);

  // All methods are const and thread-safe.
  std::vector<int64_t> encode(const std::string& text) const;
  std::vector<std::string> encode_pieces(const std::string& text) const;
  // The normalized text the segmentation sees ("▁Hello▁world").
  std::string normalize(const std::string& text) const;

  // Ids -> text: control ids vanish, <unk> prints as trainer_spec.unk_surface (" ⁇ "),
  // "▁" becomes a space, the first piece's leading "▁" (the dummy prefix) is dropped,
  // runs of byte pieces are reassembled into UTF-8 with U+FFFD for each byte that is
  // not part of a valid character. ValueError for an id outside [0, vocab_size).
  std::string decode(const std::vector<int64_t>& ids) const;

  // The piece string of an id (ValueError when out of range).
  const std::string& piece(int64_t id) const;
  // The id of a piece string; nullopt when it is not in the vocabulary.
  std::optional<int64_t> id_of(const std::string& piece) const;
  float score(int64_t id) const;
  SentencePieceType type(int64_t id) const;
  int64_t vocab_size() const;

  // Special ids as SentencePieceProcessor reports them: the piece named by
  // trainer_spec.{unk,bos,eos,pad}_piece when it exists with the right type, else -1.
  int64_t unk_id() const;
  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;

  const SentencePieceTrainerSpec& trainer_spec() const;
  const SentencePieceNormalizerSpec& normalizer_spec() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace peft::text
