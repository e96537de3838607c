// Whisper in one file: loading (CTranslate2, Hugging Face and openai layouts), the encoder,
// and the decoder with its KV cache.
#include "peft/models/whisper.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/merge.h"
#include "peft/adapters/projector.h"
#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/ct2.h"
#include "peft/io/json_file.h"
#include "peft/io/torch_tensor.h"
#include "peft/models/attention.h"
#include "peft/models/weight_loader.h"
#include "peft/quant/int8_weight.h"

namespace peft::models {

namespace {

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::layer_norm(x, {x.size(-1)}, w, b, 1e-5);
}

}  // namespace

void WhisperKVCache::select(const at::Tensor& index) {
  const int64_t w = windows();
  if (w > 1) {  // the rows must stay grouped by window: new row r and old row index[r] share a window
    const bool have_rows = !self_k.empty() && self_k.front().defined();
    const int64_t old_per_window = have_rows ? self_k.front().size(0) / w : 1;
    const int64_t n = index.size(0);
    const at::Tensor idx = index.to(at::kLong).contiguous();
    const int64_t* p = idx.data_ptr<int64_t>();
    bool grouped = n % w == 0;
    for (int64_t r = 0; grouped && r < n; ++r) grouped = p[r] / old_per_window == r / (n / w);
    if (!grouped)
      throw ValueError("WhisperKVCache::select: the selected rows would mix the cache's " +
                       std::to_string(w) + " windows");
  }
  for (auto* list : {&self_k, &self_v})
    for (auto& t : *list) {
      if (!t.defined()) continue;
      at::Tensor kept = at::empty({index.size(0), t.size(1), t.size(2), t.size(3)}, t.options());
      kept.narrow(2, 0, length).copy_(t.narrow(2, 0, length).index_select(0, index));
      t = kept;
    }
}

// ---------------------------------------------------------------------------
// Loading

class WhisperModel::Loader {
 public:
  // CTranslate2 WhisperSpec: fused q/k/v (self-attention) and k/v (cross-attention)
  // projections are split here so every projection is its own Linear, as in openai's
  // and Hugging Face's modules (adapters address them by those names).
  static void from_ct2(WhisperModel& m, const io::Checkpoint& ckpt) {
    const WeightLoader w(ckpt);
    const auto* ct2 = dynamic_cast<const io::Ct2Checkpoint*>(&ckpt);
    WhisperDims& d = m.dims_;
    const auto& conv1 = w.shape("encoder/conv1/weight");
    if (conv1.size() != 3) throw ShapeError(ckpt.path() + ": tensor 'encoder/conv1/weight': expected rank 3");
    d.n_audio_state = conv1[0];
    d.n_mels = conv1[1];
    d.n_audio_ctx = w.shape("encoder/position_encodings/encodings").at(0);
    d.n_vocab = w.shape("decoder/embeddings/weight").at(0);
    d.n_text_state = w.shape("decoder/embeddings/weight").at(1);
    d.n_text_ctx = w.shape("decoder/position_encodings/encodings").at(0);
    d.n_audio_layer = count_layers(ckpt, "encoder/layer_", "/self_attention/linear_0/weight");
    d.n_text_layer = count_layers(ckpt, "decoder/layer_", "/self_attention/linear_0/weight");
    d.n_audio_head = ct2 ? ct2->scalar_int("encoder/num_heads") : d.n_audio_state / 64;
    d.n_text_head = ct2 ? ct2->scalar_int("decoder/num_heads") : d.n_text_state / 64;
    check_dims(ckpt, d);

    const int64_t da = d.n_audio_state, dt = d.n_text_state;
    m.conv1_w_ = w.get("encoder/conv1/weight", {da, d.n_mels, 3});
    m.conv1_b_ = w.get("encoder/conv1/bias", {da});
    m.conv2_w_ = w.get("encoder/conv2/weight", {da, da, 3});
    m.conv2_b_ = w.get("encoder/conv2/bias", {da});
    m.audio_pos_ = w.get("encoder/position_encodings/encodings", {d.n_audio_ctx, da});
    for (int64_t i = 0; i < d.n_audio_layer; ++i) {
      m.encoder_.push_back(ct2_block(w, "encoder/layer_" + std::to_string(i) + "/", da));
    }
    m.ln_post_ = ct2_norm(w, "encoder/layer_norm", da);

    m.token_embedding_ =
        ct2_rows(w, "decoder/embeddings/weight", {d.n_vocab, dt}, 0, d.n_vocab, at::Tensor());
    m.text_pos_ = w.get("decoder/position_encodings/encodings", {d.n_text_ctx, dt});
    for (int64_t i = 0; i < d.n_text_layer; ++i) {
      const std::string p = "decoder/layer_" + std::to_string(i) + "/";
      Block b = ct2_block(w, p, dt);
      b.cross_attn_ln = ct2_norm(w, p + "attention/layer_norm", dt);
      b.cross_attn.query = ct2_linear(w, p + "attention/linear_0", dt, dt);
      const std::string kv = p + "attention/linear_1/weight";
      const at::Tensor kv_b = w.get(p + "attention/linear_1/bias", {2 * dt});
      b.cross_attn.key = ct2_rows(w, kv, {2 * dt, da}, 0, dt, at::Tensor());
      b.cross_attn.value = ct2_rows(w, kv, {2 * dt, da}, dt, dt, kv_b.narrow(0, dt, dt).contiguous());
      b.cross_attn.out = ct2_linear(w, p + "attention/linear_2", dt, dt);
      m.decoder_.push_back(std::move(b));
    }
    m.ln_ = ct2_norm(w, "decoder/layer_norm", dt);
    check_tied_projection(w, m);
  }

