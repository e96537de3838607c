// Word error rate as jiwer 4.0 computes it: the reference and hypothesis are split into
// words by jiwer's default transform, aligned by minimum edit distance, and the
// alignment is counted as hits, substitutions, deletions and insertions. Corpus WER is
// sum(S + D + I) / sum(reference words), not the mean of per-utterance rates.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace peft::metrics {

struct WordCounts {
  size_t hits = 0;
  size_t substitutions = 0;
  size_t deletions = 0;
  size_t insertions = 0;

  size_t reference_words() const { return hits + substitutions + deletions; }
  size_t errors() const { return substitutions + deletions + insertions; }
  WordCounts& operator+=(const WordCounts& o);
};

// jiwer's default transform: runs of two or more whitespace characters become one
// space, the ends are stripped, and the text is split on ' ' alone (so a single tab
// stays inside a word, as in jiwer). Invalid UTF-8 is replaced with U+FFFD first.
std::vector<std::string> split_words(const std::string& text);

// Minimum-edit-distance alignment counts. Among alignments of equal cost, the one
// rapidfuzz's Levenshtein.opcodes picks (and so jiwer reports) is chosen: the common
// prefix and suffix are matched, and the rest is traced back from the end preferring
// a deletion, then an insertion, then a substitution or match.
WordCounts align_words(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis);
WordCounts align(const std::string& reference, const std::string& hypothesis);

// (S + D + I) / reference words. ValueError when there are no reference words: jiwer
// 4.0 then reports the bare insertion count, which is not a rate.
double wer(const WordCounts& counts);
double wer(const std::string& reference, const std::string& hypothesis);

struct CorpusWer {
  std::vector<WordCounts> utterances;  // one per (reference, hypothesis) pair
  WordCounts total;
  double wer = 0.0;  // total.errors() / total.reference_words()
};

// ValueError when the lists differ in length or hold no reference words at all.
CorpusWer corpus_wer(const std::vector<std::string>& references, const std::vector<std::string>& hypotheses);

}  // namespace peft::metrics
