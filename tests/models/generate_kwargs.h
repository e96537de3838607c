// generation::GenerationOptions from a transformers generate() call recorded in a
// fixture (its kwargs), with the model's generation_config.json values as the defaults
// transformers takes for what the call leaves out. Shared by the model suites.
#pragma once

#include <nlohmann/json.hpp>

#include "peft/generation/generation_options.h"
#include "peft/io/hf_config.h"

namespace peft_test {

inline peft::generation::GenerationOptions options_from_kwargs(
    const nlohmann::json& kw, const peft::io::HfGenerationConfig& defaults = {}) {
  peft::generation::GenerationOptions o;
  o.max_new_tokens = kw.at("max_new_tokens").get<int64_t>();
  o.num_beams = kw.value("num_beams", defaults.num_beams.value_or(1));
  o.length_penalty = kw.value("length_penalty", defaults.length_penalty.value_or(1.0));
  o.early_stopping = kw.value("early_stopping", defaults.early_stopping.value_or(false));
  o.no_repeat_ngram_size = kw.value("no_repeat_ngram_size", defaults.no_repeat_ngram_size.value_or(0));
  o.repetition_penalty = kw.value("repetition_penalty", defaults.repetition_penalty.value_or(1.0));
  o.min_new_tokens = kw.value("min_new_tokens", int64_t{0});
  if (kw.contains("forced_bos_token_id")) o.forced_bos_token_id = kw.at("forced_bos_token_id").get<int64_t>();
  return o;
}

}  // namespace peft_test
