// T5 (Raffel et al., 2020) encoder-decoder in libtorch, readable top to bottom in t5.cpp,
// re-derived from transformers' T5ForConditionalGeneration: the original T5 (v1.0: a
// ReLU feed-forward wi/wo, output projection tied to the embedding) and T5 v1.1 /
// flan-t5 (a gated feed-forward wi_0/wi_1/wo with gelu_new, an untied lm_head). What
// sets T5 apart from Whisper or BART: RMS norms without bias, no 1/sqrt(d) attention
// scaling, and no position embeddings but a learned bias per (relative distance bucket,
// head), computed by the first layer of each stack and added to every layer's
// self-attention scores.
//
//   auto model = T5Model::load("models/flan-t5-small");
//   at::Tensor enc = model->encode(input_ids);          // [1, S, d_model]
//   KVCache cache = model->start(enc);                   // cross-attention K/V, once
//   at::Tensor logits = model->decode(tokens, cache);    // [B, T, vocab], cache grows
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "peft/adapters/model_identity.h"
#include "peft/layers/linear.h"
#include "peft/models/seq2seq_model.h"
#include "peft/quant/quant_type.h"

namespace peft::adapters {
class Projector;
}

namespace peft::models {

// config.json's fields, named as in transformers' T5Config.
struct T5Config {
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t d_kv = 0;  // per-head width: num_heads * d_kv need not equal d_model
  int64_t d_ff = 0;
  int64_t num_layers = 0;          // encoder blocks
  int64_t num_decoder_layers = 0;  // decoder blocks (default: num_layers)
  int64_t num_heads = 0;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double layer_norm_epsilon = 1e-6;
  // feed_forward_proj "relu" -> ("relu", false); "gated-gelu" -> ("gelu_new", true);
  // config.json's own dense_act_fn / is_gated_act override these, as in transformers.
  std::string dense_act_fn = "relu";
  bool is_gated_act = false;
  // lm_head is the shared embedding and the decoder output is scaled by d_model^-0.5.
  bool tie_word_embeddings = true;
};

// transformers' T5Attention._relative_position_bucket: relative_position (int64, any
// shape; key position - query position) -> bucket ids in [0, num_buckets). Half the
// buckets are exact distances, the rest logarithmic up to max_distance; bidirectional
// (the encoder) splits them between the two directions, unidirectional (the decoder)
// gives every key after the query bucket 0. Same float32 operations as transformers,
// so the buckets are identical at the logarithmic boundaries.
at::Tensor t5_relative_position_bucket(const at::Tensor& relative_position, bool bidirectional,
                                       int64_t num_buckets, int64_t max_distance);

class T5Model : public Seq2SeqModel {
 public:
  // Loads a Hugging Face T5 directory: config.json (model_type "t5"), model.safetensors
  // or shards, and generation_config.json when present (special ids). Every size comes
  // from config.json. Throws ValueError naming config.json and the key for values this
  // port does not implement (an activation other than relu, gelu, gelu_new,
  // gelu_pytorch_tanh, silu/swish), NotFoundError / ShapeError naming the file and
  // tensor for missing tensors or wrong shapes.
  //
  // `quant` quantizes every projection (attention q/k/v/o, cross-attention, the
  // feed-forward wi/wi_0/wi_1/wo); norms and position biases stay float, and the
  // embedding and the lm_head (tied or not) only with quant.quantize_embeddings.
  static std::shared_ptr<const T5Model> load(const std::filesystem::path& dir,
                                             const quant::QuantOptions& quant = {});

  const T5Config& config() const { return config_; }

  // Seq2SeqModel ------------------------------------------------------------------
  const TextModelSpecials& specials() const override { return specials_; }
  const std::string& source() const override { return source_; }
  std::string architecture() const override { return "t5"; }

  // input_ids int64 [1, S] (no padding: every position is attended, as generate() does
  // for inputs without pad tokens) -> float32 [1, S, d_model], after the final norm.
  at::Tensor encode(const at::Tensor& input_ids,
                    const adapters::BoundAdapter* adapter = nullptr) const override;
  KVCache start(const at::Tensor& encoder_output,
                const adapters::BoundAdapter* adapter = nullptr) const override;
  at::Tensor decode(const at::Tensor& tokens, KVCache& cache,
                    std::optional<int64_t> logits_at = std::nullopt) const override;
  int64_t weight_bytes() const override;

  // Every projection under the name PEFT gives it (model.named_modules() of
  // T5ForConditionalGeneration), 11 slots per block, encoder blocks first:
  //   encoder.block.N.layer.0.SelfAttention.{q,k,v,o}
  //   encoder.block.N.layer.1.DenseReluDense.{wi,wo} (v1.0) or {wi_0,wi_1,wo} (gated)
  //   decoder.block.N.layer.0.SelfAttention.{q,k,v,o}
  //   decoder.block.N.layer.1.EncDecAttention.{q,k,v,o}
  //   decoder.block.N.layer.2.DenseReluDense.{wi,wo} or {wi_0,wi_1,wo}
  // Unused slots (encoder cross-attention, wi_1 of v1.0) have an empty name. lm_head is
  // not adaptable.
  std::vector<adapters::ModuleSlot> adaptable_modules() const override;
  std::shared_ptr<const adapters::BoundAdapter> bind(const adapters::PeftAdapter& adapter) const override;
  // A new model with `adapter` (bound to this model) merged into the weights,
  // W' = W + delta_weight; unmerged() is the reverse with an adapter bound to the merged
  // model. Untouched projections share this model's tensors.
  std::shared_ptr<const T5Model> merged(const adapters::BoundAdapter& adapter) const;
  std::shared_ptr<const T5Model> unmerged(const adapters::BoundAdapter& adapter) const;

 private:
  struct Attention {
    layers::Linear q, k, v, o;
  };
  struct Block {
    at::Tensor self_norm;  // layer.0.layer_norm
    Attention self_attn;
    at::Tensor cross_norm;  // decoder: layer.1.layer_norm
    Attention cross_attn;   // decoder only
    at::Tensor ff_norm;
    layers::Linear wi0, wi1, wo;  // wi1 only when gated; wi0 is "wi" otherwise
  };
  class Loader;

  std::shared_ptr<const T5Model> with_adapter_merged(const adapters::BoundAdapter& adapter,
                                                     double sign) const;
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  at::Tensor feed_forward(const Block& b, const at::Tensor& x, const adapters::Projector& proj) const;
  // [1, H, Tq, Tk] bias of queries at positions q0 .. q0 + tq - 1 against keys 0 .. tk - 1.
  at::Tensor position_bias(const at::Tensor& table, int64_t q0, int64_t tq, int64_t tk,
                           bool bidirectional) const;
  void check_ids(const at::Tensor& ids, const char* where) const;

  T5Config config_;
  TextModelSpecials specials_;
  std::string source_;
  layers::Linear shared_;                   // [vocab, d_model]: the embedding of both stacks
  layers::Linear lm_head_;                  // shared_ when tie_word_embeddings
  at::Tensor encoder_bias_, decoder_bias_;  // relative_attention_bias [num_buckets, num_heads]
  std::vector<Block> encoder_, decoder_;
  at::Tensor encoder_final_norm_, decoder_final_norm_;
  adapters::ModelIdentity identity_;  // what bind() ties adapters to; copies get a new one
};

}  // namespace peft::models