  // Hugging Face WhisperForConditionalGeneration (config.json + safetensors).
  static void from_hf(WhisperModel& m, const io::Checkpoint& ckpt, const nlohmann::json& config,
                      const std::string& config_path) {
    const WeightLoader w(ckpt);
    WhisperDims& d = m.dims_;
    d.n_mels = io::json_get<int64_t>(config, "num_mel_bins", config_path);
    d.n_audio_ctx = io::json_get<int64_t>(config, "max_source_positions", config_path);
    d.n_audio_state = io::json_get<int64_t>(config, "d_model", config_path);
    d.n_audio_head = io::json_get<int64_t>(config, "encoder_attention_heads", config_path);
    d.n_audio_layer = io::json_get<int64_t>(config, "encoder_layers", config_path);
    d.n_vocab = io::json_get<int64_t>(config, "vocab_size", config_path);
    d.n_text_ctx = io::json_get<int64_t>(config, "max_target_positions", config_path);
    d.n_text_state = d.n_audio_state;
    d.n_text_head = io::json_get<int64_t>(config, "decoder_attention_heads", config_path);
    d.n_text_layer = io::json_get<int64_t>(config, "decoder_layers", config_path);
    check_dims(ckpt, d);

    const int64_t da = d.n_audio_state, dt = d.n_text_state;
    const int64_t ffn_a = io::json_get_or<int64_t>(config, "encoder_ffn_dim", 4 * da, config_path);
    const int64_t ffn_t = io::json_get_or<int64_t>(config, "decoder_ffn_dim", 4 * dt, config_path);
    const std::string e = "model.encoder.", dec = "model.decoder.";
    m.conv1_w_ = w.get(e + "conv1.weight", {da, d.n_mels, 3});
    m.conv1_b_ = w.get(e + "conv1.bias", {da});
    m.conv2_w_ = w.get(e + "conv2.weight", {da, da, 3});
    m.conv2_b_ = w.get(e + "conv2.bias", {da});
    m.audio_pos_ = w.get(e + "embed_positions.weight", {d.n_audio_ctx, da});
    for (int64_t i = 0; i < d.n_audio_layer; ++i) {
      m.encoder_.push_back(hf_block(w, e + "layers." + std::to_string(i) + ".", da, ffn_a));
    }
    m.ln_post_ = hf_norm(w, e + "layer_norm", da);
    m.token_embedding_ =
        layers::Linear(w.get_matrix(dec + "embed_tokens.weight", {d.n_vocab, dt}), at::Tensor());
    m.text_pos_ = w.get(dec + "embed_positions.weight", {d.n_text_ctx, dt});
    for (int64_t i = 0; i < d.n_text_layer; ++i) {
      const std::string p = dec + "layers." + std::to_string(i) + ".";
      Block b = hf_block(w, p, dt, ffn_t);
      b.cross_attn_ln = hf_norm(w, p + "encoder_attn_layer_norm", dt);
      b.cross_attn = hf_attention(w, p + "encoder_attn.", dt, da);
      m.decoder_.push_back(std::move(b));
    }
    m.ln_ = hf_norm(w, dec + "layer_norm", dt);
    if (w.has("proj_out.weight")) {
      const at::Tensor proj = w.get_matrix("proj_out.weight", {d.n_vocab, dt});
      if (!at::equal(proj.to(at::kFloat), m.token_embedding_.dense_weight()))
        throw ValueError(ckpt.path() +
                         ": tensor 'proj_out.weight': differs from the token embedding; "
                         "Whisper ties them");
    }
  }

