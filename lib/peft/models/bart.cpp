// BART and MBart in one file: configuration, loading (Hugging Face safetensors), the
// encoder, and the decoder with its KV cache. Derived from transformers 4.46.3's
// modeling_bart.py / modeling_mbart.py (BartEncoderLayer, BartDecoderLayer and their MBart
// pre-LN counterparts).
#include "peft/models/bart.h"

#include <ATen/ATen.h>

#include <cmath>

#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/merge.h"
#include "peft/adapters/projector.h"
#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"
#include "peft/io/torch_tensor.h"
#include "peft/models/weight_loader.h"

namespace peft::models {

namespace {

// Adapter slots: 10 per layer, encoder layers first (as WhisperModel numbers them).
enum Slot : size_t { kQ, kK, kV, kOut, kCrossQ, kCrossK, kCrossV, kCrossOut, kFc1, kFc2, kSlotsPerLayer };

// BartLearnedPositionalEmbedding looks up position + 2 (fairseq kept rows 0 and 1 for padding).
constexpr int64_t kPositionOffset = 2;

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::layer_norm(x, {x.size(-1)}, w, b, 1e-5);  // nn.LayerNorm's default eps
}

BartActivation parse_activation(const std::string& name, const std::string& config_path) {
  if (name == "gelu") return BartActivation::gelu;
  if (name == "gelu_new" || name == "gelu_fast" || name == "gelu_pytorch_tanh")
    return BartActivation::gelu_tanh;
  if (name == "relu") return BartActivation::relu;
  if (name == "silu" || name == "swish") return BartActivation::silu;
  if (name == "tanh") return BartActivation::tanh;
  if (name == "quick_gelu") return BartActivation::quick_gelu;
  throw ValueError(
      config_path + ": key 'activation_function': '" + name +
      "' is not supported (gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, relu, silu, swish, tanh, "
      "quick_gelu)");
}

// An id that is an int or a list of ints ("eos_token_id"); empty when absent or null.
std::vector<int64_t> id_list(const nlohmann::json& j, const std::string& key, const std::string& origin) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_array()) return io::json_get<std::vector<int64_t>>(j, key, origin);
  return {io::json_get<int64_t>(j, key, origin)};
}

}  // namespace

// ---------------------------------------------------------------------------
// Loading

class BartModel::Loader {
 public:
  static BartConfig read_config(const io::HfConfig& hf) {
    const std::string& o = hf.path;
    const nlohmann::json& j = hf.raw;
    BartConfig c;
    c.model_type = hf.model_type;
    if (c.model_type != "bart" && c.model_type != "mbart")
      throw ValueError(o + ": key 'model_type': '" + c.model_type + "', expected 'bart' or 'mbart'");
    c.pre_norm = c.model_type == "mbart";
    c.vocab_size = io::json_get<int64_t>(j, "vocab_size", o);
    c.d_model = io::json_get<int64_t>(j, "d_model", o);
    c.encoder_layers = io::json_get<int64_t>(j, "encoder_layers", o);
    c.decoder_layers = io::json_get<int64_t>(j, "decoder_layers", o);
    c.encoder_heads = io::json_get<int64_t>(j, "encoder_attention_heads", o);
    c.decoder_heads = io::json_get<int64_t>(j, "decoder_attention_heads", o);
    c.encoder_ffn_dim = io::json_get<int64_t>(j, "encoder_ffn_dim", o);
    c.decoder_ffn_dim = io::json_get<int64_t>(j, "decoder_ffn_dim", o);
    c.max_position_embeddings = io::json_get<int64_t>(j, "max_position_embeddings", o);
    c.scale_embedding = io::json_get_or<bool>(j, "scale_embedding", false, o);
    c.tie_word_embeddings = io::json_get_or<bool>(j, "tie_word_embeddings", true, o);
    c.activation_name = io::json_get_or<std::string>(j, "activation_function", "gelu", o);
    c.activation = parse_activation(c.activation_name, o);

    auto positive = [&](int64_t v, const char* key) {
      if (v <= 0) throw ValueError(o + ": key '" + key + "': " + std::to_string(v) + " must be positive");
    };
    positive(c.vocab_size, "vocab_size");
    positive(c.d_model, "d_model");
    positive(c.encoder_layers, "encoder_layers");
    positive(c.decoder_layers, "decoder_layers");
    positive(c.encoder_heads, "encoder_attention_heads");
    positive(c.decoder_heads, "decoder_attention_heads");
    positive(c.encoder_ffn_dim, "encoder_ffn_dim");
    positive(c.decoder_ffn_dim, "decoder_ffn_dim");
    positive(c.max_position_embeddings, "max_position_embeddings");
    for (auto [heads, key] : {std::pair{c.encoder_heads, "encoder_attention_heads"},
                              std::pair{c.decoder_heads, "decoder_attention_heads"}})
      if (c.d_model % heads != 0)
        throw ValueError(o + ": key '" + key + "': d_model " + std::to_string(c.d_model) +
                         " is not divisible by " + std::to_string(heads) + " heads");
    return c;
  }

