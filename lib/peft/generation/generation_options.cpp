#include "peft/generation/generation_options.h"

#include <cmath>

#include "peft/error.h"

namespace peft::generation {

void GenerationOptions::validate() const {
  auto bad = [](const std::string& what) { throw ValueError("generation options: " + what); };
  if (max_new_tokens < 1) bad("max_new_tokens must be at least 1, got " + std::to_string(max_new_tokens));
  if (min_new_tokens < 0 || min_new_tokens > max_new_tokens)
    bad("min_new_tokens must be in [0, max_new_tokens], got " + std::to_string(min_new_tokens));
  if (num_beams < 1) bad("num_beams must be at least 1, got " + std::to_string(num_beams));
  if (num_beams > 1 && do_sample) bad("beam search with sampling is not supported");
  if (!std::isfinite(length_penalty)) bad("length_penalty must be finite");
  if (!(temperature > 0) || !std::isfinite(temperature)) bad("temperature must be > 0");
  if (top_k < 0) bad("top_k must be >= 0");
  if (!(top_p > 0 && top_p <= 1)) bad("top_p must be in (0, 1]");
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty)) bad("repetition_penalty must be > 0");
  if (no_repeat_ngram_size < 0) bad("no_repeat_ngram_size must be >= 0");
  for (const auto& s : stop_strings)
    if (s.empty()) bad("a stop string is empty");
}

}  // namespace peft::generation
