#include "peft/text/sentencepiece_hf_unigram.h"

#include <unicode/ubrk.h>
#include <unicode/utext.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "peft/error.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"
#include "peft/text/sentencepiece_normalizer.h"
#include "peft/text/sentencepiece_trie.h"
#include "peft/text/unicode.h"

namespace peft::text {

namespace {

using nlohmann::json;

// tokenizers' K_UNK_PENALTY.
constexpr double kUnkPenalty = 10.0;

bool base64_decode(const std::string& in, std::string& out) {
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    int d;
    if (c >= 'A' && c <= 'Z')
      d = c - 'A';
    else if (c >= 'a' && c <= 'z')
      d = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      d = c - '0' + 52;
    else if (c == '+')
      d = 62;
    else if (c == '/')
      d = 63;
    else if (c == '=')
      break;
    else
      return false;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return true;
}

// Extended grapheme clusters of valid UTF-8 (ICU's character break iterator, as the
// unicode-segmentation crate does for Precompiled): the byte offsets where one starts,
// plus the end.
std::vector<size_t> grapheme_boundaries(const std::string& s) {
  std::vector<size_t> out{0};
  if (s.empty()) return out;
  UErrorCode status = U_ZERO_ERROR;
  UText* text = utext_openUTF8(nullptr, s.data(), static_cast<int64_t>(s.size()), &status);
  UBreakIterator* it = ubrk_open(UBRK_CHARACTER, "", nullptr, 0, &status);
  if (U_SUCCESS(status)) ubrk_setUText(it, text, &status);
  if (U_FAILURE(status)) {
    if (it) ubrk_close(it);
    if (text) utext_close(text);
    throw Error(std::string("ICU grapheme break iterator: ") + u_errorName(status));
  }
  for (int32_t b = ubrk_next(it); b != UBRK_DONE; b = ubrk_next(it)) out.push_back(static_cast<size_t>(b));
  ubrk_close(it);
  utext_close(text);
  if (out.back() != s.size()) out.push_back(s.size());
  return out;
}

enum class Prepend { kAlways, kFirst, kNever };

Prepend read_prepend(const json& j, const std::string& origin, const std::string& where) {
  if (j.contains("prepend_scheme")) {
    const auto s = io::json_get<std::string>(j, "prepend_scheme", origin + ": " + where);
    if (s == "always") return Prepend::kAlways;
    if (s == "first") return Prepend::kFirst;
    if (s == "never") return Prepend::kNever;
    throw FormatError(origin, where + ".prepend_scheme", "unknown value \"" + s + "\"");
  }
  // Files from tokenizers < 0.14 say add_prefix_space.
  return io::json_get_or<bool>(j, "add_prefix_space", true, origin + ": " + where) ? Prepend::kAlways
                                                                                   : Prepend::kNever;
}

}  // namespace

struct HfUnigramTokenizer::Impl {
  // One step of the normalizer Sequence.
  struct Step {
    enum class Kind { kPrecompiled, kStrip, kReplace, kReplaceSpaceRuns } kind;
    bool left = false, right = false;  // Strip
    std::string pattern, content;      // Replace (kReplaceSpaceRuns: the Regex " {2,}")
  };

  std::string origin;
  std::vector<std::pair<std::string, double>> vocab;
  SentencePieceTrie pieces;  // every vocabulary entry, as tokenizers' Unigram trie holds
  std::optional<int32_t> unk;
  bool byte_fallback = false;
  double min_score = INFINITY;

  std::vector<Step> steps;
  std::optional<PrecompiledCharsMap> charsmap;

  bool metaspace = false;  // pre-tokenizer
  std::string replacement = "\xE2\x96\x81";
  Prepend prepend = Prepend::kAlways;
  bool split = true;

  bool metaspace_decoder = false;
  std::string decoder_replacement = "\xE2\x96\x81";
  Prepend decoder_prepend = Prepend::kAlways;

