// Llama-family decoder in one file: loading (GGUF and Hugging Face layouts), RMSNorm,
// rotary embeddings, grouped-query attention with a KV cache, SwiGLU.
#include "peft/models/llama.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <map>
#include <optional>

#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/merge.h"
#include "peft/adapters/projector.h"
#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"
#include "peft/models/llama_step.h"
#include "peft/models/weight_loader.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/ops/packed_linear.h"
#include "peft/quant/gguf_block_weight.h"
#include "peft/quant/group4_weight.h"
#include "peft/quant/int8_weight.h"

namespace peft::models {

namespace {

enum Slot : size_t { kQ, kK, kV, kO, kGate, kUp, kDown, kSlotsPerLayer };
const char* const kSlotNames[kSlotsPerLayer] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                "mlp.down_proj"};

// The per-token pieces below are loops over float32 buffers, not chains of libtorch
// ops: on the [1, 1, 576] tensors of a decode step each op's dispatch and allocation
// cost more than its arithmetic (SmolLM2 Q4_1, one thread, perf: about 30% of a 23 ms
// token was outside the projection kernels before; decode 53-59 -> 70-81 tok/s on two).

// Hugging Face's LlamaRMSNorm: x / sqrt(mean(x^2) + eps) * w, in float32 (the mean of
// squares summed in double here).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  if (x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat || !x.is_contiguous() ||
      !w.is_contiguous())
    return x * at::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
  const int64_t d = x.size(-1), rows = x.numel() / d;
  at::Tensor y = at::empty_like(x);
  for (int64_t r = 0; r < rows; ++r)
    llama::rms_norm_row(x.data_ptr<float>() + r * d, w.data_ptr<float>(), d, eps,
                        y.data_ptr<float>() + r * d);
  return y;
}

// rotate_half rotary embedding (Hugging Face's layout: dimension i pairs with i + D/2),
// in place on a projection's output y [B, T, H * D] (before split_heads); cos/sin [T, D].
void apply_rotary(at::Tensor& y, int64_t heads, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t b = y.size(0), t = y.size(1), d = y.size(2) / heads, half = d / 2;
  if (y.scalar_type() != at::kFloat || !y.is_contiguous()) {
    at::Tensor x = y.view({b, t, heads, d});
    at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
    y = (x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)).reshape({b, t, heads * d});
    return;
  }
  float* p = y.data_ptr<float>();
  for (int64_t r = 0; r < b * t; ++r)
    llama::rotary_row(p + r * heads * d, heads, d, cos.data_ptr<float>() + (r % t) * d,
                      sin.data_ptr<float>() + (r % t) * d);
}

// silu(g) * u, in place in g (a fresh projection output).
at::Tensor swiglu(at::Tensor g, const at::Tensor& u) {
  if (g.scalar_type() != at::kFloat || u.scalar_type() != at::kFloat || !g.is_contiguous() ||
      !u.is_contiguous() || g.sizes() != u.sizes())
    return at::silu(g) * u;
  float* gp = g.data_ptr<float>();
  const float* up = u.data_ptr<float>();
  for (int64_t i = 0, n = g.numel(); i < n; ++i) gp[i] = llama::silu_times(gp[i], up[i]);
  return g;
}

// The projections `slots` of x in one parallel region when they allow it (packed_view,
// no adapter, few rows: a decode step), else one by one through proj.
std::vector<at::Tensor> project(const adapters::Projector& proj, bool adapter, const at::Tensor& x,
                                std::initializer_list<std::pair<const layers::Linear*, size_t>> slots) {
  if (!adapter && x.numel() / x.size(-1) <= ops::kFewRows) {
    std::vector<at::Tensor> keep;
    std::vector<ops::PackedWeight> views;
    for (const auto& s : slots) {
      std::optional<ops::PackedWeight> v =
          s.first->bias().defined() ? std::nullopt : llama::packed_view(*s.first, keep);
      if (!v) break;
      views.push_back(*v);
    }
    if (views.size() == slots.size()) return ops::few_rows_linear_packed_many(x, views);
  }
  std::vector<at::Tensor> ys;
  for (const auto& [l, slot] : slots) ys.push_back(proj(*l, x, slot));
  return ys;
}

}  // namespace

