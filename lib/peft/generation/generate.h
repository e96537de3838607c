// Text generation over any TokenScorer: greedy, sampling and beam search with Hugging
// Face generate()'s semantics, so that on the same model and options the same tokens
// come out (checked against transformers on the fixtures of tests/models/).
//
//   auto scorer = generation::causal_lm_scorer(model);
//   GenerationResult r = generation::generate(*scorer, prompt_ids, options, &tokenizer);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "peft/generation/generation_options.h"

namespace peft::text {
class Tokenizer;
}

namespace peft::generation {

class TokenScorer;

struct GenerationResult {
  enum class Stop { eos, max_new_tokens, context_full, stop_string, callback };
  // The generated tokens (not the prefix). Ends with the end-of-sequence token when the
  // model produced one (as Hugging Face's sequences; beam search also appends it to a
  // hypothesis cut by max_new_tokens, as Hugging Face does).
  std::vector<int64_t> tokens;
  // Their text (special tokens skipped), cut before a stop string; empty without a
  // tokenizer.
  std::string text;
  Stop stop = Stop::max_new_tokens;
  // Beam search: the chosen hypothesis's length-penalised score; otherwise the sum of
  // the chosen tokens' log-probabilities (before processors).
  double score = 0.0;
};

// `prefix`: the tokens the sequence starts with, fed to the scorer first (a decoder-
// only model's prompt; an encoder-decoder's decoder start token). `tokenizer` (may be
// null) decodes the text and finds stop strings. Throws ValueError on bad options, an
// empty prefix, or a prefix that leaves no room in the model's context.
GenerationResult generate(TokenScorer& scorer, const std::vector<int64_t>& prefix,
                          const GenerationOptions& options, const text::Tokenizer* tokenizer = nullptr);

}  // namespace peft::generation