  // Ids from generation_config.json where it has them (generate() reads that file),
  // else from config.json.
  static void read_specials(BartModel& m, const io::HfConfig& hf, const std::filesystem::path& dir) {
    nlohmann::json gen = nlohmann::json::object();
    std::string gen_path;
    if (std::filesystem::exists(dir / "generation_config.json")) {
      gen_path = (dir / "generation_config.json").string();
      gen = io::read_hf_generation_config(gen_path).raw;
    }
    auto pick = [&](const std::string& key) -> std::pair<const nlohmann::json*, const std::string*> {
      const auto it = gen.find(key);
      if (it != gen.end() && !it->is_null()) return {&gen, &gen_path};
      return {&hf.raw, &hf.path};
    };
    auto optional_id = [&](const std::string& key) {
      auto [j, origin] = pick(key);
      return io::json_get_optional<int64_t>(*j, key, *origin);
    };
    TextModelSpecials& s = m.specials_;
    s.vocab_size = m.config_.vocab_size;
    s.max_positions = m.config_.max_position_embeddings;
    s.max_source_positions = m.config_.max_position_embeddings;
    const auto start = optional_id("decoder_start_token_id");
    if (!start)
      throw ValueError(hf.path + ": key 'decoder_start_token_id': missing (BART starts decoding with it)");
    s.decoder_start_token_id = *start;
    {
      auto [j, origin] = pick("eos_token_id");
      s.eos_token_ids = id_list(*j, "eos_token_id", *origin);
    }
    s.pad_token_id = optional_id("pad_token_id");
    s.bos_token_id = optional_id("bos_token_id");
    s.forced_bos_token_id = optional_id("forced_bos_token_id");
    s.forced_eos_token_id = optional_id("forced_eos_token_id");
    auto check = [&](std::optional<int64_t> id, const char* key) {
      if (id && (*id < 0 || *id >= s.vocab_size))
        throw ValueError(hf.path + ": key '" + key + "': " + std::to_string(*id) +
                         " is outside the vocabulary of " + std::to_string(s.vocab_size));
    };
    check(s.decoder_start_token_id, "decoder_start_token_id");
    for (int64_t e : s.eos_token_ids) check(e, "eos_token_id");
    check(s.pad_token_id, "pad_token_id");
    check(s.bos_token_id, "bos_token_id");
    check(s.forced_bos_token_id, "forced_bos_token_id");
    check(s.forced_eos_token_id, "forced_eos_token_id");
  }

