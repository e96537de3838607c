// The one thing generation asks of a model: given the next tokens of B rows, the
// logits of the token after them; and rows reordered or duplicated for beams. Decoder-
// only and encoder-decoder models both fit behind it (the encoder output and the KV
// cache live inside the scorer).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

namespace peft::adapters {
class BoundAdapter;
}
namespace peft::models {
class LlamaModel;
class Seq2SeqModel;
}  // namespace peft::models

namespace peft::generation {

class TokenScorer {
 public:
  virtual ~TokenScorer() = default;
  // tokens int64 [B, T]: appended to each row's sequence -> float32 [B, vocab], the
  // logits after the last of them.
  virtual at::Tensor next_logits(const at::Tensor& tokens) = 0;
  // Keeps rows `index` (int64 [B']) in that order.
  virtual void select(const at::Tensor& index) = 0;
  // Positions the model can still take (its context minus what was fed).
  virtual int64_t positions_left() const = 0;
};

// A decoder-only model; the prompt is the first next_logits() call.
std::unique_ptr<TokenScorer> causal_lm_scorer(std::shared_ptr<const models::LlamaModel> model,
                                              const adapters::BoundAdapter* adapter = nullptr);
// An encoder-decoder model on one input (int64 [1, S], encoded once here); the decoder
// sequence starts with the model's decoder start token, fed by the caller.
std::unique_ptr<TokenScorer> seq2seq_scorer(std::shared_ptr<const models::Seq2SeqModel> model,
                                            const at::Tensor& input_ids,
                                            const adapters::BoundAdapter* adapter = nullptr);

}  // namespace peft::generation
