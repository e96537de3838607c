// Decoding one 30 s window with a WhisperModel: greedy, beam or sampled search, as
// CTranslate2's WhisperReplica::generate + decode() run them for faster-whisper.
//
// The prompt (previous text, <|startoftranscript|>, task tokens, maybe <|notimestamps|>)
// is fed in one call except its last token, which starts the search; the search then
// runs at most min(max_length / 2, max_length - prompt_length + 1) steps. Hypotheses
// exclude <|endoftext|>, but their score counts its log probability.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <vector>

#include "peft/transcription/logit_filters.h"

namespace peft::models {
class WhisperModel;
}

namespace peft::adapters {
class BoundAdapter;
}

namespace peft::transcription {

struct SearchOptions {
  int beam_size = 5;  // 1: greedy (or sampling when temperature > 0)
  float patience = 1.0f;
  float length_penalty = 1.0f;
  float temperature = 0.0f;  // > 0: random sampling, num_hypotheses independent samples
  int num_hypotheses = 1;    // samples at temperature > 0 (faster-whisper's best_of)
  int64_t max_length = 448;  // prompt + generated tokens, CTranslate2's max_length
  // Given to WhisperModel::start; the caller keeps it alive.
  const adapters::BoundAdapter* adapter = nullptr;
};

struct SpecialIds {
  int64_t sot = -1, eot = -1, no_speech = -1, no_timestamps = -1;
};

struct WindowResult {
  std::vector<int64_t> tokens;   // generated tokens, without <|endoftext|>
  float score = 0;               // cumulative logprob / length^length_penalty (CTranslate2's score)
  float cumulative_logprob = 0;  // sum of the chosen tokens' log probabilities, <|endoftext|> included
  float no_speech_prob = 0;      // softmax(<|nospeech|>) at the <|startoftranscript|> position
};

// `features`: the encoder output [1, n_audio_ctx, d] of one window. `rng` is used only
// at temperature > 0. Throws peft::ValueError for a prompt without <|startoftranscript|>
// or longer than max_length allows.
WindowResult generate_window(const models::WhisperModel& model, const at::Tensor& features,
                             const std::vector<int64_t>& prompt, const SpecialIds& ids,
                             const LogitFilters& filters, const SearchOptions& options, std::mt19937_64& rng);

// Several windows at once with the same prompt: `features` [W, n_audio_ctx, d]. Each
// window is searched exactly as generate_window would (same tokens); they share the
// decoder calls, so each step reads the weights once for all W (batched offline
// transcription). Sampling draws from `rng` in row order, so only W == 1 reproduces
// generate_window's samples.
std::vector<WindowResult> generate_windows(const models::WhisperModel& model, const at::Tensor& features,
                                           const std::vector<int64_t>& prompt, const SpecialIds& ids,
                                           const LogitFilters& filters, const SearchOptions& options,
                                           std::mt19937_64& rng);

}  // namespace peft::transcription
