#include "peft/text/sentencepiece_trie.h"

#include <algorithm>
#include <deque>
#include <tuple>

namespace peft::text {

SentencePieceTrie::SentencePieceTrie(std::vector<std::pair<std::string_view, int32_t>> entries) {
  entries.erase(std::remove_if(entries.begin(), entries.end(), [](const auto& e) { return e.first.empty(); }),
                entries.end());
  if (entries.empty()) return;
  // Sorted by key (bytes compare unsigned); among equal keys the last one added wins.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string_view, int32_t>> unique;
  for (const auto& e : entries) {
    if (!unique.empty() && unique.back().first == e.first)
      unique.back().second = e.second;
    else
      unique.push_back(e);
  }

  // Breadth first: a node is a run [lo, hi) of keys sharing its first `depth` bytes, so
  // its children (and their edges) are appended contiguously when it is visited.
  values_.push_back(-1);
  std::deque<std::tuple<uint32_t, size_t, size_t, size_t>> queue{{0, 0, unique.size(), 0}};
  while (!queue.empty()) {
    auto [node, lo, hi, depth] = queue.front();
    queue.pop_front();
    edge_begin_.push_back(static_cast<uint32_t>(labels_.size()));
    if (unique[lo].first.size() == depth) values_[node] = unique[lo++].second;
    while (lo < hi) {
      const auto label = static_cast<uint8_t>(unique[lo].first[depth]);
      size_t end = lo + 1;
      while (end < hi && static_cast<uint8_t>(unique[end].first[depth]) == label) ++end;
      const auto target = static_cast<uint32_t>(values_.size());
      values_.push_back(-1);
      labels_.push_back(label);
      targets_.push_back(target);
      queue.emplace_back(target, lo, end, depth + 1);
      lo = end;
    }
  }
  edge_begin_.push_back(static_cast<uint32_t>(labels_.size()));
}

uint32_t SentencePieceTrie::child(uint32_t node, uint8_t label) const {
  const auto first = labels_.begin() + edge_begin_[node];
  const auto last = labels_.begin() + edge_begin_[node + 1];
  const auto it = std::lower_bound(first, last, label);
  if (it == last || *it != label) return 0;
  return targets_[static_cast<size_t>(it - labels_.begin())];
}

int32_t SentencePieceTrie::find(std::string_view key) const {
  if (empty() || key.empty()) return -1;
  uint32_t node = 0;
  for (const char c : key) {
    node = child(node, static_cast<uint8_t>(c));
    if (node == 0) return -1;
  }
  return values_[node];
}

size_t SentencePieceTrie::longest_prefix(std::string_view text) const {
  size_t longest = 0;
  for_each_prefix(text, [&](size_t length, int32_t) { longest = length; });
  return longest;
}

}  // namespace peft::text
