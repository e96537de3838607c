#include "peft/metrics/english_normalizer.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/text/unicode.h"

namespace peft::metrics {

namespace detail {
extern const char* const english_spelling_json;  // english_spelling.cpp, generated
}

namespace {

// The normalizer works on code points: Python's re and str operate on them.
using U32 = std::u32string;

U32 decode(const std::string& s) {
  U32 out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len = 1;
    const int32_t cp = text::utf8_next(s, pos, len);
    out += static_cast<char32_t>(cp < 0 ? 0xFFFD : cp);
    pos += len;
  }
  return out;
}

std::string encode(const U32& s) {
  std::string out;
  for (char32_t c : s) text::utf8_append(out, static_cast<int32_t>(c));
  return out;
}

icu::UnicodeString to_icu(const U32& s) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(s.data()),
                                       static_cast<int32_t>(s.size()));
}

U32 from_icu(const icu::UnicodeString& u) {
  U32 out;
  for (int32_t i = 0; i < u.length();) {
    const UChar32 c = u.char32At(i);
    out += static_cast<char32_t>(c);
    i += U16_LENGTH(c);
  }
  return out;
}

// Python's str.lower(): full, locale-independent lowercase mapping (İ -> i + U+0307,
// final sigma), which ICU's root-locale mapping also implements.
U32 lower(const U32& s) {
  icu::UnicodeString u = to_icu(s);
  u.toLower(icu::Locale::getRoot());
  return from_icu(u);
}

U32 normalize(const U32& s, bool compose) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n =
      compose ? icu::Normalizer2::getNFKCInstance(err) : icu::Normalizer2::getNFKDInstance(err);
  if (U_FAILURE(err)) throw Error(std::string("ICU normalizer unavailable: ") + u_errorName(err));
  const icu::UnicodeString out = n->normalize(to_icu(s), err);
  if (U_FAILURE(err)) throw Error(std::string("ICU normalization failed: ") + u_errorName(err));
  return from_icu(out);
}

// Python's \s and str.isspace(): White_Space plus U+001C..U+001F.
bool is_space(char32_t c) { return text::is_whitespace(static_cast<int32_t>(c)) || (c >= 0x1C && c <= 0x1F); }
// Python's \w for str patterns: letters, numbers and '_'.
bool is_word(char32_t c) {
  return c == U'_' || text::is_letter(static_cast<int32_t>(c)) || text::is_number(static_cast<int32_t>(c));
}
// Python's \d: decimal digits of any script.
bool is_digit(char32_t c) { return u_charType(static_cast<UChar32>(c)) == U_DECIMAL_DIGIT_NUMBER; }
bool is_ascii_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_ascii_lower(char32_t c) { return c >= U'a' && c <= U'z'; }

// \b at position i of s.
bool boundary(const U32& s, size_t i) {
  const bool before = i > 0 && is_word(s[i - 1]);
  const bool after = i < s.size() && is_word(s[i]);
  return before != after;
}

bool starts_at(const U32& s, size_t i, const U32& lit) { return s.compare(i, lit.size(), lit) == 0; }

