#include "peft/transcription/word_timestamps.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/text/unicode.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/whisper_decoding.h"

namespace peft::transcription {

namespace {

constexpr double kTokensPerSecond = 50;           // encoder frames per second
constexpr double kFramesPerSecond = 100;          // mel frames per second
const char* const kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Python's round(x, 2): the exact binary value rounded to two decimals (halves to even),
// which glibc's printf does.
double round2(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  return std::strtod(buf, nullptr);
}

std::vector<int32_t> code_points(const std::string& s) {
  std::vector<int32_t> out;
  for (size_t i = 0, len = 1; i < s.size(); i += len) out.push_back(text::utf8_next(s, i, len));
  return out;
}

// Python's str.strip(): leading and trailing whitespace code points.
std::string strip(const std::string& s) {
  size_t b = 0, e = s.size(), len = 1;
  while (b < e) {
    const int32_t cp = text::utf8_next(s, b, len);
    if (cp < 0 || !text::is_whitespace(cp)) break;
    b += len;
  }
  while (e > b) {  // step back to the start of the last code point
    size_t start = e - 1;
    while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    const int32_t cp = text::utf8_next(s, start, len);
    if (cp < 0 || !text::is_whitespace(cp) || start + len != e) break;
    e = start;
  }
  return s.substr(b, e - b);
}

// Python's `needle in haystack` for str: a substring test (the empty string is in every
// string). On valid UTF-8, a byte substring is a code point substring.
bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

const std::string kAsciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";  // Python's string.punctuation

std::pair<std::vector<std::string>, std::vector<std::vector<int64_t>>> split_on_unicode(
    const text::WhisperTokenizer& tok, const std::vector<int64_t>& tokens) {
  const std::vector<int32_t> full = code_points(tok.decode_with_timestamps(tokens));
  std::vector<std::string> words;
  std::vector<std::vector<int64_t>> word_tokens;
  std::vector<int64_t> current;
  size_t offset = 0;  // code points of the words so far
  for (int64_t id : tokens) {
    current.push_back(id);
    const std::string decoded = tok.decode_with_timestamps(current);
    const size_t at = decoded.find(kReplacement);
    bool complete = at == std::string::npos;
    if (!complete) {
      const size_t index = code_points(decoded.substr(0, at)).size() + offset;
      complete = index < full.size() && full[index] == 0xFFFD;  // a U+FFFD of the whole text
    }
    if (complete) {
      offset += code_points(decoded).size();
      words.push_back(decoded);
      word_tokens.push_back(std::move(current));
      current.clear();
    }
  }
  return {std::move(words), std::move(word_tokens)};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

at::Tensor median_filter(const at::Tensor& x, int64_t width) {
  if (width < 1 || width % 2 == 0)
    throw ValueError("median_filter: width " + std::to_string(width) + " must be odd and positive");
  at::Tensor in = x.to(at::kFloat).contiguous();
  const int64_t depth = in.dim() == 0 ? 1 : in.size(-1), rank = width / 2;
  if (depth <= rank || in.numel() == 0) return in.clone();
  at::Tensor out = at::empty_like(in);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  std::vector<float> window(static_cast<size_t>(width));
  for (int64_t row = 0; row < in.numel() / depth; ++row) {
    const float* r = src + row * depth;
    for (int64_t j = 0; j < depth; ++j) {
      for (int64_t k = -rank; k <= rank; ++k) {
        int64_t read = std::abs(j + k);
        if (read >= depth) read = 2 * depth - read - 2;
        window[static_cast<size_t>(k + rank)] = r[read];
      }
      std::nth_element(window.begin(), window.begin() + rank, window.end());
      dst[row * depth + j] = window[static_cast<size_t>(rank)];
    }
  }
  return out;
}

std::vector<std::pair<int64_t, int64_t>> negative_dtw(const at::Tensor& x) {
  if (x.dim() != 2)
    throw ShapeError("negative_dtw: expected a matrix, got " + std::to_string(x.dim()) + " dims");
  const at::Tensor m = x.to(at::kFloat).contiguous();
  const int64_t n = m.size(0), w = m.size(1);
  if (n == 0 || w == 0) return {};
  const float* v = m.data_ptr<float>();
  constexpr float inf = std::numeric_limits<float>::infinity();
  const auto cell = [&](int64_t i, int64_t j) { return static_cast<size_t>(i * (w + 1) + j); };
  std::vector<float> cost(static_cast<size_t>((n + 1) * (w + 1)), inf);
  std::vector<int8_t> trace(cost.size(), -1);
  cost[0] = 0;
  for (int64_t j = 1; j <= w; ++j)
    for (int64_t i = 1; i <= n; ++i) {
      const float c0 = cost[cell(i - 1, j - 1)], c1 = cost[cell(i - 1, j)], c2 = cost[cell(i, j - 1)];
      float c;
      int8_t t;
      if (c0 < c1 && c0 < c2) {
        c = c0, t = 0;
      } else if (c1 < c0 && c1 < c2) {
        c = c1, t = 1;
      } else {
        c = c2, t = 2;
      }
      cost[cell(i, j)] = -v[(i - 1) * w + (j - 1)] + c;
      trace[cell(i, j)] = t;
    }
  for (int64_t j = 0; j <= w; ++j) trace[cell(0, j)] = 2;
  for (int64_t i = 0; i <= n; ++i) trace[cell(i, 0)] = 1;
  std::vector<std::pair<int64_t, int64_t>> path;
  int64_t i = n, j = w;
  while (i > 0 || j > 0) {
    path.emplace_back(i - 1, j - 1);
    const int8_t t = trace[cell(i, j)];
    if (t == 0) {
      --i, --j;
    } else if (t == 1) {
      --i;
    } else {
      --j;
    }
  }
  std::reverse(path.begin(), path.end());
  return path;
}

TokenAlignment align_text(const models::WhisperModel& model, const at::Tensor& audio_features,
                          const std::vector<int64_t>& start_sequence, int64_t no_timestamps, int64_t eot,
                          const std::vector<int64_t>& text_tokens, int64_t num_frames,
                          int64_t median_filter_width, const adapters::BoundAdapter* adapter) {
  TokenAlignment result;
  const int64_t frames = std::min<int64_t>(num_frames / 2, model.dims().n_audio_ctx);  // conv2 has stride 2
  if (frames < 1) return result;  // CTranslate2 has no frame to align to either
  std::vector<int64_t> tokens = start_sequence;
  tokens.push_back(no_timestamps);
  tokens.insert(tokens.end(), text_tokens.begin(), text_tokens.end());
  tokens.push_back(eot);
  const auto s = static_cast<int64_t>(start_sequence.size()), l = static_cast<int64_t>(text_tokens.size());
  const auto t = static_cast<int64_t>(tokens.size());
  const auto pass =
      model.alignment_pass(audio_features, at::tensor(tokens, at::TensorOptions().dtype(at::kLong)), adapter);

  // Each text token's probability among the text tokens (ids below <|endoftext|>),
  // predicted at the position before it.
  const at::Tensor probs = at::softmax(pass.logits.narrow(1, 0, eot), -1).contiguous();
  for (int64_t k = 0; k < l; ++k)
    result.text_token_probs.push_back(probs[s + k][text_tokens[k]].item<float>());

  at::Tensor w = at::softmax(pass.cross_scores.narrow(2, 0, frames), -1);  // [heads, T, frames]
  const at::Tensor mean = w.mean(1, true);
  const at::Tensor sd = (w - mean).pow(2).mean(1, true).sqrt();  // biased; CTranslate2 adds no epsilon
  w = (w - mean) / sd;
  w = median_filter(w, median_filter_width).mean(0);  // [T, frames]
  result.path = negative_dtw(w.narrow(0, s, t - s - 1));
  return result;
}

std::pair<std::vector<std::string>, std::vector<std::vector<int64_t>>> split_to_word_tokens(
    const text::WhisperTokenizer& tokenizer, const std::vector<int64_t>& tokens,
    const std::string& language) {
  auto subwords = split_on_unicode(tokenizer, tokens);
  static const std::vector<std::string> kNoSpaces = {"zh", "ja", "th", "lo", "my", "yue"};
  if (std::find(kNoSpaces.begin(), kNoSpaces.end(), language) != kNoSpaces.end()) return subwords;
  std::vector<std::string> words;
  std::vector<std::vector<int64_t>> word_tokens;
  for (size_t i = 0; i < subwords.first.size(); ++i) {
    const std::string& subword = subwords.first[i];
    const std::vector<int64_t>& ids = subwords.second[i];
    const bool special = ids.front() >= tokenizer.eot();
    const bool with_space = starts_with(subword, " ");
    const bool punctuation = contains(kAsciiPunctuation, strip(subword));
    if (special || with_space || punctuation || words.empty()) {
      words.push_back(subword);
      word_tokens.push_back(ids);
    } else {
      words.back() += subword;
      word_tokens.back().insert(word_tokens.back().end(), ids.begin(), ids.end());
    }
  }
  return {std::move(words), std::move(word_tokens)};
}

std::vector<WordTiming> find_alignment(const text::WhisperTokenizer& tokenizer, const std::string& language,
                                       const std::vector<int64_t>& text_tokens,
                                       const TokenAlignment& alignment) {
  std::vector<int64_t> tokens = text_tokens;
  tokens.push_back(tokenizer.eot());
  auto [words, word_tokens] = split_to_word_tokens(tokenizer, tokens, language);
  if (word_tokens.size() <= 1 || alignment.path.empty()) return {};
  // Word boundaries: cumulative token counts of all words but the last (<|endoftext|>).
  std::vector<size_t> boundaries = {0};
  for (size_t i = 0; i + 1 < word_tokens.size(); ++i)
    boundaries.push_back(boundaries.back() + word_tokens[i].size());
  // The time the path first reaches each token (a jump in its text index).
  std::vector<double> jump_times;
  for (size_t k = 0; k < alignment.path.size(); ++k)
    if (k == 0 || alignment.path[k].first != alignment.path[k - 1].first)
      jump_times.push_back(static_cast<double>(alignment.path[k].second) / kTokensPerSecond);
  std::vector<WordTiming> out;
  const auto& p = alignment.text_token_probs;
  for (size_t i = 0; i + 1 < boundaries.size(); ++i) {
    const size_t b = boundaries[i], e = boundaries[i + 1];
    if (e >= jump_times.size())
      throw ValueError("find_alignment: the path reaches " + std::to_string(jump_times.size()) +
                       " tokens, word " + std::to_string(i) + " ends at token " + std::to_string(e));
    double sum = 0;
    for (size_t k = b; k < e && k < p.size(); ++k) sum += p[k];
    WordTiming w;
    w.word = words[i];
    w.tokens = word_tokens[i];
    w.start = jump_times[b];
    w.end = jump_times[e];
    w.probability = e > b && e <= p.size() ? sum / static_cast<double>(e - b) : std::nan("");
    out.push_back(std::move(w));
  }
  return out;
}

void merge_punctuations(std::vector<WordTiming>& words, const std::string& prepended,
                        const std::string& appended) {
  if (words.size() >= 2) {
    auto i = static_cast<std::ptrdiff_t>(words.size()) - 2, j = i + 1;
    for (; i >= 0; --i) {
      WordTiming& previous = words[static_cast<size_t>(i)];
      WordTiming& following = words[static_cast<size_t>(j)];
      if (starts_with(previous.word, " ") && contains(prepended, strip(previous.word))) {
        following.word = previous.word + following.word;
        following.tokens.insert(following.tokens.begin(), previous.tokens.begin(), previous.tokens.end());
        previous.word.clear();
        previous.tokens.clear();
      } else {
        j = i;
      }
    }
  }
  for (size_t i = 0, j = 1; j < words.size(); ++j) {
    WordTiming& previous = words[i];
    WordTiming& following = words[j];
    if (!ends_with(previous.word, " ") && contains(appended, following.word)) {
      previous.word += following.word;
      previous.tokens.insert(previous.tokens.end(), following.tokens.begin(), following.tokens.end());
      following.word.clear();
      following.tokens.clear();
    } else {
      i = j;
    }
  }
}

double add_word_timestamps(std::vector<Segment>& segments, const models::WhisperModel& model,
                           const text::WhisperTokenizer& tokenizer, const at::Tensor& audio_features,
                           const std::vector<int64_t>& sot_sequence, const std::string& language,
                           int64_t num_frames, const std::string& prepend_punctuations,
                           const std::string& append_punctuations, double last_speech_timestamp,
                           const adapters::BoundAdapter* adapter) {
  if (segments.empty()) return last_speech_timestamp;
  std::vector<std::vector<int64_t>> per_segment;
  std::vector<int64_t> text_tokens;
  for (const Segment& s : segments) {
    std::vector<int64_t> ids;
    for (int64_t id : s.tokens)
      if (id < tokenizer.eot()) ids.push_back(id);
    text_tokens.insert(text_tokens.end(), ids.begin(), ids.end());
    per_segment.push_back(std::move(ids));
  }
  std::vector<WordTiming> alignment;
  if (!text_tokens.empty()) {
    const TokenAlignment a = align_text(model, audio_features, sot_sequence, tokenizer.no_timestamps(),
                                        tokenizer.eot(), text_tokens, num_frames, 7, adapter);
    alignment = find_alignment(tokenizer, language, text_tokens, a);
  }

  std::vector<double> durations;
  for (const WordTiming& w : alignment)
    if (w.end - w.start != 0) durations.push_back(w.end - w.start);
  const double median_duration = std::min(0.7, durations.empty() ? 0.0 : median(durations));
  const double max_duration = median_duration * 2;
  // Long words at sentence boundaries are cut to twice the median word duration.
  if (!durations.empty()) {
    const std::string sentence_end = ".\u3002!\uff01?\uff1f";
    const auto is_sentence_end = [&](const std::string& w) { return contains(sentence_end, w); };
    for (size_t i = 1; i < alignment.size(); ++i) {
      if (alignment[i].end - alignment[i].start <= max_duration) continue;
      if (is_sentence_end(alignment[i].word))
        alignment[i].end = alignment[i].start + max_duration;
      else if (is_sentence_end(alignment[i - 1].word))
        alignment[i].start = alignment[i].end - max_duration;
    }
  }
  merge_punctuations(alignment, prepend_punctuations, append_punctuations);

  const double time_offset = static_cast<double>(segments.front().seek) / kFramesPerSecond;
  size_t word_index = 0;
  for (size_t si = 0; si < segments.size(); ++si) {
    Segment& segment = segments[si];
    std::vector<Word> words;
    size_t saved_tokens = 0;
    while (word_index < alignment.size() && saved_tokens < per_segment[si].size()) {
      const WordTiming& timing = alignment[word_index];
      if (!timing.word.empty())
        words.push_back({round2(time_offset + timing.start), round2(time_offset + timing.end), timing.word,
                         timing.probability});
      saved_tokens += timing.tokens.size();
      ++word_index;
    }
    if (!words.empty()) {
      // The first word after a pause is cut to twice the median duration (and the
      // second's start moved with it) when it, or it and the next, look too long.
      if (words[0].end - last_speech_timestamp > median_duration * 4 &&
          (words[0].end - words[0].start > max_duration ||
           (words.size() > 1 && words[1].end - words[0].start > max_duration * 2))) {
        if (words.size() > 1 && words[1].end - words[1].start > max_duration) {
          const double boundary = std::max(words[1].end / 2, words[1].end - max_duration);
          words[0].end = words[1].start = boundary;
        }
        words[0].start = std::max(0.0, words[0].end - max_duration);
      }
      // The segment's own timestamps win over a first or last word that runs long.
      if (segment.start < words[0].end && segment.start - 0.5 > words[0].start)
        words[0].start = std::max(0.0, std::min(words[0].end - median_duration, segment.start));
      else
        segment.start = words[0].start;
      if (segment.end > words.back().start && segment.end + 0.5 < words.back().end)
        words.back().end = std::max(words.back().start + median_duration, segment.end);
      else
        segment.end = words.back().end;
      last_speech_timestamp = segment.end;
    }
    segment.words = std::move(words);
  }
  return last_speech_timestamp;
}

}  // namespace peft::transcription
