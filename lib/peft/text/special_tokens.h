// Tokenizing text in which special tokens may be written out ("<|im_start|>", "</s>"):
// the text is cut at every occurrence of one (the longest at each position), each
// occurrence becomes its id and the stretches between go through the ordinary encoder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace peft::text {

// `specials`: (text, id), longest text first (sort_longest_first).
std::vector<int64_t> encode_with_specials(
    const std::string& text, const std::vector<std::pair<std::string, int64_t>>& specials,
    const std::function<std::vector<int64_t>(const std::string&)>& encode);

void sort_longest_first(std::vector<std::pair<std::string, int64_t>>& specials);

}  // namespace peft::text
