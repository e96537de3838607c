// T5 against transformers 4.46.3 on tiny random checkpoints (tests/reference/make_t5_fixture.py):
// t5_v1_0 (ReLU feed-forward, tied embeddings), t5_v1_1 (gated-gelu, untied lm_head,
// num_heads * d_kv != d_model) and t5_v1_0_fp16 (float16 weights). Logits, encoder
// outputs and LoRA / AdaLoRA logits within 1e-4 relative; greedy tokens exactly;
// incremental and beam-reordered decoding equal to teacher forcing; bad checkpoints and
// inputs rejected with errors naming the file.
#define BOOST_TEST_MODULE t5
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "models/generate_kwargs.h"
#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/peft_adapter.h"
#include "peft/error.h"
#include "peft/generation/generate.h"
#include "peft/generation/token_scorer.h"
#include "peft/io/hf_config.h"
#include "peft/io/safetensors.h"
#include "peft/io/torch_tensor.h"
#include "peft/models/t5.h"
#include "peft/quant/quant_type.h"
#include "test_support.h"

using namespace peft;
using models::KVCache;
using models::T5Model;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kFixtures = {"t5_v1_0", "t5_v1_1", "t5_v1_0_fp16"};
const std::vector<std::string> kAdapters = {"lora", "adalora"};
constexpr int kInputs = 4;  // lengths 6, 11, 18 and 150

fs::path fixture(const std::string& name) { return peft_test::fixtures_dir() / "models" / name; }

std::shared_ptr<const T5Model> model(const std::string& name) {
  static std::map<std::string, std::shared_ptr<const T5Model>> cache;
  auto& m = cache[name];
  if (!m) m = T5Model::load(fixture(name));
  return m;
}

struct Reference {
  std::unique_ptr<io::SafetensorsCheckpoint> tensors;
  nlohmann::json json;
  at::Tensor get(const std::string& name) const { return io::load_tensor(*tensors, name).clone(); }
};

const Reference& reference(const std::string& name) {
  static std::map<std::string, Reference> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    Reference r;
    r.tensors = std::make_unique<io::SafetensorsCheckpoint>(fixture(name) / "reference.safetensors");
    r.json = nlohmann::json::parse(peft_test::read_file(fixture(name) / "reference.json"));
    it = cache.emplace(name, std::move(r)).first;
  }
  return it->second;
}

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  BOOST_REQUIRE_EQUAL(got.sizes(), want.sizes());
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

at::Tensor ids_of(const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).unsqueeze(0); }

at::Tensor teacher_forced(const T5Model& m, const at::Tensor& input_ids, const at::Tensor& decoder_ids,
                          const adapters::BoundAdapter* adapter = nullptr) {
  KVCache cache = m.start(m.encode(input_ids, adapter), adapter);
  return m.decode(decoder_ids, cache);
}

// Copies every tensor of `src` (a float32 checkpoint) into `dst`/model.safetensors,
// letting `edit` drop or change them first; config.json and generation_config.json are
// copied unchanged.
void write_edited(const std::string& src, const fs::path& dst,
                  const std::function<void(std::map<std::string, at::Tensor>&)>& edit) {
  fs::create_directories(dst);
  for (const char* f : {"config.json", "generation_config.json"}) fs::copy_file(fixture(src) / f, dst / f);
  const io::SafetensorsCheckpoint ckpt(fixture(src) / "model.safetensors");
  std::map<std::string, at::Tensor> tensors;
  for (const auto& info : ckpt.tensors()) tensors[info.name] = io::load_tensor(ckpt, info.name).clone();
  edit(tensors);
  std::vector<io::TensorToWrite> out;
  for (auto& [name, t] : tensors) {
    t = t.to(at::kFloat).contiguous();
    out.push_back(
        {name, io::DType::F32, t.sizes().vec(), t.data_ptr(), static_cast<uint64_t>(t.numel()) * 4});
  }
  io::write_safetensors(dst / "model.safetensors", out, {{"format", "pt"}});
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json config = nlohmann::json::parse(peft_test::read_file(dir / "config.json"));
  edit(config);
  peft_test::write_file(dir / "config.json", config.dump(2));
}

}  // namespace

