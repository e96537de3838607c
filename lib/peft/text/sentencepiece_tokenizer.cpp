#include "peft/text/sentencepiece_tokenizer.h"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cstdio>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "peft/error.h"
#include "peft/text/sentencepiece_normalizer.h"
#include "peft/text/sentencepiece_trie.h"

namespace peft::text {

namespace {

const std::string_view kSpaceSymbol = "\xE2\x96\x81";      // U+2581 "▁"
const std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// sentencepiece's kUnkPenalty: an unknown character scores this much below the worst piece.
constexpr float kUnkPenalty = 10.0f;

std::string byte_piece(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

// The byte of "<0xXX>" (upper-case hex, as ByteToPiece writes it), else -1.
int piece_to_byte(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    value <<= 4;
    if (c >= '0' && c <= '9')
      value |= c - '0';
    else if (c >= 'A' && c <= 'F')
      value |= c - 'A' + 10;
    else
      return -1;
  }
  return value;
}

const char* model_type_name(SentencePieceTrainerSpec::ModelType t) {
  switch (t) {
    case SentencePieceTrainerSpec::ModelType::kUnigram:
      return "UNIGRAM";
    case SentencePieceTrainerSpec::ModelType::kBpe:
      return "BPE";
    case SentencePieceTrainerSpec::ModelType::kWord:
      return "WORD";
    case SentencePieceTrainerSpec::ModelType::kChar:
      return "CHAR";
  }
  return "?";
}

}  // namespace

struct SentencePieceTokenizer::Impl {
  // A piece of the normalized text and its id, before byte fallback.
  using Segment = std::pair<std::string_view, int32_t>;

  std::string origin;
  SentencePieceModelProto model;
  SentencePieceTrie pieces;  // unigram: NORMAL, USER_DEFINED and UNUSED pieces, for prefix search
  // Exact lookups (views of model.pieces, which never changes after construction).
  std::unordered_map<std::string_view, int32_t> ordinary_ids;  // as `pieces`
  std::unordered_map<std::string_view, int32_t> reserved_ids;  // UNKNOWN, CONTROL and BYTE pieces
  SentencePieceTrie user_defined;
  int32_t unk = -1;
  std::array<int32_t, 256> byte_ids{};
  float min_score = FLT_MAX, max_score = FLT_MIN;  // over NORMAL pieces, as unigram_model.cc
  std::optional<SentencePieceNormalizer> normalizer, denormalizer;
  int64_t special[4] = {-1, -1, -1, -1};  // unk, bos, eos, pad

  Impl(SentencePieceModelProto m, const std::string& origin_name);

  SentencePieceType type(int32_t id) const { return model.pieces[static_cast<size_t>(id)].type; }
  float score(int32_t id) const { return model.pieces[static_cast<size_t>(id)].score; }
  static int32_t find(const std::unordered_map<std::string_view, int32_t>& ids, std::string_view piece) {
    const auto it = ids.find(piece);
    return it == ids.end() ? -1 : it->second;
  }
  // ModelInterface::PieceToId: reserved pieces first, then ordinary ones, else <unk>.
  int32_t piece_to_id(std::string_view piece) const {
    const int32_t r = find(reserved_ids, piece);
    if (r >= 0) return r;
    const int32_t p = find(ordinary_ids, piece);
    return p >= 0 ? p : unk;
  }