  // Added tokens: content -> id, matched in the raw text (normalized: false) or in the
  // normalized text (normalized: true, their content normalized too), as tokenizers'
  // AddedVocabulary does.
  SentencePieceTrie added, added_normalized;
  std::unordered_map<int64_t, std::string> added_by_id;
  std::unordered_set<int64_t> special_ids, lstrip_ids, rstrip_ids;
  struct Match {
    size_t begin, end;
    int64_t id;
  };
  std::vector<Match> find_added(const std::string& text, const SentencePieceTrie& trie, bool specials) const;
  void pretokenize(const std::string& normalized, bool at_start,
                   std::vector<std::pair<std::string, int64_t>>& out) const;

  std::string normalize(const std::string& s) const;
  std::string precompiled(const std::string& s) const;
  void unigram(std::string_view word, std::vector<std::pair<std::string, int64_t>>& out) const;
  void segment(const std::string& text, bool at_start, bool specials,
               std::vector<std::pair<std::string, int64_t>>& out) const;
  std::vector<std::pair<std::string, int64_t>> encode(const std::string& text, bool specials) const;
};

// spm_precompiled's normalize_string: a grapheme shorter than 6 bytes is replaced whole
// by its shortest matching rule; otherwise (or without a rule) character by character.
std::string HfUnigramTokenizer::Impl::precompiled(const std::string& s) const {
  std::string out;
  const auto bounds = grapheme_boundaries(s);
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    const std::string_view grapheme(s.data() + bounds[i], bounds[i + 1] - bounds[i]);
    if (grapheme.size() < 6) {
      if (const auto norm = charsmap->shortest_match(grapheme)) {
        out += *norm;
        continue;
      }
    }
    const std::string chars(grapheme);
    for (size_t pos = 0; pos < chars.size();) {
      size_t len = 1;
      utf8_next(chars, pos, len);
      const std::string_view ch = grapheme.substr(pos, len);
      if (const auto norm = charsmap->shortest_match(ch))
        out += *norm;
      else
        out += ch;
      pos += len;
    }
  }
  return out;
}

std::string HfUnigramTokenizer::Impl::normalize(const std::string& input) const {
  std::string s = input;
  for (const Step& step : steps) {
    switch (step.kind) {
      case Step::Kind::kPrecompiled:
        s = precompiled(s);
        break;
      case Step::Kind::kStrip: {
        // Unicode White_Space, as Rust's char::is_whitespace.
        size_t first = std::string::npos, last_end = 0;
        for (size_t pos = 0, len = 1; pos < s.size(); pos += len) {
          if (!is_whitespace(utf8_next(s, pos, len))) {
            if (first == std::string::npos) first = pos;
            last_end = pos + len;
          }
        }
        if (first == std::string::npos) {
          if (step.left || step.right) s.clear();
          break;
        }
        const size_t begin = step.left ? first : 0;
        const size_t end = step.right ? last_end : s.size();
        s = s.substr(begin, end - begin);
        break;
      }
      case Step::Kind::kReplace: {
        if (step.pattern.empty()) break;
        std::string out;
        size_t pos = 0;
        for (size_t hit; (hit = s.find(step.pattern, pos)) != std::string::npos;
             pos = hit + step.pattern.size())
          out.append(s, pos, hit - pos).append(step.content);
        s = out.append(s, pos, std::string::npos);
        break;
      }
      case Step::Kind::kReplaceSpaceRuns: {
        std::string out;
        for (size_t i = 0; i < s.size();) {
          size_t j = i;
          while (j < s.size() && s[j] == ' ') ++j;
          if (j - i >= 2) {
            out += step.content;
            i = j;
          } else if (j > i) {
            out += ' ';
            i = j;
          } else {
            out += s[i++];
          }
        }
        s = out;
        break;
      }
    }
  }
  return s;
}

