// ROUGE as google-research's rouge-score computes it (RougeScorer with its default
// tokenizer): ROUGE-N from clipped n-gram overlap, ROUGE-L from the longest common
// subsequence, ROUGE-Lsum from the union LCS over newline-separated sentences.
//
// Tokenization: lowercase, every run of characters other than [a-z0-9] becomes a
// separator, and with stemming on, tokens longer than three characters go through the
// Porter stemmer. Text in other scripts therefore has no tokens at all and scores 0.
#pragma once

#include <string>
#include <vector>

namespace peft::metrics {

struct RougeScore {
  double precision = 0.0;
  double recall = 0.0;
  double fmeasure = 0.0;
};

struct RougeScores {
  RougeScore rouge1, rouge2, rougeL, rougeLsum;
};

// The Porter stemmer as nltk's PorterStemmer() (the default NLTK_EXTENSIONS mode,
// which rouge-score uses) stems a lowercase ASCII word: Porter's 1980 steps with
// Martin Porter's later amendments and nltk's own (irregular forms such as "dying" ->
// "die", "ies"/"ied" on four-letter words, y -> i only after a consonant, "alli",
// "fulli", "logi" in step 2).
std::string porter_stem(const std::string& word);

// rouge-score's default tokenizer.
std::vector<std::string> rouge_tokenize(const std::string& text, bool use_stemmer);

// Scores of `prediction` against `target` (the reference), in rouge-score's argument
// order: score(target, prediction).
RougeScore rouge_n(const std::string& target, const std::string& prediction, int n, bool use_stemmer);
RougeScore rouge_l(const std::string& target, const std::string& prediction, bool use_stemmer);
RougeScore rouge_lsum(const std::string& target, const std::string& prediction, bool use_stemmer);
RougeScores rouge(const std::string& target, const std::string& prediction, bool use_stemmer);

}  // namespace peft::metrics