BOOST_AUTO_TEST_CASE(relative_position_buckets_are_transformers) {
  for (const std::string name : {"t5_v1_0", "t5_v1_1"}) {
    const auto& b = reference(name).json.at("buckets");
    const at::Tensor rel = at::arange(-300, 301, at::kLong);
    for (const auto& [key, bidirectional] :
         {std::pair{"bidirectional", true}, std::pair{"unidirectional", false}}) {
      const at::Tensor got =
          models::t5_relative_position_bucket(rel, bidirectional, b.at("num_buckets"), b.at("max_distance"));
      const at::Tensor want = at::tensor(b.at(key).get<std::vector<int64_t>>(), at::kLong);
      BOOST_CHECK_MESSAGE(at::equal(got, want), name << " " << key << " buckets differ from transformers'");
    }
  }
}

BOOST_AUTO_TEST_CASE(config_and_special_ids) {
  const auto v10 = model("t5_v1_0"), v11 = model("t5_v1_1");
  BOOST_CHECK_EQUAL(v10->config().dense_act_fn, "relu");
  BOOST_CHECK(!v10->config().is_gated_act);
  BOOST_CHECK(v10->config().tie_word_embeddings);
  BOOST_CHECK_EQUAL(v11->config().dense_act_fn, "gelu_new");
  BOOST_CHECK(v11->config().is_gated_act);
  BOOST_CHECK(!v11->config().tie_word_embeddings);
  BOOST_CHECK_EQUAL(v11->config().num_heads * v11->config().d_kv, 16);
  BOOST_CHECK_EQUAL(v10->architecture(), "t5");
  for (const auto& name : kFixtures) {
    const auto& want = reference(name).json.at("specials");
    const auto& s = model(name)->specials();
    BOOST_CHECK_EQUAL(s.vocab_size, want.at("vocab_size").get<int64_t>());
    BOOST_CHECK_EQUAL(s.decoder_start_token_id, want.at("decoder_start_token_id").get<int64_t>());
    BOOST_REQUIRE_EQUAL(s.eos_token_ids.size(), 1u);
    BOOST_CHECK_EQUAL(s.eos_token_ids[0], want.at("eos_token_id").get<int64_t>());
    BOOST_CHECK_EQUAL(s.pad_token_id.value_or(-1), want.at("pad_token_id").get<int64_t>());
    BOOST_CHECK(!s.bos_token_id && want.at("bos_token_id").is_null());
    BOOST_CHECK(!s.forced_bos_token_id && want.at("forced_bos_token_id").is_null());
  }
}

BOOST_AUTO_TEST_CASE(encoder_output_and_logits_match_transformers) {
  for (const auto& name : kFixtures) {
    const auto m = model(name);
    const Reference& ref = reference(name);
    const at::Tensor dec = ref.get("decoder_input_ids");
    for (int i = 0; i < kInputs; ++i) {
      const std::string n = std::to_string(i);
      const at::Tensor ids = ref.get("input_ids_" + n);
      const at::Tensor enc = m->encode(ids);
      const double enc_err = relative_error(enc, ref.get("encoder_" + n));
      BOOST_CHECK_MESSAGE(enc_err < 1e-4, name << " input " << i << ": encoder relative error " << enc_err);
      KVCache cache = m->start(enc);
      const at::Tensor logits = m->decode(dec, cache);
      const double err = relative_error(logits, ref.get("logits_" + n));
      BOOST_CHECK_MESSAGE(err < 1e-4, name << " input " << i << ": logits relative error " << err);
      BOOST_TEST_MESSAGE(name << " input " << i << ": encoder " << enc_err << ", logits " << err);
      BOOST_CHECK_EQUAL(cache.length, dec.size(1));
      // logits_at: the same row alone.
      KVCache again = m->start(enc);
      const at::Tensor last = m->decode(dec, again, dec.size(1) - 2);
      BOOST_CHECK(at::allclose(last[0][0], logits[0][dec.size(1) - 2], 1e-5, 1e-5));
    }
  }
}