// Python's str.split(): whitespace-separated words.
std::vector<U32> split(const U32& s) {
  std::vector<U32> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

U32 join(const std::vector<U32>& words) {
  U32 out;
  for (size_t k = 0; k < words.size(); ++k) {
    if (k) out += U' ';
    out += words[k];
  }
  return out;
}

// re.sub(r"\s+", " ", s)
U32 collapse_spaces(const U32& s) {
  U32 out;
  for (size_t i = 0; i < s.size();) {
    if (is_space(s[i])) {
      out += U' ';
      while (i < s.size() && is_space(s[i])) ++i;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// re.sub(r"[<\[][^>\]]*[>\]]", "", s) then re.sub(r"\(([^)]+?)\)", "", s).
U32 remove_bracketed(const U32& in) {
  U32 s;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == U'<' || in[i] == U'[') {
      size_t j = i + 1;
      while (j < in.size() && in[j] != U'>' && in[j] != U']') ++j;
      if (j < in.size()) {
        i = j;
        continue;
      }
    }
    s += in[i];
  }
  U32 out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == U'(' && i + 1 < s.size() && s[i + 1] != U')') {
      const size_t j = s.find(U')', i + 2);
      if (j != U32::npos) {
        i = j;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

bool mark(int8_t t) {
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK;
}
bool symbol(int8_t t) {
  return t == U_MATH_SYMBOL || t == U_CURRENCY_SYMBOL || t == U_MODIFIER_SYMBOL || t == U_OTHER_SYMBOL;
}
bool punctuation(int8_t t) {
  return t == U_DASH_PUNCTUATION || t == U_START_PUNCTUATION || t == U_END_PUNCTUATION ||
         t == U_CONNECTOR_PUNCTUATION || t == U_OTHER_PUNCTUATION || t == U_INITIAL_PUNCTUATION ||
         t == U_FINAL_PUNCTUATION;
}

// Whisper's remove_symbols_and_diacritics (NFKD, drop Mn, map a few letters NFKD does
// not decompose, other marks/symbols/punctuation to spaces) and remove_symbols (NFKC,
// marks/symbols/punctuation to spaces).
U32 clean(const U32& s, bool remove_diacritics, const U32& keep) {
  static const std::map<char32_t, U32> extra = {
      {U'œ', U"oe"}, {U'Œ', U"OE"}, {U'ø', U"o"}, {U'Ø', U"O"}, {U'æ', U"ae"}, {U'Æ', U"AE"},
      {U'ß', U"ss"}, {U'ẞ', U"SS"}, {U'đ', U"d"}, {U'Đ', U"D"}, {U'ð', U"d"},  {U'Ð', U"D"},
      {U'þ', U"th"}, {U'Þ', U"th"}, {U'ł', U"l"}, {U'Ł', U"L"},
  };
  U32 out;
  for (char32_t c : normalize(s, !remove_diacritics)) {
    const int8_t t = u_charType(static_cast<UChar32>(c));
    if (keep.find(c) != U32::npos) {
      out += c;
    } else if (remove_diacritics && extra.count(c)) {
      out += extra.at(c);
    } else if (remove_diacritics && t == U_NON_SPACING_MARK) {
      // dropped
    } else if (mark(t) || symbol(t) || punctuation(t)) {
      out += U' ';
    } else {
      out += c;
    }
  }
  return out;
}

// ---- EnglishNumberNormalizer ----------------------------------------------------------

using Int = __int128;  // "decillion" is 10^33: more than 64 bits

std::string int_str(Int v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  std::string s;
  while (v != 0) {
    const int d = static_cast<int>(v % 10);
    s += static_cast<char>('0' + (d < 0 ? -d : d));
    v /= 10;
  }
  if (neg) s += '-';
  std::reverse(s.begin(), s.end());
  return s;
}

U32 u32(const std::string& ascii) { return U32(ascii.begin(), ascii.end()); }

// Python's Fraction(str) for the strings the normalizer builds (digits with at most
// one '.'), as numerator / 10^k. nullopt where Fraction raises or the value does not
// fit.
struct Frac {
  Int num;
  int scale;  // value = num / 10^scale
};
std::optional<Frac> to_fraction(const U32& s) {
  Frac f{0, 0};
  bool dot = false, any = false;
  for (char32_t c : s) {
    if (c == U'.') {
      if (dot) return std::nullopt;
      dot = true;
      continue;
    }
    const int32_t d = u_charDigitValue(static_cast<UChar32>(c));
    if (!is_digit(c) || d < 0) return std::nullopt;
    if (f.num > (static_cast<Int>(1) << 120) / 10) return std::nullopt;
    f.num = f.num * 10 + d;
    any = true;
    if (dot) ++f.scale;
  }
  if (!any) return std::nullopt;
  return f;
}

// multiplier * fraction when that is an integer.
std::optional<Int> times_if_integer(const Frac& f, Int multiplier) {
  Int p = f.num;
  for (int k = 0; k < f.scale; ++k) {
    if (p % 10 == 0) {
      p /= 10;
    } else {
      // reduce via the multiplier's factors of ten
      if (multiplier % 10 != 0) return std::nullopt;
      multiplier /= 10;
      continue;
    }
  }
  // Still within range: the multipliers are powers of ten up to 10^33.
  if (p != 0 && multiplier > (static_cast<Int>(1) << 122) / p) return std::nullopt;
  return p * multiplier;
}

// ^\d+(\.\d+)?$
bool numeric(const U32& s) {
  size_t i = 0;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == 0) return false;
  if (i == s.size()) return true;
  if (s[i] != U'.') return false;
  const size_t start = ++i;
  while (i < s.size() && is_digit(s[i])) ++i;
  return i > start && i == s.size();
}

class NumberNormalizer {
 public:
  NumberNormalizer() {
    const char* ones_names[] = {"one",     "two",       "three",    "four",     "five",
                                "six",     "seven",     "eight",    "nine",     "ten",
                                "eleven",  "twelve",    "thirteen", "fourteen", "fifteen",
                                "sixteen", "seventeen", "eighteen", "nineteen"};
    for (int k = 0; k < 19; ++k) {
      const U32 name = u32(ones_names[k]);
      const int v = k + 1;
      ones_[name] = v;
      suffixed_ones_[name == U"six" ? U32(U"sixes") : name + U"s"] = {v, U"s"};
    }
    suffixed_ones_[U"zeroth"] = {0, U"th"};
    suffixed_ones_[U"first"] = {1, U"st"};
    suffixed_ones_[U"second"] = {2, U"nd"};
    suffixed_ones_[U"third"] = {3, U"rd"};
    suffixed_ones_[U"fifth"] = {5, U"th"};
    suffixed_ones_[U"twelfth"] = {12, U"th"};
    for (const auto& [name, v] : ones_)
      if (v > 3 && v != 5 && v != 12)
        suffixed_ones_[name + (name.back() == U't' ? U"h" : U"th")] = {v, U"th"};
    const std::pair<const char*, int> tens[] = {{"twenty", 20}, {"thirty", 30}, {"forty", 40},
                                                {"fifty", 50},  {"sixty", 60},  {"seventy", 70},
                                                {"eighty", 80}, {"ninety", 90}};
    for (const auto& [n, v] : tens) {
      const U32 name = u32(n);
      tens_[name] = v;
      const U32 stem = name.substr(0, name.size() - 1);  // every tens name ends in its only 'y'
      suffixed_tens_[stem + U"ies"] = {v, U"s"};
      suffixed_tens_[stem + U"ieth"] = {v, U"th"};
    }
    const char* mult_names[] = {"hundred",    "thousand",    "million",     "billion",
                                "trillion",   "quadrillion", "quintillion", "sextillion",
                                "septillion", "octillion",   "nonillion",   "decillion"};
    Int m = 100;
    for (int k = 0; k < 12; ++k) {
      const U32 name = u32(mult_names[k]);
      multipliers_[name] = m;
      suffixed_multipliers_[name + U"s"] = {m, U"s"};
      suffixed_multipliers_[name + U"th"] = {m, U"th"};
      m *= k == 0 ? 10 : 1000;
    }
    preceding_ = {{U"minus", U"-"}, {U"negative", U"-"}, {U"plus", U"+"}, {U"positive", U"+"}};
    following_ = {{U"pound", U"£"},  {U"pounds", U"£"},  {U"euro", U"€"}, {U"euros", U"€"},
                  {U"dollar", U"$"}, {U"dollars", U"$"}, {U"cent", U"¢"}, {U"cents", U"¢"}};
    zeros_ = {U"o", U"oh", U"zero"};
    specials_ = {U"and", U"double", U"triple", U"point"};
    for (const auto& z : zeros_) words_.insert(z);
    for (const auto& kv : ones_) words_.insert(kv.first);
    for (const auto& kv : suffixed_ones_) words_.insert(kv.first);
    for (const auto& kv : tens_) words_.insert(kv.first);
    for (const auto& kv : suffixed_tens_) words_.insert(kv.first);
    for (const auto& kv : multipliers_) words_.insert(kv.first);
    for (const auto& kv : suffixed_multipliers_) words_.insert(kv.first);
    for (const auto& kv : preceding_) words_.insert(kv.first);
    for (const auto& kv : following_) words_.insert(kv.first);
    words_.insert(U"per");
    words_.insert(U"percent");
    for (const auto& w : specials_) words_.insert(w);
    decimals_ = zeros_;
    for (const auto& kv : ones_) decimals_.insert(kv.first);
    for (const auto& kv : tens_) decimals_.insert(kv.first);
  }

  U32 operator()(const U32& s) const { return postprocess(join(process_words(split(preprocess(s))))); }

 private:
  // A pending number: nothing, an integer, or a digit string (decimals, "oh" runs,
  // digit-by-digit readings) exactly as Python keeps int / str.
  struct Value {
    enum Kind { None, Integer, Text } kind = None;
    Int i = 0;
    U32 s;
    U32 str() const { return kind == Integer ? u32(int_str(i)) : s; }
    U32 str_or_empty() const { return kind == Integer && i == 0 ? U32() : (kind == None ? U32() : str()); }
  };

  U32 preprocess(const U32& in) const {
    // "<number> and a half" -> "<number> point five": split on \band\s+a\s+half\b.
    std::vector<U32> segments;
    {
      size_t start = 0, i = 0;
      while (i < in.size()) {
        size_t j = i;
        bool ok = boundary(in, i) && starts_at(in, i, U"and");
        if (ok) {
          j = i + 3;
          for (const U32& lit : {U32(U"a"), U32(U"half")}) {
            const size_t k = j;
            while (j < in.size() && is_space(in[j])) ++j;
            if (j == k || !starts_at(in, j, lit)) {
              ok = false;
              break;
            }
            j += lit.size();
          }
          ok = ok && boundary(in, j);
        }
        if (ok) {
          segments.push_back(in.substr(start, i - start));
          start = i = j;
        } else {
          ++i;
        }
      }
      segments.push_back(in.substr(start));
    }
    std::vector<U32> results;
    for (size_t k = 0; k < segments.size(); ++k) {
      const auto words = split(segments[k]);
      if (words.empty()) continue;
      results.push_back(segments[k]);
      if (k + 1 == segments.size()) continue;
      const U32& last = words.back();
      results.push_back(decimals_.count(last) || multipliers_.count(last) ? U"point five" : U"and a half");
    }
    const U32 s = join(results);
    // A space at each letter/digit boundary, except before an ordinal or plural suffix.
    U32 spaced;
    for (size_t i = 0; i < s.size(); ++i) {
      spaced += s[i];
      if (i + 1 < s.size() && ((is_ascii_lower(s[i]) && is_ascii_digit(s[i + 1])) ||
                               (is_ascii_digit(s[i]) && is_ascii_lower(s[i + 1]))))
        spaced += U' ';
    }
    U32 out;
    for (size_t i = 0; i < spaced.size();) {
      out += spaced[i];
      if (is_ascii_digit(spaced[i])) {
        size_t j = i + 1;
        while (j < spaced.size() && is_space(spaced[j])) ++j;
        if (j > i + 1) {
          bool matched = false;
          for (const U32& suf : {U32(U"st"), U32(U"nd"), U32(U"rd"), U32(U"th"), U32(U"s")})
            if (starts_at(spaced, j, suf) && boundary(spaced, j + suf.size())) {
              out += suf;
              i = j + suf.size();
              matched = true;
              break;
            }
          if (matched) continue;
        }
      }
      ++i;
    }
    return out;
  }

  std::vector<U32> process_words(const std::vector<U32>& words) const {
    std::vector<U32> out;
    std::optional<U32> prefix;
    Value value;
    const auto output = [&](const U32& result) {
      out.push_back(prefix ? *prefix + result : result);
      value = Value{};
      prefix.reset();
    };
    const auto emit_value = [&] { output(value.str()); };
    const auto set_int = [&](Int v) { value = Value{Value::Integer, v, {}}; };
    const auto set_text = [&](const U32& t) { value = Value{Value::Text, 0, t}; };
    bool skip = false;
    for (size_t k = 0; k < words.size(); ++k) {
      if (skip) {
        skip = false;
        continue;
      }
      const U32* prev = k > 0 ? &words[k - 1] : nullptr;
      const U32& current = words[k];
      const U32* next = k + 1 < words.size() ? &words[k + 1] : nullptr;
      const auto prev_in = [&](const auto& m) { return prev && m.count(*prev); };
      const auto next_in = [&](const auto& m) { return next && m.count(*next); };
      const bool next_is_numeric = next && numeric(*next);
      const bool has_prefix = U32(U"-+£€$¢").find(current[0]) != U32::npos;
      const U32 bare = has_prefix ? current.substr(1) : current;

      if (numeric(bare)) {
        const auto f = to_fraction(bare);
        if (value.kind != Value::None) {
          if (value.kind == Value::Text && !value.s.empty() && value.s.back() == U'.') {
            set_text(value.s + current);  // decimals / IP address parts
            continue;
          }
          emit_value();
        }
        if (has_prefix) prefix = U32(1, current[0]);
        if (f && f->scale == 0)
          set_int(f->num);
        else if (f && times_if_integer(*f, 1))
          set_int(*times_if_integer(*f, 1));  // "3.00" is the integer 3
        else
          set_text(bare);
      } else if (!words_.count(current)) {
        if (value.kind != Value::None) emit_value();
        output(current);
      } else if (zeros_.count(current)) {
        set_text(value.str_or_empty() + U"0");
      } else if (ones_.count(current)) {
        const int ones = ones_.at(current);
        if (value.kind == Value::None) {
          set_int(ones);
        } else if (value.kind == Value::Text || prev_in(ones_)) {
          if (prev_in(tens_) && ones < 10) {
            const U32 v = value.str();
            set_text(v.substr(0, v.size() - 1) + u32(std::to_string(ones)));
          } else {
            set_text(value.str() + u32(std::to_string(ones)));
          }
        } else if (ones < 10) {
          if (value.i % 10 == 0)
            set_int(value.i + ones);
          else
            set_text(value.str() + u32(std::to_string(ones)));
        } else {
          if (value.i % 100 == 0)
            set_int(value.i + ones);
          else
            set_text(value.str() + u32(std::to_string(ones)));
        }
      } else if (suffixed_ones_.count(current)) {
        const auto& [ones, suffix] = suffixed_ones_.at(current);
        const U32 o = u32(std::to_string(ones));
        if (value.kind == Value::None) {
          output(o + suffix);
        } else if (value.kind == Value::Text || prev_in(ones_)) {
          if (prev_in(tens_) && ones < 10) {
            const U32 v = value.str();
            output(v.substr(0, v.size() - 1) + o + suffix);
          } else {
            output(value.str() + o + suffix);
          }
        } else if (ones < 10) {
          output(value.i % 10 == 0 ? u32(int_str(value.i + ones)) + suffix : value.str() + o + suffix);
        } else {
          output(value.i % 100 == 0 ? u32(int_str(value.i + ones)) + suffix : value.str() + o + suffix);
        }
        value = Value{};
      } else if (tens_.count(current)) {
        const int tens = tens_.at(current);
        if (value.kind == Value::None)
          set_int(tens);
        else if (value.kind == Value::Text)
          set_text(value.s + u32(std::to_string(tens)));
        else if (value.i % 100 == 0)
          set_int(value.i + tens);
        else
          set_text(value.str() + u32(std::to_string(tens)));
      } else if (suffixed_tens_.count(current)) {
        const auto& [tens, suffix] = suffixed_tens_.at(current);
        const U32 t = u32(std::to_string(tens));
        if (value.kind == Value::None)
          output(t + suffix);
        else if (value.kind == Value::Text)
          output(value.s + t + suffix);
        else
          output(value.i % 100 == 0 ? u32(int_str(value.i + tens)) + suffix : value.str() + t + suffix);
      } else if (multipliers_.count(current)) {
        const Int mult = multipliers_.at(current);
        if (value.kind == Value::None) {
          set_int(mult);
        } else if (value.kind == Value::Text || value.i == 0) {
          const auto f = to_fraction(value.str());
          const auto p = f ? times_if_integer(*f, mult) : std::nullopt;
          if (p) {
            set_int(*p);
          } else {
            emit_value();
            set_int(mult);
          }
        } else {
          set_int(value.i / 1000 * 1000 + value.i % 1000 * mult);
        }
      } else if (suffixed_multipliers_.count(current)) {
        const auto& [mult, suffix] = suffixed_multipliers_.at(current);
        if (value.kind == Value::None) {
          output(u32(int_str(mult)) + suffix);
        } else if (value.kind == Value::Text) {
          const auto f = to_fraction(value.s);
          const auto p = f ? times_if_integer(*f, mult) : std::nullopt;
          if (p) {
            output(u32(int_str(*p)) + suffix);
          } else {
            emit_value();
            output(u32(int_str(mult)) + suffix);
          }
        } else {
          output(u32(int_str(value.i / 1000 * 1000 + value.i % 1000 * mult)) + suffix);
        }
        value = Value{};
      } else if (preceding_.count(current)) {
        if (value.kind != Value::None) emit_value();
        if ((next && words_.count(*next)) || next_is_numeric)
          prefix = preceding_.at(current);
        else
          output(current);
      } else if (following_.count(current)) {
        if (value.kind != Value::None) {
          prefix = following_.at(current);
          emit_value();
        } else {
          output(current);
        }
      } else if (current == U"per" || current == U"percent") {
        if (value.kind != Value::None) {
          if (current == U"per") {
            if (next && *next == U"cent") {
              output(value.str() + U"%");
              skip = true;
            } else {
              emit_value();
              output(current);
            }
          } else {
            output(value.str() + U"%");
          }
        } else {
          output(current);
        }
      } else {  // and, double, triple, point
        if (!(next && words_.count(*next)) && !next_is_numeric) {
          if (value.kind != Value::None) emit_value();
          output(current);
        } else if (current == U"and") {
          // "and" after hundred, thousand... joins the number
          if (!prev_in(multipliers_)) {
            if (value.kind != Value::None) emit_value();
            output(current);
          }
        } else if (current == U"double" || current == U"triple") {
          if (next_in(ones_) || next_in(zeros_)) {
            const int repeats = current == U"double" ? 2 : 3;
            const int ones = next_in(ones_) ? ones_.at(*next) : 0;
            U32 v = value.str_or_empty();
            for (int r = 0; r < repeats; ++r) v += u32(std::to_string(ones));
            set_text(v);
            skip = true;
          } else {
            if (value.kind != Value::None) emit_value();
            output(current);
          }
        } else if (current == U"point") {
          if (next_in(decimals_) || next_is_numeric) set_text(value.str_or_empty() + U".");
        }
      }
    }
    if (value.kind != Value::None) emit_value();
    return out;
  }

  static U32 postprocess(const U32& s) {
    const U32 currency = U"€£$";
    // "$2 and ¢7" -> "$2.07"
    U32 a;
    for (size_t i = 0; i < s.size();) {
      if (currency.find(s[i]) != U32::npos) {
        size_t j = i + 1;
        while (j < s.size() && is_ascii_digit(s[j])) ++j;
        if (j > i + 1 && j < s.size() && s[j] == U' ') {
          size_t k = j + 1;
          if (starts_at(s, k, U"and ") && k + 4 < s.size() && s[k + 4] == U'¢') k += 4;
          if (k < s.size() && s[k] == U'¢') {
            size_t d = k + 1;
            while (d < s.size() && d < k + 3 && is_ascii_digit(s[d])) ++d;
            while (d > k + 1 && !boundary(s, d)) --d;  // backtrack {1,2} until \b holds
            if (d > k + 1) {
              const int cents = std::stoi(encode(s.substr(k + 1, d - k - 1)));
              a += s[i];
              a += s.substr(i + 1, j - i - 1);
              a += U'.';
              a += u32((cents < 10 ? "0" : "") + std::to_string(cents));
              i = d;
              continue;
            }
          }
        }
      }
      a += s[i++];
    }
    // "$0.07" -> "¢7" ('.' is any character but a newline there)
    U32 b;
    for (size_t i = 0; i < a.size();) {
      if (currency.find(a[i]) != U32::npos && i + 3 < a.size() && a[i + 1] == U'0' && a[i + 2] != U'\n' &&
          is_ascii_digit(a[i + 3])) {
        size_t d = i + 4;
        if (d < a.size() && is_ascii_digit(a[d])) ++d;
        while (d > i + 3 && !boundary(a, d)) --d;
        if (d > i + 3) {
          b += U'¢';
          b += u32(std::to_string(std::stoi(encode(a.substr(i + 3, d - i - 3)))));
          i = d;
          continue;
        }
      }
      b += a[i++];
    }
    // "1" -> "one", "1s" -> "ones"
    U32 c;
    for (size_t i = 0; i < b.size();) {
      if (b[i] == U'1' && boundary(b, i)) {
        if (i + 2 <= b.size() && i + 1 < b.size() && b[i + 1] == U's' && boundary(b, i + 2)) {
          c += U"ones";
          i += 2;
          continue;
        }
        if (boundary(b, i + 1)) {
          c += U"one";
          i += 1;
          continue;
        }
      }
      c += b[i++];
    }
    return c;
  }

  std::map<U32, int> ones_, tens_;
  std::map<U32, std::pair<int, U32>> suffixed_ones_, suffixed_tens_;
  std::map<U32, Int> multipliers_;
  std::map<U32, std::pair<Int, U32>> suffixed_multipliers_;
  std::map<U32, U32> preceding_, following_;
  std::set<U32> zeros_, specials_, words_, decimals_;
};

const NumberNormalizer& number_normalizer() {
  static const NumberNormalizer n;
  return n;
}

const std::unordered_map<std::string, std::string>& spellings() {
  static const auto map = [] {
    std::unordered_map<std::string, std::string> m;
    const auto json = nlohmann::json::parse(detail::english_spelling_json);
    for (const auto& [k, v] : json.items()) m.emplace(k, v.get<std::string>());
    return m;
  }();
  return map;
}

struct Replacer {
  U32 pattern;  // literal
  bool lead_boundary;
  U32 replacement;
};

// Literal re.sub with \b before (when asked) and always after the pattern.
U32 replace(const U32& s, const Replacer& r) {
  U32 out;
  for (size_t i = 0; i < s.size();) {
    if (starts_at(s, i, r.pattern) && (!r.lead_boundary || boundary(s, i)) &&
        boundary(s, i + r.pattern.size())) {
      out += r.replacement;
      i += r.pattern.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

const std::vector<Replacer>& replacers() {
  static const std::vector<Replacer> r = {
      // common contractions
      {U"won't", true, U"will not"},
      {U"can't", true, U"can not"},
      {U"let's", true, U"let us"},
      {U"ain't", true, U"aint"},
      {U"y'all", true, U"you all"},
      {U"wanna", true, U"want to"},
      {U"gotta", true, U"got to"},
      {U"gonna", true, U"going to"},
      {U"i'ma", true, U"i am going to"},
      {U"imma", true, U"i am going to"},
      {U"woulda", true, U"would have"},
      {U"coulda", true, U"could have"},
      {U"shoulda", true, U"should have"},
      {U"ma'am", true, U"madam"},
      // titles and prefixes
      {U"mr", true, U"mister "},
      {U"mrs", true, U"missus "},
      {U"st", true, U"saint "},
      {U"dr", true, U"doctor "},
      {U"prof", true, U"professor "},
      {U"capt", true, U"captain "},
      {U"gov", true, U"governor "},
      {U"ald", true, U"alderman "},
      {U"gen", true, U"general "},
      {U"sen", true, U"senator "},
      {U"rep", true, U"representative "},
      {U"pres", true, U"president "},
      {U"rev", true, U"reverend "},
      {U"hon", true, U"honorable "},
      {U"asst", true, U"assistant "},
      {U"assoc", true, U"associate "},
      {U"lt", true, U"lieutenant "},
      {U"col", true, U"colonel "},
      {U"jr", true, U"junior "},
      {U"sr", true, U"senior "},
      {U"esq", true, U"esquire "},
      // perfect tenses
      {U"'d been", false, U" had been"},
      {U"'s been", false, U" has been"},
      {U"'d gone", false, U" had gone"},
      {U"'s gone", false, U" has gone"},
      {U"'d done", false, U" had done"},
      {U"'s got", false, U" has got"},
      // general contractions
      {U"n't", false, U" not"},
      {U"'re", false, U" are"},
      {U"'s", false, U" is"},
      {U"'d", false, U" would"},
      {U"'ll", false, U" will"},
      {U"'t", false, U" not"},
      {U"'ve", false, U" have"},
      {U"'m", false, U" am"},
  };
  return r;
}

}  // namespace

std::string normalize_english_numbers(const std::string& text) {
  return encode(number_normalizer()(decode(text)));
}

std::string normalize_english(const std::string& text) {
  U32 s = remove_bracketed(lower(decode(text)));
  // fillers: whole \w runs equal to hmm, mm, mhm, mmm, uh, um
  {
    static const std::set<U32> fillers = {U"hmm", U"mm", U"mhm", U"mmm", U"uh", U"um"};
    U32 out;
    for (size_t i = 0; i < s.size();) {
      if (is_word(s[i])) {
        size_t j = i;
        while (j < s.size() && is_word(s[j])) ++j;
        const U32 w = s.substr(i, j - i);
        if (!fillers.count(w)) out += w;
        i = j;
      } else {
        out += s[i++];
      }
    }
    s = out;
  }
  // no space before an apostrophe
  {
    U32 out;
    for (size_t i = 0; i < s.size();) {
      if (is_space(s[i])) {
        size_t j = i;
        while (j < s.size() && is_space(s[j])) ++j;
        if (j < s.size() && s[j] == U'\'') {
          i = j;
          continue;
        }
        out.append(s, i, j - i);
        i = j;
      } else {
        out += s[i++];
      }
    }
    s = out;
  }
  for (const auto& r : replacers()) s = replace(s, r);
  // commas between digits: re.sub(r"(\d),(\d)", r"\1\2") consumes both digits
  {
    U32 out;
    for (size_t i = 0; i < s.size();) {
      if (i + 2 < s.size() && is_digit(s[i]) && s[i + 1] == U',' && is_digit(s[i + 2])) {
        out += s[i];
        out += s[i + 2];
        i += 3;
      } else {
        out += s[i++];
      }
    }
    s = out;
  }
  // periods not followed by a digit: re.sub(r"\.([^0-9]|$)", r" \1")
  {
    U32 out;
    for (size_t i = 0; i < s.size();) {
      if (s[i] == U'.' && (i + 1 == s.size() || !is_ascii_digit(s[i + 1]))) {
        out += U' ';
        if (i + 1 < s.size()) out += s[i + 1];
        i += 2;
      } else {
        out += s[i++];
      }
    }
    s = out;
  }
  s = clean(s, true, U".%$¢€£");
  s = number_normalizer()(s);
  {
    std::vector<U32> words = split(s);
    const auto& map = spellings();
    for (auto& w : words) {
      const auto it = map.find(encode(w));
      if (it != map.end()) w = decode(it->second);
    }
    s = join(words);
  }
  // symbols not attached to a number
  {
    const U32 syms = U".$¢€£";
    U32 out;
    for (size_t i = 0; i < s.size();) {
      if (syms.find(s[i]) != U32::npos && i + 1 < s.size() && !is_ascii_digit(s[i + 1])) {
        out += U' ';
        out += s[i + 1];
        i += 2;
      } else {
        out += s[i++];
      }
    }
    s = out;
    out.clear();
    for (size_t i = 0; i < s.size();) {
      if (i + 1 < s.size() && !is_ascii_digit(s[i]) && s[i + 1] == U'%') {
        out += s[i];
        out += U' ';
        i += 2;
      } else {
        out += s[i++];
      }
    }
    s = out;
  }
  return encode(collapse_spaces(s));
}

std::string normalize_basic(const std::string& text, bool remove_diacritics) {
  U32 s = remove_bracketed(lower(decode(text)));
  s = lower(clean(s, remove_diacritics, U""));
  return encode(collapse_spaces(s));
}

}  // namespace peft::metrics
