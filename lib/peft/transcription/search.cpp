#include "peft/transcription/search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "peft/error.h"
#include "peft/models/whisper.h"

namespace peft::transcription {

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

// Row r of the batch belongs to window r / rows_per_window: the layout WhisperKVCache
// expects. Each window's decoding is independent of the others; they only share the
// decoder calls, so a batch of windows reads the weights once per step.
struct Batch {
  int64_t windows = 1;
  int64_t start_token = 0;
  int64_t max_steps = 0;
  bool no_speech_at_first_step = false;
};

// Greedy (temperature 0) or sampling: `rows` independent sequences per window. With one
// window, finished sequences leave the batch; with several, they stay (fed <|endoftext|>,
// their output ignored) so that rows keep their window grouping.
std::vector<Hypothesis> greedy_search(const models::WhisperModel& model, models::WhisperKVCache& cache,
                                      const Batch& batch, const SpecialIds& ids, const LogitFilters& filters,
                                      const SearchOptions& options, std::vector<float>& no_speech_prob,
                                      std::mt19937_64& rng) {
  const int64_t per_window = options.temperature > 0 ? options.num_hypotheses : 1;
  const int64_t rows = batch.windows * per_window;
  if (per_window > 1) {
    std::vector<int64_t> expand(rows);
    for (int64_t r = 0; r < rows; ++r) expand[r] = r / per_window;
    cache.select(index_tensor(expand));
  }
  std::vector<Hypothesis> hyps(rows);
  std::vector<std::vector<int64_t>> generated(rows);  // what the filters see: includes <|endoftext|>
  std::vector<bool> done(rows, false);
  std::vector<int64_t> alive(rows), next(rows, batch.start_token);
  for (int64_t i = 0; i < rows; ++i) alive[i] = i;
  const bool drop_finished = batch.windows == 1;

  for (int64_t step = 0; step < batch.max_steps && !alive.empty(); ++step) {
    at::Tensor logits = step_logits(model, next, cache);
    if (step == 0 && batch.no_speech_at_first_step)
      for (int64_t w = 0; w < batch.windows; ++w)
        no_speech_prob[w] = no_speech_from(logits[w * per_window], ids.no_speech);
    std::vector<std::vector<int64_t>> seqs;
    for (int64_t r : alive) seqs.push_back(generated[r]);
    filters.apply(logits, seqs);
    at::Tensor log_probs = at::log_softmax(logits, 1);
    at::Tensor argmax = log_probs.argmax(1);

    std::vector<int64_t> keep, keep_rows, keep_next;
    for (size_t i = 0; i < alive.size(); ++i) {
      const int64_t r = alive[i];
      int64_t id = ids.eot;
      if (!done[r]) {
        id = options.temperature > 0 ? sample(log_probs[i], options.temperature, rng)
                                     : argmax[i].item<int64_t>();
        hyps[r].cumulative += log_probs[i][id].item<float>();
        generated[r].push_back(id);
        if (id != ids.eot) hyps[r].tokens.push_back(id);
        done[r] = id == ids.eot || step + 1 == batch.max_steps;
      }
      if (!done[r] || !drop_finished) {
        keep.push_back(static_cast<int64_t>(i));
        keep_rows.push_back(r);
        keep_next.push_back(id);
      }
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    if (keep_rows.size() != alive.size()) cache.select(index_tensor(keep));
    alive = keep_rows;
    next = keep_next;
  }
  std::vector<Hypothesis> best;
  for (auto& h : hyps) h.score = normalised_score(h.cumulative, h.tokens.size(), options.length_penalty);
  for (int64_t w = 0; w < batch.windows; ++w)
    best.push_back(best_of({hyps.begin() + w * per_window, hyps.begin() + (w + 1) * per_window}));
  return best;
}

// CTranslate2's BeamSearch, per window: 2 * beam_size candidates per step so that
// finished (EOT) candidates can be replaced by live ones; a window stops once
// round(beam_size * patience) hypotheses finished, or at the last step where every beam
// counts as finished. Stopped windows keep their rows (fed <|endoftext|>) until all stop.
std::vector<Hypothesis> beam_search(const models::WhisperModel& model, models::WhisperKVCache& cache,
                                    const Batch& batch, const SpecialIds& ids, const LogitFilters& filters,
                                    const SearchOptions& options, std::vector<float>& no_speech_prob) {
  const int64_t beam = options.beam_size;
  const int64_t num_candidates = 2 * beam;
  const size_t max_finished = static_cast<size_t>(std::round(static_cast<float>(beam) * options.patience));
  struct Window {
    std::vector<std::vector<int64_t>> seqs{1};  // per row of this window
    std::vector<float> scores = std::vector<float>(1, 0.0f);
    std::vector<Hypothesis> finished;
    bool done = false;
  };
  std::vector<Window> win(batch.windows);
  // The first step runs on each window's single prompt row; its top candidates become the beams.
  int64_t per_window = 1;
  std::vector<int64_t> next(batch.windows, batch.start_token);

  for (int64_t step = 0; step < batch.max_steps; ++step) {
    at::Tensor logits = step_logits(model, next, cache);
    const int64_t vocab = logits.size(1);
    if (step == 0 && batch.no_speech_at_first_step)
      for (int64_t w = 0; w < batch.windows; ++w)
        no_speech_prob[w] = no_speech_from(logits[w], ids.no_speech);
    std::vector<std::vector<int64_t>> all_seqs;
    for (const Window& w : win) all_seqs.insert(all_seqs.end(), w.seqs.begin(), w.seqs.end());
    filters.apply(logits, all_seqs);
    at::Tensor log_probs = at::log_softmax(logits, 1);

    const bool last_step = step + 1 == batch.max_steps;
    std::vector<int64_t> origins, new_next;
    for (int64_t wi = 0; wi < batch.windows; ++wi) {
      Window& w = win[wi];
      const int64_t row0 = wi * per_window;
      if (w.done) {  // keep the rows as they are; nothing of theirs is used
        for (int64_t k = 0; k < beam; ++k) {
          origins.push_back(row0 + std::min(k, per_window - 1));
          new_next.push_back(ids.eot);
        }
        continue;
      }
      at::Tensor lp = log_probs.narrow(0, row0, per_window);
      if (step > 0) lp = lp + at::tensor(w.scores, at::kFloat).unsqueeze(1);
      auto top = lp.reshape({-1}).topk(std::min<int64_t>(num_candidates, lp.numel()));
      at::Tensor top_scores = std::get<0>(top).contiguous(), top_ids = std::get<1>(top).contiguous();
      const float* cand_score = top_scores.data_ptr<float>();
      const int64_t* cand_flat = top_ids.data_ptr<int64_t>();
      const int64_t n_cand = top_ids.numel();
      const auto origin = [&](int64_t c) { return cand_flat[c] / vocab; };
      const auto word = [&](int64_t c) { return cand_flat[c] % vocab; };

      std::vector<int64_t> active(beam);
      int64_t secondary = beam;
      for (int64_t k = 0; k < beam && k < n_cand; ++k) {
        active[k] = k;
        const bool eot = word(k) == ids.eot;
        if (!eot && !last_step) continue;
        Hypothesis h;
        h.tokens = w.seqs[origin(k)];
        if (!eot) h.tokens.push_back(word(k));
        h.cumulative = cand_score[k];
        w.finished.push_back(std::move(h));
        for (int64_t j = secondary; j < n_cand; ++j)
          if (word(j) != ids.eot) {
            active[k] = j;
            secondary = j + 1;
            break;
          }
      }
      w.done = last_step || w.finished.size() >= max_finished;

      std::vector<std::vector<int64_t>> new_seqs(beam);
      std::vector<float> new_scores(beam);
      for (int64_t k = 0; k < beam; ++k) {
        const int64_t c = active[k];
        origins.push_back(row0 + origin(c));
        new_seqs[k] = w.seqs[origin(c)];
        new_seqs[k].push_back(word(c));
        new_next.push_back(word(c));
        new_scores[k] = cand_score[c];
      }
      w.seqs = std::move(new_seqs);
      w.scores = std::move(new_scores);
    }
    if (std::all_of(win.begin(), win.end(), [](const Window& w) { return w.done; })) break;
    reorder_beams(cache, origins);  // at step 0: one row per window becomes beam_size rows
    next = std::move(new_next);
    per_window = beam;
  }
  std::vector<Hypothesis> best;
  for (Window& w : win) {
    if (w.finished.empty()) throw Error("beam search finished without a hypothesis");
    for (auto& h : w.finished)
      h.score = normalised_score(h.cumulative, h.tokens.size(), options.length_penalty);
    // CTranslate2 sorts by score and keeps the first: ties go to the earliest registered.
    std::stable_sort(w.finished.begin(), w.finished.end(),
                     [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
    best.push_back(w.finished.front());
  }
  return best;
}

}  // namespace

std::vector<WindowResult> generate_windows(const models::WhisperModel& model, const at::Tensor& features,
                                           const std::vector<int64_t>& prompt, const SpecialIds& ids,
                                           const LogitFilters& filters, const SearchOptions& options,
                                           std::mt19937_64& rng) {
  if (options.beam_size < 1 || options.num_hypotheses < 1 || !(options.patience > 0))
    throw ValueError("generate_window: beam_size, num_hypotheses and patience must be positive");
  if (features.dim() != 3 || features.size(0) < 1)
    throw ShapeError("generate_windows: features must be [windows, frames, width]");
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

  const int64_t windows = features.size(0);
  const int64_t start_step = static_cast<int64_t>(prompt_length) - 1;
  Batch batch;
  batch.windows = windows;
  batch.max_steps = std::min(options.max_length / 2, options.max_length - start_step);
  if (batch.max_steps < 1)
    throw ValueError("generate_window: prompt of " + std::to_string(prompt.size()) +
                     " tokens leaves no room within max_length " + std::to_string(options.max_length));

  std::vector<WindowResult> results(windows);
  std::vector<float> no_speech(windows, 0.0f);
  models::WhisperKVCache cache = model.start(features, options.adapter);
  const bool sot_is_start = sot_index + 1 == prompt_length;
  if (start_step > 0) {
    std::vector<int64_t> head(prompt.begin(), prompt.begin() + start_step);
    at::Tensor head_rows = index_tensor(head).unsqueeze(0).expand({windows, start_step}).contiguous();
    // Only the start-of-transcript position's logits are used (no-speech probability).
    const int64_t sot = static_cast<int64_t>(sot_index);
    at::Tensor logits = model.decode(head_rows, cache, std::min(sot, start_step - 1));
    if (!sot_is_start)
      for (int64_t w = 0; w < windows; ++w)
        no_speech[w] = no_speech_from(logits[w][0].to(at::kFloat), ids.no_speech);
  }
  batch.start_token = prompt[prompt_length - 1];
  batch.no_speech_at_first_step = sot_is_start;
  std::vector<Hypothesis> best =
      (options.beam_size > 1 && options.temperature == 0)
          ? beam_search(model, cache, batch, ids, filters, options, no_speech)
          : greedy_search(model, cache, batch, ids, filters, options, no_speech, rng);
  for (int64_t w = 0; w < windows; ++w) {
    results[w].tokens = std::move(best[w].tokens);
    results[w].cumulative_logprob = best[w].cumulative;
    results[w].score = best[w].score;
    results[w].no_speech_prob = no_speech[w];
  }
  return results;
}

WindowResult generate_window(const models::WhisperModel& model, const at::Tensor& features,
                             const std::vector<int64_t>& prompt, const SpecialIds& ids,
                             const LogitFilters& filters, const SearchOptions& options,
                             std::mt19937_64& rng) {
  if (features.dim() != 3 || features.size(0) != 1)
    throw ShapeError("generate_window: features must be [1, frames, width]");
  return std::move(generate_windows(model, features, prompt, ids, filters, options, rng).front());
}

}  // namespace peft::transcription