  // openai-whisper's own checkpoint (.pt): {"dims", "model_state_dict"} with model.py's
  // names. The encoder's sinusoidal positions are a persistent buffer there, so they are
  // in the state dict like every other tensor.
  static void from_openai(WhisperModel& m, const io::Checkpoint& ckpt) {
    const WeightLoader w(ckpt);
    const auto dims_it = ckpt.metadata().find("dims");
    if (dims_it == ckpt.metadata().end() || !dims_it->is_object())
      throw NotFoundError(ckpt.path() + ": no 'dims' dict (openai's ModelDimensions) beside the state dict");
    const nlohmann::json& dims = *dims_it;
    const std::string where = ckpt.path() + " dims";
    WhisperDims& d = m.dims_;
    d.n_mels = io::json_get<int64_t>(dims, "n_mels", where);
    d.n_audio_ctx = io::json_get<int64_t>(dims, "n_audio_ctx", where);
    d.n_audio_state = io::json_get<int64_t>(dims, "n_audio_state", where);
    d.n_audio_head = io::json_get<int64_t>(dims, "n_audio_head", where);
    d.n_audio_layer = io::json_get<int64_t>(dims, "n_audio_layer", where);
    d.n_vocab = io::json_get<int64_t>(dims, "n_vocab", where);
    d.n_text_ctx = io::json_get<int64_t>(dims, "n_text_ctx", where);
    d.n_text_state = io::json_get<int64_t>(dims, "n_text_state", where);
    d.n_text_head = io::json_get<int64_t>(dims, "n_text_head", where);
    d.n_text_layer = io::json_get<int64_t>(dims, "n_text_layer", where);
    check_dims(ckpt, d);

    const int64_t da = d.n_audio_state, dt = d.n_text_state;
    m.conv1_w_ = w.get("encoder.conv1.weight", {da, d.n_mels, 3});
    m.conv1_b_ = w.get("encoder.conv1.bias", {da});
    m.conv2_w_ = w.get("encoder.conv2.weight", {da, da, 3});
    m.conv2_b_ = w.get("encoder.conv2.bias", {da});
    m.audio_pos_ = w.get("encoder.positional_embedding", {d.n_audio_ctx, da});
    for (int64_t i = 0; i < d.n_audio_layer; ++i)
      m.encoder_.push_back(openai_block(w, "encoder.blocks." + std::to_string(i) + ".", da));
    m.ln_post_ = hf_norm(w, "encoder.ln_post", da);
    m.token_embedding_ =
        layers::Linear(w.get("decoder.token_embedding.weight", {d.n_vocab, dt}), at::Tensor());
    m.text_pos_ = w.get("decoder.positional_embedding", {d.n_text_ctx, dt});
    for (int64_t i = 0; i < d.n_text_layer; ++i) {
      const std::string p = "decoder.blocks." + std::to_string(i) + ".";
      Block b = openai_block(w, p, dt);
      b.cross_attn_ln = hf_norm(w, p + "cross_attn_ln", dt);
      b.cross_attn = openai_attention(w, p + "cross_attn.", dt, da);
      m.decoder_.push_back(std::move(b));
    }
    m.ln_ = hf_norm(w, "decoder.ln", dt);
  }