// tokenizers' Unigram::encode_optimized (scores in double), unknown runs fused into one
// token, then tokenize(): a token string not in the vocabulary is its <0xXX> bytes
// (byte_fallback, when all exist) or <unk>.
void HfUnigramTokenizer::Impl::unigram(std::string_view word,
                                       std::vector<std::pair<std::string, int64_t>>& out) const {
  if (word.empty()) return;
  struct Best {
    int32_t id = -1;
    double score = 0.0;
    int64_t starts_at = -1;
  };
  const size_t size = word.size();
  const double unk_score = min_score - kUnkPenalty;
  std::vector<Best> best(size + 1);
  for (size_t starts_at = 0; starts_at < size;) {
    const double score_here = best[starts_at].score;
    bool has_single_node = false;
    const size_t mblen = std::min(sentencepiece_char_length(word[starts_at]), size - starts_at);
    pieces.for_each_prefix(word.substr(starts_at), [&](size_t length, int32_t id) {
      Best& target = best[starts_at + length];
      const double candidate = vocab[static_cast<size_t>(id)].second + score_here;
      if (target.starts_at == -1 || candidate > target.score) {
        target.score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = id;
      }
      if (length == mblen) has_single_node = true;
    });
    if (!has_single_node) {
      Best& target = best[starts_at + mblen];
      const double candidate = unk_score + score_here;
      if (target.starts_at == -1 || candidate > target.score) {
        target.score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = unk ? *unk : -1;
      }
    }
    starts_at += mblen;
  }
  std::vector<std::string> tokens;
  std::string fused;  // a run of unknown pieces, back to front
  for (size_t end = size; end > 0;) {
    const Best& node = best[end];
    const size_t begin = static_cast<size_t>(node.starts_at);
    const std::string piece(word.substr(begin, end - begin));
    if (unk && node.id == *unk) {
      fused.insert(0, piece);
    } else {
      if (!fused.empty()) tokens.push_back(std::move(fused));
      fused.clear();
      tokens.push_back(piece);
    }
    end = begin;
  }
  if (!fused.empty()) tokens.push_back(std::move(fused));
  std::reverse(tokens.begin(), tokens.end());

  for (auto& t : tokens) {
    const int32_t id = pieces.find(t);
    if (id >= 0) {
      out.emplace_back(std::move(t), id);
      continue;
    }
    if (byte_fallback) {
      std::vector<std::pair<std::string, int64_t>> bytes;
      for (const char c : t) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", static_cast<uint8_t>(c));
        const int32_t b = pieces.find(buf);
        if (b < 0) break;
        bytes.emplace_back(buf, b);
      }
      if (bytes.size() == t.size()) {
        out.insert(out.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (!unk)
      throw ValueError(origin + ": \"" + t + "\" is not in the vocabulary and the model has no unk_id");
    out.emplace_back(std::move(t), *unk);
  }
}

// Added tokens in `text`, leftmost then longest; with lstrip / rstrip a match takes in
// the whitespace before / after it (not before the previous match). Special tokens are
// skipped over without a match unless `specials` (tokenizers' encode_special_tokens off).
std::vector<HfUnigramTokenizer::Impl::Match> HfUnigramTokenizer::Impl::find_added(
    const std::string& text, const SentencePieceTrie& trie, bool specials) const {
  std::vector<Match> found;
  if (trie.empty()) return found;
  size_t previous_end = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = trie.longest_prefix(std::string_view(text).substr(pos));
    if (len == 0) {
      ++pos;
      continue;
    }
    Match m{pos, pos + len, trie.find(std::string_view(text).substr(pos, len))};
    pos += len;
    if (!specials && special_ids.count(m.id)) continue;
    if (lstrip_ids.count(m.id))
      while (m.begin > previous_end) {
        size_t b = m.begin - 1, n = 1;
        while (b > previous_end && (static_cast<uint8_t>(text[b]) & 0xC0) == 0x80) --b;
        const int32_t cp = utf8_next(text, b, n);
        if (cp < 0 || b + n != m.begin || !is_whitespace(cp)) break;
        m.begin = b;
      }
    if (rstrip_ids.count(m.id))
      for (size_t n = 1; m.end < text.size(); m.end += n) {
        const int32_t cp = utf8_next(text, m.end, n);
        if (cp < 0 || !is_whitespace(cp)) break;
      }
    pos = m.end;
    previous_end = m.end;
    found.push_back(m);
  }
  return found;
}

// One stretch of raw text between added tokens: normalizer, then the normalized added
// tokens, then the pre-tokenizer and model on what lies between them.
void HfUnigramTokenizer::Impl::segment(const std::string& text, bool at_start, bool specials,
                                       std::vector<std::pair<std::string, int64_t>>& out) const {
  const std::string s = normalize(text);
  size_t start = 0;
  for (const Match& m : find_added(s, added_normalized, specials)) {
    if (m.begin > start) pretokenize(s.substr(start, m.begin - start), at_start && start == 0, out);
    out.emplace_back(added_by_id.at(m.id), m.id);
    start = m.end;
  }
  if (start < s.size()) pretokenize(s.substr(start), at_start && start == 0, out);
}

// Normalized text without added tokens: Metaspace pre-tokenizer, model.
void HfUnigramTokenizer::Impl::pretokenize(const std::string& s, bool at_start,
                                           std::vector<std::pair<std::string, int64_t>>& out) const {
  if (!metaspace) return unigram(s, out);
  std::string spaced;
  for (const char c : s) {
    if (c == ' ')
      spaced += replacement;
    else
      spaced += c;
  }
  // NormalizedString::prepend does nothing to an empty string.
  const bool starts = spaced.compare(0, replacement.size(), replacement) == 0;
  if (!spaced.empty() && !starts && (prepend == Prepend::kAlways || (prepend == Prepend::kFirst && at_start)))
    spaced.insert(0, replacement);
  if (!split || replacement.empty()) return unigram(spaced, out);
  // Split on the replacement, each one merged with what follows it (MergedWithNext):
  // pieces are (begin, end, is_match), folded from the back.
  std::vector<std::tuple<size_t, size_t, bool>> parts;
  size_t pos = 0;
  for (size_t hit; (hit = spaced.find(replacement, pos)) != std::string::npos;
       pos = hit + replacement.size()) {
    if (hit > pos) parts.emplace_back(pos, hit, false);
    parts.emplace_back(hit, hit + replacement.size(), true);
  }
  if (pos < spaced.size()) parts.emplace_back(pos, spaced.size(), false);
  std::vector<std::pair<size_t, size_t>> words;
  bool previous_match = false;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    const auto [b, e, is_match] = *it;
    if (is_match && !previous_match && !words.empty())
      words.back().first = b;
    else
      words.emplace_back(b, e);
    previous_match = is_match;
  }
  for (auto it = words.rbegin(); it != words.rend(); ++it)
    unigram(std::string_view(spaced).substr(it->first, it->second - it->first), out);
}