// ---------------------------------------------------------------------------
// Loading

class LlamaModel::Loader {
 public:
  static void from_gguf(LlamaModel& m, const io::Checkpoint& ckpt) {
    const nlohmann::json& meta = ckpt.metadata();
    const std::string origin = ckpt.path();
    LlamaConfig& c = m.config_;
    c.architecture = io::json_get<std::string>(meta, "general.architecture", origin);
    if (c.architecture != "llama" && c.architecture != "qwen2")
      throw ValueError(origin + ": general.architecture '" + c.architecture +
                       "' is not a Llama-family architecture (llama, qwen2)");
    const std::string a = c.architecture + ".";
    c.num_hidden_layers = io::json_get<int64_t>(meta, a + "block_count", origin);
    c.hidden_size = io::json_get<int64_t>(meta, a + "embedding_length", origin);
    c.intermediate_size = io::json_get<int64_t>(meta, a + "feed_forward_length", origin);
    c.num_attention_heads = io::json_get<int64_t>(meta, a + "attention.head_count", origin);
    c.num_key_value_heads =
        io::json_get_or<int64_t>(meta, a + "attention.head_count_kv", c.num_attention_heads, origin);
    c.max_position_embeddings = io::json_get<int64_t>(meta, a + "context_length", origin);
    c.rope_theta = io::json_get_or<double>(meta, a + "rope.freq_base", 10000.0, origin);
    c.rms_norm_eps = io::json_get<double>(meta, a + "attention.layer_norm_rms_epsilon", origin);
    check_heads(c, origin);
    c.head_dim = io::json_get_or<int64_t>(meta, a + "attention.key_length",
                                          c.hidden_size / c.num_attention_heads, origin);
    const int64_t rope_dims = io::json_get_or<int64_t>(meta, a + "rope.dimension_count", c.head_dim, origin);
    if (rope_dims != c.head_dim)
      throw ValueError(origin + ": " + a + "rope.dimension_count " + std::to_string(rope_dims) +
                       " differs from the head size " + std::to_string(c.head_dim) +
                       " (partial rotary embeddings are not supported)");
    if (meta.contains(a + "rope.scaling.type") && meta[a + "rope.scaling.type"] != "none")
      throw ValueError(origin + ": " + a + "rope.scaling.type '" + meta[a + "rope.scaling.type"].dump() +
                       "' is not supported");
    c.vocab_size = ckpt.info("token_embd.weight").shape.at(0);
    c.tie_word_embeddings = !ckpt.contains("output.weight");

    const WeightLoader w(ckpt);
    const int64_t d = c.hidden_size, dq = c.num_attention_heads * c.head_dim,
                  dkv = c.num_key_value_heads * c.head_dim, f = c.intermediate_size;
    // llama.cpp's converter reorders query/key rows for "llama" only (qwen2 keeps
    // Hugging Face's rotary layout).
    const bool permuted = c.architecture == "llama";
    m.embed_tokens_ = gguf_linear(ckpt, "token_embd.weight", {c.vocab_size, d}, 0);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      Block b;
      b.attn_norm = w.get(p + "attn_norm.weight", {d});
      b.mlp_norm = w.get(p + "ffn_norm.weight", {d});
      b.q = gguf_linear(ckpt, p + "attn_q", {dq, d}, permuted ? c.num_attention_heads : 0);
      b.k = gguf_linear(ckpt, p + "attn_k", {dkv, d}, permuted ? c.num_key_value_heads : 0);
      b.v = gguf_linear(ckpt, p + "attn_v", {dkv, d}, 0);
      b.o = gguf_linear(ckpt, p + "attn_output", {d, dq}, 0);
      b.gate = gguf_linear(ckpt, p + "ffn_gate", {f, d}, 0);
      b.up = gguf_linear(ckpt, p + "ffn_up", {f, d}, 0);
      b.down = gguf_linear(ckpt, p + "ffn_down", {d, f}, 0);
      m.layers_.push_back(std::move(b));
    }
    m.norm_ = w.get("output_norm.weight", {d});
    m.lm_head_ =
        c.tie_word_embeddings ? m.embed_tokens_ : gguf_linear(ckpt, "output.weight", {c.vocab_size, d}, 0);
  }

  static void from_hf(LlamaModel& m, const io::Checkpoint& ckpt, const io::HfConfig& hf) {
    const nlohmann::json& j = hf.raw;
    const std::string& origin = hf.path;
    LlamaConfig& c = m.config_;
    c.architecture = hf.model_type;
    if (c.architecture != "llama" && c.architecture != "mistral" && c.architecture != "qwen2")
      throw ValueError(origin + ": model_type '" + c.architecture +
                       "' is not a Llama-family architecture (llama, mistral, qwen2)");
    c.vocab_size = io::json_get<int64_t>(j, "vocab_size", origin);
    c.hidden_size = io::json_get<int64_t>(j, "hidden_size", origin);
    c.intermediate_size = io::json_get<int64_t>(j, "intermediate_size", origin);
    c.num_hidden_layers = io::json_get<int64_t>(j, "num_hidden_layers", origin);
    c.num_attention_heads = io::json_get<int64_t>(j, "num_attention_heads", origin);
    c.num_key_value_heads = io::json_get_or<int64_t>(j, "num_key_value_heads", c.num_attention_heads, origin);
    c.max_position_embeddings = io::json_get<int64_t>(j, "max_position_embeddings", origin);
    c.rope_theta = io::json_get_or<double>(j, "rope_theta", 10000.0, origin);
    c.rms_norm_eps = io::json_get_or<double>(j, "rms_norm_eps", 1e-6, origin);
    c.tie_word_embeddings = io::json_get_or<bool>(j, "tie_word_embeddings", false, origin);
    check_heads(c, origin);
    c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null()
                     ? io::json_get<int64_t>(j, "head_dim", origin)
                     : c.hidden_size / c.num_attention_heads;
    if (j.contains("sliding_window") && !j["sliding_window"].is_null() &&
        io::json_get_or<bool>(j, "use_sliding_window", c.architecture == "mistral", origin) &&
        j["sliding_window"].get<int64_t>() < c.max_position_embeddings)
      throw ValueError(origin + ": sliding_window attention is not supported");
    if (j.contains("hidden_act") && j["hidden_act"] != "silu")
      throw ValueError(origin + ": hidden_act " + j["hidden_act"].dump() + " is not supported (silu)");
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
      const nlohmann::json& s = j["rope_scaling"];
      const std::string type = s.value("rope_type", s.value("type", std::string()));
      if (type != "llama3")
        throw ValueError(origin + ": rope_scaling type '" + type + "' is not supported (llama3)");
      c.rope_llama3_factor = io::json_get<double>(s, "factor", origin);
      c.rope_low_freq_factor = io::json_get<double>(s, "low_freq_factor", origin);
      c.rope_high_freq_factor = io::json_get<double>(s, "high_freq_factor", origin);
      c.rope_original_max_positions = io::json_get<int64_t>(s, "original_max_position_embeddings", origin);
    }

    const WeightLoader w(ckpt);
    const int64_t d = c.hidden_size, dq = c.num_attention_heads * c.head_dim,
                  dkv = c.num_key_value_heads * c.head_dim, f = c.intermediate_size;
    auto linear = [&](const std::string& name, const io::Shape& shape) {
      at::Tensor bias;
      if (w.has(name + ".bias")) bias = w.get(name + ".bias", {shape[0]});
      return layers::Linear(w.get_matrix(name + ".weight", shape), bias);
    };
    m.embed_tokens_ = layers::Linear(w.get_matrix("model.embed_tokens.weight", {c.vocab_size, d}), {});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      Block b;
      b.attn_norm = w.get(p + "input_layernorm.weight", {d});
      b.mlp_norm = w.get(p + "post_attention_layernorm.weight", {d});
      b.q = linear(p + "self_attn.q_proj", {dq, d});
      b.k = linear(p + "self_attn.k_proj", {dkv, d});
      b.v = linear(p + "self_attn.v_proj", {dkv, d});
      b.o = linear(p + "self_attn.o_proj", {d, dq});
      b.gate = linear(p + "mlp.gate_proj", {f, d});
      b.up = linear(p + "mlp.up_proj", {f, d});
      b.down = linear(p + "mlp.down_proj", {d, f});
      m.layers_.push_back(std::move(b));
    }
    m.norm_ = w.get("model.norm.weight", {d});
    if (c.tie_word_embeddings || !w.has("lm_head.weight")) {
      c.tie_word_embeddings = true;
      m.lm_head_ = m.embed_tokens_;
    } else {
      m.lm_head_ = layers::Linear(w.get_matrix("lm_head.weight", {c.vocab_size, d}), {});
    }
  }

  static void quantize(LlamaModel& m, const quant::QuantOptions& q) {
    auto named = [&](const std::string& what) { return m.source_ + ": " + what; };
    for (size_t i = 0; i < m.layers_.size(); ++i) {
      Block& b = m.layers_[i];
      layers::Linear* by_slot[kSlotsPerLayer] = {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down};
      for (size_t s = 0; s < kSlotsPerLayer; ++s)
        *by_slot[s] =
            by_slot[s]->quantized(q, named("model.layers." + std::to_string(i) + "." + kSlotNames[s]));
    }
    // f32 undoes the file's quantization everywhere; the others touch embeddings only on request.
    if (q.type == quant::QuantType::f32 || q.quantize_embeddings) {
      const bool tied = m.config_.tie_word_embeddings;
      m.embed_tokens_ = m.embed_tokens_.quantized(q, named("model.embed_tokens"));
      m.lm_head_ = tied ? m.embed_tokens_ : m.lm_head_.quantized(q, named("lm_head"));
    }
  }

 private:
  static void check_heads(const LlamaConfig& c, const std::string& origin) {
    if (c.num_attention_heads <= 0 || c.num_key_value_heads <= 0 ||
        c.num_attention_heads % c.num_key_value_heads != 0 || c.hidden_size <= 0 || c.num_hidden_layers <= 0)
      throw ValueError(origin + ": " + std::to_string(c.num_attention_heads) + " attention heads, " +
                       std::to_string(c.num_key_value_heads) + " key/value heads, hidden size " +
                       std::to_string(c.hidden_size) + ", " + std::to_string(c.num_hidden_layers) +
                       " layers: the query heads must be a positive multiple of the key/value heads");
  }

  // A GGUF projection, as stored (float, or ggml blocks). `rotary_heads` > 0: a query or
  // key weight, whose rows llama.cpp's converter permuted within each head from Hugging
  // Face's [first halves; second halves] to interleaved pairs (Hugging Face row
  // s * D/2 + j is GGUF row 2j + s); they are put back. Rows are whole blocks, so this
  // is exact for quantized weights too.
  static layers::Linear gguf_linear(const io::Checkpoint& ckpt, const std::string& name_or_prefix,
                                    const io::Shape& shape, int64_t rotary_heads) {
    const std::string name = ckpt.contains(name_or_prefix) ? name_or_prefix : name_or_prefix + ".weight";
    io::TensorData t = ckpt.raw(name);
    if (t.info.shape != shape)
      throw ShapeError(ckpt.path() + ": tensor '" + name + "': shape " + io::shape_to_string(t.info.shape) +
                       ", expected " + io::shape_to_string(shape));
    if (rotary_heads > 0) t = unpermute_rotary_rows(t, rotary_heads);
    at::Tensor bias;
    const std::string bias_name = name_or_prefix + ".bias";
    if (ckpt.contains(bias_name)) {
      if (rotary_heads > 0)
        throw ValueError(ckpt.path() + ": tensor '" + bias_name +
                         "': a bias on a reordered query/key is not supported");
      bias = WeightLoader(ckpt).get(bias_name, {shape[0]});
    }
    if (quant::GgufBlockWeight::supports(t.info.dtype))
      return layers::Linear(quant::GgufBlockWeight::from_tensor(t), bias);
    if (t.info.dtype == io::DType::F32 || t.info.dtype == io::DType::F16) {
      std::vector<float> values(t.info.numel);
      io::decode_to_float(t.info.dtype, t.data, t.info.numel, values.data());
      at::Tensor wt = at::from_blob(values.data(), {shape[0], shape[1]}, at::kFloat).clone();
      return layers::Linear(t.info.dtype == io::DType::F16 ? wt.to(at::kHalf) : wt, bias);
    }
    throw ValueError(ckpt.path() + ": tensor '" + name + "': type " +
                     std::string(io::dtype_name(t.info.dtype)) +
                     " is not supported (F32, F16, Q4_0, Q4_1, Q8_0)");
  }

  static io::TensorData unpermute_rotary_rows(const io::TensorData& t, int64_t heads) {
    const int64_t rows = t.info.shape[0], head_dim = rows / heads, half = head_dim / 2;
    const uint64_t row_bytes = t.info.nbytes / static_cast<uint64_t>(rows);
    auto buffer = std::make_shared<std::vector<uint8_t>>(t.info.nbytes);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t r = 0; r < head_dim; ++r) {
        const int64_t s = r / half, j = r % half;
        std::memcpy(buffer->data() + (h * head_dim + r) * row_bytes,
                    t.data + (h * head_dim + 2 * j + s) * row_bytes, row_bytes);
      }
    io::TensorData out = t;
    out.data = buffer->data();
    out.owner = buffer;
    return out;
  }
};