BOOST_AUTO_TEST_CASE(float16_weights_stay_float16) {
  const auto half = model("t5_v1_0_fp16"), full = model("t5_v1_0");
  // Matrices kept in float16: about half the bytes (norms and biases are float32).
  BOOST_CHECK_LT(half->weight_bytes(), full->weight_bytes() * 0.55);
}

BOOST_AUTO_TEST_CASE(incremental_decoding_equals_teacher_forcing) {
  for (const std::string name : {"t5_v1_0", "t5_v1_1"}) {
    const auto m = model(name);
    const Reference& ref = reference(name);
    const at::Tensor ids = ref.get("input_ids_2"), dec = ref.get("decoder_input_ids");
    const at::Tensor enc = m->encode(ids);
    KVCache whole = m->start(enc);
    const at::Tensor full = m->decode(dec, whole);
    // A prefix of 3, then one token at a time.
    KVCache cache = m->start(enc);
    std::vector<at::Tensor> parts = {m->decode(dec.narrow(1, 0, 3), cache)};
    for (int64_t t = 3; t < dec.size(1); ++t) parts.push_back(m->decode(dec.narrow(1, t, 1), cache));
    const double err = relative_error(at::cat(parts, 1), full);
    BOOST_CHECK_MESSAGE(err < 1e-5, name << ": incremental vs teacher-forced relative error " << err);

    // Beams: one row becomes three, each extended by its own token, reordered, extended.
    const std::vector<int64_t> prefix = {0, 17, 42};
    KVCache beams = m->start(enc);
    m->decode(ids_of(prefix), beams);
    beams.select(at::tensor(std::vector<int64_t>{0, 0, 0}, at::kLong));
    m->decode(at::tensor(std::vector<int64_t>{5, 9, 33}, at::kLong).view({3, 1}), beams);
    beams.select(at::tensor(std::vector<int64_t>{2, 0, 2}, at::kLong));
    const at::Tensor step =
        m->decode(at::tensor(std::vector<int64_t>{7, 60, 2}, at::kLong).view({3, 1}), beams);
    const std::vector<std::vector<int64_t>> rows = {
        {0, 17, 42, 33, 7}, {0, 17, 42, 5, 60}, {0, 17, 42, 33, 2}};
    for (size_t r = 0; r < rows.size(); ++r) {
      const at::Tensor want = teacher_forced(*m, ids, ids_of(rows[r]))[0][4];
      const double e = relative_error(step[r][0], want);
      BOOST_CHECK_MESSAGE(e < 1e-5, name << ": beam row " << r << " relative error " << e);
    }
  }
}

BOOST_AUTO_TEST_CASE(greedy_argmax_equals_transformers_generate) {
  for (const std::string name : {"t5_v1_0", "t5_v1_1"}) {
    const auto m = model(name);
    const auto& json = reference(name).json;
    const int64_t eos = m->specials().eos_token_ids.at(0);
    for (const auto& input : json.at("inputs")) {
      const auto& greedy = input.at("generate").at("greedy");
      const int64_t max_new = greedy.at("kwargs").at("max_new_tokens");
      KVCache cache = m->start(m->encode(ids_of(input.at("input_ids").get<std::vector<int64_t>>())));
      std::vector<int64_t> tokens = {m->specials().decoder_start_token_id};
      while (static_cast<int64_t>(tokens.size()) <= max_new && tokens.back() != eos) {
        const at::Tensor logits = m->decode(ids_of({tokens.back()}), cache);
        tokens.push_back(logits[0][0].argmax().item<int64_t>());
      }
      BOOST_CHECK_EQUAL_COLLECTIONS(tokens.begin(), tokens.end(), greedy.at("sequence").begin(),
                                    greedy.at("sequence").end());
    }
  }
}

