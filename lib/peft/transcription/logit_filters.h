// The constraints CTranslate2's Whisper generate puts on each decoding step's logits,
// re-derived from its logits processors (decoding_utils.cc, models/whisper.cc), in the
// order it runs them: suppressed tokens, suppressed-at-the-first-step tokens ("blank"),
// then the timestamp rules. A disabled token's logit becomes -inf.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace peft::transcription {

struct LogitFilterConfig {
  std::vector<int64_t> suppress;        // disabled at every step
  std::vector<int64_t> suppress_begin;  // disabled at the first generated step only
  bool timestamp_rules = true;          // off when the prompt ends with <|notimestamps|>
  int64_t eot = -1;
  int64_t no_timestamps = -1;
  int64_t timestamp_begin = -1;              // <|0.00|>; timestamps run to the last id
  int64_t max_initial_timestamp_index = 50;  // the first timestamp is at most <|0.00|> + this
};

class LogitFilters {
 public:
  explicit LogitFilters(LogitFilterConfig config);

  // `logits`: float32 contiguous [N, V], modified in place. `sequences[i]`: the tokens
  // row i generated so far (after the prompt), so step == sequences[i].size().
  void apply(at::Tensor& logits, const std::vector<std::vector<int64_t>>& sequences) const;

  const LogitFilterConfig& config() const { return config_; }

 private:
  void apply_timestamp_rules(float* row, int64_t vocab, const std::vector<int64_t>& generated) const;

  LogitFilterConfig config_;
};

}  // namespace peft::transcription
