#include "peft/generation/token_scorer.h"

#include <ATen/ATen.h>

#include "peft/models/llama.h"
#include "peft/models/seq2seq_model.h"

namespace peft::generation {

namespace {

class CausalLmScorer final : public TokenScorer {
 public:
  CausalLmScorer(std::shared_ptr<const models::LlamaModel> model, const adapters::BoundAdapter* adapter)
      : model_(std::move(model)), cache_(model_->start(adapter)) {}
  at::Tensor next_logits(const at::Tensor& tokens) override {
    return model_->decode(tokens, cache_, tokens.size(1) - 1).select(1, 0);
  }
  void select(const at::Tensor& index) override { cache_.select(index); }
  int64_t positions_left() const override { return model_->config().max_position_embeddings - cache_.length; }

 private:
  std::shared_ptr<const models::LlamaModel> model_;
  models::KVCache cache_;
};

class Seq2SeqScorer final : public TokenScorer {
 public:
  Seq2SeqScorer(std::shared_ptr<const models::Seq2SeqModel> model, const at::Tensor& input_ids,
                const adapters::BoundAdapter* adapter)
      : model_(std::move(model)), cache_(model_->start(model_->encode(input_ids, adapter), adapter)) {}
  at::Tensor next_logits(const at::Tensor& tokens) override {
    return model_->decode(tokens, cache_, tokens.size(1) - 1).select(1, 0);
  }
  void select(const at::Tensor& index) override { cache_.select(index); }
  int64_t positions_left() const override { return model_->specials().max_positions - cache_.length; }

 private:
  std::shared_ptr<const models::Seq2SeqModel> model_;
  models::KVCache cache_;
};

}  // namespace

std::unique_ptr<TokenScorer> causal_lm_scorer(std::shared_ptr<const models::LlamaModel> model,
                                              const adapters::BoundAdapter* adapter) {
  return std::make_unique<CausalLmScorer>(std::move(model), adapter);
}

std::unique_ptr<TokenScorer> seq2seq_scorer(std::shared_ptr<const models::Seq2SeqModel> model,
                                            const at::Tensor& input_ids,
                                            const adapters::BoundAdapter* adapter) {
  return std::make_unique<Seq2SeqScorer>(std::move(model), input_ids, adapter);
}

}  // namespace peft::generation
