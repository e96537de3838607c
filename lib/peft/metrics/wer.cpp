#include "peft/metrics/wer.h"

#include <algorithm>
#include <cstdint>

#include "peft/error.h"
#include "peft/text/unicode.h"

namespace peft::metrics {

namespace {

// Python's str.isspace() (what \s and str.strip() use): White_Space plus the
// information separators U+001C..U+001F.
bool py_space(int32_t cp) { return text::is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F); }

}  // namespace

WordCounts& WordCounts::operator+=(const WordCounts& o) {
  hits += o.hits;
  substitutions += o.substitutions;
  deletions += o.deletions;
  insertions += o.insertions;
  return *this;
}

std::vector<std::string> split_words(const std::string& raw) {
  const std::string s = text::utf8_lossy(raw);
  // Pass 1: collapse whitespace runs of length >= 2 into ' ' (a lone whitespace
  // character other than ' ' is kept as it is, like jiwer's r"\s\s+").
  std::string collapsed;
  collapsed.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len = 1;
    const int32_t cp = text::utf8_next(s, pos, len);
    if (!py_space(cp)) {
      collapsed.append(s, pos, len);
      pos += len;
      continue;
    }
    size_t end = pos + len, count = 1;
    while (end < s.size()) {
      size_t l2 = 1;
      if (!py_space(text::utf8_next(s, end, l2))) break;
      end += l2;
      ++count;
    }
    if (count >= 2)
      collapsed += ' ';
    else
      collapsed.append(s, pos, len);
    pos = end;
  }
  // Pass 2: strip whitespace at both ends, then split on ' ' dropping empty pieces.
  size_t begin = 0, end = collapsed.size();
  while (begin < end) {
    size_t len = 1;
    if (!py_space(text::utf8_next(collapsed, begin, len))) break;
    begin += len;
  }
  while (end > begin) {
    size_t start = end - 1;  // back up to the start of the last code point
    while (start > begin && (static_cast<uint8_t>(collapsed[start]) & 0xC0) == 0x80) --start;
    size_t len = 1;
    if (!py_space(text::utf8_next(collapsed, start, len))) break;
    end = start;
  }
  std::vector<std::string> words;
  size_t i = begin;
  while (i < end) {
    size_t j = collapsed.find(' ', i);
    if (j == std::string::npos || j > end) j = end;
    if (j > i) words.emplace_back(collapsed, i, j - i);
    i = j + 1;
  }
  return words;
}

WordCounts align_words(const std::vector<std::string>& ref, const std::vector<std::string>& hyp) {
  // The common prefix and suffix are matched first, as rapidfuzz does; this decides
  // which of several equal-cost alignments is reported.
  size_t prefix = 0;
  while (prefix < ref.size() && prefix < hyp.size() && ref[prefix] == hyp[prefix]) ++prefix;
  size_t suffix = 0;
  while (suffix < ref.size() - prefix && suffix < hyp.size() - prefix &&
         ref[ref.size() - 1 - suffix] == hyp[hyp.size() - 1 - suffix])
    ++suffix;
  const size_t m = ref.size() - prefix - suffix;  // reference words left
  const size_t n = hyp.size() - prefix - suffix;  // hypothesis words left
  const auto a = [&](size_t i) -> const std::string& { return ref[prefix + i]; };
  const auto b = [&](size_t j) -> const std::string& { return hyp[prefix + j]; };

  // d(i, j): edit distance between the first i reference and first j hypothesis words.
  std::vector<size_t> table((m + 1) * (n + 1));
  const auto d = [&](size_t i, size_t j) -> size_t& { return table[i * (n + 1) + j]; };
  for (size_t i = 0; i <= m; ++i) d(i, 0) = i;
  for (size_t j = 0; j <= n; ++j) d(0, j) = j;
  for (size_t i = 1; i <= m; ++i)
    for (size_t j = 1; j <= n; ++j)
      d(i, j) =
          std::min({d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a(i - 1) == b(j - 1) ? 0 : 1)});

  // Trace back from the end with rapidfuzz's preferences, expressed through the
  // vertical differences d(i, j) - d(i-1, j) its bit-parallel matrix stores (+1: a
  // deletion is optimal here; -1 one column earlier: an insertion is).
  WordCounts c;
  size_t i = m, j = n;
  const auto delta = [&](size_t ii, size_t jj) {
    return static_cast<long long>(d(ii, jj)) - static_cast<long long>(d(ii - 1, jj));
  };
  while (i > 0 && j > 0) {
    if (delta(i, j) == 1) {
      ++c.deletions;
      --i;
      continue;
    }
    --j;
    if (j > 0 && delta(i, j) == -1) {
      ++c.insertions;
    } else {
      --i;
      if (a(i) != b(j)) ++c.substitutions;
    }
  }
  c.deletions += i;
  c.insertions += j;
  c.hits = ref.size() - c.substitutions - c.deletions;
  return c;
}

WordCounts align(const std::string& reference, const std::string& hypothesis) {
  return align_words(split_words(reference), split_words(hypothesis));
}

double wer(const WordCounts& c) {
  if (c.reference_words() == 0)
    throw ValueError("WER: the reference has no words, so the error rate is undefined (" +
                     std::to_string(c.insertions) + " inserted words)");
  return static_cast<double>(c.errors()) / static_cast<double>(c.reference_words());
}

double wer(const std::string& reference, const std::string& hypothesis) {
  return wer(align(reference, hypothesis));
}

CorpusWer corpus_wer(const std::vector<std::string>& references, const std::vector<std::string>& hypotheses) {
  if (references.size() != hypotheses.size())
    throw ValueError("WER: " + std::to_string(references.size()) + " references but " +
                     std::to_string(hypotheses.size()) + " hypotheses");
  CorpusWer out;
  out.utterances.reserve(references.size());
  for (size_t k = 0; k < references.size(); ++k) {
    out.utterances.push_back(align(references[k], hypotheses[k]));
    out.total += out.utterances.back();
  }
  out.wer = wer(out.total);
  return out;
}

}  // namespace peft::metrics
