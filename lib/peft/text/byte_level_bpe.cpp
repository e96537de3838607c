#include "peft/text/byte_level_bpe.h"

#include <array>
#include <limits>

#include "peft/error.h"
#include "peft/text/unicode.h"

namespace peft::text {

namespace {

// GPT-2's table: bytes that are printable in Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ')
// keep their code point; the rest (controls, space, DEL, NBSP, soft hyphen) are moved,
// in byte order, to U+0100 and up, so that every token is visible, whitespace-free text.
struct ByteTable {
  std::array<int32_t, 256> to_cp{};
  std::unordered_map<int32_t, uint8_t> to_byte;
  ByteTable() {
    int32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[b] = printable ? b : next++;
      to_byte[to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

bool is_contraction_letter_run(const std::string& s, size_t pos, size_t& len) {
  // 's 't 're 've 'm 'll 'd, in the regex's order; case-sensitive like the regex.
  static const char* const kSuffixes[] = {"s", "t", "re", "ve", "m", "ll", "d"};
  if (s[pos] != '\'') return false;
  for (const char* suffix : kSuffixes) {
    const std::string suf(suffix);
    if (s.compare(pos + 1, suf.size(), suf) == 0) {
      len = 1 + suf.size();
      return true;
    }
  }
  return false;
}

enum class Cls { kLetter, kNumber, kSpace, kOther };

}  // namespace

std::string bytes_to_unicode(const std::string& bytes) {
  const ByteTable& t = byte_table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8_append(out, t.to_cp[b]);
  return out;
}

std::optional<std::string> unicode_to_bytes(const std::string& text) {
  const ByteTable& t = byte_table();
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = 0;
    const int32_t cp = utf8_next(text, pos, len);
    auto it = t.to_byte.find(cp);
    if (cp < 0 || it == t.to_byte.end()) return std::nullopt;
    out += static_cast<char>(it->second);
    pos += len;
  }
  return out;
}

std::vector<std::string> gpt2_pre_tokenize(const std::string& text) {
  // Decode once into code points with their byte offsets and classes.
  std::vector<size_t> offs;
  std::vector<Cls> cls;
  std::vector<int32_t> cps;
  for (size_t pos = 0; pos < text.size();) {
    size_t len = 0;
    const int32_t cp = utf8_next(text, pos, len);
    if (cp < 0)
      throw ValueError("GPT-2 pre-tokenizer: invalid UTF-8 at byte " + std::to_string(pos) + " of the text");
    offs.push_back(pos);
    cps.push_back(cp);
    cls.push_back(is_whitespace(cp) ? Cls::kSpace
                  : is_letter(cp)   ? Cls::kLetter
                  : is_number(cp)   ? Cls::kNumber
                                    : Cls::kOther);
    pos += len;
  }
  const size_t n = cps.size();
  offs.push_back(text.size());

  // Code points from i while they have class c.
  const auto run = [&](size_t i, Cls c) {
    size_t j = i;
    while (j < n && cls[j] == c) ++j;
    return j;
  };

  std::vector<std::string> pieces;
  size_t i = 0;
  while (i < n) {
    size_t end = i;
    size_t contraction_bytes = 0;
    if (is_contraction_letter_run(text, offs[i], contraction_bytes)) {
      // The suffix letters are ASCII, one code point per byte.
      end = i + contraction_bytes;
    } else {
      // " ?X+" for X in letters, numbers, other (not space/letter/number): an optional
      // U+0020 that is followed by at least one X.
      const bool lead_space = cps[i] == ' ' && i + 1 < n && cls[i + 1] != Cls::kSpace;
      const size_t body = lead_space ? i + 1 : i;
      if (cls[body] != Cls::kSpace) {
        end = run(body, cls[body]);
      } else {
        // \s+(?!\S): the whitespace run, minus its last character when a non-space
        // follows (that character then leads the next word); if that leaves nothing,
        // the final \s+ alternative takes the single whitespace character.
        const size_t j = run(i, Cls::kSpace);
        end = (j == n || j - i == 1) ? j : j - 1;
      }
    }
    pieces.push_back(text.substr(offs[i], offs[end] - offs[i]));
    i = end;
  }
  return pieces;
}

ByteLevelBpe::ByteLevelBpe(const std::map<std::string, int64_t>& vocab,
                           const std::vector<std::pair<std::string, std::string>>& merges, std::string origin)
    : origin_(std::move(origin)) {
  int64_t max_id = -1;
  for (const auto& [tok, id] : vocab) max_id = std::max(max_id, id);
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  token_to_id_.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) {
    if (id < 0) throw FormatError(origin_, "model.vocab['" + tok + "']", "negative id " + std::to_string(id));
    auto& slot = id_to_token_[static_cast<size_t>(id)];
    if (slot)
      throw FormatError(origin_, "model.vocab['" + tok + "']",
                        "id " + std::to_string(id) + " is also used by '" + *slot + "'");
    slot = tok;
    token_to_id_.emplace(tok, id);
  }
  if (merges.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    throw FormatError(origin_, "model.merges", "too many merges");
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    const std::string where = "model.merges[" + std::to_string(r) + "]";
    const auto ia = token_to_id_.find(a), ib = token_to_id_.find(b), iab = token_to_id_.find(a + b);
    if (ia == token_to_id_.end()) throw FormatError(origin_, where, "'" + a + "' is not in the vocabulary");
    if (ib == token_to_id_.end()) throw FormatError(origin_, where, "'" + b + "' is not in the vocabulary");
    if (iab == token_to_id_.end())
      throw FormatError(origin_, where, "merged token '" + a + b + "' is not in the vocabulary");
    const uint64_t key = (static_cast<uint64_t>(ia->second) << 32) | static_cast<uint64_t>(ib->second);
    // A repeated pair takes its later rank, as tokenizers' map construction does.
    merges_[key] = {static_cast<int32_t>(r), iab->second};
  }
}

std::vector<int64_t> ByteLevelBpe::encode_word(const std::string& word) const {
  // Start from one symbol per code point of the byte-level word.
  std::vector<int64_t> syms;
  for (size_t pos = 0; pos < word.size();) {
    size_t len = 0;
    utf8_next(word, pos, len);
    const auto it = token_to_id_.find(word.substr(pos, len));
    if (it == token_to_id_.end())
      throw FormatError(origin_, "model.vocab",
                        "byte-level character '" + word.substr(pos, len) + "' is missing");
    syms.push_back(it->second);
    pos += len;
  }
  // Repeatedly merge the adjacent pair with the lowest rank, leftmost on ties: the order
  // tokenizers' priority queue of (rank, position) produces. Words are short, so a
  // linear scan per merge is cheaper than maintaining a heap.
  while (syms.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    size_t best = 0;
    int64_t merged = -1;
    for (size_t k = 0; k + 1 < syms.size(); ++k) {
      const uint64_t key = (static_cast<uint64_t>(syms[k]) << 32) | static_cast<uint64_t>(syms[k + 1]);
      const auto it = merges_.find(key);
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best = k;
        merged = it->second.second;
      }
    }
    if (merged < 0) break;
    syms[best] = merged;
    syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  return syms;
}

std::vector<std::string> ByteLevelBpe::merge_word(const std::string& byte_level_word) const {
  std::vector<std::string> out;
  for (int64_t id : encode_word(byte_level_word)) out.push_back(*id_to_token_[static_cast<size_t>(id)]);
  return out;
}

std::vector<int64_t> ByteLevelBpe::encode(const std::string& text) const {
  constexpr size_t kCacheCapacity = 10000;
  std::vector<int64_t> ids;
  for (const std::string& piece : gpt2_pre_tokenize(text)) {
    const std::string word = bytes_to_unicode(piece);
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      const auto it = cache_.find(word);
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    std::vector<int64_t> word_ids = encode_word(word);
    ids.insert(ids.end(), word_ids.begin(), word_ids.end());
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(word, std::move(word_ids));
  }
  return ids;
}

const std::string* ByteLevelBpe::token(int64_t id) const {
  if (id < 0 || id >= id_count() || !id_to_token_[static_cast<size_t>(id)]) return nullptr;
  return &*id_to_token_[static_cast<size_t>(id)];
}

std::optional<std::string> ByteLevelBpe::token_bytes(int64_t id) const {
  const std::string* t = token(id);
  if (!t) return std::nullopt;
  // tokenizers' ByteLevel decoder keeps a token's own UTF-8 when one of its characters
  // is outside the byte table (e.g. "<|endoftext|>" is all table characters, but a
  // hand-added token need not be).
  auto bytes = unicode_to_bytes(*t);
  return bytes ? *bytes : *t;
}

std::optional<int64_t> ByteLevelBpe::id_of(const std::string& byte_level_token) const {
  const auto it = token_to_id_.find(byte_level_token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

}  // namespace peft::text
