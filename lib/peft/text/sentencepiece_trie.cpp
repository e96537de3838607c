#include "peft/text/sentencepiece_trie.h"

namespace peft::text {

void SentencePieceTrie::insert(std::string_view key, int32_t value) {
  uint32_t node = 0;
  for (const char c : key) {
    const auto [it, added] = edges_.try_emplace(edge(node, c), static_cast<uint32_t>(values_.size()));
    if (added) values_.push_back(-1);
    node = it->second;
  }
  if (node != 0) values_[node] = value;
}

int32_t SentencePieceTrie::find(std::string_view key) const {
  if (key.empty()) return -1;
  uint32_t node = 0;
  for (const char c : key) {
    const auto it = edges_.find(edge(node, c));
    if (it == edges_.end()) return -1;
    node = it->second;
  }
  return values_[node];
}

size_t SentencePieceTrie::longest_prefix(std::string_view text) const {
  size_t longest = 0;
  for_each_prefix(text, [&](size_t length, int32_t) { longest = length; });
  return longest;
}

}  // namespace peft::text