  std::vector<Segment> unigram(std::string_view normalized) const;
  std::vector<Segment> bpe(std::string_view normalized) const;
  std::vector<std::pair<std::string, int32_t>> encode(const std::string& text) const;
};

SentencePieceTokenizer::Impl::Impl(SentencePieceModelProto m, const std::string& origin_name)
    : origin(origin_name), model(std::move(m)) {
  const auto& spec = model.trainer_spec;
  if (spec.model_type != SentencePieceTrainerSpec::ModelType::kUnigram &&
      spec.model_type != SentencePieceTrainerSpec::ModelType::kBpe)
    throw FormatError(origin, "trainer_spec.model_type",
                      std::string("model type ") + model_type_name(spec.model_type) +
                          " is not supported (only UNIGRAM and BPE)");
  if (model.pieces.size() > static_cast<size_t>(INT32_MAX))
    throw FormatError(origin, "pieces", "too many pieces");

  // ModelInterface::InitializePieces.
  std::array<bool, 256> byte_found{};
  std::vector<std::pair<std::string_view, int32_t>> ordinary_entries, user_defined_entries;
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const auto& p = model.pieces[i];
    const int32_t id = static_cast<int32_t>(i);
    const std::string where = "pieces[" + std::to_string(i) + "]";
    if (p.piece.empty()) throw FormatError(origin, where, "empty piece");
    const bool ordinary = p.type == SentencePieceType::kNormal || p.type == SentencePieceType::kUserDefined ||
                          p.type == SentencePieceType::kUnused;
    auto& table = ordinary ? ordinary_ids : reserved_ids;
    const auto [it, added] = table.emplace(p.piece, id);
    if (!added)
      throw FormatError(
          origin, where,
          "piece \"" + p.piece + "\" is already defined (id " + std::to_string(it->second) + ")");
    if (ordinary) ordinary_entries.emplace_back(p.piece, id);
    if (p.type == SentencePieceType::kUserDefined) user_defined_entries.emplace_back(p.piece, id);
    if (p.type == SentencePieceType::kUnknown) {
      if (unk >= 0)
        throw FormatError(origin, where,
                          "a second unknown piece (the first is id " + std::to_string(unk) + ")");
      unk = id;
    }
    if (p.type == SentencePieceType::kByte) {
      if (!spec.byte_fallback)
        throw FormatError(origin, where, "byte piece \"" + p.piece + "\" although byte_fallback is false");
      const int b = piece_to_byte(p.piece);
      if (b < 0) throw FormatError(origin, where, "byte piece \"" + p.piece + "\" is not <0x00>..<0xFF>");
      byte_found[static_cast<size_t>(b)] = true;
      byte_ids[static_cast<size_t>(b)] = id;
    }
    if (p.type == SentencePieceType::kNormal) {
      min_score = std::min(min_score, p.score);
      max_score = std::max(max_score, p.score);
    }
  }
  if (unk < 0) throw FormatError(origin, "pieces", "no unknown (<unk>) piece");
  if (spec.model_type == SentencePieceTrainerSpec::ModelType::kUnigram)
    pieces = SentencePieceTrie(std::move(ordinary_entries));
  user_defined = SentencePieceTrie(std::move(user_defined_entries));
  if (spec.byte_fallback && std::find(byte_found.begin(), byte_found.end(), false) != byte_found.end())
    throw FormatError(origin, "pieces", "byte_fallback is set but not all 256 byte pieces are present");

  normalizer.emplace(model.normalizer_spec, spec.treat_whitespace_as_suffix, user_defined, origin,
                     "normalizer_spec");
  if (model.denormalizer_spec && !model.denormalizer_spec->precompiled_charsmap.empty())
    denormalizer.emplace(*model.denormalizer_spec, false, SentencePieceTrie(), origin, "denormalizer_spec");

  // SentencePieceProcessor::{unk,bos,eos,pad}_id.
  const auto lookup = [&](const std::string& name, SentencePieceType want) -> int64_t {
    const int32_t id = piece_to_id(name);
    return type(id) == want ? id : -1;
  };
  special[0] = lookup(spec.unk_piece, SentencePieceType::kUnknown);
  special[1] = lookup(spec.bos_piece, SentencePieceType::kControl);
  special[2] = lookup(spec.eos_piece, SentencePieceType::kControl);
  special[3] = lookup(spec.pad_piece, SentencePieceType::kControl);
}

