#include "peft/text/unicode.h"

#include <cstdint>

#include <unicode/uchar.h>

namespace peft::text {

namespace {

// Length of the longest prefix of s[pos..] that can begin a well-formed sequence
// (Unicode Table 3-7), and whether it completes one. The allowed range of the second
// byte depends on the lead byte: that is what rules out overlong forms, surrogates and
// values above U+10FFFF.
struct Prefix {
  size_t len;     // bytes consumed (>= 1)
  bool complete;  // a full code point
};

Prefix well_formed_prefix(const std::string& s, size_t pos) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[pos + i]); };
  const uint8_t lead = b(0);
  if (lead < 0x80) return {1, true};
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return {1, false};
  }
  size_t got = 1;
  for (size_t k = 1; k <= need; ++k) {
    if (pos + k >= s.size()) return {got, false};
    const uint8_t c = b(k);
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) return {got, false};
    ++got;
  }
  return {got, true};
}

}  // namespace

int32_t utf8_next(const std::string& s, size_t pos, size_t& len) {
  const Prefix p = well_formed_prefix(s, pos);
  if (!p.complete) {
    len = 1;
    return -1;
  }
  len = p.len;
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[pos + i]); };
  switch (len) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

void utf8_append(std::string& out, int32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_lossy(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const Prefix p = well_formed_prefix(bytes, pos);
    if (p.complete)
      out.append(bytes, pos, p.len);
    else
      out += "\xEF\xBF\xBD";  // U+FFFD
    pos += p.len;
  }
  return out;
}

bool is_letter(int32_t cp) { return (U_GET_GC_MASK(cp) & U_GC_L_MASK) != 0; }
bool is_number(int32_t cp) { return (U_GET_GC_MASK(cp) & U_GC_N_MASK) != 0; }
bool is_whitespace(int32_t cp) { return u_isUWhiteSpace(cp) != 0; }

}  // namespace peft::text
