// The logits processors of Hugging Face's generate() that summarization uses, applied
// in its order: repetition penalty, no-repeat n-grams, minimum new tokens, forced first
// and last tokens; then, when sampling, temperature, top-k and top-p. Each works on scores
// float32 [B, vocab] in place, given each row's whole sequence so far (prompt included,
// as Hugging Face's input_ids).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "peft/generation/generation_options.h"

namespace peft::generation {

using Sequences = std::vector<std::vector<int64_t>>;

// Scores of tokens that occur in the row: divided by `penalty` when positive,
// multiplied when negative (CTRL, Keskar et al. 2019).
void apply_repetition_penalty(at::Tensor& scores, const Sequences& rows, double penalty);
// -inf for every token that would repeat an n-gram of the row.
void ban_repeated_ngrams(at::Tensor& scores, const Sequences& rows, int64_t n);
// The processors before sampling, as options say. `prompt_length`: tokens of each row
// that were not generated (min_new_tokens counts after them; the forced first token is
// forced when the rows hold one token, an encoder-decoder's start token).
void process_logits(at::Tensor& scores, const Sequences& rows, int64_t prompt_length,
                    const GenerationOptions& options);
// Temperature, top-k and top-p (tokens outside the smallest set whose probability
// reaches top_p get -inf; at least one token kept).
void warp_for_sampling(at::Tensor& scores, const GenerationOptions& options);

}  // namespace peft::generation
