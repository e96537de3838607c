#include "peft/metrics/rouge.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <unordered_map>

#include "peft/error.h"
#include "peft/text/unicode.h"

namespace peft::metrics {

namespace {

// ---- Porter stemmer (nltk NLTK_EXTENSIONS behaviour) ----------------------------------

bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// Porter's consonant: not a vowel, and 'y' only when it follows a vowel (or starts the
// word). Computed left to right so a run of 'y's costs linear time.
std::vector<bool> consonants(const std::string& w) {
  std::vector<bool> f(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    if (is_vowel(w[i]))
      f[i] = false;
    else if (w[i] == 'y')
      f[i] = i == 0 ? true : !f[i - 1];
    else
      f[i] = true;
  }
  return f;
}

bool is_consonant(const std::string& w, size_t i) { return consonants(w.substr(0, i + 1))[i]; }

// m in [C](VC){m}[V]: the number of vowel-to-consonant transitions.
int measure(const std::string& stem) {
  const auto f = consonants(stem);
  int m = 0;
  for (size_t i = 1; i < f.size(); ++i)
    if (!f[i - 1] && f[i]) ++m;
  return m;
}

bool contains_vowel(const std::string& stem) {
  const auto f = consonants(stem);
  return std::find(f.begin(), f.end(), false) != f.end();
}

bool ends_double_consonant(const std::string& w) {
  return w.size() >= 2 && w.back() == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

// *o: ends consonant-vowel-consonant, the last not w, x or y; nltk adds a two-letter
// vowel-consonant word.
bool ends_cvc(const std::string& w) {
  const size_t n = w.size();
  if (n >= 3) {
    const auto f = consonants(w);
    if (f[n - 3] && !f[n - 2] && f[n - 1] && w[n - 1] != 'w' && w[n - 1] != 'x' && w[n - 1] != 'y')
      return true;
  }
  if (n == 2) {
    const auto f = consonants(w);
    return !f[0] && f[1];
  }
  return false;
}

bool ends_with(const std::string& w, const std::string& suffix) {
  return w.size() >= suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string drop(const std::string& w, size_t n) { return w.substr(0, w.size() - n); }

struct Rule {
  const char* suffix;
  const char* replacement;
  int min_measure;  // the stem's measure must exceed this
};

// The first rule whose suffix matches decides: it applies when its condition holds,
// otherwise the word is left alone (later rules are not tried).
std::string apply_rules(const std::string& w, const std::vector<Rule>& rules) {
  for (const auto& r : rules) {
    if (!ends_with(w, r.suffix)) continue;
    const std::string stem = drop(w, std::char_traits<char>::length(r.suffix));
    return measure(stem) > r.min_measure ? stem + r.replacement : w;
  }
  return w;
}

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return drop(w, 3) + "ie";
  if (ends_with(w, "sses")) return drop(w, 2);
  if (ends_with(w, "ies")) return drop(w, 2);
  if (ends_with(w, "ss")) return w;
  if (ends_with(w, "s")) return drop(w, 1);
  return w;
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return drop(w, 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    const std::string stem = drop(w, 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string stem;
  bool removed = false;
  for (const char* suffix : {"ed", "ing"}) {
    if (ends_with(w, suffix)) {
      stem = drop(w, std::char_traits<char>::length(suffix));
      if (contains_vowel(stem)) {
        removed = true;
        break;
      }
    }
  }
  if (!removed) return w;
  // Tidy the stem so later steps see -ate, -ble, -ize, undo doubled consonants and
  // restore a silent e.
  if (ends_with(stem, "at") || ends_with(stem, "bl") || ends_with(stem, "iz")) return stem + "e";
  if (ends_double_consonant(stem)) {
    const char last = stem.back();
    return last == 'l' || last == 's' || last == 'z' ? stem : drop(stem, 1);
  }
  if (measure(stem) == 1 && ends_cvc(stem)) return stem + "e";
  return stem;
}

std::string step1c(const std::string& w) {
  if (!ends_with(w, "y")) return w;
  const std::string stem = drop(w, 1);
  // nltk: y -> i only after a consonant that is not the whole stem.
  return stem.size() > 1 && is_consonant(stem, stem.size() - 1) ? stem + "i" : w;
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && measure(drop(w, 4)) > 0) return step2(drop(w, 4) + "al");
  static const std::vector<Rule> rules = {
      {"ational", "ate", 0}, {"tional", "tion", 0}, {"enci", "ence", 0},   {"anci", "ance", 0},
      {"izer", "ize", 0},    {"bli", "ble", 0},     {"alli", "al", 0},     {"entli", "ent", 0},
      {"eli", "e", 0},       {"ousli", "ous", 0},   {"ization", "ize", 0}, {"ation", "ate", 0},
      {"ator", "ate", 0},    {"alism", "al", 0},    {"iveness", "ive", 0}, {"fulness", "ful", 0},
      {"ousness", "ous", 0}, {"aliti", "al", 0},    {"iviti", "ive", 0},   {"biliti", "ble", 0},
      {"fulli", "ful", 0},
  };
  for (const auto& r : rules)
    if (ends_with(w, r.suffix)) return apply_rules(w, {r});
  // nltk's "logi" -> "log" tests the measure of the word without "ogi" (the stem
  // keeps its 'l').
  if (ends_with(w, "logi")) return measure(drop(w, 3)) > 0 ? drop(w, 1) : w;
  return w;
}

std::string step3(const std::string& w) {
  static const std::vector<Rule> rules = {
      {"icate", "ic", 0}, {"ative", "", 0}, {"alize", "al", 0}, {"iciti", "ic", 0},
      {"ical", "ic", 0},  {"ful", "", 0},   {"ness", "", 0},
  };
  return apply_rules(w, rules);
}

std::string step4(const std::string& w) {
  static const std::vector<Rule> before_ion = {
      {"al", "", 1},   {"ance", "", 1}, {"ence", "", 1},  {"er", "", 1},   {"ic", "", 1},  {"able", "", 1},
      {"ible", "", 1}, {"ant", "", 1},  {"ement", "", 1}, {"ment", "", 1}, {"ent", "", 1},
  };
  static const std::vector<Rule> after_ion = {
      {"ou", "", 1},  {"ism", "", 1}, {"ate", "", 1}, {"iti", "", 1},
      {"ous", "", 1}, {"ive", "", 1}, {"ize", "", 1},
  };
  for (const auto& r : before_ion)
    if (ends_with(w, r.suffix)) return apply_rules(w, {r});
  if (ends_with(w, "ion")) {
    const std::string stem = drop(w, 3);
    return measure(stem) > 1 && (stem.back() == 's' || stem.back() == 't') ? stem : w;
  }
  return apply_rules(w, after_ion);
}

std::string step5a(const std::string& w) {
  if (!ends_with(w, "e")) return w;
  const std::string stem = drop(w, 1);
  const int m = measure(stem);
  if (m > 1 || (m == 1 && !ends_cvc(stem))) return stem;
  return w;
}

std::string step5b(const std::string& w) {
  if (ends_with(w, "ll") && measure(drop(w, 1)) > 1) return drop(w, 1);
  return w;
}

// ---- tokenization and scoring -----------------------------------------------------------

using Tokens = std::vector<std::string>;

double fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

Tokens tokenize(const std::string& raw, bool use_stemmer) {
  Tokens out;
  std::string cur;
  const auto flush = [&] {
    if (cur.empty()) return;
    out.push_back(use_stemmer && cur.size() > 3 ? porter_stem(cur) : cur);
    cur.clear();
  };
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t len = 1;
    const int32_t cp = text::utf8_next(raw, pos, len);  // -1 (invalid) is a separator
    pos += len;
    if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
      cur += static_cast<char>(cp);
    } else if (cp >= 'A' && cp <= 'Z') {
      cur += static_cast<char>(cp - 'A' + 'a');
    } else if (cp == 0x212A) {
      // KELVIN SIGN: Python's str.lower() makes it an ASCII 'k'.
      cur += 'k';
    } else if (cp == 0x0130) {
      // LATIN CAPITAL I WITH DOT ABOVE lowercases to "i" + U+0307; the combining dot
      // then separates.
      cur += 'i';
      flush();
    } else {
      flush();
    }
  }
  flush();
  return out;
}

RougeScore score_ngrams(const Tokens& target, const Tokens& prediction, int n) {
  if (n <= 0) throw ValueError("ROUGE-N: n must be positive, got " + std::to_string(n));
  const auto count = [n](const Tokens& t) {
    std::map<Tokens, size_t> c;
    const size_t un = static_cast<size_t>(n);
    for (size_t i = 0; i + un <= t.size(); ++i) ++c[Tokens(t.begin() + i, t.begin() + i + un)];
    return c;
  };
  const auto tc = count(target), pc = count(prediction);
  size_t overlap = 0, tn = 0, pn = 0;
  for (const auto& [g, k] : tc) {
    tn += k;
    const auto it = pc.find(g);
    if (it != pc.end()) overlap += std::min(k, it->second);
  }
  for (const auto& kv : pc) pn += kv.second;
  RougeScore s;
  s.precision = static_cast<double>(overlap) / static_cast<double>(std::max<size_t>(pn, 1));
  s.recall = static_cast<double>(overlap) / static_cast<double>(std::max<size_t>(tn, 1));
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

// (|a|+1) x (|b|+1) LCS length table, row-major.
std::vector<size_t> lcs_table(const Tokens& a, const Tokens& b) {
  const size_t cols = b.size() + 1;
  std::vector<size_t> t((a.size() + 1) * cols, 0);
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j)
      t[i * cols + j] = a[i - 1] == b[j - 1] ? t[(i - 1) * cols + j - 1] + 1
                                             : std::max(t[(i - 1) * cols + j], t[i * cols + j - 1]);
  return t;
}

RougeScore score_lcs(const Tokens& target, const Tokens& prediction) {
  if (target.empty() || prediction.empty()) return {};
  const size_t lcs = lcs_table(target, prediction).back();
  RougeScore s;
  s.precision = static_cast<double>(lcs) / static_cast<double>(prediction.size());
  s.recall = static_cast<double>(lcs) / static_cast<double>(target.size());
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

// Indices into `ref` of one LCS with `cand`. Which one matters for the union: the
// traceback takes a match, else moves left only when that keeps strictly more, as
// rouge-score's does.
std::vector<size_t> lcs_indices(const Tokens& ref, const Tokens& cand) {
  const auto t = lcs_table(ref, cand);
  const size_t cols = cand.size() + 1;
  std::vector<size_t> out;
  size_t i = ref.size(), j = cand.size();
  while (i > 0 && j > 0) {
    if (ref[i - 1] == cand[j - 1]) {
      out.push_back(i - 1);
      --i;
      --j;
    } else if (t[i * cols + j - 1] > t[(i - 1) * cols + j]) {
      --j;
    } else {
      --i;
    }
  }
  return out;
}

RougeScore summary_level_lcs(const std::vector<Tokens>& ref_sents, const std::vector<Tokens>& cand_sents) {
  if (ref_sents.empty() || cand_sents.empty()) return {};
  size_t m = 0, n = 0;
  std::unordered_map<std::string, long> ref_counts, cand_counts;
  for (const auto& s : ref_sents) {
    m += s.size();
    for (const auto& t : s) ++ref_counts[t];
  }
  for (const auto& s : cand_sents) {
    n += s.size();
    for (const auto& t : s) ++cand_counts[t];
  }
  if (m == 0 || n == 0) return {};
  // Each reference token counts at most as often as it occurs on both sides (ROUGE
  // 1.5.5's guard against double counting across sentences).
  size_t hits = 0;
  for (const auto& r : ref_sents) {
    std::set<size_t> u;
    for (const auto& c : cand_sents) {
      const auto idx = lcs_indices(r, c);
      u.insert(idx.begin(), idx.end());
    }
    for (size_t i : u) {
      const std::string& t = r[i];
      if (cand_counts[t] > 0 && ref_counts[t] > 0) {
        ++hits;
        --cand_counts[t];
        --ref_counts[t];
      }
    }
  }
  RougeScore s;
  s.recall = static_cast<double>(hits) / static_cast<double>(m);
  s.precision = static_cast<double>(hits) / static_cast<double>(n);
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

// Newline-separated sentences, empty ones dropped (before tokenizing: a line of
// punctuation stays as a sentence with no tokens).
std::vector<Tokens> sentences(const std::string& text, bool use_stemmer) {
  std::vector<Tokens> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    if (j > i) out.push_back(tokenize(text.substr(i, j - i), use_stemmer));
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string porter_stem(const std::string& word) {
  static const std::map<std::string, std::string> irregular = {
      {"sky", "sky"},        {"skies", "sky"},       {"dying", "die"},        {"lying", "lie"},
      {"tying", "tie"},      {"news", "news"},       {"innings", "inning"},   {"inning", "inning"},
      {"outings", "outing"}, {"outing", "outing"},   {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},      {"proceed", "proceed"}, {"exceed", "exceed"},    {"succeed", "succeed"},
  };
  std::string w = word;
  for (auto& c : w)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  const auto it = irregular.find(w);
  if (it != irregular.end()) return it->second;
  if (w.size() <= 2) return w;
  w = step1a(w);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  w = step5b(w);
  return w;
}

std::vector<std::string> rouge_tokenize(const std::string& text, bool use_stemmer) {
  return tokenize(text, use_stemmer);
}

RougeScore rouge_n(const std::string& target, const std::string& prediction, int n, bool use_stemmer) {
  return score_ngrams(tokenize(target, use_stemmer), tokenize(prediction, use_stemmer), n);
}

RougeScore rouge_l(const std::string& target, const std::string& prediction, bool use_stemmer) {
  return score_lcs(tokenize(target, use_stemmer), tokenize(prediction, use_stemmer));
}

RougeScore rouge_lsum(const std::string& target, const std::string& prediction, bool use_stemmer) {
  return summary_level_lcs(sentences(target, use_stemmer), sentences(prediction, use_stemmer));
}

RougeScores rouge(const std::string& target, const std::string& prediction, bool use_stemmer) {
  const Tokens t = tokenize(target, use_stemmer), p = tokenize(prediction, use_stemmer);
  RougeScores s;
  s.rouge1 = score_ngrams(t, p, 1);
  s.rouge2 = score_ngrams(t, p, 2);
  s.rougeL = score_lcs(t, p);
  s.rougeLsum = rouge_lsum(target, prediction, use_stemmer);
  return s;
}

}  // namespace peft::metrics
