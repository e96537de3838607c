// Llama-family decoder-only transformers (Llama 2/3, SmolLM/SmolLM2, Qwen2, Mistral
// without sliding windows): RMSNorm, rotary position embeddings, grouped-query
// attention, SwiGLU feed-forward, tied or untied output projection, a KV cache. One
// readable file, llama.cpp; immutable after loading, so one model serves concurrent
// generations, each with its own KVCache.
//
//   auto model = LlamaModel::load("models/default/smollm2-135m-instruct");  // GGUF or HF dir
//   KVCache cache = model->start();                                       // or start(adapter)
//   at::Tensor logits = model->decode(prompt_ids, cache, prompt_len - 1);  // [1, 1, vocab]
//   logits = model->decode(next_token, cache);                             // one step
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "peft/adapters/model_identity.h"
#include "peft/layers/linear.h"
#include "peft/models/attention.h"

namespace peft::io {
class Checkpoint;
}
namespace peft::adapters {
class BoundAdapter;
class PeftAdapter;
class Projector;
struct ModuleSlot;
}  // namespace peft::adapters

namespace peft::models {

namespace llama {
struct StepModel;
}

// Hyperparameters, named as in Hugging Face's LlamaConfig.
struct LlamaConfig {
  std::string architecture = "llama";  // GGUF general.architecture / HF model_type
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  // Llama 3.1's rope_scaling {"rope_type": "llama3", factor, low_freq_factor,
  // high_freq_factor, original_max_position_embeddings}; factor 0: none.
  double rope_llama3_factor = 0, rope_low_freq_factor = 1, rope_high_freq_factor = 4;
  int64_t rope_original_max_positions = 8192;
};

class LlamaModel {
 public:
  // Loads a GGUF file (or a directory holding one *.gguf) whose general.architecture is
  // llama or qwen2, or a Hugging Face directory (config.json with model_type llama,
  // mistral or qwen2, and safetensors). GGUF's query/key rows, which llama.cpp's
  // converter reorders for its rotary layout, are put back into Hugging Face's order,
  // so adapters address the same rows whatever the file.
  //
  // `quant`: none keeps weights as stored (float16/32, or GGUF's Q4_0/Q4_1/Q8_0 blocks
  // computed as stored); f32 dequantizes them; int8/int4/nf4 quantize every projection
  // (the token embedding and an untied output projection too with quantize_embeddings).
  // Throws peft::Error subclasses naming the file and tensor or key.
  static std::shared_ptr<const LlamaModel> load(const std::filesystem::path& path,
                                                const quant::QuantOptions& quant = {});

  const LlamaConfig& config() const { return config_; }
  const std::string& source() const { return source_; }

  // An empty cache whose decode() calls apply `adapter` (bound to this model, or none).
  KVCache start(const adapters::BoundAdapter* adapter = nullptr) const;

  // tokens int64 [B, T] at positions cache.length .. cache.length + T - 1 -> logits
  // float32 [B, T, vocab] (with logits_at: [B, 1, vocab], that position only; a prompt's
  // prefill needs its last row). Appends the tokens' K/V to the cache, whose adapter
  // applies. Throws ValueError for ids outside the vocabulary or positions past the
  // context.
  at::Tensor decode(const at::Tensor& tokens, KVCache& cache,
                    std::optional<int64_t> logits_at = std::nullopt) const;

  int64_t weight_bytes() const;
  // "Q4_1 blocks (210), float32 (61)": what the projections are stored as, for logs.
  std::string weight_summary() const;

  // Adapters (peft/adapters/): model.layers.N.self_attn.{q,k,v,o}_proj and
  // model.layers.N.mlp.{gate,up,down}_proj, 7 slots per layer.
  std::vector<adapters::ModuleSlot> adaptable_modules() const;
  std::shared_ptr<const adapters::BoundAdapter> bind(const adapters::PeftAdapter& adapter) const;
  std::shared_ptr<const LlamaModel> merged(const adapters::BoundAdapter& adapter) const;
  std::shared_ptr<const LlamaModel> unmerged(const adapters::BoundAdapter& adapter) const;

 private:
  struct Block {
    at::Tensor attn_norm, mlp_norm;  // RMSNorm weights [hidden]
    layers::Linear q, k, v, o;
    layers::Linear gate, up, down;
  };
  class Loader;

  // cos/sin: the rotary tables of the positions being decoded, [T, head_dim], computed
  // once per decode() for all layers.
  at::Tensor attention(const Block& b, const at::Tensor& x, KVCache& cache, size_t layer,
                       const adapters::Projector& proj, const at::Tensor& cos, const at::Tensor& sin) const;
  std::shared_ptr<const LlamaModel> with_adapter_merged(const adapters::BoundAdapter& adapter,
                                                        double sign) const;
  // Views of the weights for llama_step.h's fused one-token step, or null when some
  // weight has no fused path; rebuilt whenever the weights change.
  void prepare_fused_step();
  // Rotary cos / sin [T, head_dim] of positions start .. start + t - 1.
  std::pair<at::Tensor, at::Tensor> rotary_tables(int64_t start, int64_t t) const;

  LlamaConfig config_;
  std::string source_;
  layers::Linear embed_tokens_;  // [vocab, hidden]
  std::vector<Block> layers_;
  at::Tensor norm_;
  layers::Linear lm_head_;  // tied: the same weight as embed_tokens_
  at::Tensor inv_freq_;     // [head_dim / 2] rotary frequencies
  adapters::ModelIdentity identity_;
  std::shared_ptr<const llama::StepModel> step_;
};

}  // namespace peft::models
