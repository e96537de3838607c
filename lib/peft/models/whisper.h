// Whisper (Radford et al., 2022) encoder-decoder in libtorch, readable top to bottom in
// whisper.cpp. The model is immutable after loading and holds no decoding state, so
// one loaded model serves any number of concurrent decoders: each keeps its own
// WhisperKVCache. Search strategies live in decoding/, not here.
//
//   auto model = WhisperModel::load("models/default/whisper-tiny.en");
//   at::Tensor features = model->encode(mel);            // [B, 1500, d]
//   WhisperKVCache cache = model->start(features);         // cross-attention K/V, once
//   at::Tensor logits = model->decode(tokens, cache);      // [B, T, vocab], cache grows
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "peft/layers/linear.h"

namespace peft::io {
class Checkpoint;
}

namespace peft::models {

// Hyperparameters, named as in openai/whisper's ModelDimensions.
struct WhisperDims {
  int64_t n_mels = 80;
  int64_t n_audio_ctx = 1500;  // encoder frames per 30 s window
  int64_t n_audio_state = 384;
  int64_t n_audio_head = 6;
  int64_t n_audio_layer = 4;
  int64_t n_vocab = 51864;
  int64_t n_text_ctx = 448;  // decoder positions
  int64_t n_text_state = 384;
  int64_t n_text_head = 6;
  int64_t n_text_layer = 4;
};

// What one decoder (one batch of sequences) has computed so far.
struct WhisperKVCache {
  std::vector<at::Tensor> self_k, self_v;    // per decoder layer [B, H, T, d_head], grows with T
  std::vector<at::Tensor> cross_k, cross_v;  // per decoder layer [B, H, n_audio_ctx, d_head]
  int64_t length = 0;                        // tokens decoded so far (T)

  // Keeps batch rows `index` (int64 [B']) in that order: beam search reordering.
  void select(const at::Tensor& index);
};

class WhisperModel {
 public:
  // Loads from a CTranslate2 directory (model.bin, faster-whisper layout), a Hugging
  // Face directory (config.json + model.safetensors or shards), or an openai-whisper
  // checkpoint file (*.pt: dims + model_state_dict). Every size (mel bins, widths,
  // heads, layers, vocabulary, contexts) comes from the checkpoint. Throws peft::Error
  // subclasses naming the file and tensor on missing tensors or wrong shapes.
  static std::shared_ptr<const WhisperModel> load(const std::filesystem::path& path);
  static std::shared_ptr<const WhisperModel> load(const io::Checkpoint& ckpt);

  const WhisperDims& dims() const { return dims_; }
  const std::string& source() const { return source_; }

  // mel [B, n_mels, 2 * n_audio_ctx] -> audio features [B, n_audio_ctx, n_audio_state].
  at::Tensor encode(const at::Tensor& mel) const;

  // Cross-attention K/V for each decoder layer, computed once per window.
  WhisperKVCache start(const at::Tensor& audio_features) const;

  // tokens int64 [B, T] (positions cache.length ... cache.length + T - 1) -> logits
  // float32 [B, T, n_vocab]; appends the tokens' K/V to the cache.
  at::Tensor decode(const at::Tensor& tokens, WhisperKVCache& cache) const;

  // Bytes taken by the weights as loaded.
  int64_t weight_bytes() const;

 private:
  struct Attention {
    layers::Linear query, key, value, out;
  };
  struct LayerNorm {
    at::Tensor weight, bias;
  };
  struct Block {
    LayerNorm attn_ln;
    Attention attn;
    LayerNorm cross_attn_ln;  // decoder only
    Attention cross_attn;     // decoder only
    LayerNorm mlp_ln;
    layers::Linear fc1, fc2;
  };
  class Loader;

  at::Tensor self_attention(const Block& b, const at::Tensor& x, int64_t n_head, at::Tensor* cache_k,
                            at::Tensor* cache_v) const;

  WhisperDims dims_;
  std::string source_;
  at::Tensor conv1_w_, conv1_b_, conv2_w_, conv2_b_;
  at::Tensor audio_pos_;  // [n_audio_ctx, n_audio_state]
  std::vector<Block> encoder_;
  LayerNorm ln_post_;
  at::Tensor token_embedding_;  // [n_vocab, n_text_state], also the output projection
  at::Tensor text_pos_;         // [n_text_ctx, n_text_state]
  std::vector<Block> decoder_;
  LayerNorm ln_;
};

}  // namespace peft::models