// generation::generate() replays every recorded generate() call (greedy, beam search
// with length penalties and early stopping, no-repeat n-grams, repetition penalty with
// min_new_tokens) token for token.
BOOST_AUTO_TEST_CASE(generate_matches_transformers_for_every_recorded_option_set) {
  for (const std::string name : {"t5_v1_0", "t5_v1_1"}) {
    const auto m = model(name);
    const io::HfGenerationConfig defaults =
        io::read_hf_generation_config(fixture(name) / "generation_config.json");
    int checked = 0;
    for (const auto& input : reference(name).json.at("inputs"))
      for (const auto& [case_name, g] : input.at("generate").items()) {
        const nlohmann::json& kw = g.at("kwargs");
        generation::GenerationOptions o = peft_test::options_from_kwargs(kw, defaults);
        o.eos_token_ids = m->specials().eos_token_ids;
        auto scorer =
            generation::seq2seq_scorer(m, ids_of(input.at("input_ids").get<std::vector<int64_t>>()));
        const auto r = generation::generate(*scorer, {m->specials().decoder_start_token_id}, o);
        std::vector<int64_t> got = {m->specials().decoder_start_token_id};
        got.insert(got.end(), r.tokens.begin(), r.tokens.end());
        BOOST_TEST(got == g.at("sequence").get<std::vector<int64_t>>(), name << " " << case_name);
        ++checked;
      }
    BOOST_TEST(checked == 32);
  }
}

BOOST_AUTO_TEST_CASE(peft_adapters_match_peft_logits) {
  for (const std::string name : {"t5_v1_0", "t5_v1_1"}) {
    const auto m = model(name);
    const Reference& ref = reference(name);
    const at::Tensor dec = ref.get("decoder_input_ids");
    size_t named_slots = 0;
    for (const auto& s : m->adaptable_modules()) named_slots += s.name.empty() ? 0 : 1;
    for (const auto& a : kAdapters) {
      const auto adapter = adapters::PeftAdapter::load(fixture(name) / a);
      // The fixture adapters target every projection: each of our names is one of peft's.
      BOOST_CHECK_EQUAL(adapter.modules().size(), named_slots);
      const auto bound = m->bind(adapter);
      const auto merged = m->merged(*bound);
      for (int i = 0; i < kInputs; ++i) {
        const std::string n = std::to_string(i);
        const at::Tensor ids = ref.get("input_ids_" + n), want = ref.get(a + "_logits_" + n);
        const double err = relative_error(teacher_forced(*m, ids, dec, bound.get()), want);
        BOOST_CHECK_MESSAGE(err < 1e-4, name << " " << a << " input " << i << ": relative error " << err);
        const double merr = relative_error(teacher_forced(*merged, ids, dec), want);
        BOOST_CHECK_MESSAGE(merr < 1e-4,
                            name << " " << a << " merged, input " << i << ": relative error " << merr);
      }
      // Saved here: the files peft wrote, byte for byte in the config and value for value
      // in the tensors (so peft reads them as its own), and read back the same.
      peft_test::TempDir tmp;
      adapter.save(tmp / a);
      BOOST_CHECK_EQUAL(peft_test::read_file(tmp / a / "adapter_config.json"),
                        peft_test::read_file(fixture(name) / a / "adapter_config.json"));
      const io::SafetensorsCheckpoint theirs(fixture(name) / a / "adapter_model.safetensors");
      const io::SafetensorsCheckpoint ours(tmp / a / "adapter_model.safetensors");
      BOOST_CHECK_EQUAL(ours.tensors().size(), theirs.tensors().size());
      for (const auto& info : theirs.tensors())
        BOOST_CHECK_MESSAGE(ours.contains(info.name) && at::equal(io::load_tensor(ours, info.name),
                                                                  io::load_tensor(theirs, info.name)),
                            name << " " << a << ": " << info.name);
      const auto reread = m->bind(adapters::PeftAdapter::load(tmp / a));
      const at::Tensor ids0 = ref.get("input_ids_0");
      BOOST_CHECK_LT(relative_error(teacher_forced(*m, ids0, dec, reread.get()), ref.get(a + "_logits_0")),
                     1e-4);
      // Back to the base, up to float32 rounding.
      const auto base = merged->unmerged(*merged->bind(adapter));
      const at::Tensor ids = ref.get("input_ids_1");
      BOOST_CHECK_LT(relative_error(teacher_forced(*base, ids, dec), ref.get("logits_1")), 1e-4);
      // A binding is for the model it was made with.
      PEFT_CHECK_THROW_MSG(merged->encode(ids, bound.get()), ValueError, {"bound to another model"});
    }
  }
}