// unigram::Model::EncodeOptimized: Viterbi over byte positions keeping only the best
// path ending at each position; on equal scores the path found first (the earlier last
// piece) stays. Scores are summed in float: the source reads as if the sum were widened
// to double, but sentencepiece 0.2.3 does not behave so. On the fixture's "www" the two
// orders of "w" + "ww" round differently and only float sums give its [w][ww].
std::vector<SentencePieceTokenizer::Impl::Segment> SentencePieceTokenizer::Impl::unigram(
    std::string_view normalized) const {
  struct Best {
    int32_t id = -1;
    float score = 0.0f;
    int64_t starts_at = -1;
  };
  const size_t size = normalized.size();
  const float unk_score = min_score - kUnkPenalty;
  std::vector<Best> best(size + 1);
  size_t starts_at = 0;
  while (starts_at < size) {
    const float score_here = best[starts_at].score;
    bool has_single_node = false;
    const size_t mblen = std::min(sentencepiece_char_length(normalized[starts_at]), size - starts_at);
    pieces.for_each_prefix(normalized.substr(starts_at), [&](size_t length, int32_t id) {
      const SentencePieceType t = type(id);
      if (t == SentencePieceType::kUnused) return;
      Best& target = best[starts_at + length];
      // A user-defined piece gets a bonus so that it is always chosen.
      const float piece_score =
          t == SentencePieceType::kUserDefined ? static_cast<float>(length) * max_score - 0.1f : score(id);
      const float candidate = piece_score + score_here;
      if (target.starts_at == -1 || candidate > target.score) {
        target.score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = id;
      }
      if (length == mblen) has_single_node = true;
    });
    if (!has_single_node) {
      Best& target = best[starts_at + mblen];
      const float candidate = unk_score + score_here;
      if (target.starts_at == -1 || candidate > target.score) {
        target.score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = unk;
      }
    }
    starts_at += mblen;
  }
  std::vector<Segment> out;
  for (size_t end = size; end > 0;) {
    const Best& node = best[end];
    const size_t begin = static_cast<size_t>(node.starts_at);  // every character boundary is reached
    out.emplace_back(normalized.substr(begin, end - begin), node.id);
    end = begin;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// bpe::Model::SampleEncode without dropout: characters (user-defined symbols whole and
// frozen) are merged pair by pair, best-scoring merged piece first, leftmost on ties. A
// merge into an UNUSED piece is undone at the end by splitting it back into its parts.
std::vector<SentencePieceTokenizer::Impl::Segment> SentencePieceTokenizer::Impl::bpe(
    std::string_view normalized) const {
  struct Symbol {
    int prev, next;
    bool freeze;
    std::string_view piece;
  };
  struct Pair {
    int left, right;
    float score;
    size_t size;
  };
  const auto lower = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(lower)> agenda(lower);
  std::vector<Symbol> symbols;
  symbols.reserve(normalized.size());
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;

  const auto maybe_add_pair = [&](int left, int right) {
    if (left == -1 || right == -1 || symbols[left].freeze || symbols[right].freeze) return;
    const std::string_view merged(symbols[left].piece.data(),
                                  symbols[left].piece.size() + symbols[right].piece.size());
    const int32_t id = find(ordinary_ids, merged);
    if (id < 0) return;
    agenda.push(Pair{left, right, score(id), merged.size()});
    if (type(id) == SentencePieceType::kUnused)
      rev_merge[merged] = {symbols[left].piece, symbols[right].piece};
  };

  std::string_view rest = normalized;
  for (int index = 0; !rest.empty(); ++index) {
    Symbol s;
    size_t length = user_defined.longest_prefix(rest);
    s.freeze = length > 0;
    if (!s.freeze) length = std::min(rest.size(), sentencepiece_char_length(rest.front()));
    s.piece = rest.substr(0, length);
    s.prev = index - 1;
    rest.remove_prefix(length);
    s.next = rest.empty() ? -1 : index + 1;
    symbols.push_back(s);
  }
  if (symbols.empty()) return {};
  for (size_t i = 1; i < symbols.size(); ++i) maybe_add_pair(static_cast<int>(i - 1), static_cast<int>(i));

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    // Stale: one side was merged away or grew since this pair was queued.
    if (left.piece.empty() || right.piece.empty() || left.piece.size() + right.piece.size() != top.size)
      continue;
    left.piece = std::string_view(left.piece.data(), left.piece.size() + right.piece.size());
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.piece = std::string_view();
    maybe_add_pair(left.prev, top.left);
    maybe_add_pair(top.left, left.next);
  }

  std::vector<Segment> out;
  std::vector<std::string_view> stack;
  for (int index = 0; index != -1; index = symbols[index].next) {
    stack.push_back(symbols[index].piece);
    while (!stack.empty()) {
      const std::string_view w = stack.back();
      stack.pop_back();
      const int32_t id = piece_to_id(w);
      const auto it = type(id) == SentencePieceType::kUnused ? rev_merge.find(w) : rev_merge.end();
      if (it == rev_merge.end()) {
        out.emplace_back(w, id);
      } else {
        stack.push_back(it->second.second);
        stack.push_back(it->second.first);
      }
    }
  }
  return out;
}

// SentencePieceProcessor::Encode + PopulateSentencePieceText.
std::vector<std::pair<std::string, int32_t>> SentencePieceTokenizer::Impl::encode(
    const std::string& text) const {
  const std::string normalized = normalizer->normalize(text);
  std::vector<Segment> segments;
  if (!normalized.empty())
    segments = model.trainer_spec.model_type == SentencePieceTrainerSpec::ModelType::kBpe
                   ? bpe(normalized)
                   : unigram(normalized);
  std::vector<std::pair<std::string, int32_t>> out;
  out.reserve(segments.size());
  bool prev_unknown = false;
  for (const auto& [w, id] : segments) {
    const bool unknown = type(id) == SentencePieceType::kUnknown;
    if (unknown && model.trainer_spec.byte_fallback) {
      for (const char c : w) {
        const auto b = static_cast<uint8_t>(c);
        out.emplace_back(byte_piece(b), byte_ids[b]);
      }
    } else if (unknown && prev_unknown) {
      out.back().first += w;  // a run of unknown characters is one <unk>
    } else {
      out.emplace_back(std::string(w), id);
    }
    prev_unknown = unknown;
  }
  return out;
}

SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceModelProto model, const std::string& origin)
    : impl_(std::make_shared<const Impl>(std::move(model), origin)) {}

