// T5 in one file: config and loading, the relative position bias, the encoder, and the
// decoder with its KV cache. Comments name the transformers 4.46 code each part
// follows (models/t5/modeling_t5.py).
#include "peft/models/t5.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/merge.h"
#include "peft/adapters/projector.h"
#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"
#include "peft/models/attention.h"
#include "peft/models/weight_loader.h"

namespace peft::models {

namespace {

// T5 has no position embeddings, so nothing bounds the sequence lengths but memory;
// generation needs a number (KVCache capacity, length checks).
constexpr int64_t kUnboundedPositions = int64_t{1} << 20;

// Activations transformers' ACT2FN offers that T5 checkpoints use.
at::Tensor activation(const std::string& name, const at::Tensor& x) {
  if (name == "relu") return at::relu(x);
  if (name == "gelu") return at::gelu(x);  // erf form (GELUActivation)
  if (name == "gelu_new") {
    // NewGELUActivation, written as transformers writes it (the tanh approximation).
    const double c = std::sqrt(2.0 / std::acos(-1.0));
    return 0.5 * x * (1.0 + at::tanh(c * (x + 0.044715 * at::pow(x, 3.0))));
  }
  if (name == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  if (name == "silu" || name == "swish") return at::silu(x);
  throw ValueError("unsupported activation '" + name + "'");  // load() checked the name
}

// config.json's eos_token_id: an id or a list of ids (T5Config's default: 1).
std::vector<int64_t> eos_ids(const nlohmann::json& config, const std::string& path) {
  const auto it = config.find("eos_token_id");
  if (it == config.end()) return {1};
  if (it->is_null()) return {};
  if (it->is_array()) return io::json_get<std::vector<int64_t>>(config, "eos_token_id", path);
  return {io::json_get<int64_t>(config, "eos_token_id", path)};
}

bool known_activation(const std::string& name) {
  for (const char* n : {"relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish"})
    if (name == n) return true;
  return false;
}

// The slots of one block: encoder blocks leave the cross-attention ones empty, ReLU
// blocks kWi1.
enum Slot : size_t { kQ, kK, kV, kO, kCrossQ, kCrossK, kCrossV, kCrossO, kWi0, kWi1, kWo, kSlotsPerBlock };

}  // namespace

// T5Attention._relative_position_bucket, step for step in the same dtypes.
at::Tensor t5_relative_position_bucket(const at::Tensor& relative_position, bool bidirectional,
                                       int64_t num_buckets, int64_t max_distance) {
  at::Tensor rel = relative_position.to(at::kLong);
  at::Tensor buckets = at::zeros_like(rel);
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + (rel > 0).to(at::kLong) * num_buckets;
    rel = at::abs(rel);
  } else {
    rel = -at::min(rel, at::zeros_like(rel));
  }
  // rel is now in [0, inf): half the buckets are exact distances, the rest logarithmic.
  const int64_t max_exact = num_buckets / 2;
  const at::Tensor is_small = rel < max_exact;
  // Distances below max_exact (0 among them) take the exact branch; clamping them to 1
  // here only keeps log(0) = -inf from being converted to an integer.
  at::Tensor large =
      max_exact + (at::log(rel.clamp_min(1).to(at::kFloat) / max_exact) /
                   std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                   (num_buckets - max_exact))
                      .to(at::kLong);
  large = at::min(large, at::full_like(large, num_buckets - 1));
  return buckets + at::where(is_small, rel, large);
}

// ---------------------------------------------------------------------------
// Loading

class T5Model::Loader {
 public:
  // T5Config.__init__: sizes, then feed_forward_proj "[gated-]ACT" -> (dense_act_fn,
  // is_gated_act), "gated-gelu" meaning gelu_new; keys the file also holds override the
  // derived ones (PretrainedConfig sets every remaining key last).
  static T5Config read_config(const io::HfConfig& hf) {
    const nlohmann::json& j = hf.raw;
    const std::string& path = hf.path;
    if (hf.model_type != "t5")
      throw ValueError(path + ": key 'model_type': '" + hf.model_type + "', this loader reads 't5'");
    T5Config c;
    c.vocab_size = io::json_get<int64_t>(j, "vocab_size", path);
    c.d_model = io::json_get<int64_t>(j, "d_model", path);
    c.d_kv = io::json_get<int64_t>(j, "d_kv", path);
    c.d_ff = io::json_get<int64_t>(j, "d_ff", path);
    c.num_layers = io::json_get<int64_t>(j, "num_layers", path);
    c.num_decoder_layers = io::json_get_or<int64_t>(j, "num_decoder_layers", c.num_layers, path);
    c.num_heads = io::json_get<int64_t>(j, "num_heads", path);
    c.relative_attention_num_buckets =
        io::json_get_or<int64_t>(j, "relative_attention_num_buckets", 32, path);
    c.relative_attention_max_distance =
        io::json_get_or<int64_t>(j, "relative_attention_max_distance", 128, path);
    c.layer_norm_epsilon = io::json_get_or<double>(j, "layer_norm_epsilon", 1e-6, path);
    c.tie_word_embeddings = io::json_get_or<bool>(j, "tie_word_embeddings", true, path);

    const std::string ff = io::json_get_or<std::string>(j, "feed_forward_proj", "relu", path);
    const size_t dash = ff.find('-');
    if (dash == std::string::npos) {
      c.dense_act_fn = ff;
      c.is_gated_act = false;
    } else if (ff.compare(0, dash, "gated") == 0 && ff.find('-', dash + 1) == std::string::npos) {
      c.dense_act_fn = ff == "gated-gelu" ? "gelu_new" : ff.substr(dash + 1);
      c.is_gated_act = true;
    } else {
      throw ValueError(path + ": key 'feed_forward_proj': '" + ff +
                       "' is not of the form 'ACT' or 'gated-ACT' (e.g. 'relu', 'gated-gelu')");
    }
    c.dense_act_fn = io::json_get_or<std::string>(j, "dense_act_fn", c.dense_act_fn, path);
    c.is_gated_act = io::json_get_or<bool>(j, "is_gated_act", c.is_gated_act, path);
    if (!known_activation(c.dense_act_fn))
      throw ValueError(path + ": key '" +
                       (j.contains("dense_act_fn") ? "dense_act_fn" : "feed_forward_proj") +
                       "': activation '" + c.dense_act_fn +
                       "' is not supported (relu, gelu, gelu_new, gelu_pytorch_tanh, silu, swish)");

    auto positive = [&](const char* key, int64_t v) {
      if (v <= 0) throw ValueError(path + ": key '" + key + "': " + std::to_string(v) + ", expected > 0");
    };
    positive("vocab_size", c.vocab_size);
    positive("d_model", c.d_model);
    positive("d_kv", c.d_kv);
    positive("d_ff", c.d_ff);
    positive("num_layers", c.num_layers);
    positive("num_decoder_layers", c.num_decoder_layers);
    positive("num_heads", c.num_heads);
    if (c.relative_attention_num_buckets < 4)
      throw ValueError(path + ": key 'relative_attention_num_buckets': " +
                       std::to_string(c.relative_attention_num_buckets) + ", expected >= 4");
    if (c.relative_attention_max_distance <= c.relative_attention_num_buckets / 2)
      throw ValueError(path + ": key 'relative_attention_max_distance': " +
                       std::to_string(c.relative_attention_max_distance) + ", expected > num_buckets / 2");
    if (!(c.layer_norm_epsilon > 0)) throw ValueError(path + ": key 'layer_norm_epsilon': expected > 0");
    return c;
  }

