#include "peft/generation/generate.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "peft/error.h"
#include "peft/generation/logits_processors.h"
#include "peft/generation/token_scorer.h"
#include "peft/text/tokenizer.h"

namespace peft::generation {

namespace {

at::Tensor row_tensor(const std::vector<int64_t>& ids) {
  return at::tensor(ids, at::kLong).view({1, static_cast<int64_t>(ids.size())});
}

bool is_eos(int64_t token, const GenerationOptions& o) {
  return std::find(o.eos_token_ids.begin(), o.eos_token_ids.end(), token) != o.eos_token_ids.end();
}

// The generated text cut before the first stop string; `found` tells whether one was.
std::string cut_at_stop_string(const std::string& text, const std::vector<std::string>& stops, bool& found) {
  size_t cut = std::string::npos;
  for (const auto& s : stops) cut = std::min(cut, text.find(s));
  found = cut != std::string::npos;
  return found ? text.substr(0, cut) : text;
}

// Greedy and sampling: one row.
GenerationResult generate_one_row(TokenScorer& scorer, const std::vector<int64_t>& prefix,
                                  const GenerationOptions& o, const text::Tokenizer* tokenizer) {
  GenerationResult r;
  Sequences rows{prefix};
  std::mt19937_64 rng(o.seed);
  at::Tensor logits = scorer.next_logits(row_tensor(prefix));
  const int64_t prompt = static_cast<int64_t>(prefix.size());
  while (true) {
    at::Tensor scores = logits.to(at::kFloat).contiguous().clone();
    const at::Tensor logprobs = at::log_softmax(scores, -1);
    process_logits(scores, rows, prompt, o);
    int64_t token;
    if (o.do_sample) {
      warp_for_sampling(scores, o);
      const at::Tensor p = at::softmax(scores, -1).to(at::kDouble).contiguous();
      const double* pp = p.data_ptr<double>();
      std::discrete_distribution<int64_t> pick(pp, pp + p.size(1));
      token = pick(rng);
    } else {
      token = scores.argmax(-1).item<int64_t>();
    }
    r.score += logprobs[0][token].item<double>();
    r.tokens.push_back(token);
    rows[0].push_back(token);
    if (is_eos(token, o)) {
      r.stop = GenerationResult::Stop::eos;
      break;
    }
    if (!o.stop_strings.empty() && tokenizer != nullptr) {
      bool found = false;
      cut_at_stop_string(tokenizer->decode(r.tokens), o.stop_strings, found);
      if (found) {
        r.stop = GenerationResult::Stop::stop_string;
        break;
      }
    }
    if (o.on_token && !o.on_token(r.tokens)) {
      r.stop = GenerationResult::Stop::callback;
      break;
    }
    if (static_cast<int64_t>(r.tokens.size()) >= o.max_new_tokens) {
      r.stop = GenerationResult::Stop::max_new_tokens;
      break;
    }
    if (scorer.positions_left() < 1) {
      r.stop = GenerationResult::Stop::context_full;
      break;
    }
    logits = scorer.next_logits(row_tensor({token}));
  }
  return r;
}

// Hugging Face's BeamHypotheses: the best finished hypotheses, at most num_beams.
class FinishedHypotheses {
 public:
  FinishedHypotheses(int64_t num_beams, double length_penalty, bool early_stopping)
      : n_(num_beams), length_penalty_(length_penalty), early_stopping_(early_stopping) {}

  void add(std::vector<int64_t> tokens, double sum_logprobs, int64_t generated_len) {
    const double score = sum_logprobs / std::pow(static_cast<double>(generated_len), length_penalty_);
    if (static_cast<int64_t>(beams_.size()) < n_ || score > worst_) {
      beams_.push_back({score, std::move(tokens)});
      if (static_cast<int64_t>(beams_.size()) > n_) {
        // Drop the worst; the next worst becomes the bar.
        std::vector<std::pair<double, size_t>> order;
        for (size_t i = 0; i < beams_.size(); ++i) order.emplace_back(beams_[i].first, i);
        std::sort(order.begin(), order.end());
        beams_.erase(beams_.begin() + static_cast<std::ptrdiff_t>(order[0].second));
        worst_ = order[1].first;
      } else {
        worst_ = std::min(score, worst_);
      }
    }
  }

  bool done(double best_sum_logprobs, int64_t generated_len) const {
    if (static_cast<int64_t>(beams_.size()) < n_) return false;
    if (early_stopping_) return true;
    return worst_ >= best_sum_logprobs / std::pow(static_cast<double>(generated_len), length_penalty_);
  }

  // The best hypothesis (the last of the highest score, as Python's sorted + pop).
  const std::pair<double, std::vector<int64_t>>& best() const {
    size_t best = 0;
    for (size_t i = 1; i < beams_.size(); ++i)
      if (beams_[i].first >= beams_[best].first) best = i;
    return beams_[best];
  }