std::shared_ptr<const LlamaModel> LlamaModel::load(const std::filesystem::path& path,
                                                   const quant::QuantOptions& quant) {
  if (quant.type != quant::QuantType::none) quant.validate();
  auto m = std::make_shared<LlamaModel>();
  m->source_ = path.string();
  const bool hf_dir = std::filesystem::is_directory(path) && std::filesystem::exists(path / "config.json");
  std::unique_ptr<io::Checkpoint> ckpt = io::open_checkpoint(path);
  if (ckpt->format() == "gguf") {
    Loader::from_gguf(*m, *ckpt);
  } else if (hf_dir) {
    Loader::from_hf(*m, *ckpt, io::read_hf_config(path / "config.json"));
  } else {
    throw FormatError(path.string(), "model",
                      "neither a GGUF file nor a Hugging Face directory with config.json (found a " +
                          ckpt->format() + " checkpoint)");
  }
  LlamaConfig& c = m->config_;
  // Rotary frequencies as Hugging Face computes them (float32), with Llama 3.1's scaling.
  at::Tensor inv_freq =
      1.0 / at::pow(c.rope_theta, at::arange(0, c.head_dim, 2, at::kLong).to(at::kFloat) / c.head_dim);
  if (c.rope_llama3_factor > 0) {
    const double low_wavelen = c.rope_original_max_positions / c.rope_low_freq_factor;
    const double high_wavelen = c.rope_original_max_positions / c.rope_high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv_freq;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / c.rope_llama3_factor, inv_freq);
    at::Tensor smooth = (c.rope_original_max_positions / wavelen - c.rope_low_freq_factor) /
                        (c.rope_high_freq_factor - c.rope_low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / c.rope_llama3_factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  }
  m->inv_freq_ = inv_freq.to(at::kFloat);
  if (quant.type != quant::QuantType::none) Loader::quantize(*m, quant);
  m->prepare_fused_step();
  return m;
}