  // Word-timestamp heads: CTranslate2's config.json (in metadata()), a Hugging Face
  // generation_config.json beside the weights, else the last half of the layers.
  static void read_alignment_heads(WhisperModel& m, const io::Checkpoint& ckpt) {
    const WhisperDims& d = m.dims_;
    nlohmann::json heads;
    std::string origin = ckpt.path() + " config";
    if (ckpt.format() == "ct2") {
      const auto it = ckpt.metadata().find("alignment_heads");
      if (it != ckpt.metadata().end()) heads = *it;
    } else if (ckpt.format() != "pytorch") {
      const auto gen = std::filesystem::path(ckpt.path()).parent_path() / "generation_config.json";
      if (std::filesystem::exists(gen)) {
        const nlohmann::json g = io::read_json_file(gen);
        if (g.contains("alignment_heads")) heads = g.at("alignment_heads");
        origin = gen.string();
      }
    }
    m.alignment_heads_.clear();
    if (heads.is_null()) {
      for (int64_t l = d.n_text_layer / 2; l < d.n_text_layer; ++l)
        for (int64_t h = 0; h < d.n_text_head; ++h) m.alignment_heads_.emplace_back(l, h);
      return;
    }
    const auto bad = [&](const std::string& what) {
      throw FormatError(origin, "alignment_heads",
                        what + " (expected [[layer, head], ...] with layer < " +
                            std::to_string(d.n_text_layer) + ", head < " + std::to_string(d.n_text_head) +
                            ")");
    };
    if (!heads.is_array() || heads.empty()) bad("not a non-empty list");
    for (const auto& p : heads) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() || !p[1].is_number_integer())
        bad("entry " + p.dump() + " is not a pair of integers");
      const auto l = p[0].get<int64_t>(), h = p[1].get<int64_t>();
      if (l < 0 || l >= d.n_text_layer || h < 0 || h >= d.n_text_head)
        bad("entry " + p.dump() + " is out of range");
      m.alignment_heads_.emplace_back(l, h);
    }
  }

  // Every projection quantized as `q` says, named with openai's module names in errors.
  static void quantize(WhisperModel& m, const quant::QuantOptions& q) {
    auto named = [&](const std::string& what) { return m.source_ + ": " + what; };
    for (auto* blocks : {&m.encoder_, &m.decoder_}) {
      const std::string side = blocks == &m.encoder_ ? "encoder" : "decoder";
      for (size_t i = 0; i < blocks->size(); ++i) {
        Block& b = (*blocks)[i];
        const std::string p = side + ".blocks." + std::to_string(i) + ".";
        for (auto [att, an] : {std::pair{&b.attn, "attn."}, std::pair{&b.cross_attn, "cross_attn."}})
          for (auto [l, ln] : {std::pair{&att->query, "query"}, std::pair{&att->key, "key"},
                               std::pair{&att->value, "value"}, std::pair{&att->out, "out"}})
            *l = l->quantized(q, named(p + an + ln));
        b.fc1 = b.fc1.quantized(q, named(p + "mlp.0"));
        b.fc2 = b.fc2.quantized(q, named(p + "mlp.2"));
      }
    }
    if (q.quantize_embeddings)
      m.token_embedding_ = m.token_embedding_.quantized(q, named("decoder.token_embedding"));
  }

 private:
  static int64_t count_layers(const io::Checkpoint& ckpt, const std::string& prefix,
                              const std::string& suffix) {
    int64_t n = 0;
    while (ckpt.contains(prefix + std::to_string(n) + suffix)) ++n;
    if (n == 0) throw NotFoundError(ckpt.path() + ": tensor '" + prefix + "0" + suffix + "': not found");
    return n;
  }

  static void check_dims(const io::Checkpoint& ckpt, const WhisperDims& d) {
    auto bad = [&](const std::string& what) { throw ShapeError(ckpt.path() + ": " + what); };
    if (d.n_mels != 80 && d.n_mels != 128)
      bad("n_mels is " + std::to_string(d.n_mels) + ", expected 80 or 128");
    if (d.n_audio_head <= 0 || d.n_audio_state % d.n_audio_head != 0)
      bad("encoder width " + std::to_string(d.n_audio_state) + " is not divisible by its " +
          std::to_string(d.n_audio_head) + " heads");
    if (d.n_text_head <= 0 || d.n_text_state % d.n_text_head != 0)
      bad("decoder width " + std::to_string(d.n_text_state) + " is not divisible by its " +
          std::to_string(d.n_text_head) + " heads");
    if (d.n_audio_state != d.n_text_state) bad("encoder and decoder widths differ");
  }

  static LayerNorm ct2_norm(const WeightLoader& w, const std::string& p, int64_t dim) {
    return {w.get(p + "/gamma", {dim}), w.get(p + "/beta", {dim})};
  }
  static layers::Linear ct2_linear(const WeightLoader& w, const std::string& p, int64_t out, int64_t in) {
    return ct2_rows(w, p + "/weight", {out, in}, 0, out, w.get(p + "/bias", {out}));
  }
  // Rows [row0, row0 + rows) of the CTranslate2 weight matrix `name` (expected `shape`)
  // as a Linear with `bias`: float16 / float32 as stored, or int8 with its
  // "<name>_scale" (127 / row max) kept int8 (quant::Int8Weight::from_ct2).
  static layers::Linear ct2_rows(const WeightLoader& w, const std::string& name, const io::Shape& shape,
                                 int64_t row0, int64_t rows, at::Tensor bias) {
    const io::Checkpoint& ckpt = w.checkpoint();
    if (ckpt.info(name).dtype != io::DType::I8 || !ckpt.contains(name + "_scale"))
      return layers::Linear(w.get_matrix(name, shape).narrow(0, row0, rows).contiguous(), std::move(bias));
    if (w.shape(name) != shape)
      throw ShapeError(ckpt.path() + ": tensor '" + name + "': shape " + io::shape_to_string(w.shape(name)) +
                       ", the model expects " + io::shape_to_string(shape));
    const at::Tensor codes = io::to_torch(ckpt.raw(name)).narrow(0, row0, rows).clone();  // own, not the mmap
    const at::Tensor scale = w.get(name + "_scale", {shape[0]}).narrow(0, row0, rows);
    return layers::Linear(quant::Int8Weight::from_ct2(codes, scale, ckpt.path() + ": tensor '" + name + "'"),
                          std::move(bias));
  }
  // Self-attention and FFN, the parts encoder and decoder layers share.
  static Block ct2_block(const WeightLoader& w, const std::string& p, int64_t dim) {
    Block b;
    b.attn_ln = ct2_norm(w, p + "self_attention/layer_norm", dim);
    b.attn = ct2_fused_self_attention(w, p + "self_attention/", dim);
    b.mlp_ln = ct2_norm(w, p + "ffn/layer_norm", dim);
    // The hidden width as stored: 4 x width for openai's models, free in converted ones.
    const int64_t ffn = w.shape(p + "ffn/linear_0/weight").at(0);
    b.fc1 = ct2_linear(w, p + "ffn/linear_0", ffn, dim);
    b.fc2 = ct2_linear(w, p + "ffn/linear_1", dim, ffn);
    return b;
  }
  static Attention ct2_fused_self_attention(const WeightLoader& w, const std::string& p, int64_t dim) {
    const std::string qkv = p + "linear_0/weight";
    const io::Shape shape = {3 * dim, dim};
    const at::Tensor qkv_b = w.get(p + "linear_0/bias", {3 * dim});
    Attention a;
    a.query = ct2_rows(w, qkv, shape, 0, dim, qkv_b.narrow(0, 0, dim).contiguous());
    a.key = ct2_rows(w, qkv, shape, dim, dim, at::Tensor());  // k has no bias
    a.value = ct2_rows(w, qkv, shape, 2 * dim, dim, qkv_b.narrow(0, 2 * dim, dim).contiguous());
    a.out = ct2_linear(w, p + "linear_1", dim, dim);
    return a;
  }
  static void check_tied_projection(const WeightLoader& w, const WhisperModel& m) {
    const std::string name = "decoder/projection/weight";
    if (!w.has(name)) return;  // absent: tied by construction
    const auto& ct2 = dynamic_cast<const io::Ct2Checkpoint&>(w.checkpoint());
    auto alias = ct2.aliases().find(name);
    if (alias != ct2.aliases().end() && alias->second == "decoder/embeddings/weight") return;
    if (!at::equal(
            ct2_rows(w, name, {m.dims_.n_vocab, m.dims_.n_text_state}, 0, m.dims_.n_vocab, at::Tensor())
                .dense_weight(),
            m.token_embedding_.dense_weight()))
      throw ValueError(w.checkpoint().path() + ": tensor '" + name +
                       "': differs from the token embedding; Whisper ties them");
  }

  static LayerNorm hf_norm(const WeightLoader& w, const std::string& p, int64_t dim) {
    return {w.get(p + ".weight", {dim}), w.get(p + ".bias", {dim})};
  }
  static layers::Linear hf_linear(const WeightLoader& w, const std::string& p, int64_t out, int64_t in,
                                  bool bias = true) {
    return layers::Linear(w.get_matrix(p + ".weight", {out, in}),
                          bias ? w.get(p + ".bias", {out}) : at::Tensor());
  }
  // Self-attention and MLP, the parts encoder and decoder blocks share.
  static Block hf_block(const WeightLoader& w, const std::string& p, int64_t dim, int64_t ffn) {
    Block b;
    b.attn_ln = hf_norm(w, p + "self_attn_layer_norm", dim);
    b.attn = hf_attention(w, p + "self_attn.", dim, dim);
    b.mlp_ln = hf_norm(w, p + "final_layer_norm", dim);
    b.fc1 = hf_linear(w, p + "fc1", ffn, dim);
    b.fc2 = hf_linear(w, p + "fc2", dim, ffn);
    return b;
  }
  // openai's model.py: the same ".weight"/".bias" suffixes as Hugging Face, other module
  // names, and an MLP of 4 x width.
  static Block openai_block(const WeightLoader& w, const std::string& p, int64_t dim) {
    Block b;
    b.attn_ln = hf_norm(w, p + "attn_ln", dim);
    b.attn = openai_attention(w, p + "attn.", dim, dim);
    b.mlp_ln = hf_norm(w, p + "mlp_ln", dim);
    b.fc1 = hf_linear(w, p + "mlp.0", 4 * dim, dim);
    b.fc2 = hf_linear(w, p + "mlp.2", dim, 4 * dim);
    return b;
  }
  static Attention openai_attention(const WeightLoader& w, const std::string& p, int64_t dim, int64_t kv_in) {
    Attention a;
    a.query = hf_linear(w, p + "query", dim, dim);
    a.key = hf_linear(w, p + "key", dim, kv_in, /*bias=*/false);
    a.value = hf_linear(w, p + "value", dim, kv_in);
    a.out = hf_linear(w, p + "out", dim, dim);
    return a;
  }
  static Attention hf_attention(const WeightLoader& w, const std::string& p, int64_t dim, int64_t kv_in) {
    Attention a;
    a.query = hf_linear(w, p + "q_proj", dim, dim);
    a.key = hf_linear(w, p + "k_proj", dim, kv_in, /*bias=*/false);
    a.value = hf_linear(w, p + "v_proj", dim, kv_in);
    a.out = hf_linear(w, p + "out_proj", dim, dim);
    return a;
  }
};