  static void read_weights(BartModel& m, const io::Checkpoint& ckpt) {
    const WeightLoader w(ckpt);
    const BartConfig& c = m.config_;
    const int64_t d = c.d_model, v = c.vocab_size, positions = c.max_position_embeddings + kPositionOffset;
    // BartForConditionalGeneration's names start with "model."; a bare BartModel's
    // (architectures ["BartModel"]) do not. transformers loads either into the other.
    const std::string prefix =
        w.has("model.encoder.embed_positions.weight") || !w.has("encoder.embed_positions.weight") ? "model."
                                                                                                  : "";

    // The shared embedding: saved once as model.shared.weight (encoder/decoder embed_tokens
    // and a tied lm_head are the same parameter); some exports keep one of the aliases.
    std::string shared_name;
    for (const char* name : {"shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"})
      if (w.has(prefix + name)) {
        shared_name = prefix + name;
        break;
      }
    if (shared_name.empty())
      throw NotFoundError(ckpt.path() + ": tensor '" + prefix +
                          "shared.weight': not found (nor its aliases " + prefix +
                          "encoder.embed_tokens.weight, " + prefix + "decoder.embed_tokens.weight)");
    m.shared_ = layers::Linear(w.get_matrix(shared_name, {v, d}), at::Tensor());
    // With tie_word_embeddings (the default) transformers ties lm_head to the shared
    // embedding whatever the file holds; otherwise lm_head.weight is its own matrix.
    if (!c.tie_word_embeddings)
      m.lm_head_ = layers::Linear(w.get_matrix("lm_head.weight", {v, d}), at::Tensor());
    // A buffer transformers accepts missing (zeros).
    m.final_logits_bias_ = w.has("final_logits_bias") ? w.get("final_logits_bias", {1, v}).view({v})
                                                      : at::zeros({v}, at::kFloat);

    m.enc_positions_ = w.get(prefix + "encoder.embed_positions.weight", {positions, d});
    m.dec_positions_ = w.get(prefix + "decoder.embed_positions.weight", {positions, d});
    m.enc_ln_embedding_ = norm(w, prefix + "encoder.layernorm_embedding", d);
    m.dec_ln_embedding_ = norm(w, prefix + "decoder.layernorm_embedding", d);
    if (c.pre_norm) {
      m.enc_ln_final_ = norm(w, prefix + "encoder.layer_norm", d);
      m.dec_ln_final_ = norm(w, prefix + "decoder.layer_norm", d);
    }
    for (int64_t i = 0; i < c.encoder_layers; ++i) {
      const std::string p = prefix + "encoder.layers." + std::to_string(i) + ".";
      m.encoder_.push_back(layer(w, p, d, c.encoder_ffn_dim, false));
    }
    for (int64_t i = 0; i < c.decoder_layers; ++i) {
      const std::string p = prefix + "decoder.layers." + std::to_string(i) + ".";
      m.decoder_.push_back(layer(w, p, d, c.decoder_ffn_dim, true));
    }
  }

  static void quantize(BartModel& m, const quant::QuantOptions& q) {
    auto named = [&](const std::string& what) { return m.source_ + ": " + what; };
    for (auto* layers : {&m.encoder_, &m.decoder_}) {
      const std::string side = layers == &m.encoder_ ? "model.encoder" : "model.decoder";
      for (size_t i = 0; i < layers->size(); ++i) {
        Layer& l = (*layers)[i];
        const std::string p = side + ".layers." + std::to_string(i) + ".";
        for (auto [att, an] :
             {std::pair{&l.self_attn, "self_attn."}, std::pair{&l.cross_attn, "encoder_attn."}})
          for (auto [lin, ln] : {std::pair{&att->q, "q_proj"}, std::pair{&att->k, "k_proj"},
                                 std::pair{&att->v, "v_proj"}, std::pair{&att->out, "out_proj"}})
            *lin = lin->quantized(q, named(p + an + ln));  // undefined (encoder cross) stays so
        l.fc1 = l.fc1.quantized(q, named(p + "fc1"));
        l.fc2 = l.fc2.quantized(q, named(p + "fc2"));
      }
    }
    if (q.quantize_embeddings) {
      m.shared_ = m.shared_.quantized(q, named("model.shared"));
      m.lm_head_ = m.lm_head_.quantized(q, named("lm_head"));
    }
  }

