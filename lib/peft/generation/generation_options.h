// How a text model generates: the Hugging Face generate() options this library
// implements, with the same names and meanings (greedy, beam search, sampling, and the
// logits processors that summarizers use). Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace peft::generation {

struct GenerationOptions {
  int64_t max_new_tokens = 128;
  int64_t min_new_tokens = 0;  // end-of-sequence is forbidden before this many

  // Beam search (num_beams > 1): scores are summed log-probabilities divided by
  // generated_length ** length_penalty; early_stopping stops as soon as num_beams
  // hypotheses are finished, otherwise when no open beam can beat the worst of them.
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  bool early_stopping = false;

  // Sampling (num_beams == 1): temperature, then top-k (0: off), then top-p (1: off),
  // from a generator seeded with `seed` (the same seed gives the same text).
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;

  double repetition_penalty = 1.0;   // > 1 discourages tokens already in the sequence (CTRL)
  int64_t no_repeat_ngram_size = 0;  // > 0: no n-gram of this size occurs twice

  std::vector<int64_t> eos_token_ids;          // any of them ends a sequence
  std::optional<int64_t> forced_bos_token_id;  // forced as the first generated token (MBart languages)
  std::optional<int64_t> forced_eos_token_id;  // forced as the last token max_new_tokens allows (BART)
  // Generation stops once the generated text contains one of these; the text returned
  // ends before it (greedy and sampling; beam search trims its result).
  std::vector<std::string> stop_strings;
  // Called after each generated token (greedy and sampling) with every token generated
  // so far; return false to stop. Streaming callers decode the ids themselves.
  std::function<bool(const std::vector<int64_t>& generated)> on_token;

  // Throws peft::ValueError naming the option on values out of range.
  void validate() const;
};

}  // namespace peft::generation