std::shared_ptr<const WhisperModel> WhisperModel::load(const std::filesystem::path& path,
                                                       const quant::QuantOptions& quant) {
  auto ckpt = io::open_checkpoint(path);
  return load(*ckpt, quant);
}

std::shared_ptr<const WhisperModel> WhisperModel::load(const io::Checkpoint& ckpt,
                                                       const quant::QuantOptions& quant) {
  if (quant.type != quant::QuantType::none) quant.validate();
  auto m = std::make_shared<WhisperModel>();
  m->source_ = ckpt.path();
  if (ckpt.format() == "ct2") {
    Loader::from_ct2(*m, ckpt);
  } else if (ckpt.format() == "pytorch") {
    Loader::from_openai(*m, ckpt);
  } else {
    const auto config_path = std::filesystem::path(ckpt.path()).parent_path() / "config.json";
    const nlohmann::json config = io::read_json_file(config_path);
    const std::string type = io::json_get_or<std::string>(config, "model_type", "", config_path.string());
    if (type != "whisper")
      throw ValueError(config_path.string() + ": model_type is '" + type + "', not 'whisper'");
    Loader::from_hf(*m, ckpt, config, config_path.string());
  }
  Loader::read_alignment_heads(*m, ckpt);
  if (quant.type != quant::QuantType::none) Loader::quantize(*m, quant);
  return m;
}

