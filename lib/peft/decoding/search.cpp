#include "peft/decoding/search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "peft/error.h"
#include "peft/models/whisper.h"

namespace peft::decoding {

namespace {

struct Hypothesis {
  std::vector<int64_t> tokens;
  float cumulative = 0;
  float score = 0;
};

// CTranslate2 divides by length^penalty; an empty hypothesis would give -inf or NaN there,
// so it keeps its cumulative score instead (it cannot win against a real one anyway).
float normalised_score(float cumulative, size_t length, float length_penalty) {
  if (length == 0) return cumulative;
  return cumulative / std::pow(static_cast<float>(length), length_penalty);
}

at::Tensor index_tensor(const std::vector<int64_t>& rows) { return at::tensor(rows, at::kLong); }

// One decoder step for `tokens` (one per batch row): logits float32 [rows, V].
at::Tensor step_logits(const models::WhisperModel& model, const std::vector<int64_t>& tokens,
                       models::WhisperKVCache& cache) {
  at::Tensor input = index_tensor(tokens).unsqueeze(1);
  return model.decode(input, cache).select(1, 0).contiguous();  // a fresh tensor: filters write into it
}

// Beam reordering. The beams decode one window, so they share its cross-attention K/V
// (WhisperKVCache keeps it once); only their self-attention K/V follows the beams.
void reorder_beams(models::WhisperKVCache& cache, const std::vector<int64_t>& origins) {
  bool identity = true;
  for (size_t i = 0; i < origins.size(); ++i) identity = identity && origins[i] == static_cast<int64_t>(i);
  if (!identity) cache.select(index_tensor(origins));
}

float no_speech_from(const at::Tensor& logits_row, int64_t no_speech) {
  return at::softmax(logits_row, 0)[no_speech].item<float>();
}

// Draws from softmax(log_probs / temperature): CTranslate2's RandomSampler with top-k 0.
int64_t sample(const at::Tensor& log_probs_row, float temperature, std::mt19937_64& rng) {
  at::Tensor probs = at::softmax(log_probs_row / temperature, 0).to(at::kDouble).contiguous();
  const double* p = probs.data_ptr<double>();
  const int64_t n = probs.numel();
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  double u = uniform(rng), acc = 0;
  int64_t last_possible = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] <= 0) continue;
    last_possible = i;
    acc += p[i];
    if (u < acc) return i;
  }
  return last_possible;  // rounding left u just above the total
}

Hypothesis best_of(std::vector<Hypothesis> hyps) {
  return *std::max_element(hyps.begin(), hyps.end(),
                           [](const Hypothesis& a, const Hypothesis& b) { return a.score < b.score; });
}

// Greedy (temperature 0) or sampling: `rows` independent sequences, finished ones leave the batch.
Hypothesis greedy_search(const models::WhisperModel& model, models::WhisperKVCache& cache,
                         int64_t start_token, const SpecialIds& ids, const LogitFilters& filters,
                         const SearchOptions& options, int64_t max_steps, bool no_speech_at_first_step,
                         float& no_speech_prob, std::mt19937_64& rng) {
  const int rows = options.temperature > 0 ? options.num_hypotheses : 1;
  if (rows > 1) cache.select(at::zeros({rows}, at::kLong));
  std::vector<Hypothesis> hyps(rows);
  std::vector<std::vector<int64_t>> generated(rows);  // what the filters see: includes <|endoftext|>
  std::vector<int64_t> alive(rows), next(rows, start_token);
  for (int i = 0; i < rows; ++i) alive[i] = i;

  for (int64_t step = 0; step < max_steps && !alive.empty(); ++step) {
    at::Tensor logits = step_logits(model, next, cache);
    if (step == 0 && no_speech_at_first_step) no_speech_prob = no_speech_from(logits[0], ids.no_speech);
    std::vector<std::vector<int64_t>> seqs;
    for (int64_t r : alive) seqs.push_back(generated[r]);
    filters.apply(logits, seqs);
    at::Tensor log_probs = at::log_softmax(logits, 1);
    at::Tensor argmax = log_probs.argmax(1);

    std::vector<int64_t> keep, keep_rows, keep_next;
    for (size_t i = 0; i < alive.size(); ++i) {
      const int64_t r = alive[i];
      const int64_t id = options.temperature > 0 ? sample(log_probs[i], options.temperature, rng)
                                                 : argmax[i].item<int64_t>();
      hyps[r].cumulative += log_probs[i][id].item<float>();
      generated[r].push_back(id);
      if (id != ids.eot) hyps[r].tokens.push_back(id);
      const bool finished = id == ids.eot || step + 1 == max_steps;
      if (!finished) {
        keep.push_back(static_cast<int64_t>(i));
        keep_rows.push_back(r);
        keep_next.push_back(id);
      }
    }
    if (!keep_rows.empty() && keep_rows.size() != alive.size()) cache.select(index_tensor(keep));
    alive = keep_rows;
    next = keep_next;
  }
  for (auto& h : hyps) h.score = normalised_score(h.cumulative, h.tokens.size(), options.length_penalty);
  return best_of(std::move(hyps));
}

