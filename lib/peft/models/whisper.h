// Whisper (Radford et al., 2022) encoder-decoder in libtorch, readable top to bottom in
// whisper.cpp. The model is immutable after loading and holds no decoding state, so
// one loaded model serves any number of concurrent decoders: each keeps its own
// WhisperKVCache. Search strategies live in transcription/, not here.
//
//   auto model = WhisperModel::load("models/default/whisper-tiny.en");
//   at::Tensor features = model->encode(mel);            // [B, 1500, d]
//   WhisperKVCache cache = model->start(features);         // cross-attention K/V, once
//   at::Tensor logits = model->decode(tokens, cache);      // [B, T, vocab], cache grows
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

// What one decoder has computed so far for a batch of sequences (rows). Rows decoding
// the same window (beams, samples) share that window's cross-attention K/V, stored once:
// with W windows and B rows, rows are grouped window by window, B / W rows each.
struct WhisperKVCache {
  // Per decoder layer [B, H, capacity, d_head]; positions 0 .. length-1 are filled. The
  // capacity grows by doubling (up to the decoder's context), so a step writes its K/V
  // in place instead of copying the whole cache.
  std::vector<at::Tensor> self_k, self_v;
  std::vector<at::Tensor> cross_k, cross_v;  // per decoder layer [W, H, n_audio_ctx, d_head]
  int64_t length = 0;                        // tokens decoded so far
  // The adapter start() was given (or none), applied by decode(); the caller keeps the
  // BoundAdapter alive while the cache is used.
  const adapters::BoundAdapter* adapter = nullptr;

  int64_t windows() const { return cross_k.empty() ? 0 : cross_k.front().size(0); }

  // Keeps rows `index` (int64 [B']) in that order: beam reordering, finished rows
  // leaving, one row becoming several. The cross-attention K/V stays shared, so rows
  // must stay grouped: new row r and old row index[r] belong to the same window (always
  // true with one window). Throws peft::ValueError otherwise.
  void select(const at::Tensor& index);
};

class WhisperModel {
 public:
  // Loads from a CTranslate2 directory (model.bin, faster-whisper layout), a Hugging
  // Face directory (config.json + model.safetensors or shards), or an openai-whisper
  // checkpoint file (*.pt: dims + model_state_dict). Every size (mel bins, widths,
  // heads, layers, vocabulary, contexts) comes from the checkpoint. Throws peft::Error
  // subclasses naming the file and tensor on missing tensors or wrong shapes.
  //
  // `quant` quantizes every projection (attention q/k/v/out, cross-attention, fc1/fc2)
  // at load time; norms, biases, convolutions and positions stay float, and the token
  // embedding (also the output projection) only with quant.quantize_embeddings. A
  // CTranslate2 int8 checkpoint's weights are used as stored (int8 + scale) with
  // QuantType::none or int8, dequantized first for the others.
  static std::shared_ptr<const WhisperModel> load(const std::filesystem::path& path,
                                                  const quant::QuantOptions& quant = {});
  static std::shared_ptr<const WhisperModel> load(const io::Checkpoint& ckpt,
                                                  const quant::QuantOptions& quant = {});

  const WhisperDims& dims() const { return dims_; }
  const std::string& source() const { return source_; }

  // mel [B, n_mels, 2 * n_audio_ctx] -> audio features [B, n_audio_ctx, n_audio_state].
  // With `adapter` (bound to this model), its modules add their deltas.
  at::Tensor encode(const at::Tensor& mel, const adapters::BoundAdapter* adapter = nullptr) const;

  // Cross-attention K/V for each decoder layer, computed once per window; the cache
  // remembers `adapter` for decode().
  WhisperKVCache start(const at::Tensor& audio_features,
                       const adapters::BoundAdapter* adapter = nullptr) const;

  // tokens int64 [B, T] (positions cache.length ... cache.length + T - 1) -> logits
  // float32 [B, T, n_vocab]; appends the tokens' K/V to the cache. B must be a multiple
  // of the cache's windows (rows grouped by window, see WhisperKVCache).
  // With `logits_at`, only that position's logits: [B, 1, n_vocab]. A prompt's prefill
  // needs one row at most; all of a 224-token prompt's rows cost 224 x 51864 x 384
  // multiply-adds per window and were the peak memory of a long transcription.
  at::Tensor decode(const at::Tensor& tokens, WhisperKVCache& cache,
                    std::optional<int64_t> logits_at = std::nullopt) const;

