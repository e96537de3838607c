#include "peft/text/special_tokens.h"

#include <algorithm>

namespace peft::text {

std::vector<int64_t> encode_with_specials(
    const std::string& text, const std::vector<std::pair<std::string, int64_t>>& specials,
    const std::function<std::vector<int64_t>(const std::string&)>& encode) {
  std::vector<int64_t> ids;
  size_t start = 0, pos = 0;
  auto flush = [&](size_t end) {
    if (end > start) {
      const auto part = encode(text.substr(start, end - start));
      ids.insert(ids.end(), part.begin(), part.end());
    }
  };
  while (pos < text.size()) {
    const std::pair<std::string, int64_t>* hit = nullptr;
    for (const auto& s : specials)
      if (!s.first.empty() && text.compare(pos, s.first.size(), s.first) == 0) {
        hit = &s;
        break;
      }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    flush(pos);
    ids.push_back(hit->second);
    pos += hit->first.size();
    start = pos;
  }
  flush(text.size());
  return ids;
}

void sort_longest_first(std::vector<std::pair<std::string, int64_t>>& specials) {
  std::stable_sort(specials.begin(), specials.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

}  // namespace peft::text
