#include "peft/text/sentencepiece_normalizer.h"

#include <cstring>

#include "peft/error.h"

namespace peft::text {

namespace {

const std::string_view kSpaceSymbol = "\xE2\x96\x81";      // U+2581 "▁"
const std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// darts-clone's DoubleArrayUnit bit fields.
bool unit_has_leaf(uint32_t u) { return ((u >> 8) & 1) == 1; }
uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1); }
uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
size_t unit_offset(uint32_t u) { return static_cast<size_t>(u >> 10) << ((u & (1u << 9)) >> 6); }

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_trail(char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; }
bool valid_code_point(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

}  // namespace

size_t sentencepiece_char_length(char lead) {
  static const uint8_t kLength[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLength[static_cast<uint8_t>(lead) >> 4];
}

bool sentencepiece_valid_utf8_prefix(std::string_view s, size_t& length) {
  length = 1;
  if (s.empty()) return false;
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i])); };
  const size_t n = s.size();
  if (b(0) < 0x80) return true;
  // Same order of tests as string_util::DecodeUTF8: a lead byte whose sequence does not
  // fit in what is left is invalid (one byte).
  if (n >= 2 && (b(0) & 0xE0) == 0xC0) {
    const uint32_t cp = ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    if (is_trail(s[1]) && cp >= 0x80 && valid_code_point(cp)) return (length = 2), true;
  } else if (n >= 3 && (b(0) & 0xF0) == 0xE0) {
    const uint32_t cp = ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (is_trail(s[1]) && is_trail(s[2]) && cp >= 0x800 && valid_code_point(cp)) return (length = 3), true;
  } else if (n >= 4 && (b(0) & 0xF8) == 0xF0) {
    const uint32_t cp = ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    if (is_trail(s[1]) && is_trail(s[2]) && is_trail(s[3]) && cp >= 0x10000 && valid_code_point(cp))
      return (length = 4), true;
  }
  return false;
}

PrecompiledCharsMap::PrecompiledCharsMap(std::string blob, const std::string& origin,
                                         const std::string& field)
    : blob_(std::move(blob)) {
  const auto fail = [&](const std::string& problem) { throw FormatError(origin, field, problem); };
  if (blob_.size() <= 4) fail(std::to_string(blob_.size()) + " bytes is too short for a charsmap");
  uint32_t trie_bytes;
  std::memcpy(&trie_bytes, blob_.data(), 4);
  if (trie_bytes >= blob_.size())
    fail("trie size " + std::to_string(trie_bytes) + " exceeds the " + std::to_string(blob_.size()) +
         "-byte charsmap");
  units_ = trie_bytes / 4;  // darts-clone ignores a partial unit
  strings_ = 4 + static_cast<size_t>(trie_bytes);
  if (units_ == 0) fail("empty trie");

  // Walk every node reachable from the root once (a corrupt array may loop: the visited
  // set stops that), checking that each rule's replacement lies in the string table.
  // Nodes are identified by their base; a base past units_ + 255 has no child in range.
  const size_t limit = units_ + 256;
  std::vector<bool> visited(limit, false);
  std::vector<size_t> stack;
  const size_t root = unit_offset(unit(0));
  if (root < limit) {
    visited[root] = true;
    stack.push_back(root);
  }
  const size_t strings_size = blob_.size() - strings_;
  while (!stack.empty()) {
    const size_t base = stack.back();
    stack.pop_back();
    for (uint32_t c = 0; c < 256; ++c) {
      const size_t index = base ^ c;
      if (index >= units_) continue;
      const uint32_t u = unit(index);
      if (unit_label(u) != c) continue;
      const size_t child = index ^ unit_offset(u);
      if (unit_has_leaf(u)) {
        if (child >= units_)
          fail("trie unit " + std::to_string(index) + " points past the " + std::to_string(units_) +
               "-unit trie");
        const uint32_t value = unit_value(unit(child));
        if (value >= strings_size ||
            std::memchr(blob_.data() + strings_ + value, '\0', strings_size - value) == nullptr)
          fail("rule at trie unit " + std::to_string(index) + " has replacement offset " +
               std::to_string(value) + ", outside the " + std::to_string(strings_size) +
               "-byte string table or unterminated");
      }
      if (child < limit && !visited[child]) {
        visited[child] = true;
        stack.push_back(child);
      }
    }
  }
}

uint32_t PrecompiledCharsMap::unit(size_t index) const {
  uint32_t u;
  std::memcpy(&u, blob_.data() + 4 + index * 4, 4);
  return u;
}