  // Special ids as generate() finds them: generation_config.json, then config.json.
  // T5 starts decoding with the pad token (decoder_start_token_id 0 in every released
  // config); a config without one falls back to pad_token_id.
  static TextModelSpecials read_specials(const io::HfConfig& hf, const std::filesystem::path& dir,
                                         int64_t vocab) {
    const nlohmann::json& j = hf.raw;
    TextModelSpecials s;
    s.vocab_size = vocab;
    s.pad_token_id = io::json_get_or<int64_t>(j, "pad_token_id", 0, hf.path);
    s.bos_token_id = io::json_get_optional<int64_t>(j, "bos_token_id", hf.path);
    s.decoder_start_token_id =
        io::json_get_or<int64_t>(j, "decoder_start_token_id", *s.pad_token_id, hf.path);
    s.eos_token_ids = eos_ids(j, hf.path);
    // Where each id came from, for the messages.
    std::string start_from = hf.path, pad_from = hf.path, eos_from = hf.path;
    const auto gen_path = dir / "generation_config.json";
    if (std::filesystem::exists(gen_path)) {
      const io::HfGenerationConfig gen = io::read_hf_generation_config(gen_path);
      if (gen.pad_token_id) std::tie(s.pad_token_id, pad_from) = std::pair{gen.pad_token_id, gen.path};
      if (gen.bos_token_id) s.bos_token_id = gen.bos_token_id;
      if (gen.decoder_start_token_id)
        std::tie(s.decoder_start_token_id, start_from) = std::pair{*gen.decoder_start_token_id, gen.path};
      if (!gen.eos_token_ids.empty())
        std::tie(s.eos_token_ids, eos_from) = std::pair{gen.eos_token_ids, gen.path};
    }
    s.max_positions = kUnboundedPositions;
    s.max_source_positions = kUnboundedPositions;
    auto check = [&](const std::string& origin, const char* key, std::optional<int64_t> id) {
      if (id && (*id < 0 || *id >= vocab))
        throw ValueError(origin + ": key '" + key + "': " + std::to_string(*id) +
                         " is outside the vocabulary of " + std::to_string(vocab));
    };
    check(start_from, "decoder_start_token_id", s.decoder_start_token_id);
    check(pad_from, "pad_token_id", s.pad_token_id);
    for (int64_t e : s.eos_token_ids) check(eos_from, "eos_token_id", e);
    return s;
  }

