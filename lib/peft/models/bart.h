// BART (Lewis et al., 2019) and MBart (Liu et al., 2020) encoder-decoders, as Hugging Face
// transformers' BartForConditionalGeneration / MBartForConditionalGeneration compute them,
// readable top to bottom in bart.cpp. One class covers both; they differ only in where the
// LayerNorms sit:
//   BART  (post-LN): x = LN(x + sublayer(x)) for self-attention, cross-attention and FFN.
//   MBart (pre-LN):  x = x + sublayer(LN(x)), plus a final LayerNorm on the encoder's and
//                    the decoder's output.
// Both: token embedding (times sqrt(d_model) with scale_embedding) + learned positions
// (row position + 2: BartLearnedPositionalEmbedding's offset), then layernorm_embedding;
// logits = lm_head(x) + final_logits_bias, lm_head tied to the shared embedding unless
// config.json says tie_word_embeddings: false.
//
//   auto model = BartModel::load("tests/fixtures/models/bart_tiny");
//   at::Tensor enc = model->encode(input_ids);          // [1, S, d_model]
//   KVCache cache = model->start(enc);
//   at::Tensor logits = model->decode(tokens, cache);    // [B, T, vocab]
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "peft/adapters/model_identity.h"
#include "peft/layers/linear.h"
#include "peft/models/seq2seq_model.h"

namespace peft::adapters {
class Projector;
}

namespace peft::models {

// The feed-forward activation (config.json "activation_function"); transformers' ACT2FN
// names. gelu is exact (erf); gelu_new / gelu_fast / gelu_pytorch_tanh are the tanh form.
enum class BartActivation { gelu, gelu_tanh, relu, silu, tanh, quick_gelu };

// Sizes and switches from config.json.
struct BartConfig {
  std::string model_type;  // "bart" or "mbart"
  int64_t vocab_size = 0, d_model = 0;
  int64_t encoder_layers = 0, decoder_layers = 0;
  int64_t encoder_heads = 0, decoder_heads = 0;
  int64_t encoder_ffn_dim = 0, decoder_ffn_dim = 0;
  int64_t max_position_embeddings = 0;  // the position tables have 2 more rows
  bool pre_norm = false;                // mbart
  bool scale_embedding = false;
  bool tie_word_embeddings = true;
  BartActivation activation = BartActivation::gelu;
  std::string activation_name;
};

class BartModel final : public Seq2SeqModel {
 public:
  // From a Hugging Face directory: config.json + model.safetensors (or shards), and
  // generation_config.json when present (its ids take precedence over config.json's, as
  // transformers' generate() does). Every size comes from config.json. Throws ValueError
  // naming config.json and the key for an unsupported model_type or activation_function,
  // NotFoundError / ShapeError naming the weights file and tensor.
  //
  // `quant` quantizes every projection (attention q/k/v/out, cross-attention, fc1/fc2);
  // norms, biases and positions stay float, and the shared embedding (and an untied
  // lm_head, the other vocabulary-sized matrix) only with quant.quantize_embeddings.
  static std::shared_ptr<const BartModel> load(const std::filesystem::path& dir,
                                               const quant::QuantOptions& quant = {});

  const BartConfig& config() const { return config_; }
  const TextModelSpecials& specials() const override { return specials_; }
  const std::string& source() const override { return source_; }
  std::string architecture() const override { return config_.model_type; }

  at::Tensor encode(const at::Tensor& input_ids,
                    const adapters::BoundAdapter* adapter = nullptr) const override;
  KVCache start(const at::Tensor& encoder_output,
                const adapters::BoundAdapter* adapter = nullptr) const override;
  at::Tensor decode(const at::Tensor& tokens, KVCache& cache,
                    std::optional<int64_t> logits_at = std::nullopt) const override;

  int64_t weight_bytes() const override;

  // Slots, 10 per layer, encoder layers first (encoder layers leave the 4 cross-attention
  // slots unnamed): model.{encoder,decoder}.layers.N.self_attn.{q,k,v,out}_proj,
  // model.decoder.layers.N.encoder_attn.{q,k,v,out}_proj, model.{encoder,decoder}.layers.N.
  // {fc1,fc2}: the names of model.named_modules() that PEFT targets.
  std::vector<adapters::ModuleSlot> adaptable_modules() const override;
  std::shared_ptr<const adapters::BoundAdapter> bind(const adapters::PeftAdapter& adapter) const override;
  // A new model with `adapter` (bound to this model) merged: W' = W + delta_weight.
  // Projections the adapter leaves alone share this model's tensors.
  std::shared_ptr<const BartModel> merged(const adapters::BoundAdapter& adapter) const;

 private:
  struct LayerNorm {
    at::Tensor weight, bias;
  };
  struct Attention {
    layers::Linear q, k, v, out;
  };
  struct Layer {
    Attention self_attn;
    LayerNorm self_attn_ln;
    Attention cross_attn;  // decoder only
    LayerNorm cross_attn_ln;
    layers::Linear fc1, fc2;
    LayerNorm final_ln;
  };
  class Loader;

  at::Tensor embed(const at::Tensor& ids, const at::Tensor& positions, int64_t first_position,
                   const LayerNorm& ln) const;
  at::Tensor feed_forward(const Layer& l, const at::Tensor& x, const adapters::Projector& proj) const;
  at::Tensor activation(const at::Tensor& x) const;
  void check_ids(const at::Tensor& ids, const char* where) const;

  BartConfig config_;
  TextModelSpecials specials_;
  std::string source_;
  double embed_scale_ = 1.0;
  layers::Linear shared_;                     // [vocab, d], no bias: token embedding (encoder and decoder)
  layers::Linear lm_head_;                    // untied lm_head; undefined when tied to shared_
  at::Tensor final_logits_bias_;              // [vocab]
  at::Tensor enc_positions_, dec_positions_;  // [max_position_embeddings + 2, d]
  LayerNorm enc_ln_embedding_, dec_ln_embedding_;
  LayerNorm enc_ln_final_, dec_ln_final_;  // mbart only
  std::vector<Layer> encoder_, decoder_;
  adapters::ModelIdentity identity_;
};

}  // namespace peft::models