std::pair<size_t, std::string_view> PrecompiledCharsMap::longest_match(std::string_view text) const {
  // Darts::DoubleArray::commonPrefixSearch, keeping the longest result; indices out of
  // the array end the search (the constructor made sure that no rule's does).
  size_t longest = 0;
  uint32_t value = 0;
  size_t node = unit_offset(unit(0));
  for (size_t i = 0; i < text.size(); ++i) {
    const uint32_t c = static_cast<uint8_t>(text[i]);
    node ^= c;
    if (node >= units_) break;
    const uint32_t u = unit(node);
    if (unit_label(u) != c) break;
    node ^= unit_offset(u);
    if (unit_has_leaf(u)) {
      if (node >= units_) break;
      longest = i + 1;
      value = unit_value(unit(node));
    }
  }
  if (longest == 0) return {0, {}};
  return {longest, std::string_view(blob_.data() + strings_ + value)};
}

std::optional<std::string_view> PrecompiledCharsMap::shortest_match(std::string_view chunk) const {
  size_t node = unit_offset(unit(0));
  for (const char ch : chunk) {
    const uint32_t c = static_cast<uint8_t>(ch);
    if (c == 0) break;
    node ^= c;
    if (node >= units_) break;
    const uint32_t u = unit(node);
    if (unit_label(u) != c) break;
    node ^= unit_offset(u);
    if (unit_has_leaf(u)) {
      if (node >= units_) break;
      return std::string_view(blob_.data() + strings_ + unit_value(unit(node)));
    }
  }
  return std::nullopt;
}

SentencePieceNormalizer::SentencePieceNormalizer(const SentencePieceNormalizerSpec& spec,
                                                 bool treat_whitespace_as_suffix,
                                                 SentencePieceTrie user_defined, const std::string& origin,
                                                 const std::string& field)
    : spec_(spec),
      treat_whitespace_as_suffix_(treat_whitespace_as_suffix),
      user_defined_(std::move(user_defined)) {
  if (!spec_.precompiled_charsmap.empty())
    charsmap_.emplace_back(std::move(spec_.precompiled_charsmap), origin, field + ".precompiled_charsmap");
  spec_.precompiled_charsmap.clear();
}

std::pair<std::string_view, size_t> SentencePieceNormalizer::normalize_prefix(std::string_view input) const {
  if (input.empty()) return {{}, 0};
  if (!user_defined_.empty()) {
    const size_t n = user_defined_.longest_prefix(input);
    if (n > 0) return {input.substr(0, n), n};
  }
  if (!charsmap_.empty()) {
    const auto [n, replacement] = charsmap_.front().longest_match(input);
    if (n > 0) return {replacement, n};
  }
  size_t length = 0;
  if (!sentencepiece_valid_utf8_prefix(input, length)) return {kReplacementChar, 1};
  return {input.substr(0, length), length};
}

std::string SentencePieceNormalizer::normalize(std::string_view input) const {
  std::string out;
  if (input.empty()) return out;

  if (spec_.remove_extra_whitespaces) {  // leading whitespace
    while (!input.empty()) {
      const auto [piece, consumed] = normalize_prefix(input);
      if (piece != " ") break;
      input.remove_prefix(consumed);
    }
  }
  if (input.empty()) return out;
  out.reserve(input.size() * 3);

  const auto add_ws = [&] {
    if (spec_.escape_whitespaces)
      out += kSpaceSymbol;
    else
      out += ' ';
  };
  if (!treat_whitespace_as_suffix_ && spec_.add_dummy_prefix) add_ws();

  bool is_prev_space = spec_.remove_extra_whitespaces;
  while (!input.empty()) {
    auto [piece, consumed] = normalize_prefix(input);
    while (is_prev_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    if (!piece.empty()) {
      for (const char c : piece) {
        if (spec_.escape_whitespaces && c == ' ')
          out += kSpaceSymbol;
        else
          out += c;
      }
      is_prev_space = piece.back() == ' ';
    }
    input.remove_prefix(consumed);
    if (!spec_.remove_extra_whitespaces) is_prev_space = false;
  }

  if (spec_.remove_extra_whitespaces) {  // trailing whitespace
    const std::string_view space = spec_.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
    while (ends_with(out, space)) out.resize(out.size() - space.size());
  }
  if (treat_whitespace_as_suffix_ && spec_.add_dummy_prefix) add_ws();
  return out;
}

}  // namespace peft::text