 private:
  static LayerNorm norm(const WeightLoader& w, const std::string& p, int64_t dim) {
    return {w.get(p + ".weight", {dim}), w.get(p + ".bias", {dim})};
  }
  static layers::Linear linear(const WeightLoader& w, const std::string& p, int64_t out, int64_t in) {
    return layers::Linear(w.get_matrix(p + ".weight", {out, in}), w.get(p + ".bias", {out}));
  }
  static Attention attention(const WeightLoader& w, const std::string& p, int64_t d) {
    return {linear(w, p + "q_proj", d, d), linear(w, p + "k_proj", d, d), linear(w, p + "v_proj", d, d),
            linear(w, p + "out_proj", d, d)};
  }
  static Layer layer(const WeightLoader& w, const std::string& p, int64_t d, int64_t ffn, bool decoder) {
    Layer l;
    l.self_attn = attention(w, p + "self_attn.", d);
    l.self_attn_ln = norm(w, p + "self_attn_layer_norm", d);
    if (decoder) {
      l.cross_attn = attention(w, p + "encoder_attn.", d);
      l.cross_attn_ln = norm(w, p + "encoder_attn_layer_norm", d);
    }
    l.fc1 = linear(w, p + "fc1", ffn, d);
    l.fc2 = linear(w, p + "fc2", d, ffn);
    l.final_ln = norm(w, p + "final_layer_norm", d);
    return l;
  }
};

std::shared_ptr<const BartModel> BartModel::load(const std::filesystem::path& dir,
                                                 const quant::QuantOptions& quant) {
  if (quant.type != quant::QuantType::none) quant.validate();
  const io::HfConfig hf = io::read_hf_config(dir / "config.json");
  auto ckpt = io::open_checkpoint(dir);
  auto m = std::make_shared<BartModel>();
  m->source_ = ckpt->path();
  m->config_ = Loader::read_config(hf);
  m->embed_scale_ = m->config_.scale_embedding ? std::sqrt(static_cast<double>(m->config_.d_model)) : 1.0;
  Loader::read_specials(*m, hf, dir);
  Loader::read_weights(*m, *ckpt);
  if (quant.type != quant::QuantType::none) Loader::quantize(*m, quant);
  return m;
}

int64_t BartModel::weight_bytes() const {
  int64_t n = 0;
  auto add = [&](const at::Tensor& t) {
    if (t.defined()) n += t.numel() * static_cast<int64_t>(t.element_size());
  };
  auto add_norm = [&](const LayerNorm& ln) {
    add(ln.weight);
    add(ln.bias);
  };
  n += shared_.weight_bytes() + (lm_head_.defined() ? lm_head_.weight_bytes() : 0);
  for (const at::Tensor* t : {&final_logits_bias_, &enc_positions_, &dec_positions_}) add(*t);
  for (const LayerNorm* ln : {&enc_ln_embedding_, &dec_ln_embedding_, &enc_ln_final_, &dec_ln_final_})
    add_norm(*ln);
  for (const auto* layers : {&encoder_, &decoder_})
    for (const Layer& l : *layers) {
      for (const Attention* a : {&l.self_attn, &l.cross_attn})
        for (const layers::Linear* lin : {&a->q, &a->k, &a->v, &a->out})
          if (lin->defined()) n += lin->weight_bytes();
      n += l.fc1.weight_bytes() + l.fc2.weight_bytes();
      for (const LayerNorm* ln : {&l.self_attn_ln, &l.cross_attn_ln, &l.final_ln}) add_norm(*ln);
    }
  return n;
}

// ---------------------------------------------------------------------------
// Adapters

using adapters::check_bound;