// CTranslate2's BeamSearch: 2 * beam_size candidates per step so that finished (EOT)
// candidates can be replaced by live ones; stops once round(beam_size * patience)
// hypotheses finished, or at the last step where every beam counts as finished.
Hypothesis beam_search(const models::WhisperModel& model, models::WhisperKVCache& cache, int64_t start_token,
                       const SpecialIds& ids, const LogitFilters& filters, const SearchOptions& options,
                       int64_t max_steps, bool no_speech_at_first_step, float& no_speech_prob) {
  const int64_t beam = options.beam_size;
  const int64_t num_candidates = 2 * beam;
  const size_t max_finished = static_cast<size_t>(std::round(static_cast<float>(beam) * options.patience));
  std::vector<Hypothesis> finished;
  // The first step runs on the prompt's single row; its top candidates become the beams.
  std::vector<std::vector<int64_t>> seqs(1);
  std::vector<float> scores(1, 0.0f);
  std::vector<int64_t> next(1, start_token);

  for (int64_t step = 0; step < max_steps; ++step) {
    at::Tensor logits = step_logits(model, next, cache);
    const int64_t vocab = logits.size(1);
    if (step == 0 && no_speech_at_first_step) no_speech_prob = no_speech_from(logits[0], ids.no_speech);
    filters.apply(logits, seqs);
    at::Tensor log_probs = at::log_softmax(logits, 1);
    if (step > 0) log_probs = log_probs + at::tensor(scores, at::kFloat).unsqueeze(1);
    auto top = log_probs.reshape({-1}).topk(std::min<int64_t>(num_candidates, log_probs.numel()));
    at::Tensor top_scores = std::get<0>(top).contiguous(), top_ids = std::get<1>(top).contiguous();
    const float* cand_score = top_scores.data_ptr<float>();
    const int64_t* cand_flat = top_ids.data_ptr<int64_t>();
    const int64_t n_cand = top_ids.numel();
    const auto origin = [&](int64_t c) { return cand_flat[c] / vocab; };
    const auto word = [&](int64_t c) { return cand_flat[c] % vocab; };

    const bool last_step = step + 1 == max_steps;
    std::vector<int64_t> active(beam);
    int64_t secondary = beam;
    for (int64_t k = 0; k < beam && k < n_cand; ++k) {
      active[k] = k;
      const bool eot = word(k) == ids.eot;
      if (!eot && !last_step) continue;
      Hypothesis h;
      h.tokens = seqs[origin(k)];
      if (!eot) h.tokens.push_back(word(k));
      h.cumulative = cand_score[k];
      finished.push_back(std::move(h));
      for (int64_t j = secondary; j < n_cand; ++j)
        if (word(j) != ids.eot) {
          active[k] = j;
          secondary = j + 1;
          break;
        }
    }
    if (last_step || finished.size() >= max_finished) break;

    std::vector<std::vector<int64_t>> new_seqs(beam);
    std::vector<int64_t> origins(beam);
    for (int64_t k = 0; k < beam; ++k) {
      const int64_t c = active[k];
      origins[k] = origin(c);
      new_seqs[k] = seqs[origin(c)];
      new_seqs[k].push_back(word(c));
      next.resize(beam);
      next[k] = word(c);
      scores.resize(beam);
      scores[k] = cand_score[c];
    }
    reorder_beams(cache, origins);  // at step 0: one row becomes beam_size rows
    seqs = std::move(new_seqs);
  }
  if (finished.empty()) throw Error("beam search finished without a hypothesis");
  for (auto& h : finished) h.score = normalised_score(h.cumulative, h.tokens.size(), options.length_penalty);
  // CTranslate2 sorts by score and keeps the first: ties go to the earliest registered.
  std::stable_sort(finished.begin(), finished.end(),
                   [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
  return finished.front();
}

}  // namespace

WindowResult generate_window(const models::WhisperModel& model, const at::Tensor& features,
                             const std::vector<int64_t>& prompt, const SpecialIds& ids,
                             const LogitFilters& filters, const SearchOptions& options,
                             std::mt19937_64& rng) {
  if (options.beam_size < 1 || options.num_hypotheses < 1 || !(options.patience > 0))
    throw ValueError("generate_window: beam_size, num_hypotheses and patience must be positive");
  const auto sot_it = std::find(prompt.begin(), prompt.end(), ids.sot);
  if (sot_it == prompt.end()) throw ValueError("generate_window: the prompt has no <|startoftranscript|>");
  const size_t sot_index = static_cast<size_t>(sot_it - prompt.begin());
  // The task tokens after <|startoftranscript|> (language, task, <|notimestamps|>) belong
  // to the prompt; everything after them would be a forced prefix, which we do not use.
  size_t prompt_length = sot_index;
  while (prompt_length < prompt.size() && prompt[prompt_length] >= ids.sot &&
         prompt[prompt_length] <= ids.no_timestamps)
    ++prompt_length;
  if (prompt_length != prompt.size())
    throw ValueError("generate_window: tokens after the task tokens (a prefix) are not supported");

  const int64_t start_step = static_cast<int64_t>(prompt_length) - 1;
  const int64_t max_steps = std::min(options.max_length / 2, options.max_length - start_step);
  if (max_steps < 1)
    throw ValueError("generate_window: prompt of " + std::to_string(prompt.size()) +
                     " tokens leaves no room within max_length " + std::to_string(options.max_length));

  WindowResult result;
  models::WhisperKVCache cache = model.start(features);
  const bool sot_is_start = sot_index + 1 == prompt_length;
  if (start_step > 0) {
    std::vector<int64_t> head(prompt.begin(), prompt.begin() + start_step);
    at::Tensor logits = model.decode(index_tensor(head).unsqueeze(0), cache);
    if (!sot_is_start)
      result.no_speech_prob =
          no_speech_from(logits[0][static_cast<int64_t>(sot_index)].to(at::kFloat), ids.no_speech);
  }
  const int64_t start_token = prompt[prompt_length - 1];
  Hypothesis best = (options.beam_size > 1 && options.temperature == 0)
                        ? beam_search(model, cache, start_token, ids, filters, options, max_steps,
                                      sot_is_start, result.no_speech_prob)
                        : greedy_search(model, cache, start_token, ids, filters, options, max_steps,
                                        sot_is_start, result.no_speech_prob, rng);
  result.tokens = std::move(best.tokens);
  result.cumulative_logprob = best.cumulative;
  result.score = best.score;
  return result;
}

}  // namespace peft::decoding