std::vector<std::pair<std::string, int64_t>> HfUnigramTokenizer::Impl::encode(const std::string& raw,
                                                                              bool specials) const {
  const std::string text = utf8_lossy(raw);
  std::vector<std::pair<std::string, int64_t>> out;
  // Added tokens that are not normalized are found first, in the raw text.
  size_t start = 0;
  for (const Match& m : find_added(text, added, specials)) {
    if (m.begin > start) segment(text.substr(start, m.begin - start), start == 0, specials, out);
    out.emplace_back(added_by_id.at(m.id), m.id);
    start = m.end;
  }
  if (start < text.size()) segment(text.substr(start), start == 0, specials, out);
  return out;
}

HfUnigramTokenizer HfUnigramTokenizer::load(const std::filesystem::path& path) {
  const io::HfTokenizerFile file = io::read_hf_tokenizer(path);
  const json raw = io::read_json_file(path);
  const std::string& origin = file.path;
  if (file.model_type != "Unigram")
    throw FormatError(origin, "model.type", "\"" + file.model_type + "\", expected a Unigram model");

  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  impl->vocab = file.unigram_vocab;
  if (impl->vocab.size() > static_cast<size_t>(INT32_MAX))
    throw FormatError(origin, "model.vocab", "too large");
  std::vector<std::pair<std::string_view, int32_t>> entries;
  for (size_t i = 0; i < impl->vocab.size(); ++i) {
    const auto& [piece, score] = impl->vocab[i];
    entries.emplace_back(piece, static_cast<int32_t>(i));
    impl->min_score = std::min(impl->min_score, score);
  }
  impl->pieces = SentencePieceTrie(std::move(entries));
  if (file.unk_token) impl->unk = impl->pieces.find(*file.unk_token);
  impl->byte_fallback = file.byte_fallback;

  // Normalizer: Precompiled, Strip, Replace (a string, or the converters' " {2,}"),
  // alone or in a Sequence.
  std::vector<std::pair<json, std::string>> norms;
  if (file.normalizer.is_object()) {
    if (file.normalizer.value("type", "") == "Sequence") {
      const json& list = file.normalizer.value("normalizers", json::array());
      for (size_t i = 0; i < list.size(); ++i)
        norms.emplace_back(list[i], "normalizer.normalizers[" + std::to_string(i) + "]");
    } else {
      norms.emplace_back(file.normalizer, "normalizer");
    }
  }
  for (const auto& [n, where] : norms) {
    const std::string type = n.value("type", "");
    Impl::Step step{Impl::Step::Kind::kStrip, false, false, {}, {}};
    if (type == "Precompiled") {
      if (impl->charsmap)
        throw FormatError(origin, where, "a second Precompiled normalizer is not supported");
      std::string blob;
      if (!base64_decode(io::json_get<std::string>(n, "precompiled_charsmap", origin + ": " + where), blob))
        throw FormatError(origin, where + ".precompiled_charsmap", "not base64");
      impl->charsmap.emplace(std::move(blob), origin, where + ".precompiled_charsmap");
      step.kind = Impl::Step::Kind::kPrecompiled;
    } else if (type == "Strip") {
      step.left = io::json_get_or<bool>(n, "strip_left", false, origin + ": " + where);
      step.right = io::json_get_or<bool>(n, "strip_right", false, origin + ": " + where);
    } else if (type == "Replace") {
      const json& pattern = n.value("pattern", json::object());
      step.content = io::json_get<std::string>(n, "content", origin + ": " + where);
      if (pattern.contains("String")) {
        step.kind = Impl::Step::Kind::kReplace;
        step.pattern = io::json_get<std::string>(pattern, "String", origin + ": " + where + ".pattern");
      } else if (pattern.value("Regex", "") == " {2,}") {
        step.kind = Impl::Step::Kind::kReplaceSpaceRuns;
      } else {
        throw FormatError(origin, where + ".pattern", "only a String or the Regex \" {2,}\" is supported");
      }
    } else {
      throw FormatError(origin, where, "normalizer type \"" + type + "\" is not supported");
    }
    impl->steps.push_back(std::move(step));
  }

  if (file.pre_tokenizer.is_object()) {
    const json& p = file.pre_tokenizer;
    if (p.value("type", "") != "Metaspace")
      throw FormatError(origin, "pre_tokenizer",
                        "type \"" + p.value("type", "") + "\" is not supported (Metaspace)");
    impl->metaspace = true;
    impl->replacement =
        io::json_get_or<std::string>(p, "replacement", impl->replacement, origin + ": pre_tokenizer");
    impl->prepend = read_prepend(p, origin, "pre_tokenizer");
    impl->split = io::json_get_or<bool>(p, "split", true, origin + ": pre_tokenizer");
  }
  if (file.decoder.is_object()) {
    const json& d = file.decoder;
    if (d.value("type", "") != "Metaspace")
      throw FormatError(origin, "decoder",
                        "type \"" + d.value("type", "") + "\" is not supported (Metaspace)");
    impl->metaspace_decoder = true;
    impl->decoder_replacement =
        io::json_get_or<std::string>(d, "replacement", impl->decoder_replacement, origin + ": decoder");
    impl->decoder_prepend = read_prepend(d, origin, "decoder");
  }

  // Added tokens: normalized, lstrip and rstrip as the converters write them (MBart's
  // <mask> is lstrip + normalized); single_word is refused.
  const json& added = raw.value("added_tokens", json::array());
  std::vector<std::string> normalized_contents;
  normalized_contents.reserve(file.added_tokens.size());
  std::vector<std::pair<std::string_view, int32_t>> raw_entries, normalized_entries;
  for (size_t i = 0; i < file.added_tokens.size(); ++i) {
    const auto& t = file.added_tokens[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    const json& a = i < added.size() ? added[i] : json::object();
    if (a.value("single_word", false))
      throw FormatError(origin, where, "\"single_word\": true is not supported");
    if (t.content.empty()) throw FormatError(origin, where, "empty content");
    impl->added_by_id[t.id] = t.content;
    if (t.special) impl->special_ids.insert(t.id);
    if (a.value("lstrip", false)) impl->lstrip_ids.insert(t.id);
    if (a.value("rstrip", false)) impl->rstrip_ids.insert(t.id);
    if (a.value("normalized", false)) {
      normalized_contents.push_back(impl->normalize(t.content));
      if (!normalized_contents.back().empty())
        normalized_entries.emplace_back(normalized_contents.back(), static_cast<int32_t>(t.id));
    } else {
      raw_entries.emplace_back(t.content, static_cast<int32_t>(t.id));
    }
  }
  impl->added = SentencePieceTrie(std::move(raw_entries));
  impl->added_normalized = SentencePieceTrie(std::move(normalized_entries));

  HfUnigramTokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

std::vector<int64_t> HfUnigramTokenizer::encode(const std::string& text, bool specials) const {
  std::vector<int64_t> ids;
  for (const auto& t : impl_->encode(text, specials)) ids.push_back(t.second);
  return ids;
}

std::vector<std::string> HfUnigramTokenizer::encode_tokens(const std::string& text, bool specials) const {
  std::vector<std::string> tokens;
  for (auto& t : impl_->encode(text, specials)) tokens.push_back(std::move(t.first));
  return tokens;
}

bool HfUnigramTokenizer::is_special(int64_t id) const { return impl_->special_ids.count(id) > 0; }

std::string HfUnigramTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::string text;
  size_t index = 0;  // position among the tokens the decoder sees
  for (const int64_t id : ids) {
    if (skip_special_tokens && m.special_ids.count(id)) continue;
    const auto added = m.added_by_id.find(id);
    if (added == m.added_by_id.end() && (id < 0 || id >= vocab_size()))
      continue;  // tokenizers skips unknown ids
    const std::string& t =
        added != m.added_by_id.end() ? added->second : m.vocab[static_cast<size_t>(id)].first;
    if (!m.metaspace_decoder) {
      text += t;
    } else {
      // Every replacement character becomes a space, except in the first token when a
      // prefix was prepended.
      const std::string& r = m.decoder_replacement;
      for (size_t pos = 0; pos < t.size();) {
        if (!r.empty() && t.compare(pos, r.size(), r) == 0) {
          if (index != 0 || m.decoder_prepend == Prepend::kNever) text += ' ';
          pos += r.size();
        } else {
          text += t[pos++];
        }
      }
    }
    ++index;
  }
  return text;
}

int64_t HfUnigramTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->vocab.size()); }

std::optional<int64_t> HfUnigramTokenizer::id_of(const std::string& token) const {
  const int32_t a = impl_->added.find(token);
  if (a >= 0) return a;
  const int32_t id = impl_->pieces.find(token);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string& HfUnigramTokenizer::token(int64_t id) const {
  const auto added = impl_->added_by_id.find(id);
  if (added != impl_->added_by_id.end()) return added->second;
  if (id < 0 || id >= vocab_size())
    throw ValueError(impl_->origin + ": id " + std::to_string(id) + " is outside the vocabulary");
  return impl_->vocab[static_cast<size_t>(id)].first;
}

std::optional<int64_t> HfUnigramTokenizer::unk_id() const {
  if (!impl_->unk) return std::nullopt;
  return *impl_->unk;
}

}  // namespace peft::text