std::vector<adapters::ModuleSlot> BartModel::adaptable_modules() const {
  std::vector<adapters::ModuleSlot> slots;
  auto add_layer = [&](const Layer& l, const std::string& p, bool decoder) {
    static const char* names[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    const Attention* attns[] = {&l.self_attn, &l.cross_attn};
    for (int a = 0; a < 2; ++a)
      for (int i = 0; i < 4; ++i) {
        const layers::Linear* lin[] = {&attns[a]->q, &attns[a]->k, &attns[a]->v, &attns[a]->out};
        if (a == 1 && !decoder)
          slots.push_back({});
        else
          slots.push_back({p + (a == 0 ? "self_attn." : "encoder_attn.") + names[i], lin[i]->in_features(),
                           lin[i]->out_features()});
      }
    slots.push_back({p + "fc1", l.fc1.in_features(), l.fc1.out_features()});
    slots.push_back({p + "fc2", l.fc2.in_features(), l.fc2.out_features()});
  };
  for (size_t i = 0; i < encoder_.size(); ++i)
    add_layer(encoder_[i], "model.encoder.layers." + std::to_string(i) + ".", false);
  for (size_t i = 0; i < decoder_.size(); ++i)
    add_layer(decoder_[i], "model.decoder.layers." + std::to_string(i) + ".", true);
  return slots;
}

std::shared_ptr<const adapters::BoundAdapter> BartModel::bind(const adapters::PeftAdapter& adapter) const {
  return adapters::BoundAdapter::bind(identity_, "the " + config_.model_type + " model " + source_,
                                      adaptable_modules(), adapter);
}

std::shared_ptr<const BartModel> BartModel::merged(const adapters::BoundAdapter& adapter) const {
  check_bound(&adapter, identity_, "BartModel::merged");
  auto m = std::make_shared<BartModel>(*this);  // tensors shared, not copied
  const std::vector<adapters::ModuleSlot> names = adaptable_modules();
  size_t first = 0;
  for (auto* layers : {&m->encoder_, &m->decoder_})
    for (Layer& l : *layers) {
      layers::Linear* by_slot[kSlotsPerLayer] = {
          &l.self_attn.q,  &l.self_attn.k,  &l.self_attn.v,    &l.self_attn.out, &l.cross_attn.q,
          &l.cross_attn.k, &l.cross_attn.v, &l.cross_attn.out, &l.fc1,           &l.fc2};
      for (size_t s = 0; s < kSlotsPerLayer; ++s)
        adapters::merge_slot(*by_slot[s], adapter, first + s, 1.0, source_ + ": " + names[first + s].name);
      first += kSlotsPerLayer;
    }
  return m;
}

// ---------------------------------------------------------------------------
// Forward passes

at::Tensor BartModel::activation(const at::Tensor& x) const {
  switch (config_.activation) {
    case BartActivation::gelu:
      return at::gelu(x);
    case BartActivation::gelu_tanh:
      return at::gelu(x, "tanh");
    case BartActivation::relu:
      return at::relu(x);
    case BartActivation::silu:
      return at::silu(x);
    case BartActivation::tanh:
      return at::tanh(x);
    case BartActivation::quick_gelu:
      return x * at::sigmoid(1.702 * x);
  }
  return x;
}

void BartModel::check_ids(const at::Tensor& ids, const char* where) const {
  if (ids.dim() != 2 || ids.size(1) < 1 || !at::isIntegralType(ids.scalar_type(), /*includeBool=*/false))
    throw ShapeError(std::string(where) + ": ids must be integer [B, T] with T >= 1, got " +
                     io::shape_to_string(ids.sizes().vec()) + " " +
                     std::string(c10::toString(ids.scalar_type())));
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= config_.vocab_size)
    throw ValueError(std::string(where) + ": token id " + std::to_string(lo < 0 ? lo : hi) +
                     " is outside the vocabulary of " + std::to_string(config_.vocab_size) + " (" + source_ +
                     ")");
}