int64_t WhisperModel::weight_bytes() const {
  int64_t n = 0;
  auto add = [&](const at::Tensor& t) {
    if (t.defined()) n += t.numel() * static_cast<int64_t>(t.element_size());
  };
  auto add_linear = [&](const layers::Linear& l) { n += l.weight_bytes(); };
  for (const at::Tensor* t : {&conv1_w_, &conv1_b_, &conv2_w_, &conv2_b_, &audio_pos_, &text_pos_,
                              &ln_post_.weight, &ln_post_.bias, &ln_.weight, &ln_.bias})
    add(*t);
  add_linear(token_embedding_);
  for (const auto* blocks : {&encoder_, &decoder_})
    for (const Block& b : *blocks) {
      for (const LayerNorm* ln : {&b.attn_ln, &b.cross_attn_ln, &b.mlp_ln}) {
        add(ln->weight);
        add(ln->bias);
      }
      for (const Attention* a : {&b.attn, &b.cross_attn})
        for (const layers::Linear* l : {&a->query, &a->key, &a->value, &a->out}) add_linear(*l);
      add_linear(b.fc1);
      add_linear(b.fc2);
    }
  return n;
}

// ---------------------------------------------------------------------------
// Adapters: each projection has a slot, 10 per layer, encoder layers first.

namespace {
enum Slot : size_t { kQ, kK, kV, kOut, kCrossQ, kCrossK, kCrossV, kCrossOut, kFc1, kFc2, kSlotsPerLayer };
}  // namespace

using adapters::check_bound;