void LlamaModel::prepare_fused_step() {
  step_.reset();
  auto s = std::make_shared<llama::StepModel>();
  const LlamaConfig& c = config_;
  s->hidden = c.hidden_size;
  s->heads = c.num_attention_heads;
  s->kv_heads = c.num_key_value_heads;
  s->head_dim = c.head_dim;
  s->intermediate = c.intermediate_size;
  s->vocab = c.vocab_size;
  s->max_positions = c.max_position_embeddings;
  s->eps = c.rms_norm_eps;
  auto norm = [&](const at::Tensor& w) -> const float* {
    if (w.scalar_type() != at::kFloat || !w.is_contiguous()) return nullptr;
    return w.data_ptr<float>();
  };
  auto view = [&](const layers::Linear& l, llama::StepProjection& out) {
    std::optional<llama::StepProjection> v = llama::StepModel::view(l, s->keep);
    if (v) out = *v;
    return v.has_value();
  };
  for (const Block& b : layers_) {
    llama::StepModel::Layer l;
    l.attn_norm = norm(b.attn_norm);
    l.mlp_norm = norm(b.mlp_norm);
    if (!l.attn_norm || !l.mlp_norm || !view(b.q, l.q) || !view(b.k, l.k) || !view(b.v, l.v) ||
        !view(b.o, l.o) || !view(b.gate, l.gate) || !view(b.up, l.up) || !view(b.down, l.down))
      return;
    s->layers.push_back(l);
  }
  s->norm = norm(norm_);
  if (!s->norm || !view(lm_head_, s->lm_head)) return;
  step_ = std::move(s);
}

