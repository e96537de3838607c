// make-summary-dataset: Debian package descriptions -> JSONL summarization pairs.
// Reads Debian control-format stanzas (apt's Translation-en lists, Packages files,
// `apt-cache dumpavail` / `apt-cache show` output) and writes one pair per kept package:
// {"id": package, "text": long description as plain text, "summary": synopsis,
//  "split": train | validation | test}. The split is a hash of the text's first
// paragraph, so a package lands in the same split whatever else is in the input, and
// packages of one family (which share their opening paragraph) land together.
// Torch-free; the rules are documented in --help and docs/DATASETS.md.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

const char* kUsage = R"(usage: make-summary-dataset [options] [FILE...]

Turns Debian package descriptions into JSONL summarization pairs, one per line:
  {"id": PACKAGE, "text": LONG DESCRIPTION, "summary": SYNOPSIS, "split": SPLIT}
sorted by id. FILE is a Debian control-format file (none, or "-": standard input):
apt's Translation-en lists (Package, Description-md5, Description-en), Packages
files or `apt-cache dumpavail` / `apt-cache show` output (Package, Description).
Description-en is used when a stanza has it, else Description. Compressed lists
are read through a pipe, e.g.
  make-summary-dataset <(lz4cat /var/lib/apt/lists/*_main_i18n_Translation-en.lz4)

options:
  --output PATH     where the pairs go (default: standard output). An existing
                    directory, or a PATH ending in "/", receives train.jsonl,
                    validation.jsonl and test.jsonl (each line keeps its "split"
                    key); any other PATH is one JSONL file with every split.
                    Files are written to a temporary name beside the target and
                    renamed into place only once complete.
  --min-words N     drop texts of fewer than N words (default 10)
  --max-words N     drop texts of more than N words (default 400; 0: no limit)
  --max-per-family N
                    keep at most N pairs of each family (pairs whose texts share
                    their first paragraph: Qt's 464 modules, Boost's libraries),
                    the N smallest package names (default 0: no cap)
  --split-seed N    a number mixed into the split hash, for a different but still
                    fixed split (default: none, the plain hash of the text)
  --quiet           no per-stanza warnings (the counts are still printed)
  --help            this text

text: the long description (the Description lines after the synopsis), de-indented
as Debian policy 5.6.13 renders it:
  - " ." lines separate paragraphs: paragraphs are joined by one blank line;
  - lines with one leading space are word-wrapped text: joined with one space;
  - lines with more leading spaces are verbatim: each stays on its own line,
    without its indentation;
  - a line starting with a list marker ("* ", "- ", "+ ", "o ", a bullet sign, or
    "1. " / "1) ") starts a new line, at any indentation; the more indented lines
    after it, or the one-space lines after a one-space item, continue that item
    (joined with one space);
  - runs of spaces and tabs inside a line become one space.
summary: the synopsis (the first line of Description), spaces collapsed.
Words are counted as runs of non-space characters.

Pairs are dropped, in this order, and each count printed on standard error:
  empty text      no long description (Packages files since Debian 11 carry only
                  the synopsis: their long descriptions are in Translation-en)
  too short/long  fewer than --min-words or more than --max-words words of text
  same package    a package with several descriptions (per-architecture variants,
                  or a list and its update): the longest text is kept (ties: the
                  bytewise smallest text, then summary); repeats of the same
                  description are counted as identical duplicates
  same text       several packages with one text (-dev/-dbg/-doc families): the
                  bytewise smallest package name is kept; counted apart when the
                  summary is identical too (exact duplicate pairs)
  family cap      over --max-per-family pairs sharing a first paragraph
The kept set and the output do not depend on the order of the input stanzas.

split: FNV-1a 64-bit hash of the text's first paragraph (prefixed with
"seed:N\n" when --split-seed N is given), modulo 100: 0-89 train, 90-94
validation, 95-99 test. A package keeps its split whatever else is in the input,
and a family (see --max-per-family) never straddles two splits.

Malformed stanzas (a line that is neither "Field: value" nor a continuation, a
continuation before any field, a repeated field, invalid UTF-8 or control
characters, no Package, no Description, an empty synopsis, input ending without
a final newline: a truncated file, a Description-md5 that is not the MD5 of the
description: a stanza cut at a line end or edited) are skipped with a warning
naming FILE:LINE. The MD5 is checked for Description-en, and for a Description
with continuation lines (Packages files since Debian 11 keep the md5 of the
full description beside the synopsis alone).

exit status: 0 pairs written; 1 no usable pair; 2 bad option, unreadable input or
unwritable output.
)";

struct Options {
  std::vector<std::string> inputs;
  std::optional<std::string> output;
  size_t min_words = 10;
  size_t max_words = 400;
  size_t max_per_family = 0;
  std::optional<uint64_t> split_seed;
  bool quiet = false;
};

struct UsageError {
  std::string message;
};

uint64_t parse_count(const std::string& option, const std::string& value) {
  if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos || value.size() > 19)
    throw UsageError{option + " needs a non-negative integer, got '" + value + "'"};
  return std::stoull(value);
}

Options parse_options(int argc, char** argv) {
  Options o;
  bool only_files = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError{a + " needs a value"};
      return argv[++i];
    };
    if (only_files || a == "-" || a.empty() || a[0] != '-') {
      o.inputs.push_back(a);
    } else if (a == "--") {
      only_files = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (a == "--output" || a == "-o") {
      o.output = value();
      if (o.output->empty()) throw UsageError{"--output needs a non-empty path"};
    } else if (a == "--min-words") {
      o.min_words = parse_count(a, value());
    } else if (a == "--max-words") {
      o.max_words = parse_count(a, value());
    } else if (a == "--max-per-family") {
      o.max_per_family = parse_count(a, value());
    } else if (a == "--split-seed") {
      o.split_seed = parse_count(a, value());
    } else if (a == "--quiet") {
      o.quiet = true;
    } else {
      throw UsageError{"unknown option " + a};
    }
  }
  if (o.max_words != 0 && o.max_words < o.min_words)
    throw UsageError{"--max-words " + std::to_string(o.max_words) + " is below --min-words " +
                     std::to_string(o.min_words)};
  if (o.inputs.empty()) o.inputs.push_back("-");
  return o;
}

// ---- text helpers -------------------------------------------------------------

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_blank(s[b])) ++b;
  while (e > b && is_blank(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Trims and turns every run of spaces and tabs into one space.
std::string collapse_blanks(const std::string& s) {
  std::string out;
  bool pending = false;
  for (char c : s) {
    if (is_blank(c)) {
      pending = !out.empty();
    } else {
      if (pending) out += ' ';
      pending = false;
      out += c;
    }
  }
  return out;
}

size_t count_words(const std::string& s) {
  size_t n = 0;
  bool in_word = false;
  for (char c : s) {
    const bool space = c == ' ' || c == '\t' || c == '\n';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

// Why a line is not valid UTF-8 text, or empty when it is: overlong forms, surrogates,
// code points above U+10FFFF and C0 control characters other than tab are refused, as
// the JSON writer and the tokenizers downstream would choke on them.
std::string utf8_problem(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return "control character at byte " + std::to_string(i + 1);
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4, cp = c & 0x07;
    } else {
      return "invalid UTF-8 byte at byte " + std::to_string(i + 1);
    }
    if (i + len > n) return "truncated UTF-8 sequence at byte " + std::to_string(i + 1);
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return "invalid UTF-8 sequence at byte " + std::to_string(i + 1);
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return "invalid UTF-8 sequence at byte " + std::to_string(i + 1);
    i += len;
  }
  return {};
}

// MD5 (RFC 1321) of `data` as 32 lowercase hex digits, to check Description-md5.
std::string md5_hex(const std::string& data) {
  static const auto table = [] {
    std::array<uint32_t, 64> k{};
    for (size_t i = 0; i < 64; ++i)
      k[i] = static_cast<uint32_t>(std::floor(std::fabs(std::sin(i + 1.0)) * 4294967296.0));
    return k;
  }();
  static const int shift[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};
  std::string msg = data;
  msg += static_cast<char>(0x80);
  while (msg.size() % 64 != 56) msg += '\0';
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  for (int i = 0; i < 8; ++i) msg += static_cast<char>((bits >> (8 * i)) & 0xff);
  uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  auto rotl = [](uint32_t x, int c) { return (x << c) | (x >> (32 - c)); };
  for (size_t chunk = 0; chunk < msg.size(); chunk += 64) {
    uint32_t m[16];
    for (int i = 0; i < 16; ++i) {
      const auto* b = reinterpret_cast<const unsigned char*>(msg.data() + chunk + 4 * i);
      m[i] = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; ++i) {
      uint32_t f;
      int g;
      const int round = i / 16;
      if (round == 0) {
        f = (b & c) | (~b & d), g = i;
      } else if (round == 1) {
        f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
      } else if (round == 2) {
        f = b ^ c ^ d, g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d), g = (7 * i) % 16;
      }
      f += a + table[i] + m[g];
      a = d, d = c, c = b;
      b += rotl(f, shift[round][i % 4]);
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d;
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint32_t word : h)
    for (int i = 0; i < 4; ++i) {
      const unsigned byte = (word >> (8 * i)) & 0xff;
      out += hex[byte >> 4];
      out += hex[byte & 15];
    }
  return out;
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// ---- long description rendering (Debian policy 5.6.13) ---------------------------

// Length of a list marker at the start of `body` ("* ", "1. ", "• ", ...), 0 if none.
size_t list_marker_length(const std::string& body) {
  for (const char* m : {"* ", "- ", "+ ", "o ", "\u2022 ", "\u00b7 ", "\u2023 ", "\u25e6 ", "\u2013 "}) {
    const size_t len = std::strlen(m);
    if (body.size() > len && body.compare(0, len, m) == 0) return len;
  }
  size_t digits = 0;  // "1. " and "12) ": up to three digits
  while (digits < 3 && digits < body.size() && body[digits] >= '0' && body[digits] <= '9') ++digits;
  const bool numbered = digits > 0 && digits + 2 < body.size() &&
                        (body[digits] == '.' || body[digits] == ')') && body[digits + 1] == ' ';
  return numbered ? digits + 2 : 0;
}

// Plain text of the continuation lines of a Description field (each still with its
// leading space). See kUsage for the rules.
std::string render_long_description(const std::vector<std::string>& lines) {
  enum class Kind { wrapped, item, verbatim };
  struct Line {
    std::string text;
    Kind kind;
    size_t indent;  // of the list marker, for items
  };
  std::vector<std::vector<Line>> paragraphs(1);
  for (const std::string& raw : lines) {
    const std::string content = raw.empty() ? raw : raw.substr(1);
    const std::string body = collapse_blanks(content);
    if (body == ".") {
      if (!paragraphs.back().empty()) paragraphs.emplace_back();
      continue;
    }
    if (body.empty()) continue;
    size_t indent = 0;
    while (indent < content.size() && is_blank(content[indent])) ++indent;
    auto& para = paragraphs.back();
    if (list_marker_length(body) > 0) {
      para.push_back({body, Kind::item, indent});
      continue;
    }
    if (!para.empty()) {
      Line& last = para.back();
      const bool continues =
          (last.kind == Kind::wrapped && indent == 0) ||
          (last.kind == Kind::item && (indent > last.indent || (indent == 0 && last.indent == 0)));
      if (continues) {
        last.text += ' ';
        last.text += body;
        continue;
      }
    }
    para.push_back({body, indent == 0 ? Kind::wrapped : Kind::verbatim, indent});
  }
  if (paragraphs.back().empty()) paragraphs.pop_back();
  std::string out;
  for (const auto& para : paragraphs) {
    if (!out.empty()) out += "\n\n";
    for (size_t i = 0; i < para.size(); ++i) {
      if (i > 0) out += '\n';
      out += para[i].text;
    }
  }
  return out;
}

// ---- control-file reading -------------------------------------------------------

struct Field {
  std::string name;                // as written
  std::string value;               // first line, trimmed
  std::string raw;                 // first line after the colon, leading blanks removed
  std::vector<std::string> lines;  // continuation lines, verbatim
  size_t line = 0;                 // where the field starts
};

struct Stanza {
  std::string source;
  size_t first_line = 0;
  std::vector<Field> fields;

  const Field* find(const char* name) const {
    for (const auto& f : fields)
      if (strcasecmp(f.name.c_str(), name) == 0) return &f;
    return nullptr;
  }
};

struct Pair {
  std::string id, text, summary;
  size_t text_words = 0;
};

struct Counts {
  size_t stanzas = 0, malformed = 0, empty_text = 0, too_short = 0, too_long = 0;
  size_t same_package_identical = 0, same_package_variant = 0;
  size_t same_text_identical_pair = 0, same_text_other_summary = 0;
  size_t family_cap = 0;
};

class Reader {
 public:
  Reader(const Options& options, Counts& counts, std::vector<Pair>& pairs)
      : options_(options), counts_(counts), pairs_(pairs) {}

  // Reads every stanza of `in`; `name` is used in warnings.
  void read(std::istream& in, const std::string& name) {
    Stanza stanza{name, 0, {}};
    std::string error;  // first problem of the current stanza
    size_t error_line = 0;
    size_t line_no = 0;
    std::string line;
    auto finish = [&] {
      if (stanza.first_line != 0) {
        ++counts_.stanzas;
        if (!error.empty())
          reject(stanza, error_line, error);
        else
          take(stanza);
      }
      stanza = Stanza{name, 0, {}};
      error.clear();
    };
    while (std::getline(in, line)) {
      ++line_no;
      const bool newline_ended = !in.eof();
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (trim(line).empty()) {
        finish();
        continue;
      }
      if (stanza.first_line == 0) stanza.first_line = line_no;
      if (!error.empty()) continue;  // skipping to the end of a bad stanza
      auto fail = [&](const std::string& why) {
        error = why;
        error_line = line_no;
      };
      if (!newline_ended) {
        fail("input ends without a final newline (truncated file?)");
      } else if (const std::string bad = utf8_problem(line); !bad.empty()) {
        fail(bad);
      } else if (is_blank(line[0])) {
        if (stanza.fields.empty())
          fail("continuation line before any field");
        else
          stanza.fields.back().lines.push_back(line);
      } else {
        const size_t colon = line.find(':');
        const std::string field_name = colon == std::string::npos ? "" : line.substr(0, colon);
        if (colon == std::string::npos || field_name.empty() ||
            field_name.find_first_of(" \t") != std::string::npos) {
          fail("neither a \"Field: value\" line nor a continuation line");
        } else if (stanza.find(field_name.c_str())) {
          fail("field " + field_name + " repeated in one stanza");
        } else {
          std::string raw = line.substr(colon + 1);
          raw.erase(0, std::min(raw.find_first_not_of(" \t"), raw.size()));
          stanza.fields.push_back({field_name, trim(raw), raw, {}, line_no});
        }
      }
    }
    finish();
    if (in.bad()) throw std::runtime_error("read error on " + name);
  }

 private:
  void reject(const Stanza& s, size_t line, const std::string& why) {
    ++counts_.malformed;
    if (!options_.quiet)
      std::cerr << "make-summary-dataset: warning: " << s.source << ":" << line << ": " << why
                << "; stanza at line " << s.first_line << " skipped\n";
  }

  void take(const Stanza& s) {
    const Field* package = s.find("Package");
    if (!package || package->value.empty()) return reject(s, s.first_line, "no Package field");
    if (!package->lines.empty()) return reject(s, s.first_line, "Package field spans several lines");
    const Field* description = s.find("Description-en");
    if (!description) description = s.find("Description");
    if (!description)
      return reject(s, s.first_line, "no Description or Description-en field in " + package->value);
    // apt's Description-md5 is the MD5 of the whole description as a Packages file writes
    // it. Bookworm's Packages lists keep the md5 but only the synopsis, so a description
    // without continuation lines is checked in the Translation format only.
    const Field* md5 = s.find("Description-md5");
    if (md5 &&
        (!description->lines.empty() || strcasecmp(description->name.c_str(), "Description-en") == 0)) {
      std::string whole = description->raw + "\n";
      for (const auto& l : description->lines) whole += l + "\n";
      if (md5_hex(whole) != md5->value)
        return reject(s, description->line,
                      "Description-md5 " + md5->value + " does not match the description of " +
                          package->value + " (truncated or altered stanza?)");
    }
    const std::string summary = collapse_blanks(description->value);
    if (summary.empty()) return reject(s, s.first_line, "empty synopsis in " + package->value);
    Pair p{package->value, render_long_description(description->lines), summary, 0};
    p.text_words = count_words(p.text);
    if (p.text.empty()) {
      ++counts_.empty_text;
    } else if (p.text_words < options_.min_words) {
      ++counts_.too_short;
    } else if (options_.max_words != 0 && p.text_words > options_.max_words) {
      ++counts_.too_long;
    } else {
      pairs_.push_back(std::move(p));
    }
  }

  const Options& options_;
  Counts& counts_;
  std::vector<Pair>& pairs_;
};

// One pair per package (the longest text), then one per text (the smallest package name).
std::vector<Pair> deduplicate(std::vector<Pair> pairs, Counts& counts) {
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) {
    if (a.id != b.id) return a.id < b.id;
    if (a.text_words != b.text_words) return a.text_words > b.text_words;
    if (a.text != b.text) return a.text < b.text;
    return a.summary < b.summary;
  });
  std::vector<Pair> per_package;
  for (auto& p : pairs) {
    if (!per_package.empty() && per_package.back().id == p.id) {
      const Pair& kept = per_package.back();
      if (kept.text == p.text && kept.summary == p.summary)
        ++counts.same_package_identical;
      else
        ++counts.same_package_variant;
      continue;
    }
    per_package.push_back(std::move(p));
  }
  std::sort(per_package.begin(), per_package.end(), [](const Pair& a, const Pair& b) {
    if (a.text != b.text) return a.text < b.text;
    return a.id < b.id;
  });
  std::vector<Pair> kept;
  for (auto& p : per_package) {
    if (!kept.empty() && kept.back().text == p.text) {
      if (kept.back().summary == p.summary)
        ++counts.same_text_identical_pair;
      else
        ++counts.same_text_other_summary;
      continue;
    }
    kept.push_back(std::move(p));
  }
  std::sort(kept.begin(), kept.end(), [](const Pair& a, const Pair& b) { return a.id < b.id; });
  return kept;
}

// The first paragraph: packages built from one source usually open with the same one
// (the project) and differ in the last (what this package holds).
std::string family_of(const std::string& text) { return text.substr(0, text.find("\n\n")); }

// Keeps the first `cap` pairs (by id: `pairs` is sorted by id) of each family.
std::vector<Pair> cap_families(std::vector<Pair> pairs, size_t cap, Counts& counts) {
  if (cap == 0) return pairs;
  std::map<std::string, size_t> taken;
  std::vector<Pair> kept;
  for (auto& p : pairs) {
    if (taken[family_of(p.text)]++ < cap)
      kept.push_back(std::move(p));
    else
      ++counts.family_cap;
  }
  return kept;
}

const char* split_of(const std::string& text, const std::optional<uint64_t>& seed) {
  std::string key = family_of(text);
  if (seed) key = "seed:" + std::to_string(*seed) + "\n" + key;
  const uint64_t bucket = fnv1a64(key) % 100;
  return bucket < 90 ? "train" : bucket < 95 ? "validation" : "test";
}

// ---- output ----------------------------------------------------------------------

// A file written under a temporary name in the target's directory and renamed over the
// target by commit(); removed if never committed, so an interrupted run leaves no file
// that looks complete.
class AtomicFile {
 public:
  explicit AtomicFile(fs::path target) : target_(std::move(target)) {
    std::string pattern = target_.string() + ".tmp.XXXXXX";
    const int fd = mkstemp(pattern.data());
    if (fd < 0)
      throw std::runtime_error("cannot create a temporary file beside " + target_.string() + ": " +
                               std::strerror(errno));
    const mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);  // mkstemp's 0600 would make the dataset private
    close(fd);
    temp_ = pattern;
    out_.open(temp_, std::ios::binary | std::ios::trunc);
    if (!out_) throw std::runtime_error("cannot write " + temp_.string());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (!committed_) {
      std::error_code ec;
      fs::remove(temp_, ec);
    }
  }

  std::ostream& stream() { return out_; }

  void commit() {
    out_.close();
    if (out_.fail()) throw std::runtime_error("cannot write " + temp_.string());
    const int fd = open(temp_.c_str(), O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
      if (fd >= 0) close(fd);
      throw std::runtime_error("cannot sync " + temp_.string() + ": " + std::strerror(errno));
    }
    close(fd);
    if (std::rename(temp_.c_str(), target_.c_str()) != 0)
      throw std::runtime_error("cannot rename " + temp_.string() + " to " + target_.string() + ": " +
                               std::strerror(errno));
    committed_ = true;
  }

 private:
  fs::path target_, temp_;
  std::ofstream out_;
  bool committed_ = false;
};

void write_pair(std::ostream& out, const Pair& p, const char* split) {
  nlohmann::ordered_json j;
  j["id"] = p.id;
  j["text"] = p.text;
  j["summary"] = p.summary;
  j["split"] = split;
  out << j.dump() << '\n';
}

size_t median(std::vector<size_t> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

int run(const Options& options) {
  Counts counts;
  std::vector<Pair> pairs;
  Reader reader(options, counts, pairs);
  for (const auto& name : options.inputs) {
    if (name == "-") {
      reader.read(std::cin, "<stdin>");
      continue;
    }
    std::ifstream in(name, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + name + ": " + std::strerror(errno));
    reader.read(in, name);
  }
  const std::vector<Pair> kept =
      cap_families(deduplicate(std::move(pairs), counts), options.max_per_family, counts);

  std::map<std::string, size_t> per_split{{"train", 0}, {"validation", 0}, {"test", 0}};
  std::vector<const char*> splits;
  std::vector<size_t> text_words, summary_words;
  for (const Pair& p : kept) {
    splits.push_back(split_of(p.text, options.split_seed));
    ++per_split[splits.back()];
    text_words.push_back(p.text_words);
    summary_words.push_back(count_words(p.summary));
  }

  std::cerr << "make-summary-dataset: " << counts.stanzas << " stanzas, " << counts.malformed
            << " malformed (skipped)\n"
            << "dropped: empty text " << counts.empty_text << ", too short (< " << options.min_words
            << " words) " << counts.too_short << ", too long ("
            << (options.max_words ? "> " + std::to_string(options.max_words) + " words" : "no limit") << ") "
            << counts.too_long << ", same package "
            << counts.same_package_identical + counts.same_package_variant << " ("
            << counts.same_package_identical << " identical, " << counts.same_package_variant
            << " other descriptions), same text "
            << counts.same_text_identical_pair + counts.same_text_other_summary << " ("
            << counts.same_text_identical_pair << " exact duplicate pairs, " << counts.same_text_other_summary
            << " other summaries), family cap " << counts.family_cap << "\n"
            << "kept " << kept.size() << ": train " << per_split["train"] << ", validation "
            << per_split["validation"] << ", test " << per_split["test"] << "\n"
            << "median words: text " << median(text_words) << ", summary " << median(summary_words) << "\n";
  if (kept.empty()) {
    std::cerr << "make-summary-dataset: no usable pair; nothing written\n";
    return 1;
  }

  if (!options.output) {
    for (size_t i = 0; i < kept.size(); ++i) write_pair(std::cout, kept[i], splits[i]);
    std::cout.flush();
    if (!std::cout) throw std::runtime_error("cannot write to standard output");
    return 0;
  }
  const std::string& out = *options.output;
  if (out.back() == '/' || fs::is_directory(out)) {
    fs::create_directories(out);
    std::vector<std::unique_ptr<AtomicFile>> files;
    std::map<std::string, AtomicFile*> by_split;
    for (const char* split : {"train", "validation", "test"}) {
      files.push_back(std::make_unique<AtomicFile>(fs::path(out) / (std::string(split) + ".jsonl")));
      by_split[split] = files.back().get();
    }
    for (size_t i = 0; i < kept.size(); ++i) write_pair(by_split[splits[i]]->stream(), kept[i], splits[i]);
    for (auto& f : files) f->commit();
  } else {
    AtomicFile file(out);
    for (size_t i = 0; i < kept.size(); ++i) write_pair(file.stream(), kept[i], splits[i]);
    file.commit();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_options(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "make-summary-dataset: " << e.message << " (see --help)\n";
  } catch (const std::exception& e) {
    std::cerr << "make-summary-dataset: " << e.what() << "\n";
  }
  return 2;
}