std::vector<adapters::ModuleSlot> WhisperModel::adaptable_modules() const {
  std::vector<adapters::ModuleSlot> slots;
  auto add_layer = [&](const Block& b, const std::string& p, bool decoder) {
    static const char* names[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    const Attention* attns[] = {&b.attn, &b.cross_attn};
    for (int a = 0; a < 2; ++a)
      for (int i = 0; i < 4; ++i) {
        const layers::Linear* l[] = {&attns[a]->query, &attns[a]->key, &attns[a]->value, &attns[a]->out};
        if (a == 1 && !decoder)
          slots.push_back({});
        else
          slots.push_back({p + (a == 0 ? "self_attn." : "encoder_attn.") + names[i], l[i]->in_features(),
                           l[i]->out_features()});
      }
    slots.push_back({p + "fc1", b.fc1.in_features(), b.fc1.out_features()});
    slots.push_back({p + "fc2", b.fc2.in_features(), b.fc2.out_features()});
  };
  for (size_t i = 0; i < encoder_.size(); ++i)
    add_layer(encoder_[i], "model.encoder.layers." + std::to_string(i) + ".", false);
  for (size_t i = 0; i < decoder_.size(); ++i)
    add_layer(decoder_[i], "model.decoder.layers." + std::to_string(i) + ".", true);
  return slots;
}

std::shared_ptr<const adapters::BoundAdapter> WhisperModel::bind(const adapters::PeftAdapter& adapter) const {
  return adapters::BoundAdapter::bind(identity_, "the Whisper model " + source_, adaptable_modules(),
                                      adapter);
}

std::shared_ptr<const WhisperModel> WhisperModel::merged(const adapters::BoundAdapter& adapter) const {
  return with_adapter_merged(adapter, 1.0);
}

std::shared_ptr<const WhisperModel> WhisperModel::unmerged(const adapters::BoundAdapter& adapter) const {
  return with_adapter_merged(adapter, -1.0);
}

std::shared_ptr<const WhisperModel> WhisperModel::with_adapter_merged(const adapters::BoundAdapter& adapter,
                                                                      double sign) const {
  check_bound(&adapter, identity_, sign > 0 ? "WhisperModel::merged" : "WhisperModel::unmerged");
  auto m = std::make_shared<WhisperModel>(*this);  // tensors shared, not copied
  const std::vector<adapters::ModuleSlot> names = adaptable_modules();
  size_t first = 0;
  for (auto* blocks : {&m->encoder_, &m->decoder_})
    for (Block& b : *blocks) {
      layers::Linear* by_slot[kSlotsPerLayer] = {
          &b.attn.query,     &b.attn.key,         &b.attn.value,     &b.attn.out, &b.cross_attn.query,
          &b.cross_attn.key, &b.cross_attn.value, &b.cross_attn.out, &b.fc1,      &b.fc2};
      for (size_t s = 0; s < kSlotsPerLayer; ++s)
        adapters::merge_slot(*by_slot[s], adapter, first + s, sign, source_ + ": " + names[first + s].name);
      first += kSlotsPerLayer;
    }
  return m;
}

// ---------------------------------------------------------------------------
// Forward passes

at::Tensor WhisperModel::encoder_self_attention(const Block& b, const at::Tensor& x,
                                                const adapters::Projector& proj) const {
  const int64_t h = dims_.n_audio_head;
  at::Tensor q = split_heads(proj(b.attn.query, x, kQ), h), k = split_heads(proj(b.attn.key, x, kK), h),
             v = split_heads(proj(b.attn.value, x, kV), h);
  return proj(b.attn.out, merge_heads(attend(q, k, v, -1)), kOut);
}

at::Tensor WhisperModel::decoder_self_attention(const Block& b, const at::Tensor& x, WhisperKVCache& cache,
                                                size_t layer, const adapters::Projector& proj) const {
  const int64_t h = dims_.n_text_head, t = x.size(1), past = cache.length;
  at::Tensor q = split_heads(proj(b.attn.query, x, kQ), h);
  at::Tensor& ck = cache.self_k[layer];
  at::Tensor& cv = cache.self_v[layer];
  if (!ck.defined() || ck.size(2) < past + t) {  // grow: double, at least 32, at most n_text_ctx
    const int64_t capacity =
        std::min(dims_.n_text_ctx, std::max({past + t, int64_t{32}, ck.defined() ? 2 * ck.size(2) : 0}));
    for (at::Tensor* c : {&ck, &cv}) {
      at::Tensor grown = at::empty({x.size(0), h, capacity, dims_.n_text_state / h}, x.options());
      if (past > 0) grown.narrow(2, 0, past).copy_(c->narrow(2, 0, past));
      *c = grown;
    }
  }
  ck.narrow(2, past, t).copy_(split_heads(proj(b.attn.key, x, kK), h));
  cv.narrow(2, past, t).copy_(split_heads(proj(b.attn.value, x, kV), h));
  return proj(b.attn.out, merge_heads(attend(q, ck.narrow(2, 0, past + t), cv.narrow(2, 0, past + t), past)),
              kOut);
}

// Rows of one window attend to that window's K/V together: [B, H, T, dh] queries become
// [W, H, (B/W) T, dh], so beams read the audio K/V once instead of each its own copy.
at::Tensor WhisperModel::cross_attention(const Block& b, const at::Tensor& x, const WhisperKVCache& cache,
                                         size_t layer, const adapters::Projector& proj) const {
  const int64_t h = dims_.n_text_head, rows = x.size(0), t = x.size(1), w = cache.windows();
  const int64_t per_window = rows / w, dh = dims_.n_text_state / h;
  at::Tensor q = split_heads(proj(b.cross_attn.query, x, kCrossQ), h)  // [B, H, T, dh]
                     .reshape({w, per_window, h, t, dh})
                     .permute({0, 2, 1, 3, 4})
                     .reshape({w, h, per_window * t, dh});
  at::Tensor o = attend(q, cache.cross_k[layer], cache.cross_v[layer], -1)
                     .view({w, h, per_window, t, dh})
                     .permute({0, 2, 1, 3, 4})
                     .reshape({rows, h, t, dh});
  return proj(b.cross_attn.out, merge_heads(o), kCrossOut);
}

at::Tensor WhisperModel::encode(const at::Tensor& mel, const adapters::BoundAdapter* adapter) const {
  check_bound(adapter, identity_, "WhisperModel::encode");
  if (mel.dim() != 3 || mel.size(1) != dims_.n_mels || mel.size(2) != 2 * dims_.n_audio_ctx)
    throw ShapeError("WhisperModel::encode: mel must be [batch, " + std::to_string(dims_.n_mels) + ", " +
                     std::to_string(2 * dims_.n_audio_ctx) + "], got " +
                     io::shape_to_string(mel.sizes().vec()));
  at::Tensor x = at::gelu(at::conv1d(mel.to(at::kFloat), conv1_w_, conv1_b_, 1, 1));
  x = at::gelu(at::conv1d(x, conv2_w_, conv2_b_, 2, 1));
  x = x.permute({0, 2, 1}) + audio_pos_;
  for (size_t i = 0; i < encoder_.size(); ++i) {
    const Block& b = encoder_[i];
    const adapters::Projector proj(adapter, i * kSlotsPerLayer);
    x = x + encoder_self_attention(b, layer_norm(x, b.attn_ln.weight, b.attn_ln.bias), proj);
    x = x + proj(b.fc2, at::gelu(proj(b.fc1, layer_norm(x, b.mlp_ln.weight, b.mlp_ln.bias), kFc1)), kFc2);
  }
  return layer_norm(x, ln_post_.weight, ln_post_.bias);
}

WhisperKVCache WhisperModel::start(const at::Tensor& audio_features,
                                   const adapters::BoundAdapter* adapter) const {
  check_bound(adapter, identity_, "WhisperModel::start");
  WhisperKVCache cache;
  cache.adapter = adapter;
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const Block& b = decoder_[i];
    const adapters::Projector proj(adapter, (encoder_.size() + i) * kSlotsPerLayer);
    cache.cross_k.push_back(
        split_heads(proj(b.cross_attn.key, audio_features, kCrossK), dims_.n_text_head).contiguous());
    cache.cross_v.push_back(
        split_heads(proj(b.cross_attn.value, audio_features, kCrossV), dims_.n_text_head).contiguous());
  }
  cache.self_k.resize(decoder_.size());
  cache.self_v.resize(decoder_.size());
  return cache;
}

