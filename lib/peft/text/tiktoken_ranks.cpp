#include "peft/text/tiktoken_ranks.h"

#include <fstream>
#include <limits>
#include <unordered_map>

#include "peft/error.h"
#include "peft/text/byte_level_bpe.h"

namespace peft::text {

namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_decode(const std::string& in, std::string& out) {
  out.clear();
  // multilingual.tiktoken lists the empty token (rank 50256) as a lone "=", which
  // Python's b64decode reads as no bytes; tiktoken never produces it.
  if (!in.empty() && in.find_first_not_of('=') == std::string::npos) return true;
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      const int d = base64_value(c);
      if (d < 0 || pad) return false;
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out.push_back(static_cast<char>((v >> 16) & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>((v >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(v & 0xFF));
  }
  return true;
}

}  // namespace

TiktokenBpe read_tiktoken(const std::filesystem::path& path) {
  TiktokenBpe t;
  t.path = path.string();
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError(t.path + ": cannot open");
  std::vector<std::string> tokens;  // raw bytes, by rank
  std::unordered_map<std::string, int64_t> rank;
  std::string line, bytes;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    const std::string where = "line " + std::to_string(n);
    if (space == std::string::npos) throw FormatError(t.path, where, "expected '<base64> <rank>'");
    if (!base64_decode(line.substr(0, space), bytes)) throw FormatError(t.path, where, "bad base64");
    if (line.substr(space + 1) != std::to_string(tokens.size()))
      throw FormatError(t.path, where,
                        "rank " + line.substr(space + 1) + ", expected " + std::to_string(tokens.size()));
    if (!rank.emplace(bytes, static_cast<int64_t>(tokens.size())).second)
      throw FormatError(t.path, where, "token listed twice");
    tokens.push_back(bytes);
  }
  if (tokens.empty()) throw FormatError(t.path, "", "no tokens");
  t.size = static_cast<int64_t>(tokens.size());

  // tiktoken's procedure on one token's bytes, allowed only ranks below `limit`.
  std::vector<std::string> parts;
  auto split = [&](const std::string& token, int64_t limit) {
    parts.clear();
    for (char c : token) parts.emplace_back(1, c);
    for (;;) {
      int64_t best = std::numeric_limits<int64_t>::max();
      size_t at = 0;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        auto it = rank.find(parts[i] + parts[i + 1]);
        if (it != rank.end() && it->second < limit && it->second < best) {
          best = it->second;
          at = i;
        }
      }
      if (best == std::numeric_limits<int64_t>::max()) return;
      parts[at] += parts[at + 1];
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    }
  };
  for (int64_t r = 0; r < t.size; ++r) {
    const std::string& token = tokens[static_cast<size_t>(r)];
    if (!t.vocab.emplace(bytes_to_unicode(token), r).second)
      throw FormatError(t.path, "rank " + std::to_string(r), "token listed twice");
    if (token.size() < 2) continue;
    split(token, r);
    if (parts.size() != 2 || !rank.count(parts[0]) || !rank.count(parts[1]))
      throw FormatError(
          t.path, "rank " + std::to_string(r),
          "no two lower-ranked tokens make this token (" + std::to_string(parts.size()) + " pieces)");
    t.merges.emplace_back(bytes_to_unicode(parts[0]), bytes_to_unicode(parts[1]));
  }
  return t;
}

}  // namespace peft::text