  // Bytes taken by the weights as loaded (quantized weights as stored, with their scales).
  int64_t weight_bytes() const;

  // Adapters (peft/adapters/). Every projection under its Hugging Face module name,
  // whatever layout was loaded: model.encoder.layers.N.self_attn.{q,k,v,out}_proj,
  // model.encoder.layers.N.{fc1,fc2}, model.decoder.layers.N.{self_attn,encoder_attn}.
  // {q,k,v,out}_proj, model.decoder.layers.N.{fc1,fc2}. Slot i is what BoundAdapter
  // numbers; unused slots have an empty name.
  std::vector<adapters::ModuleSlot> adaptable_modules() const;
  // Checks `adapter` against this model (throws peft::Error naming the module; the model
  // is never changed) and returns the binding that encode()/start() take.
  std::shared_ptr<const adapters::BoundAdapter> bind(const adapters::PeftAdapter& adapter) const;
  // A new model with `adapter` (bound to this model) merged into the weights:
  // W' = W + delta_weight, no cost per call. A quantized projection is dequantized,
  // merged and re-quantized to its format. Projections the adapter does not touch share
  // this model's tensors, so the copy costs only the merged weights.
  std::shared_ptr<const WhisperModel> merged(const adapters::BoundAdapter& adapter) const;
  // The reverse, W' = W - delta_weight, with `adapter` bound to this (merged) model: the
  // base again, up to float32 rounding (and, for a quantized base, re-quantization).
  std::shared_ptr<const WhisperModel> unmerged(const adapters::BoundAdapter& adapter) const;

  // Word timestamps (transcription/word_timestamps.h) ------------------------------------
  // (decoder layer, head) pairs whose cross-attention follows the speech: the
  // CTranslate2 config.json's "alignment_heads", else a Hugging Face
  // generation_config.json's, else (as CTranslate2's converter and openai-whisper) every
  // head of the last n_text_layer / 2 layers.
  const std::vector<std::pair<int64_t, int64_t>>& alignment_heads() const { return alignment_heads_; }

  // The decoder pass of CTranslate2's Whisper::align: tokens int64 [T] (a whole sequence,
  // from <|startoftranscript|>) against one window's audio_features [1, n_audio_ctx, d],
  // no cache. Returns logits float32 [T, n_vocab] and, per alignment head (in
  // alignment_heads() order, layer by layer), its cross-attention scores before the
  // softmax (q.k / sqrt(d_head)) float32 [heads, T, n_audio_ctx]: the caller softmaxes
  // over the frames that hold audio only, as CTranslate2 does. `adapter`: as in start().
  struct AlignmentPass {
    at::Tensor logits, cross_scores;
  };
  AlignmentPass alignment_pass(const at::Tensor& audio_features, const at::Tensor& tokens,
                               const adapters::BoundAdapter* adapter = nullptr) const;

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

  std::shared_ptr<const WhisperModel> with_adapter_merged(const adapters::BoundAdapter& adapter,
                                                          double sign) const;
  at::Tensor encoder_self_attention(const Block& b, const at::Tensor& x,
                                    const adapters::Projector& proj) const;
  at::Tensor decoder_self_attention(const Block& b, const at::Tensor& x, WhisperKVCache& cache, size_t layer,
                                    const adapters::Projector& proj) const;
  at::Tensor cross_attention(const Block& b, const at::Tensor& x, const WhisperKVCache& cache, size_t layer,
                             const adapters::Projector& proj) const;

  WhisperDims dims_;
  std::string source_;
  at::Tensor conv1_w_, conv1_b_, conv2_w_, conv2_b_;
  at::Tensor audio_pos_;  // [n_audio_ctx, n_audio_state]
  std::vector<Block> encoder_;
  LayerNorm ln_post_;
  layers::Linear token_embedding_;  // [n_vocab, n_text_state], no bias: also the output projection
  at::Tensor text_pos_;             // [n_text_ctx, n_text_state]
  std::vector<Block> decoder_;
  LayerNorm ln_;
  std::vector<std::pair<int64_t, int64_t>> alignment_heads_;
  adapters::ModelIdentity identity_;  // what bind() ties adapters to; copies get a new one
};

}  // namespace peft::models