at::Tensor WhisperModel::decode(const at::Tensor& tokens, WhisperKVCache& cache,
                                std::optional<int64_t> logits_at) const {
  const int64_t t = tokens.dim() == 2 ? tokens.size(1) : 0, rows = tokens.dim() == 2 ? tokens.size(0) : 0;
  if (tokens.dim() != 2 || t < 1)
    throw ShapeError("WhisperModel::decode: tokens must be [B, T] with T >= 1, got " +
                     io::shape_to_string(tokens.sizes().vec()));
  if (logits_at && (*logits_at < 0 || *logits_at >= t))
    throw ValueError("WhisperModel::decode: logits_at " + std::to_string(*logits_at) + " is outside the " +
                     std::to_string(t) + " positions");
  if (cache.length + t > dims_.n_text_ctx)
    throw ValueError("WhisperModel::decode: " + std::to_string(cache.length + t) +
                     " tokens exceed the decoder's context of " + std::to_string(dims_.n_text_ctx));
  if (cache.cross_k.size() != decoder_.size() || cache.self_k.size() != decoder_.size())
    throw ValueError("WhisperModel::decode: the cache was not made by start() of this model");
  if (rows % cache.windows() != 0 || (cache.self_k.front().defined() && cache.self_k.front().size(0) != rows))
    throw ShapeError("WhisperModel::decode: " + std::to_string(rows) +
                     " token rows do not match the cache (" + std::to_string(cache.windows()) + " windows)");
  at::Tensor x = token_embedding_.weight_rows(tokens) + text_pos_.narrow(0, cache.length, t);
  check_bound(cache.adapter, identity_, "WhisperModel::decode");
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const Block& b = decoder_[i];
    const adapters::Projector proj(cache.adapter, (encoder_.size() + i) * kSlotsPerLayer);
    x = x + decoder_self_attention(b, layer_norm(x, b.attn_ln.weight, b.attn_ln.bias), cache, i, proj);
    x = x + cross_attention(b, layer_norm(x, b.cross_attn_ln.weight, b.cross_attn_ln.bias), cache, i, proj);
    x = x + proj(b.fc2, at::gelu(proj(b.fc1, layer_norm(x, b.mlp_ln.weight, b.mlp_ln.bias), kFc1)), kFc2);
  }
  cache.length += t;
  if (logits_at) x = x.narrow(1, *logits_at, 1);
  x = layer_norm(x, ln_.weight, ln_.bias);
  // The output projection reads the whole [vocab, d] embedding: per decoder step that is
  // most of the bytes the step reads, so few rows stream it once (layers::Linear).
  return token_embedding_(x);
}

// ---------------------------------------------------------------------------
// The decoder pass of word timestamps (transcription/word_timestamps.h): the decode path
// never keeps attention weights, this one returns the alignment heads' scores.

WhisperModel::AlignmentPass WhisperModel::alignment_pass(const at::Tensor& audio_features,
                                                         const at::Tensor& tokens,
                                                         const adapters::BoundAdapter* adapter) const {
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

  WhisperKVCache cache = start(audio_features, adapter);
  at::Tensor x = token_embedding_.weight_rows(tokens.to(at::kLong).unsqueeze(0)) + text_pos_.narrow(0, 0, t);
  std::vector<at::Tensor> scores;
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const Block& b = decoder_[i];
    const adapters::Projector proj(adapter, (encoder_.size() + i) * kSlotsPerLayer);
    x = x + decoder_self_attention(b, norm(x, b.attn_ln), cache, i, proj);
    const at::Tensor xc = norm(x, b.cross_attn_ln);
    at::Tensor q;  // [T, H, dh], only for layers with alignment heads
    for (const auto& [layer, head] : alignment_heads_) {
      if (layer != static_cast<int64_t>(i)) continue;
      if (!q.defined()) q = proj(b.cross_attn.query, xc, kCrossQ)[0].view({t, h, dh});
      scores.push_back(at::mm(q.select(1, head), cache.cross_k[i][0][head].t()).mul_(scale));
    }
    x = x + cross_attention(b, xc, cache, i, proj);
    x = x + proj(b.fc2, at::gelu(proj(b.fc1, norm(x, b.mlp_ln), kFc1)), kFc2);
  }
  x = norm(x, ln_)[0];
  return {token_embedding_(x), at::stack(scores)};
}

}  // namespace peft::models
