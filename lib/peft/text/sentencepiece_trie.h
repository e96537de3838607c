// A byte trie from piece strings to ids, for the lookups SentencePiece does with its
// Darts double arrays: every vocabulary piece that is a prefix of the text (unigram
// lattice), the longest user-defined symbol at a position, and exact matches (BPE).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace peft::text {

class SentencePieceTrie {
 public:
  // Adds a non-empty key; adding a key again replaces its value.
  void insert(std::string_view key, int32_t value);
  bool empty() const { return values_.size() == 1; }

  // Value of `key`, or -1.
  int32_t find(std::string_view key) const;

  // Calls visit(length, value) for every key that is a prefix of `text`, shortest first.
  template <class Visit>
  void for_each_prefix(std::string_view text, Visit&& visit) const {
    uint32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      const auto it = edges_.find(edge(node, text[i]));
      if (it == edges_.end()) return;
      node = it->second;
      if (values_[node] >= 0) visit(i + 1, values_[node]);
    }
  }

  // Length of the longest key that is a prefix of `text` (0 if none).
  size_t longest_prefix(std::string_view text) const;

 private:
  static uint64_t edge(uint32_t node, char byte) {
    return (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(byte);
  }
  std::vector<int32_t> values_{-1};  // per node, -1 where no key ends; node 0 is the root
  std::unordered_map<uint64_t, uint32_t> edges_;
};

}  // namespace peft::text