  static void weights(T5Model& m, const io::Checkpoint& ckpt) {
    const WeightLoader w(ckpt);
    const T5Config& c = m.config_;
    const int64_t d = c.d_model, inner = c.num_heads * c.d_kv, nb = c.relative_attention_num_buckets;
    // T5ForConditionalGeneration.shared; encoder/decoder.embed_tokens are the same
    // module, saved under whichever name survived save_pretrained's de-duplication.
    std::string embedding = "shared.weight";
    for (const char* alt : {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"})
      if (!w.has(embedding) && w.has(alt)) embedding = alt;
    m.shared_ = layers::Linear(w.get_matrix(embedding, {c.vocab_size, d}), at::Tensor());
    // Tied: tie_weights() makes lm_head the embedding whatever the file holds for it.
    m.lm_head_ = c.tie_word_embeddings
                     ? m.shared_
                     : layers::Linear(w.get_matrix("lm_head.weight", {c.vocab_size, d}), at::Tensor());

    const auto norm = [&](const std::string& name) { return w.get(name + ".weight", {d}); };
    const auto linear = [&](const std::string& name, int64_t out, int64_t in) {
      return layers::Linear(w.get_matrix(name + ".weight", {out, in}), at::Tensor());
    };
    const auto attention = [&](const std::string& p) {
      return Attention{linear(p + ".q", inner, d), linear(p + ".k", inner, d), linear(p + ".v", inner, d),
                       linear(p + ".o", d, inner)};
    };
    const auto feed_forward = [&](Block& b, const std::string& p) {
      b.ff_norm = norm(p + ".layer_norm");
      const std::string f = p + ".DenseReluDense.";
      if (c.is_gated_act) {
        b.wi0 = linear(f + "wi_0", c.d_ff, d);
        b.wi1 = linear(f + "wi_1", c.d_ff, d);
      } else {
        b.wi0 = linear(f + "wi", c.d_ff, d);
      }
      b.wo = linear(f + "wo", d, c.d_ff);
    };

    // T5Stack: only block 0 has relative_attention_bias; the others reuse its bias.
    m.encoder_bias_ =
        w.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", {nb, c.num_heads});
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
      Block b;
      b.self_norm = norm(p + "0.layer_norm");
      b.self_attn = attention(p + "0.SelfAttention");
      feed_forward(b, p + "1");
      m.encoder_.push_back(std::move(b));
    }
    m.encoder_final_norm_ = norm("encoder.final_layer_norm");

    m.decoder_bias_ =
        w.get("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", {nb, c.num_heads});
    for (int64_t i = 0; i < c.num_decoder_layers; ++i) {
      const std::string p = "decoder.block." + std::to_string(i) + ".layer.";
      Block b;
      b.self_norm = norm(p + "0.layer_norm");
      b.self_attn = attention(p + "0.SelfAttention");
      b.cross_norm = norm(p + "1.layer_norm");
      b.cross_attn = attention(p + "1.EncDecAttention");
      feed_forward(b, p + "2");
      m.decoder_.push_back(std::move(b));
    }
    m.decoder_final_norm_ = norm("decoder.final_layer_norm");
  }

  static void quantize(T5Model& m, const quant::QuantOptions& q) {
    const std::vector<adapters::ModuleSlot> names = m.adaptable_modules();
    size_t first = 0;
    for (auto* blocks : {&m.encoder_, &m.decoder_})
      for (Block& b : *blocks) {
        for (auto [l, s] : slots(b))
          if (l->defined()) *l = l->quantized(q, m.source_ + ": " + names[first + s].name);
        first += kSlotsPerBlock;
      }
    if (q.quantize_embeddings) {
      m.shared_ = m.shared_.quantized(q, m.source_ + ": shared");
      m.lm_head_ =
          m.config_.tie_word_embeddings ? m.shared_ : m.lm_head_.quantized(q, m.source_ + ": lm_head");
    }
  }

  // Every projection of a block with its slot.
  static std::vector<std::pair<layers::Linear*, size_t>> slots(Block& b) {
    return {{&b.self_attn.q, kQ},
            {&b.self_attn.k, kK},
            {&b.self_attn.v, kV},
            {&b.self_attn.o, kO},
            {&b.cross_attn.q, kCrossQ},
            {&b.cross_attn.k, kCrossK},
            {&b.cross_attn.v, kCrossV},
            {&b.cross_attn.o, kCrossO},
            {&b.wi0, kWi0},
            {&b.wi1, kWi1},
            {&b.wo, kWo}};
  }
};

std::shared_ptr<const T5Model> T5Model::load(const std::filesystem::path& dir,
                                             const quant::QuantOptions& quant) {
  if (quant.type != quant::QuantType::none) quant.validate();
  const io::HfConfig hf = io::read_hf_config(dir / "config.json");
  auto m = std::make_shared<T5Model>();
  m->config_ = Loader::read_config(hf);
  const auto ckpt = io::open_checkpoint(dir);
  m->source_ = ckpt->path();
  Loader::weights(*m, *ckpt);
  m->specials_ = Loader::read_specials(hf, dir, m->config_.vocab_size);
  if (quant.type != quant::QuantType::none) Loader::quantize(*m, quant);
  return m;
}

int64_t T5Model::weight_bytes() const {
  int64_t n = shared_.weight_bytes() + (config_.tie_word_embeddings ? 0 : lm_head_.weight_bytes());
  auto add = [&](const at::Tensor& t) {
    if (t.defined()) n += t.numel() * static_cast<int64_t>(t.element_size());
  };
  for (const at::Tensor* t : {&encoder_bias_, &decoder_bias_, &encoder_final_norm_, &decoder_final_norm_})
    add(*t);
  for (const auto* blocks : {&encoder_, &decoder_})
    for (const Block& b : *blocks) {
      add(b.self_norm);
      add(b.cross_norm);
      add(b.ff_norm);
      for (const Attention* a : {&b.self_attn, &b.cross_attn})
        for (const layers::Linear* l : {&a->q, &a->k, &a->v, &a->o}) n += l->weight_bytes();
      for (const layers::Linear* l : {&b.wi0, &b.wi1, &b.wo}) n += l->weight_bytes();
    }
  return n;
}

// ---------------------------------------------------------------------------
// Adapters: 11 slots per block (kSlotsPerBlock), encoder blocks first.

std::vector<adapters::ModuleSlot> T5Model::adaptable_modules() const {
  std::vector<adapters::ModuleSlot> out;
  auto slot = [&](const std::string& name, const layers::Linear& l) {
    out.push_back({name, l.in_features(), l.out_features()});
  };
  auto add_block = [&](const Block& b, const std::string& p, bool decoder) {
    const std::string self = p + "layer.0.SelfAttention.";
    slot(self + "q", b.self_attn.q);
    slot(self + "k", b.self_attn.k);
    slot(self + "v", b.self_attn.v);
    slot(self + "o", b.self_attn.o);
    if (decoder) {
      const std::string cross = p + "layer.1.EncDecAttention.";
      slot(cross + "q", b.cross_attn.q);
      slot(cross + "k", b.cross_attn.k);
      slot(cross + "v", b.cross_attn.v);
      slot(cross + "o", b.cross_attn.o);
    } else {
      out.resize(out.size() + 4);
    }
    const std::string ff = p + (decoder ? "layer.2" : "layer.1") + ".DenseReluDense.";
    if (config_.is_gated_act) {
      slot(ff + "wi_0", b.wi0);
      slot(ff + "wi_1", b.wi1);
    } else {
      slot(ff + "wi", b.wi0);
      out.emplace_back();
    }
    slot(ff + "wo", b.wo);
  };
  for (size_t i = 0; i < encoder_.size(); ++i)
    add_block(encoder_[i], "encoder.block." + std::to_string(i) + ".", false);
  for (size_t i = 0; i < decoder_.size(); ++i)
    add_block(decoder_[i], "decoder.block." + std::to_string(i) + ".", true);
  return out;
}

std::shared_ptr<const adapters::BoundAdapter> T5Model::bind(const adapters::PeftAdapter& adapter) const {
  return adapters::BoundAdapter::bind(identity_, "the T5 model " + source_, adaptable_modules(), adapter);
}

std::shared_ptr<const T5Model> T5Model::merged(const adapters::BoundAdapter& adapter) const {
  return with_adapter_merged(adapter, 1.0);
}

std::shared_ptr<const T5Model> T5Model::unmerged(const adapters::BoundAdapter& adapter) const {
  return with_adapter_merged(adapter, -1.0);
}

std::shared_ptr<const T5Model> T5Model::with_adapter_merged(const adapters::BoundAdapter& adapter,
                                                            double sign) const {
  adapters::check_bound(&adapter, identity_, sign > 0 ? "T5Model::merged" : "T5Model::unmerged");
  auto m = std::make_shared<T5Model>(*this);  // tensors shared, not copied
  const std::vector<adapters::ModuleSlot> names = adaptable_modules();
  size_t first = 0;
  for (auto* blocks : {&m->encoder_, &m->decoder_})
    for (Block& b : *blocks) {
      for (auto [l, s] : Loader::slots(b))
        adapters::merge_slot(*l, adapter, first + s, sign, source_ + ": " + names[first + s].name);
      first += kSlotsPerBlock;
    }
  return m;
}

// ---------------------------------------------------------------------------
// Forward passes

// T5LayerNorm: x / sqrt(mean(x^2) + eps) * weight; no mean subtracted, no bias.
at::Tensor T5Model::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  const at::Tensor variance = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x * at::rsqrt(variance + config_.layer_norm_epsilon));
}

