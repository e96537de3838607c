// What generation needs from an encoder-decoder text model (T5, BART, MBart): encode one
// input sequence, start a decoder on it, and score next tokens for B rows (beams) that
// share that input. The models are immutable after loading and hold no decoding state,
// so one loaded model serves any number of concurrent generations, each with its own
// KVCache.
//
//   at::Tensor enc = model->encode(input_ids);           // [1, S, d]
//   KVCache cache = model->start(enc);                    // cross-attention K/V, once
//   at::Tensor logits = model->decode(tokens, cache);     // [B, T, vocab], cache grows
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "peft/models/attention.h"

namespace peft::adapters {
class BoundAdapter;
class PeftAdapter;
struct ModuleSlot;
}  // namespace peft::adapters

namespace peft::models {

// Token ids and sizes generation needs, from config.json / generation_config.json.
struct TextModelSpecials {
  int64_t vocab_size = 0;  // rows of the output projection
  int64_t decoder_start_token_id = 0;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id, bos_token_id;
  // BART/MBart's forced_bos_token_id / MBart's target language code: the token forced
  // at the first generated position (generation handles it); none for T5.
  std::optional<int64_t> forced_bos_token_id;
  // BART/MBart's forced_eos_token_id: forced at the last position max_new_tokens allows.
  std::optional<int64_t> forced_eos_token_id;
  int64_t max_positions = 0;         // decoder positions the model supports (T5: unbounded -> a large cap)
  int64_t max_source_positions = 0;  // encoder input tokens (T5: unbounded -> a large cap)
};

class Seq2SeqModel {
 public:
  virtual ~Seq2SeqModel() = default;

  virtual const TextModelSpecials& specials() const = 0;
  // Where it was loaded from (errors and logs name it).
  virtual const std::string& source() const = 0;
  // "t5", "bart", "mbart".
  virtual std::string architecture() const = 0;

  // input_ids int64 [1, S] -> encoder output float32 [1, S, d_model]. Throws
  // ShapeError on other shapes, ValueError on ids outside the vocabulary.
  virtual at::Tensor encode(const at::Tensor& input_ids,
                            const adapters::BoundAdapter* adapter = nullptr) const = 0;
  // Cross-attention K/V of every decoder layer for that encoder output, computed once.
  virtual KVCache start(const at::Tensor& encoder_output,
                        const adapters::BoundAdapter* adapter = nullptr) const = 0;
  // tokens int64 [B, T] (decoder positions cache.length .. cache.length + T - 1) ->
  // logits float32 [B, T, vocab] (with logits_at: [B, 1, vocab], that position only);
  // appends the tokens' K/V to the cache.
  virtual at::Tensor decode(const at::Tensor& tokens, KVCache& cache,
                            std::optional<int64_t> logits_at = std::nullopt) const = 0;

  virtual int64_t weight_bytes() const = 0;

  // Adapters: every adaptable projection under its Hugging Face module name (as PEFT
  // names them for this architecture); bind() checks an adapter against them.
  virtual std::vector<adapters::ModuleSlot> adaptable_modules() const = 0;
  virtual std::shared_ptr<const adapters::BoundAdapter> bind(const adapters::PeftAdapter& adapter) const = 0;
};

}  // namespace peft::models