std::pair<at::Tensor, at::Tensor> LlamaModel::rotary_tables(int64_t start, int64_t t) const {
  // Float32 as Hugging Face computes them.
  const at::Tensor positions = at::arange(start, start + t, at::kLong).to(at::kFloat);
  const at::Tensor freqs = at::outer(positions, inv_freq_);
  const at::Tensor angles = at::cat({freqs, freqs}, -1);
  return {angles.cos().contiguous(), angles.sin().contiguous()};
}

// ---------------------------------------------------------------------------
// Adapters: 7 slots per layer (kSlotNames).

std::vector<adapters::ModuleSlot> LlamaModel::adaptable_modules() const {
  std::vector<adapters::ModuleSlot> slots;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Block& b = layers_[i];
    const layers::Linear* by_slot[kSlotsPerLayer] = {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down};
    for (size_t s = 0; s < kSlotsPerLayer; ++s)
      slots.push_back({"model.layers." + std::to_string(i) + "." + kSlotNames[s], by_slot[s]->in_features(),
                       by_slot[s]->out_features()});
  }
  return slots;
}

std::shared_ptr<const adapters::BoundAdapter> LlamaModel::bind(const adapters::PeftAdapter& adapter) const {
  return adapters::BoundAdapter::bind(identity_, "the " + config_.architecture + " model " + source_,
                                      adaptable_modules(), adapter);
}