// T5DenseActDense (wo(act(wi x))) or T5DenseGatedActDense (wo(act(wi_0 x) * wi_1 x)).
at::Tensor T5Model::feed_forward(const Block& b, const at::Tensor& x, const adapters::Projector& proj) const {
  at::Tensor h = activation(config_.dense_act_fn, proj(b.wi0, x, kWi0));
  if (config_.is_gated_act) h = h * proj(b.wi1, x, kWi1);
  return proj(b.wo, h, kWo);
}

// T5Attention.compute_bias: the bias of each (query, key) pair is the table row of
// its distance bucket, per head.
at::Tensor T5Model::position_bias(const at::Tensor& table, int64_t q0, int64_t tq, int64_t tk,
                                  bool bidirectional) const {
  const at::Tensor context = at::arange(q0, q0 + tq, at::kLong).unsqueeze(1);
  const at::Tensor memory = at::arange(tk, at::kLong).unsqueeze(0);
  const at::Tensor buckets =
      t5_relative_position_bucket(memory - context, bidirectional, config_.relative_attention_num_buckets,
                                  config_.relative_attention_max_distance);
  return at::embedding(table, buckets).permute({2, 0, 1}).unsqueeze(0);  // [1, H, tq, tk]
}

void T5Model::check_ids(const at::Tensor& ids, const char* where) const {
  if (ids.numel() == 0) return;
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= config_.vocab_size)
    throw ValueError(std::string(where) + ": token id " + std::to_string(lo < 0 ? lo : hi) +
                     " is outside the vocabulary of " + std::to_string(config_.vocab_size) + " of " +
                     source_);
}