BOOST_AUTO_TEST_CASE(module_names_are_peft_names) {
  const auto names = [](const T5Model& m) {
    std::set<std::string> out;
    for (const auto& s : m.adaptable_modules())
      if (!s.name.empty()) out.insert(s.name);
    return out;
  };
  const auto v10 = names(*model("t5_v1_0")), v11 = names(*model("t5_v1_1"));
  for (const char* n :
       {"encoder.block.0.layer.0.SelfAttention.q", "encoder.block.1.layer.1.DenseReluDense.wi",
        "decoder.block.0.layer.1.EncDecAttention.o", "decoder.block.1.layer.2.DenseReluDense.wo"})
    BOOST_CHECK_MESSAGE(v10.count(n), n);
  for (const char* n :
       {"decoder.block.0.layer.2.DenseReluDense.wi_0", "decoder.block.1.layer.2.DenseReluDense.wi_1",
        "encoder.block.0.layer.1.DenseReluDense.wi_1", "decoder.block.1.layer.1.EncDecAttention.k"})
    BOOST_CHECK_MESSAGE(v11.count(n), n);
  BOOST_CHECK_EQUAL(v10.size(), 2u * 6 + 2u * 10);  // q k v o wi wo; + EncDecAttention q k v o
  BOOST_CHECK_EQUAL(v11.size(), 2u * 7 + 2u * 11);
}

// int8 against transformers run on the same int8-rounded weights (the script's
// int8_logits_i), and against float. The v1.0 fixture amplifies any perturbation (its
// strong random layers; the script prints 21-42% for int8 rounding there), so the
// "within a few % of float" check is made on v1.1 (1.4-2.2%).
BOOST_AUTO_TEST_CASE(int8_matches_int8_reference_and_stays_close_to_float) {
  for (const std::string name : {"t5_v1_0", "t5_v1_1"}) {
    quant::QuantOptions q;
    q.type = quant::QuantType::int8;
    const auto m = T5Model::load(fixture(name), q);
    const Reference& ref = reference(name);
    double vs_int8 = 0, vs_float = 0;
    for (int i = 0; i < kInputs; ++i) {
      const std::string n = std::to_string(i);
      const at::Tensor logits = teacher_forced(*m, ref.get("input_ids_" + n), ref.get("decoder_input_ids"));
      vs_int8 = std::max(vs_int8, relative_error(logits, ref.get("int8_logits_" + n)));
      vs_float = std::max(vs_float, relative_error(logits, ref.get("logits_" + n)));
    }
    BOOST_TEST_MESSAGE(name << " int8: relative logit error " << vs_int8 << " vs int8 reference, " << vs_float
                            << " vs float");
    BOOST_CHECK_LT(vs_int8, 1e-4);
    BOOST_CHECK_GT(vs_float, 1e-3);  // the weights did change
    if (name == "t5_v1_1") BOOST_CHECK_LT(vs_float, 0.05);
    BOOST_CHECK_LT(m->weight_bytes(), model(name)->weight_bytes());
  }
}