std::shared_ptr<const LlamaModel> LlamaModel::merged(const adapters::BoundAdapter& adapter) const {
  return with_adapter_merged(adapter, 1.0);
}

std::shared_ptr<const LlamaModel> LlamaModel::unmerged(const adapters::BoundAdapter& adapter) const {
  return with_adapter_merged(adapter, -1.0);
}

std::shared_ptr<const LlamaModel> LlamaModel::with_adapter_merged(const adapters::BoundAdapter& adapter,
                                                                  double sign) const {
  adapters::check_bound(&adapter, identity_, sign > 0 ? "LlamaModel::merged" : "LlamaModel::unmerged");
  auto m = std::make_shared<LlamaModel>(*this);  // tensors shared, not copied
  for (size_t i = 0; i < m->layers_.size(); ++i) {
    Block& b = m->layers_[i];
    layers::Linear* by_slot[kSlotsPerLayer] = {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down};
    for (size_t s = 0; s < kSlotsPerLayer; ++s)
      adapters::merge_slot(*by_slot[s], adapter, i * kSlotsPerLayer + s, sign,
                           source_ + ": model.layers." + std::to_string(i) + "." + kSlotNames[s]);
  }
  m->prepare_fused_step();
  return m;
}

// ---------------------------------------------------------------------------
// Forward pass

KVCache LlamaModel::start(const adapters::BoundAdapter* adapter) const {
  adapters::check_bound(adapter, identity_, "LlamaModel::start");
  KVCache cache;
  cache.adapter = adapter;
  return cache;
}

at::Tensor LlamaModel::attention(const Block& b, const at::Tensor& x, KVCache& cache, size_t layer,
                                 const adapters::Projector& proj, const at::Tensor& cos,
                                 const at::Tensor& sin) const {
  const int64_t rows = x.size(0), t = x.size(1), hq = config_.num_attention_heads,
                hkv = config_.num_key_value_heads, dh = config_.head_dim, group = hq / hkv;
  std::vector<at::Tensor> qkv =
      project(proj, cache.adapter != nullptr, x, {{&b.q, kQ}, {&b.k, kK}, {&b.v, kV}});
  apply_rotary(qkv[0], hq, cos, sin);
  apply_rotary(qkv[1], hkv, cos, sin);
  at::Tensor q = split_heads(qkv[0], hq);
  at::Tensor k = split_heads(qkv[1], hkv);
  at::Tensor v = split_heads(qkv[2], hkv);
  auto [keys, values] = cache.append(layer, k, v, config_.max_position_embeddings);
  at::Tensor o;
  if (t == 1 && group > 1) {
    // One query per row: the `group` query heads that share a key/value head attend
    // together, reading its K/V once ([B, Hkv, group, dh] against [B, Hkv, S, dh]).
    o = attend(q.reshape({rows, hkv, group, dh}), keys, values, -1).reshape({rows, hq, 1, dh});
  } else {
    if (group > 1) {
      keys = keys.repeat_interleave(group, 1);
      values = values.repeat_interleave(group, 1);
    }
    o = attend(q.contiguous(), keys, values, cache.length);
  }
  return proj(b.o, merge_heads(o), kO);
}