at::Tensor T5Model::encode(const at::Tensor& input_ids, const adapters::BoundAdapter* adapter) const {
  adapters::check_bound(adapter, identity_, "T5Model::encode");
  if (input_ids.dim() != 2 || input_ids.size(0) != 1 || input_ids.size(1) < 1 ||
      at::isFloatingType(input_ids.scalar_type()))
    throw ShapeError("T5Model::encode: input_ids must be integer [1, S] with S >= 1, got " +
                     std::string(input_ids.dtype().name()) + " " +
                     io::shape_to_string(input_ids.sizes().vec()) + " (" + source_ + ")");
  const at::Tensor ids = input_ids.to(at::kLong);
  check_ids(ids, "T5Model::encode");
  const int64_t s = ids.size(1), h = config_.num_heads;
  const at::Tensor bias = position_bias(encoder_bias_, 0, s, s, /*bidirectional=*/true);
  at::Tensor x = shared_.weight_rows(ids);
  for (size_t i = 0; i < encoder_.size(); ++i) {
    const Block& b = encoder_[i];
    const adapters::Projector proj(adapter, i * kSlotsPerBlock);
    const at::Tensor n = rms_norm(x, b.self_norm);
    const at::Tensor q = split_heads(proj(b.self_attn.q, n, kQ), h),
                     k = split_heads(proj(b.self_attn.k, n, kK), h),
                     v = split_heads(proj(b.self_attn.v, n, kV), h);
    x = x + proj(b.self_attn.o, merge_heads(attend(q, k, v, -1, /*scale=*/1.0, bias)), kO);
    x = x + feed_forward(b, rms_norm(x, b.ff_norm), proj);
  }
  return rms_norm(x, encoder_final_norm_);
}