at::Tensor BartModel::embed(const at::Tensor& ids, const at::Tensor& positions, int64_t first_position,
                            const LayerNorm& ln) const {
  at::Tensor x = shared_.weight_rows(ids.to(at::kLong));
  if (embed_scale_ != 1.0) x = x * embed_scale_;
  x = x + positions.narrow(0, first_position + kPositionOffset, ids.size(1));
  return layer_norm(x, ln.weight, ln.bias);
}

at::Tensor BartModel::feed_forward(const Layer& l, const at::Tensor& x,
                                   const adapters::Projector& proj) const {
  return proj(l.fc2, activation(proj(l.fc1, x, kFc1)), kFc2);
}

at::Tensor BartModel::encode(const at::Tensor& input_ids, const adapters::BoundAdapter* adapter) const {
  check_bound(adapter, identity_, "BartModel::encode");
  check_ids(input_ids, "BartModel::encode");
  const int64_t s = input_ids.size(1);
  if (input_ids.size(0) != 1)
    throw ShapeError("BartModel::encode: input_ids must be [1, S] (one sequence), got " +
                     io::shape_to_string(input_ids.sizes().vec()));
  if (s > config_.max_position_embeddings)
    throw ValueError("BartModel::encode: " + std::to_string(s) + " input tokens exceed the " +
                     std::to_string(config_.max_position_embeddings) + " positions of " + source_);
  const bool pre = config_.pre_norm;
  const int64_t h = config_.encoder_heads;
  at::Tensor x = embed(input_ids, enc_positions_, 0, enc_ln_embedding_);
  for (size_t i = 0; i < encoder_.size(); ++i) {
    const Layer& l = encoder_[i];
    const adapters::Projector proj(adapter, i * kSlotsPerLayer);
    // Self-attention (BartAttention scales q after its projection: the same as scaling
    // the scores by 1/sqrt(head_dim), which attend() does).
    at::Tensor y = pre ? layer_norm(x, l.self_attn_ln.weight, l.self_attn_ln.bias) : x;
    at::Tensor q = split_heads(proj(l.self_attn.q, y, kQ), h), k = split_heads(proj(l.self_attn.k, y, kK), h),
               v = split_heads(proj(l.self_attn.v, y, kV), h);
    x = x + proj(l.self_attn.out, merge_heads(attend(q, k, v, -1)), kOut);
    if (!pre) x = layer_norm(x, l.self_attn_ln.weight, l.self_attn_ln.bias);
    // Feed-forward.
    y = pre ? layer_norm(x, l.final_ln.weight, l.final_ln.bias) : x;
    x = x + feed_forward(l, y, proj);
    if (!pre) x = layer_norm(x, l.final_ln.weight, l.final_ln.bias);
  }
  if (pre) x = layer_norm(x, enc_ln_final_.weight, enc_ln_final_.bias);
  return x;
}

KVCache BartModel::start(const at::Tensor& encoder_output, const adapters::BoundAdapter* adapter) const {
  check_bound(adapter, identity_, "BartModel::start");
  if (encoder_output.dim() != 3 || encoder_output.size(0) != 1 || encoder_output.size(1) < 1 ||
      encoder_output.size(2) != config_.d_model)
    throw ShapeError("BartModel::start: encoder_output must be [1, S, " + std::to_string(config_.d_model) +
                     "], got " + io::shape_to_string(encoder_output.sizes().vec()));
  const at::Tensor enc = encoder_output.to(at::kFloat);
  KVCache cache;
  cache.adapter = adapter;
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const Layer& l = decoder_[i];
    const adapters::Projector proj(adapter, (encoder_.size() + i) * kSlotsPerLayer);
    cache.cross_k.push_back(
        split_heads(proj(l.cross_attn.k, enc, kCrossK), config_.decoder_heads).contiguous());
    cache.cross_v.push_back(
        split_heads(proj(l.cross_attn.v, enc, kCrossV), config_.decoder_heads).contiguous());
  }
  cache.self_k.resize(decoder_.size());
  cache.self_v.resize(decoder_.size());
  return cache;
}

