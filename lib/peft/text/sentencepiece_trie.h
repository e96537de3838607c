// A byte trie from piece strings to ids, for the lookups SentencePiece does with its
// Darts double arrays: every vocabulary piece that is a prefix of the text (unigram
// lattice) and the longest user-defined symbol at a position. Built once, then stored
// compactly (children of a node are a sorted run of byte labels), so that a 250k-piece
// vocabulary (mT5) costs a few MB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace peft::text {

class SentencePieceTrie {
 public:
  SentencePieceTrie() = default;
  // Keys must be non-empty (empty ones are ignored); for a repeated key the last value wins.
  explicit SentencePieceTrie(std::vector<std::pair<std::string_view, int32_t>> entries);

  bool empty() const { return labels_.empty(); }

  // Value of `key`, or -1.
  int32_t find(std::string_view key) const;

  // Calls visit(length, value) for every key that is a prefix of `text`, shortest first.
  template <class Visit>
  void for_each_prefix(std::string_view text, Visit&& visit) const {
    if (empty()) return;
    uint32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      node = child(node, static_cast<uint8_t>(text[i]));
      if (node == 0) return;
      if (values_[node] >= 0) visit(i + 1, values_[node]);
    }
  }

  // Length of the longest key that is a prefix of `text` (0 if none).
  size_t longest_prefix(std::string_view text) const;

 private:
  // The child of `node` along `label`, or 0 (the root is nobody's child).
  uint32_t child(uint32_t node, uint8_t label) const;

  std::vector<int32_t> values_;       // per node, -1 where no key ends; node 0 is the root
  std::vector<uint32_t> edge_begin_;  // per node + 1: its children are edges [begin[n], begin[n+1])
  std::vector<uint8_t> labels_;       // per edge, ascending within a node
  std::vector<uint32_t> targets_;     // per edge
};

}  // namespace peft::text