KVCache T5Model::start(const at::Tensor& encoder_output, const adapters::BoundAdapter* adapter) const {
  adapters::check_bound(adapter, identity_, "T5Model::start");
  if (encoder_output.dim() != 3 || encoder_output.size(0) != 1 || encoder_output.size(2) != config_.d_model)
    throw ShapeError("T5Model::start: encoder_output must be [1, S, " + std::to_string(config_.d_model) +
                     "], got " + io::shape_to_string(encoder_output.sizes().vec()) + " (" + source_ + ")");
  const at::Tensor enc = encoder_output.to(at::kFloat);
  KVCache cache;
  cache.adapter = adapter;
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const Block& b = decoder_[i];
    const adapters::Projector proj(adapter, (encoder_.size() + i) * kSlotsPerBlock);
    cache.cross_k.push_back(split_heads(proj(b.cross_attn.k, enc, kCrossK), config_.num_heads).contiguous());
    cache.cross_v.push_back(split_heads(proj(b.cross_attn.v, enc, kCrossV), config_.num_heads).contiguous());
  }
  cache.self_k.resize(decoder_.size());
  cache.self_v.resize(decoder_.size());
  return cache;
}

at::Tensor T5Model::decode(const at::Tensor& tokens, KVCache& cache, std::optional<int64_t> logits_at) const {
  const int64_t t = tokens.dim() == 2 ? tokens.size(1) : 0, rows = tokens.dim() == 2 ? tokens.size(0) : 0;
  if (tokens.dim() != 2 || t < 1 || rows < 1 || at::isFloatingType(tokens.scalar_type()))
    throw ShapeError("T5Model::decode: tokens must be integer [B, T] with B, T >= 1, got " +
                     io::shape_to_string(tokens.sizes().vec()) + " (" + source_ + ")");
  if (logits_at && (*logits_at < 0 || *logits_at >= t))
    throw ValueError("T5Model::decode: logits_at " + std::to_string(*logits_at) + " is outside the " +
                     std::to_string(t) + " positions");
  if (cache.cross_k.size() != decoder_.size() || cache.self_k.size() != decoder_.size())
    throw ValueError("T5Model::decode: the cache was not made by start() of this model (" + source_ + ")");
  if (cache.self_k.front().defined() && cache.self_k.front().size(0) != rows)
    throw ShapeError("T5Model::decode: " + std::to_string(rows) + " token rows, the cache holds " +
                     std::to_string(cache.self_k.front().size(0)));
  adapters::check_bound(cache.adapter, identity_, "T5Model::decode");
  const at::Tensor ids = tokens.to(at::kLong);
  check_ids(ids, "T5Model::decode");

  const int64_t past = cache.length, h = config_.num_heads;
  // Queries at past .. past + t - 1 against keys 0 .. past + t - 1; keys after a query
  // are masked by attend's causal offset (transformers adds the same mask to the bias).
  const at::Tensor bias = position_bias(decoder_bias_, past, t, past + t, /*bidirectional=*/false);
  at::Tensor x = shared_.weight_rows(ids);
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const Block& b = decoder_[i];
    const adapters::Projector proj(cache.adapter, (encoder_.size() + i) * kSlotsPerBlock);
    at::Tensor n = rms_norm(x, b.self_norm);
    const at::Tensor q = split_heads(proj(b.self_attn.q, n, kQ), h);
    const auto [k, v] = cache.append(i, split_heads(proj(b.self_attn.k, n, kK), h),
                                     split_heads(proj(b.self_attn.v, n, kV), h), specials_.max_positions);
    x = x + proj(b.self_attn.o, merge_heads(attend(q, k, v, past, /*scale=*/1.0, bias)), kO);

    n = rms_norm(x, b.cross_norm);
    const at::Tensor cq = split_heads(proj(b.cross_attn.q, n, kCrossQ), h);
    x = x + proj(b.cross_attn.o, merge_heads(attend_shared(cq, cache.cross_k[i], cache.cross_v[i], 1.0)),
                 kCrossO);

    x = x + feed_forward(b, rms_norm(x, b.ff_norm), proj);
  }
  cache.advance(t);
  if (logits_at) x = x.narrow(1, *logits_at, 1);
  x = rms_norm(x, decoder_final_norm_);
  // Mesh TensorFlow's rescaling before a tied output projection.
  if (config_.tie_word_embeddings) x = x * std::pow(static_cast<double>(config_.d_model), -0.5);
  return lm_head_(x);
}

}  // namespace peft::models