SentencePieceTokenizer SentencePieceTokenizer::load(const std::filesystem::path& path) {
  return SentencePieceTokenizer(read_sentencepiece_model(path), path.string());
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const auto& p : impl_->encode(text)) ids.push_back(p.second);
  return ids;
}

std::vector<std::string> SentencePieceTokenizer::encode_pieces(const std::string& text) const {
  std::vector<std::string> pieces;
  for (auto& p : impl_->encode(text)) pieces.push_back(std::move(p.first));
  return pieces;
}

std::string SentencePieceTokenizer::normalize(const std::string& text) const {
  return impl_->normalizer->normalize(text);
}

// SentencePieceProcessor::Decode.
std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  const Impl& m = *impl_;
  const auto& norm = m.model.normalizer_spec;
  for (const int64_t id : ids)
    if (id < 0 || id >= vocab_size())
      throw ValueError(m.origin + ": decode: id " + std::to_string(id) + " is outside the vocabulary [0, " +
                       std::to_string(vocab_size()) + ")");

  std::string text;
  // Byte pieces [begin, end) become the UTF-8 they spell; each byte that does not start
  // a valid character is U+FFFD.
  const auto flush_bytes = [&](size_t begin, size_t end) {
    std::string bytes;
    for (size_t i = begin; i < end; ++i)
      bytes += static_cast<char>(piece_to_byte(m.model.pieces[ids[i]].piece));
    std::string_view rest = bytes;
    while (!rest.empty()) {
      size_t length = 0;
      if (sentencepiece_valid_utf8_prefix(rest, length))
        text.append(rest.substr(0, length));
      else
        text.append(kReplacementChar);
      rest.remove_prefix(length);
    }
  };

  bool is_bos_ws = true;  // still expecting the dummy-prefix "▁" to drop
  bool bos_ws_seen = false;
  size_t byte_start = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = static_cast<int32_t>(ids[i]);
    const SentencePieceType t = m.type(id);
    if (t == SentencePieceType::kByte) continue;
    flush_bytes(byte_start, i);
    if (bos_ws_seen || !text.empty()) is_bos_ws = false;
    byte_start = i + 1;
    bos_ws_seen = false;
    if (t == SentencePieceType::kControl) continue;
    if (t == SentencePieceType::kUnknown) {
      text += m.model.trainer_spec.unk_surface;
      continue;
    }
    std::string_view piece = m.model.pieces[static_cast<size_t>(id)].piece;
    if (is_bos_ws && (norm.add_dummy_prefix || norm.remove_extra_whitespaces)) {
      if (piece.substr(0, kSpaceSymbol.size()) == kSpaceSymbol) {
        piece.remove_prefix(kSpaceSymbol.size());
        // With remove_extra_whitespaces every leading "▁" piece loses its "▁".
        bos_ws_seen = !norm.remove_extra_whitespaces;
      }
    }
    for (size_t pos = 0; pos < piece.size();) {
      if (piece.compare(pos, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
        text += ' ';
        pos += kSpaceSymbol.size();
      } else {
        text += piece[pos++];
      }
    }
  }
  flush_bytes(byte_start, ids.size());
  if (m.denormalizer) return m.denormalizer->normalize(text);
  return text;
}

const std::string& SentencePieceTokenizer::piece(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw ValueError(impl_->origin + ": id " + std::to_string(id) + " is outside the vocabulary [0, " +
                     std::to_string(vocab_size()) + ")");
  return impl_->model.pieces[static_cast<size_t>(id)].piece;
}

std::optional<int64_t> SentencePieceTokenizer::id_of(const std::string& piece) const {
  int32_t id = Impl::find(impl_->reserved_ids, piece);
  if (id < 0) id = Impl::find(impl_->ordinary_ids, piece);
  if (id < 0) return std::nullopt;
  return id;
}

float SentencePieceTokenizer::score(int64_t id) const {
  piece(id);  // range check
  return impl_->score(static_cast<int32_t>(id));
}

SentencePieceType SentencePieceTokenizer::type(int64_t id) const {
  piece(id);
  return impl_->type(static_cast<int32_t>(id));
}

int64_t SentencePieceTokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->model.pieces.size());
}
int64_t SentencePieceTokenizer::unk_id() const { return impl_->special[0]; }
int64_t SentencePieceTokenizer::bos_id() const { return impl_->special[1]; }
int64_t SentencePieceTokenizer::eos_id() const { return impl_->special[2]; }
int64_t SentencePieceTokenizer::pad_id() const { return impl_->special[3]; }
const SentencePieceTrainerSpec& SentencePieceTokenizer::trainer_spec() const {
  return impl_->model.trainer_spec;
}
const SentencePieceNormalizerSpec& SentencePieceTokenizer::normalizer_spec() const {
  return impl_->model.normalizer_spec;
}

}  // namespace peft::text