 private:
  int64_t n_;
  double length_penalty_;
  bool early_stopping_;
  double worst_ = 1e9;
  std::vector<std::pair<double, std::vector<int64_t>>> beams_;  // (score, generated tokens)
};

GenerationResult beam_search(TokenScorer& scorer, const std::vector<int64_t>& prefix,
                             const GenerationOptions& o, const text::Tokenizer* tokenizer) {
  const int64_t n = o.num_beams, prompt = static_cast<int64_t>(prefix.size());
  at::Tensor logits = scorer.next_logits(row_tensor(prefix));  // [1, V]
  // All beams start as the prefix; only the first may extend it at the first step.
  scorer.select(at::zeros({n}, at::kLong));
  logits = logits.expand({n, logits.size(1)});
  Sequences rows(static_cast<size_t>(n), prefix);
  std::vector<double> beam_scores(static_cast<size_t>(n), -1e9);
  beam_scores[0] = 0.0;
  FinishedHypotheses finished(n, o.length_penalty, o.early_stopping);
  const int64_t keep = std::max<int64_t>(2, 1 + static_cast<int64_t>(o.eos_token_ids.size())) * n;
  bool done = false;
  int64_t generated = 0;
  GenerationResult r;
  while (true) {
    at::Tensor scores = at::log_softmax(logits.to(at::kFloat), -1).contiguous();
    process_logits(scores, rows, prompt, o);
    scores = scores + at::tensor(beam_scores, at::kDouble).to(at::kFloat).unsqueeze(1);
    const int64_t vocab = scores.size(1);
    auto [top_scores, top_ids] =
        at::topk(scores.reshape({1, n * vocab}), std::min(keep, n * vocab), 1, true, true);
    const auto ts = top_scores.accessor<float, 2>();
    const auto ti = top_ids.accessor<int64_t, 2>();
    const int64_t cur_len = prompt + generated + 1;  // Hugging Face's cur_len after this step
    std::vector<int64_t> next_rows, next_tokens;
    std::vector<double> next_scores;
    for (int64_t rank = 0; rank < top_ids.size(1); ++rank) {
      const int64_t beam = ti[0][rank] / vocab, token = ti[0][rank] % vocab;
      if (is_eos(token, o)) {
        if (rank >= n) continue;  // an end no better than the open beams kept
        std::vector<int64_t> hyp(rows[static_cast<size_t>(beam)].begin() + prompt,
                                 rows[static_cast<size_t>(beam)].end());
        finished.add(std::move(hyp), ts[0][rank], cur_len - prompt);
      } else {
        next_rows.push_back(beam);
        next_tokens.push_back(token);
        next_scores.push_back(ts[0][rank]);
      }
      if (static_cast<int64_t>(next_rows.size()) == n) break;
    }
    done = done || finished.done(ts[0][0], cur_len - prompt);
    Sequences new_rows;
    for (size_t i = 0; i < next_rows.size(); ++i) {
      new_rows.push_back(rows[static_cast<size_t>(next_rows[i])]);
      new_rows.back().push_back(next_tokens[i]);
    }
    rows = std::move(new_rows);
    beam_scores = next_scores;
    ++generated;
    if (done) {
      r.stop = GenerationResult::Stop::eos;
      break;
    }
    if (generated >= o.max_new_tokens) {
      r.stop = GenerationResult::Stop::max_new_tokens;
      break;
    }
    if (scorer.positions_left() < 1) {
      r.stop = GenerationResult::Stop::context_full;
      break;
    }
    scorer.select(at::tensor(next_rows, at::kLong));
    logits = scorer.next_logits(at::tensor(next_tokens, at::kLong).view({n, 1}));
  }
  if (!done)  // the open beams compete with the finished ones (Hugging Face's finalize)
    for (int64_t b = 0; b < n; ++b) {
      const auto& row = rows[static_cast<size_t>(b)];
      finished.add(std::vector<int64_t>(row.begin() + prompt, row.end()), beam_scores[static_cast<size_t>(b)],
                   static_cast<int64_t>(row.size()) - prompt);
    }
  const auto& best = finished.best();
  r.score = best.first;
  r.tokens = best.second;
  // As Hugging Face's finalize: the end token follows when the sequence has room for it.
  if (!o.eos_token_ids.empty() && static_cast<int64_t>(r.tokens.size()) < o.max_new_tokens)
    r.tokens.push_back(o.eos_token_ids.front());
  if (!r.tokens.empty() && is_eos(r.tokens.back(), o)) r.stop = GenerationResult::Stop::eos;
  (void)tokenizer;
  return r;
}

}  // namespace

GenerationResult generate(TokenScorer& scorer, const std::vector<int64_t>& prefix, const GenerationOptions& o,
                          const text::Tokenizer* tokenizer) {
  o.validate();
  if (prefix.empty()) throw ValueError("generate: the prefix (prompt or decoder start token) is empty");
  if (scorer.positions_left() < static_cast<int64_t>(prefix.size()) + 1)
    throw ValueError("generate: the " + std::to_string(prefix.size()) +
                     "-token prefix leaves no room in the model's " +
                     std::to_string(scorer.positions_left()) + "-position context");
  GenerationResult r = o.num_beams > 1 ? beam_search(scorer, prefix, o, tokenizer)
                                       : generate_one_row(scorer, prefix, o, tokenizer);
  if (tokenizer != nullptr) {
    bool found = false;
    r.text = cut_at_stop_string(tokenizer->decode(r.tokens), o.stop_strings, found);
    if (found) r.stop = GenerationResult::Stop::stop_string;
  }
  return r;
}

}  // namespace peft::generation