at::Tensor BartModel::decode(const at::Tensor& tokens, KVCache& cache,
                             std::optional<int64_t> logits_at) const {
  check_ids(tokens, "BartModel::decode");
  const int64_t rows = tokens.size(0), t = tokens.size(1), past = cache.length;
  if (logits_at && (*logits_at < 0 || *logits_at >= t))
    throw ValueError("BartModel::decode: logits_at " + std::to_string(*logits_at) + " is outside the " +
                     std::to_string(t) + " positions");
  if (past + t > config_.max_position_embeddings)
    throw ValueError("BartModel::decode: " + std::to_string(past + t) + " tokens exceed the decoder's " +
                     std::to_string(config_.max_position_embeddings) + " positions (" + source_ + ")");
  if (cache.cross_k.size() != decoder_.size() || cache.cross_v.size() != decoder_.size())
    throw ValueError("BartModel::decode: the cache was not made by start() of this model");
  if (past > 0 &&
      (cache.self_k.empty() || !cache.self_k.front().defined() || cache.self_k.front().size(0) != rows))
    throw ShapeError("BartModel::decode: " + std::to_string(rows) + " token rows do not match the cache's " +
                     (cache.self_k.empty() || !cache.self_k.front().defined()
                          ? std::string("(empty)")
                          : std::to_string(cache.self_k.front().size(0))));
  check_bound(cache.adapter, identity_, "BartModel::decode");
  const bool pre = config_.pre_norm;
  const int64_t h = config_.decoder_heads;
  at::Tensor x = embed(tokens, dec_positions_, past, dec_ln_embedding_);
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const Layer& l = decoder_[i];
    const adapters::Projector proj(cache.adapter, (encoder_.size() + i) * kSlotsPerLayer);
    // Causal self-attention over the cache plus these tokens.
    at::Tensor y = pre ? layer_norm(x, l.self_attn_ln.weight, l.self_attn_ln.bias) : x;
    at::Tensor q = split_heads(proj(l.self_attn.q, y, kQ), h);
    auto [k, v] = cache.append(i, split_heads(proj(l.self_attn.k, y, kK), h),
                               split_heads(proj(l.self_attn.v, y, kV), h), config_.max_position_embeddings);
    x = x + proj(l.self_attn.out, merge_heads(attend(q, k, v, past)), kOut);
    if (!pre) x = layer_norm(x, l.self_attn_ln.weight, l.self_attn_ln.bias);
    // Cross-attention: every row against the one encoder output.
    y = pre ? layer_norm(x, l.cross_attn_ln.weight, l.cross_attn_ln.bias) : x;
    q = split_heads(proj(l.cross_attn.q, y, kCrossQ), h);
    x = x +
        proj(l.cross_attn.out, merge_heads(attend_shared(q, cache.cross_k[i], cache.cross_v[i])), kCrossOut);
    if (!pre) x = layer_norm(x, l.cross_attn_ln.weight, l.cross_attn_ln.bias);
    // Feed-forward.
    y = pre ? layer_norm(x, l.final_ln.weight, l.final_ln.bias) : x;
    x = x + feed_forward(l, y, proj);
    if (!pre) x = layer_norm(x, l.final_ln.weight, l.final_ln.bias);
  }
  cache.advance(t);
  if (logits_at) x = x.narrow(1, *logits_at, 1);
  if (pre) x = layer_norm(x, dec_ln_final_.weight, dec_ln_final_.bias);
  const layers::Linear& head = lm_head_.defined() ? lm_head_ : shared_;
  return head(x) + final_logits_bias_;
}

}  // namespace peft::models