at::Tensor LlamaModel::decode(const at::Tensor& tokens, KVCache& cache,
                              std::optional<int64_t> logits_at) const {
  adapters::check_bound(cache.adapter, identity_, "LlamaModel::decode");
  if (tokens.dim() != 2 || tokens.size(1) == 0 || tokens.scalar_type() != at::kLong)
    throw ShapeError("LlamaModel::decode: tokens must be int64 [batch, length > 0], got " +
                     io::shape_to_string(tokens.sizes().vec()));
  const int64_t t = tokens.size(1);
  if (logits_at && (*logits_at < 0 || *logits_at >= t))
    throw ValueError("LlamaModel::decode: logits_at " + std::to_string(*logits_at) + " is outside the " +
                     std::to_string(t) + " tokens");
  if (cache.length + t > config_.max_position_embeddings)
    throw ValueError("LlamaModel::decode: " + std::to_string(cache.length + t) + " positions exceed the " +
                     std::to_string(config_.max_position_embeddings) + "-token context of " + source_);
  if (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= config_.vocab_size)
    throw ValueError("LlamaModel::decode: token ids must be in [0, " + std::to_string(config_.vocab_size) +
                     ")");

  // int8 / int4 projections from integer activations too, as the ggml blocks are.
  const ops::IntegerActivationsScope integer_activations;
  at::Tensor x = embed_tokens_.weight_rows(tokens).contiguous();
  const double eps = config_.rms_norm_eps;
  // Rotary angles of positions cache.length .. + t - 1; the same for every layer.
  const auto [cos, sin] = rotary_tables(cache.length, t);
  const int64_t rows = tokens.size(0);
  if (step_ && t == 1 && cache.adapter == nullptr && rows <= ops::kFewRows && x.scalar_type() == at::kFloat) {
    at::Tensor logits = at::empty({rows, 1, config_.vocab_size}, x.options());
    llama::fused_step(*step_, x.data_ptr<float>(), rows, cache, cos.data_ptr<float>(), sin.data_ptr<float>(),
                      logits.data_ptr<float>());
    cache.advance(1);
    return logits;
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Block& b = layers_[i];
    const adapters::Projector proj(cache.adapter, i * kSlotsPerLayer);
    x = x + attention(b, rms_norm(x, b.attn_norm, eps), cache, i, proj, cos, sin);
    const at::Tensor h = rms_norm(x, b.mlp_norm, eps);
    std::vector<at::Tensor> gate_up =
        project(proj, cache.adapter != nullptr, h, {{&b.gate, kGate}, {&b.up, kUp}});
    x = x + proj(b.down, swiglu(gate_up[0], gate_up[1]), kDown);
  }
  cache.advance(t);
  if (logits_at) x = x.narrow(1, *logits_at, 1);
  return lm_head_(rms_norm(x, norm_, eps));
}

int64_t LlamaModel::weight_bytes() const {
  int64_t n = embed_tokens_.weight_bytes() + norm_.numel() * 4;
  if (!config_.tie_word_embeddings) n += lm_head_.weight_bytes();
  for (const Block& b : layers_) {
    n += (b.attn_norm.numel() + b.mlp_norm.numel()) * 4;
    for (const layers::Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) n += l->weight_bytes();
  }
  return n;
}

std::string LlamaModel::weight_summary() const {
  std::map<std::string, int> counts;
  for (const Block& b : layers_)
    for (const layers::Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down})
      ++counts[l->weight_format()];
  std::string s = "embeddings " + embed_tokens_.weight_format() +
                  (config_.tie_word_embeddings ? " (tied output)" : ", output " + lm_head_.weight_format()) +
                  "; projections";
  for (const auto& [format, n] : counts) s += " " + format + " x" + std::to_string(n);
  return s;
}

}  // namespace peft::models