// Other ways a T5 directory holds the same model: sharded safetensors, the embedding
// under encoder.embed_tokens (save_pretrained keeps one name of the shared module), a
// stale lm_head.weight beside tied embeddings (transformers ties over it).
BOOST_AUTO_TEST_CASE(checkpoint_layouts_give_the_same_logits) {
  peft_test::TempDir tmp;
  const Reference& ref = reference("t5_v1_0");
  const at::Tensor ids = ref.get("input_ids_1"), dec = ref.get("decoder_input_ids"),
                   want = ref.get("logits_1");
  const auto check = [&](const fs::path& dir, const std::string& what) {
    const double err = relative_error(teacher_forced(*T5Model::load(dir), ids, dec), want);
    BOOST_CHECK_MESSAGE(err < 1e-4, what << ": relative error " << err);
  };
  {
    const fs::path dir = tmp / "renamed";
    write_edited("t5_v1_0", dir, [](auto& t) {
      t["encoder.embed_tokens.weight"] = t.at("shared.weight");
      t.erase("shared.weight");
      t["lm_head.weight"] = at::randn_like(t.at("encoder.embed_tokens.weight"));
    });
    check(dir, "embedding as encoder.embed_tokens, a stale lm_head");
  }
  {
    const fs::path dir = tmp / "sharded";
    write_edited("t5_v1_0", dir, [](auto&) {});
    const io::SafetensorsCheckpoint whole(dir / "model.safetensors");
    nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
    std::vector<io::TensorToWrite> shards[2];
    std::vector<at::Tensor> keep;
    for (const auto& info : whole.tensors()) {
      const int which = info.name.rfind("decoder.", 0) == 0 ? 1 : 0;
      keep.push_back(io::load_tensor(whole, info.name).clone());
      const at::Tensor& t = keep.back();
      shards[which].push_back(
          {info.name, io::DType::F32, t.sizes().vec(), t.data_ptr(), static_cast<uint64_t>(t.numel()) * 4});
      index["weight_map"][info.name] = "model-0000" + std::to_string(which + 1) + "-of-00002.safetensors";
    }
    for (int i = 0; i < 2; ++i)
      io::write_safetensors(dir / ("model-0000" + std::to_string(i + 1) + "-of-00002.safetensors"), shards[i],
                            {{"format", "pt"}});
    fs::remove(dir / "model.safetensors");
    peft_test::write_file(dir / "model.safetensors.index.json", index.dump(2));
    check(dir, "two shards");
  }
  // quantize_embeddings: the tied embedding / lm_head quantized once, still close.
  quant::QuantOptions q;
  q.type = quant::QuantType::int8;
  const auto plain = T5Model::load(fixture("t5_v1_1"), q);
  q.quantize_embeddings = true;
  const auto all = T5Model::load(fixture("t5_v1_1"), q);
  BOOST_CHECK_LT(all->weight_bytes(), plain->weight_bytes());
  const Reference& r11 = reference("t5_v1_1");
  const double err = relative_error(
      teacher_forced(*all, r11.get("input_ids_1"), r11.get("decoder_input_ids")), r11.get("logits_1"));
  BOOST_TEST_MESSAGE("t5_v1_1 int8 with embeddings: relative logit error " << err);
  BOOST_CHECK_LT(err, 0.05);
}

