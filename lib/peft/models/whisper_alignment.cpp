// WhisperModel::alignment_pass: the one decoder pass word timestamps need, kept apart
// from whisper.cpp (the decoding path) because it returns what that path never keeps:
// the alignment heads' cross-attention scores.
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "peft/error.h"
#include "peft/io/dtype.h"
#include "peft/models/whisper.h"

namespace peft::models {

WhisperModel::AlignmentPass WhisperModel::alignment_pass(const at::Tensor& audio_features,
                                                         const at::Tensor& tokens) const {
  const int64_t t = tokens.dim() == 1 ? tokens.size(0) : 0;
  if (t < 1 || t > dims_.n_text_ctx)
    throw ShapeError("WhisperModel::alignment_pass: tokens must be [T] with 1 <= T <= " +
                     std::to_string(dims_.n_text_ctx) + ", got " + io::shape_to_string(tokens.sizes().vec()));
  if (audio_features.dim() != 3 || audio_features.size(0) != 1 ||
      audio_features.size(1) != dims_.n_audio_ctx || audio_features.size(2) != dims_.n_audio_state)
    throw ShapeError("WhisperModel::alignment_pass: audio_features must be [1, " +
                     std::to_string(dims_.n_audio_ctx) + ", " + std::to_string(dims_.n_audio_state) +
                     "], got " + io::shape_to_string(audio_features.sizes().vec()));
  const auto norm = [](const at::Tensor& x, const LayerNorm& n) {
    return at::layer_norm(x, {x.size(-1)}, n.weight, n.bias, 1e-5);
  };
  const int64_t h = dims_.n_text_head, dh = dims_.n_text_state / h;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));

  WhisperKVCache cache = start(audio_features);
  at::Tensor x = at::embedding(token_embedding_, tokens.to(at::kLong).unsqueeze(0)).to(at::kFloat) +
                 text_pos_.narrow(0, 0, t);
  std::vector<at::Tensor> scores;
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const Block& b = decoder_[i];
    x = x + decoder_self_attention(b, norm(x, b.attn_ln), cache, i);
    const at::Tensor xc = norm(x, b.cross_attn_ln);
    at::Tensor q;  // [T, H, dh], only for layers with alignment heads
    for (const auto& [layer, head] : alignment_heads_) {
      if (layer != static_cast<int64_t>(i)) continue;
      if (!q.defined()) q = b.cross_attn.query(xc)[0].view({t, h, dh});
      scores.push_back(at::mm(q.select(1, head), cache.cross_k[i][0][head].t()).mul_(scale));
    }
    x = x + cross_attention(b, xc, cache, i);
    x = x + b.fc2(at::gelu(b.fc1(norm(x, b.mlp_ln))));
  }
  x = norm(x, ln_)[0];
  return {at::matmul(x, token_embedding_.to(at::kFloat).t()), at::stack(scores)};
}

}  // namespace peft::models