BOOST_AUTO_TEST_CASE(bad_checkpoints_name_the_file) {
  peft_test::TempDir tmp;
  {  // a missing tensor
    const fs::path dir = tmp / "missing";
    write_edited("t5_v1_0", dir,
                 [](auto& t) { t.erase("decoder.block.1.layer.2.DenseReluDense.wo.weight"); });
    PEFT_CHECK_THROW_MSG(
        T5Model::load(dir), NotFoundError,
        {(dir / "model.safetensors").string(), "decoder.block.1.layer.2.DenseReluDense.wo.weight"});
  }
  {  // the untied lm_head missing
    const fs::path dir = tmp / "no_lm_head";
    write_edited("t5_v1_1", dir, [](auto& t) { t.erase("lm_head.weight"); });
    PEFT_CHECK_THROW_MSG(T5Model::load(dir), NotFoundError,
                         {(dir / "model.safetensors").string(), "lm_head.weight"});
  }
  {  // a wrong shape
    const fs::path dir = tmp / "shape";
    write_edited("t5_v1_1", dir, [](auto& t) {
      auto& w = t["encoder.block.0.layer.0.SelfAttention.k.weight"];
      w = w.narrow(0, 0, w.size(0) - 1);
    });
    PEFT_CHECK_THROW_MSG(
        T5Model::load(dir), ShapeError,
        {(dir / "model.safetensors").string(), "encoder.block.0.layer.0.SelfAttention.k.weight"});
  }
  {  // a bias table of the wrong number of buckets
    const fs::path dir = tmp / "buckets";
    write_edited("t5_v1_0", dir, [](auto&) {});
    edit_config(dir, [](auto& c) { c["relative_attention_num_buckets"] = 16; });
    PEFT_CHECK_THROW_MSG(T5Model::load(dir), ShapeError, {"relative_attention_bias.weight"});
  }
  const fs::path dir = tmp / "config";
  write_edited("t5_v1_0", dir, [](auto&) {});
  const std::string config = (dir / "config.json").string();
  const std::string original = peft_test::read_file(dir / "config.json");
  // Corrupt JSON.
  peft_test::write_file(dir / "config.json", original.substr(0, original.size() / 2));
  PEFT_CHECK_THROW_MSG(T5Model::load(dir), FormatError, {config});
  // Values this port does not implement, or that are not T5.
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::vector<std::string>>> bad = {
      // config.json's dense_act_fn / is_gated_act (save_pretrained writes them) would win
      // over feed_forward_proj, as in transformers: dropped here.
      {[](auto& c) {
         c["feed_forward_proj"] = "gated-mish";
         c.erase("dense_act_fn");
         c.erase("is_gated_act");
       },
       {"feed_forward_proj", "mish"}},
      {[](auto& c) { c["feed_forward_proj"] = "gated-gelu-x"; }, {"feed_forward_proj"}},
      {[](auto& c) { c["dense_act_fn"] = "quick_gelu"; }, {"dense_act_fn", "quick_gelu"}},
      {[](auto& c) { c["model_type"] = "bart"; }, {"model_type", "bart"}},
      {[](auto& c) { c["num_heads"] = 0; }, {"num_heads"}},
      {[](auto& c) { c["decoder_start_token_id"] = 500; }, {"decoder_start_token_id", "500"}},
  };
  for (const auto& [edit, parts] : bad) {
    peft_test::write_file(dir / "config.json", original);
    fs::remove(dir / "generation_config.json");
    edit_config(dir, edit);
    bool thrown = false;
    try {
      T5Model::load(dir);
    } catch (const ValueError& e) {
      thrown = true;
      const std::string what = e.what();
      BOOST_CHECK_MESSAGE(what.find(config) != std::string::npos, what);
      for (const auto& p : parts) BOOST_CHECK_MESSAGE(what.find(p) != std::string::npos, what);
    }
    BOOST_CHECK_MESSAGE(thrown, "no ValueError for " << parts.front());
  }
  // A missing size: FormatError naming config.json and the key.
  peft_test::write_file(dir / "config.json", original);
  edit_config(dir, [](auto& c) { c.erase("d_kv"); });
  PEFT_CHECK_THROW_MSG(T5Model::load(dir), FormatError, {config, "d_kv"});
}

BOOST_AUTO_TEST_CASE(bad_inputs_name_the_model) {
  const auto m = model("t5_v1_1");
  const std::string src = m->source();
  BOOST_CHECK(src.find("t5_v1_1") != std::string::npos);
  PEFT_CHECK_THROW_MSG(m->encode(ids_of({5, 96, 1})), ValueError, {"96", "vocabulary of 96", src});
  PEFT_CHECK_THROW_MSG(m->encode(ids_of({5, -1, 1})), ValueError, {"-1", src});
  PEFT_CHECK_THROW_MSG(m->encode(at::zeros({2, 3}, at::kLong)), ShapeError, {"[2, 3]"});
  PEFT_CHECK_THROW_MSG(m->encode(at::zeros({1, 3}, at::kFloat)), ShapeError, {"input_ids"});
  KVCache cache = m->start(m->encode(ids_of({5, 6, 1})));
  PEFT_CHECK_THROW_MSG(m->decode(ids_of({0, 200}), cache), ValueError, {"200", src});
  PEFT_CHECK_THROW_MSG(m->decode(at::zeros({3}, at::kLong), cache), ShapeError, {"[3]"});
  PEFT_CHECK_THROW_MSG(m->decode(ids_of({0}), cache, 1), ValueError, {"logits_at"});
  PEFT_CHECK_THROW_MSG(m->start(at::zeros({1, 3, 7})), ShapeError, {"encoder_output"});
  KVCache foreign = model("t5_v1_0")->start(model("t5_v1_0")->encode(ids_of({5, 1})));
  foreign.cross_k.pop_back();
  PEFT_CHECK_THROW_MSG(m->decode(ids_of({0}), foreign), ValueError, {"start()"});
  BOOST_CHECK_EQUAL(cache.length, 0);  // nothing was appended by the failed calls
}
