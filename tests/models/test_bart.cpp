// BART and MBart against transformers 4.46.3 on tiny random checkpoints
// (tests/reference/make_bart_fixture.py wrote them, with reference encoder outputs,
// teacher-forced logits, generate() outputs and PEFT adapters' logits).
#define BOOST_TEST_MODULE bart
#include <ATen/ATen.h>

#include <algorithm>
#include <functional>

#include <nlohmann/json.hpp>

#include "models/generate_kwargs.h"
#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/peft_adapter.h"
#include "peft/error.h"
#include "peft/generation/generate.h"
#include "peft/generation/token_scorer.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"
#include "peft/io/safetensors.h"
#include "peft/io/torch_tensor.h"
#include "peft/models/bart.h"
#include "peft/quant/quant_type.h"
#include "test_support.h"

using namespace peft;
using models::BartModel;
namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) { return peft_test::fixtures_dir() / "models" / name; }

// reference.safetensors and reference.json of one fixture directory.
struct Reference {
  explicit Reference(const std::string& name)
      : tensors(fixture(name) / "reference.safetensors"),
        json(io::read_json_file(fixture(name) / "reference.json")) {}
  at::Tensor operator()(const std::string& key) const { return io::load_tensor(tensors, key).clone(); }
  size_t inputs() const { return json.at("inputs").size(); }
  io::SafetensorsCheckpoint tensors;
  nlohmann::json json;
};

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

at::Tensor teacher_forced(const BartModel& m, const Reference& ref, size_t i,
                          const adapters::BoundAdapter* adapter = nullptr) {
  const std::string n = std::to_string(i);
  const at::Tensor enc = m.encode(ref("input_ids_" + n), adapter);
  models::KVCache cache = m.start(enc, adapter);
  return m.decode(ref("decoder_input_ids_" + n), cache);
}

at::Tensor ids(const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).unsqueeze(0); }

// bart_untied is stored in float16 (computed in float32 here and in the reference).
const std::vector<std::string> kFixtures = {"bart_tiny", "bart_untied", "mbart_tiny"};

}  // namespace

BOOST_AUTO_TEST_CASE(encoder_and_logits_match_transformers) {
  for (const auto& name : kFixtures) {
    BOOST_TEST_CONTEXT(name) {
      const auto model = BartModel::load(fixture(name));
      const Reference ref(name);
      for (size_t i = 0; i < ref.inputs(); ++i) {
        const std::string n = std::to_string(i);
        const at::Tensor enc = model->encode(ref("input_ids_" + n));
        const double enc_err = relative_error(enc, ref("encoder_" + n));
        const double err = relative_error(teacher_forced(*model, ref, i), ref("logits_" + n));
        BOOST_TEST_MESSAGE(name << " input " << i << ": encoder rel err " << enc_err << ", logits rel err "
                                << err);
        BOOST_CHECK_LT(enc_err, 1e-4);
        BOOST_CHECK_LT(err, 1e-4);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(config_and_specials) {
  for (const auto& name : kFixtures) {
    BOOST_TEST_CONTEXT(name) {
      const auto model = BartModel::load(fixture(name));
      const Reference ref(name);
      const nlohmann::json& s = ref.json.at("specials");
      const auto& sp = model->specials();
      auto want = [&](const char* key) {
        return s.at(key).is_null() ? int64_t{-1} : s.at(key).get<int64_t>();
      };
      BOOST_CHECK_EQUAL(sp.decoder_start_token_id, want("decoder_start_token_id"));
      BOOST_REQUIRE_EQUAL(sp.eos_token_ids.size(), 1u);
      BOOST_CHECK_EQUAL(sp.eos_token_ids[0], want("eos_token_id"));
      BOOST_CHECK_EQUAL(sp.pad_token_id.value_or(-1), want("pad_token_id"));
      BOOST_CHECK_EQUAL(sp.bos_token_id.value_or(-1), want("bos_token_id"));
      BOOST_CHECK_EQUAL(sp.forced_bos_token_id.value_or(-1), want("forced_bos_token_id"));
      BOOST_CHECK_EQUAL(model->specials().forced_eos_token_id.value_or(-1), want("forced_eos_token_id"));
      BOOST_CHECK_EQUAL(sp.vocab_size, s.at("vocab_size").get<int64_t>());
      BOOST_CHECK_EQUAL(sp.max_positions, s.at("max_position_embeddings").get<int64_t>());
      BOOST_CHECK_EQUAL(model->architecture(), name.rfind("mbart", 0) == 0 ? "mbart" : "bart");
      BOOST_CHECK_EQUAL(model->config().pre_norm, name.rfind("mbart", 0) == 0);
    }
  }
  // float16 matrices stay float16 (norms, biases and positions become float32).
  const io::SafetensorsCheckpoint half(fixture("bart_untied") / "model.safetensors");
  int64_t matrices = 0, vectors = 0;
  for (const auto& t : half.tensors())
    (t.shape.size() == 2 && t.name.find("embed_positions") == std::string::npos &&
             t.name != "final_logits_bias"
         ? matrices
         : vectors) += static_cast<int64_t>(t.numel);
  BOOST_CHECK_EQUAL(BartModel::load(fixture("bart_untied"))->weight_bytes(), 2 * matrices + 4 * vectors);
}

// Prefix, then one token at a time, then beams (rows duplicated and reordered with
// KVCache::select): every step's logits equal the teacher-forced logits of that row's
// whole sequence.
BOOST_AUTO_TEST_CASE(incremental_decoding_matches_teacher_forcing) {
  for (const std::string name : {"bart_tiny", "mbart_tiny"}) {
    BOOST_TEST_CONTEXT(name) {
      const auto model = BartModel::load(fixture(name));
      const Reference ref(name);
      const at::Tensor enc = model->encode(ref("input_ids_1"));
      const at::Tensor dec = ref("decoder_input_ids_1");  // [1, 7]
      const at::Tensor full = ref("logits_1");
      const int64_t t = dec.size(1);

      models::KVCache cache = model->start(enc);
      std::vector<at::Tensor> steps = {model->decode(dec.narrow(1, 0, 3), cache)};
      for (int64_t p = 3; p < t; ++p) steps.push_back(model->decode(dec.narrow(1, p, 1), cache));
      BOOST_CHECK_EQUAL(cache.length, t);
      BOOST_CHECK_LT(relative_error(at::cat(steps, 1), full), 1e-4);
      // logits_at: one position only.
      models::KVCache c2 = model->start(enc);
      BOOST_CHECK_LT(relative_error(model->decode(dec, c2, 4), full.narrow(1, 4, 1)), 1e-4);

      // Beams: after a prefix of 3, three rows continue with different tokens, then are
      // reordered (2, 0, 0) and continue again.
      models::KVCache beams = model->start(enc);
      model->decode(dec.narrow(1, 0, 3), beams);
      beams.select(at::tensor(std::vector<int64_t>{0, 0, 0}, at::kLong));
      std::vector<std::vector<int64_t>> seqs(3);
      const std::vector<int64_t> prefix(dec.data_ptr<int64_t>(), dec.data_ptr<int64_t>() + 3);
      for (auto& s : seqs) s = prefix;
      const std::vector<int64_t> step1 = {10, 20, 30}, step2 = {40, 41, 42};
      std::vector<at::Tensor> got(3);
      at::Tensor l1 = model->decode(at::tensor(step1, at::kLong).unsqueeze(1), beams);
      for (int r = 0; r < 3; ++r) seqs[r].push_back(step1[r]);
      const std::vector<int64_t> order = {2, 0, 0};
      beams.select(at::tensor(order, at::kLong));
      std::vector<std::vector<int64_t>> reordered;
      for (int64_t o : order) reordered.push_back(seqs[o]);
      at::Tensor l2 = model->decode(at::tensor(step2, at::kLong).unsqueeze(1), beams);
      for (int r = 0; r < 3; ++r) {
        // Row r's teacher-forced logits for its whole sequence.
        std::vector<int64_t> s = reordered[r];
        s.push_back(step2[r]);
        models::KVCache one = model->start(enc);
        const at::Tensor want = model->decode(ids(s), one);
        BOOST_CHECK_LT(relative_error(l2[r], want[0][-1]), 1e-4);
        BOOST_CHECK_LT(relative_error(l1[order[r]], want[0][-2]), 1e-4);
      }
    }
  }
}

// An argmax loop with the two tokens generate() forces (forced_bos_token_id at the first
// generated position, forced_eos_token_id at the last one max_new_tokens allows) gives
// generate()'s greedy tokens.
BOOST_AUTO_TEST_CASE(greedy_matches_generate) {
  for (const auto& name : kFixtures) {
    BOOST_TEST_CONTEXT(name) {
      const auto model = BartModel::load(fixture(name));
      const Reference ref(name);
      const auto& sp = model->specials();
      int checked = 0;
      for (const auto& input : ref.json.at("inputs")) {
        for (const auto& g : input.at("generate")) {
          const nlohmann::json& kw = g.at("kwargs");
          if (kw.at("num_beams").get<int>() != 1 || kw.contains("repetition_penalty")) continue;
          const int64_t max_new = kw.at("max_new_tokens").get<int64_t>();
          std::optional<int64_t> forced_bos = sp.forced_bos_token_id;
          if (kw.contains("forced_bos_token_id")) forced_bos = kw.at("forced_bos_token_id").get<int64_t>();
          const at::Tensor enc = model->encode(ids(input.at("input_ids").get<std::vector<int64_t>>()));
          models::KVCache cache = model->start(enc);
          std::vector<int64_t> out = {sp.decoder_start_token_id};
          while (static_cast<int64_t>(out.size()) < 1 + max_new) {
            const at::Tensor logits = model->decode(ids({out.back()}), cache);
            int64_t next = logits[0][-1].argmax().item<int64_t>();
            if (out.size() == 1 && forced_bos) next = *forced_bos;
            if (static_cast<int64_t>(out.size()) == max_new && model->specials().forced_eos_token_id)
              next = *model->specials().forced_eos_token_id;
            out.push_back(next);
            if (next == sp.eos_token_ids.at(0)) break;
          }
          const auto want = g.at("output").get<std::vector<int64_t>>();
          BOOST_CHECK_EQUAL_COLLECTIONS(out.begin(), out.end(), want.begin(), want.end());
          ++checked;
        }
      }
      BOOST_CHECK_EQUAL(checked, 3);
    }
  }
}

// generation::generate() with the recorded kwargs (defaults from the fixture's
// generation_config.json, as transformers takes them) gives generate()'s tokens: greedy,
// beam search with its length penalties and early stopping, no-repeat n-grams,
// repetition penalty with min_new_tokens, forced first and last tokens.
BOOST_AUTO_TEST_CASE(generate_matches_transformers_for_every_recorded_option_set) {
  for (const auto& name : kFixtures) {
    BOOST_TEST_CONTEXT(name) {
      const std::shared_ptr<const BartModel> model = BartModel::load(fixture(name));
      const io::HfGenerationConfig defaults =
          io::read_hf_generation_config(fixture(name) / "generation_config.json");
      const Reference ref(name);
      const auto& sp = model->specials();
      for (const auto& input : ref.json.at("inputs"))
        for (const auto& g : input.at("generate")) {
          const nlohmann::json& kw = g.at("kwargs");
          generation::GenerationOptions o = peft_test::options_from_kwargs(kw, defaults);
          o.eos_token_ids = sp.eos_token_ids;
          if (!o.forced_bos_token_id) o.forced_bos_token_id = sp.forced_bos_token_id;
          o.forced_eos_token_id = sp.forced_eos_token_id;
          auto scorer =
              generation::seq2seq_scorer(model, ids(input.at("input_ids").get<std::vector<int64_t>>()));
          const auto r = generation::generate(*scorer, {sp.decoder_start_token_id}, o);
          std::vector<int64_t> got = {sp.decoder_start_token_id};
          got.insert(got.end(), r.tokens.begin(), r.tokens.end());
          BOOST_TEST(got == g.at("output").get<std::vector<int64_t>>(), kw.dump());
        }
    }
  }
}

BOOST_AUTO_TEST_CASE(adapters_match_peft) {
  for (const auto& [name, adapter_names] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"bart_tiny", {"lora", "adalora"}}, {"mbart_tiny", {"lora"}}}) {
    const auto model = BartModel::load(fixture(name));
    const Reference ref(name);
    for (const auto& a : adapter_names) {
      BOOST_TEST_CONTEXT(name << " " << a) {
        const auto bound = model->bind(adapters::PeftAdapter::load(fixture(name) / a));
        const auto merged = model->merged(*bound);
        for (size_t i = 0; i < ref.inputs(); ++i) {
          const at::Tensor want = ref(a + "_logits_" + std::to_string(i));
          const double err = relative_error(teacher_forced(*model, ref, i, bound.get()), want);
          const double merged_err = relative_error(teacher_forced(*merged, ref, i), want);
          BOOST_TEST_MESSAGE(name << " " << a << " input " << i << ": rel err " << err << ", merged "
                                  << merged_err);
          BOOST_CHECK_LT(err, 1e-4);
          BOOST_CHECK_LT(merged_err, 1e-4);
          // The base without the adapter is unchanged (and differs from the adapter's).
          BOOST_CHECK_LT(relative_error(teacher_forced(*model, ref, i), ref("logits_" + std::to_string(i))),
                         1e-4);
          BOOST_CHECK_GT(relative_error(teacher_forced(*model, ref, i), want), 0.1);
        }
      }
    }
  }
  // Module names are transformers' (what PEFT targets).
  const auto slots = BartModel::load(fixture("bart_tiny"))->adaptable_modules();
  std::vector<std::string> names;
  for (const auto& s : slots)
    if (!s.name.empty()) names.push_back(s.name);
  BOOST_CHECK_EQUAL(names.size(), 2u * 6 + 2u * 10);
  for (const std::string n :
       {"model.encoder.layers.0.self_attn.q_proj", "model.encoder.layers.1.fc2",
        "model.decoder.layers.1.encoder_attn.out_proj", "model.decoder.layers.0.self_attn.v_proj"})
    BOOST_CHECK_MESSAGE(std::find(names.begin(), names.end(), n) != names.end(), n);
}

BOOST_AUTO_TEST_CASE(int8_stays_close_to_float) {
  const Reference ref("bart_tiny");
  quant::QuantOptions q;
  q.type = quant::QuantType::int8;
  const auto model = BartModel::load(fixture("bart_tiny"), q);
  const auto full = BartModel::load(fixture("bart_tiny"));
  BOOST_CHECK_LT(model->weight_bytes(), full->weight_bytes());
  for (size_t i = 0; i < ref.inputs(); ++i) {
    const double err = relative_error(teacher_forced(*model, ref, i), ref("logits_" + std::to_string(i)));
    BOOST_TEST_MESSAGE("int8 input " << i << ": logits rel err " << err);
    BOOST_CHECK_LT(err, 0.05);
    BOOST_CHECK_GT(err, 0.0);  // it really is quantized
  }
  q.quantize_embeddings = true;
  const auto all = BartModel::load(fixture("bart_untied"), q);
  const Reference untied("bart_untied");
  const double err = relative_error(teacher_forced(*all, untied, 0), untied("logits_0"));
  BOOST_TEST_MESSAGE("int8 with embeddings and lm_head (bart_untied): logits rel err " << err);
  BOOST_CHECK_LT(err, 0.05);
}

// ---------------------------------------------------------------------------
// Bad input

namespace {

// A copy of a fixture's config.json and weights in a temporary directory, with the
// weights rewritten (one tensor dropped or narrowed) and config.json edited.
struct BadCopy {
  peft_test::TempDir dir;
  explicit BadCopy(const std::string& name, const std::string& drop = "", const std::string& narrow = "",
                   const std::function<void(nlohmann::json&)>& edit = {},
                   const std::function<std::string(const std::string&)>& rename = {}) {
    nlohmann::json config = io::read_json_file(fixture(name) / "config.json");
    if (edit) edit(config);
    peft_test::write_file(dir / "config.json", config.dump());
    fs::copy_file(fixture(name) / "generation_config.json", dir / "generation_config.json");
    io::SafetensorsCheckpoint ckpt(fixture(name) / "model.safetensors");
    std::vector<at::Tensor> keep;
    std::vector<io::TensorToWrite> out;
    for (const auto& info : ckpt.tensors()) {
      if (info.name == drop) continue;
      at::Tensor t = io::load_tensor(ckpt, info.name).to(at::kFloat).contiguous();
      if (info.name == narrow) t = t.narrow(0, 0, t.size(0) - 1).contiguous();
      keep.push_back(t);
      out.push_back({rename ? rename(info.name) : info.name, io::DType::F32, t.sizes().vec(), t.data_ptr(),
                     static_cast<uint64_t>(t.nbytes())});
    }
    io::write_safetensors(dir / "model.safetensors", out);
  }
  std::string weights() const { return (dir / "model.safetensors").string(); }
  std::string config() const { return (dir / "config.json").string(); }
};

}  // namespace

// A bare BartModel checkpoint (names without "model.") with
// the shared embedding under an alias (decoder.embed_tokens.weight) load into the same model.
BOOST_AUTO_TEST_CASE(bare_model_names_load) {
  const Reference ref("bart_tiny");
  BadCopy c("bart_tiny", "", "", {}, [](const std::string& n) {
    if (n == "model.shared.weight") return std::string("decoder.embed_tokens.weight");
    return n.rfind("model.", 0) == 0 ? n.substr(6) : n;
  });
  const auto model = BartModel::load(c.dir.path());
  BOOST_CHECK_LT(relative_error(teacher_forced(*model, ref, 0), ref("logits_0")), 1e-4);
  BOOST_CHECK_EQUAL(model->adaptable_modules().front().name, "model.encoder.layers.0.self_attn.q_proj");
}

BOOST_AUTO_TEST_CASE(bad_checkpoints_name_the_file_and_tensor) {
  {
    BadCopy c("bart_tiny");  // unchanged copy loads
    BOOST_CHECK_NO_THROW(BartModel::load(c.dir.path()));
  }
  {
    BadCopy c("bart_tiny", "model.decoder.layers.1.encoder_attn.k_proj.weight");
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), NotFoundError,
                         {c.weights(), "model.decoder.layers.1.encoder_attn.k_proj.weight"});
  }
  {
    BadCopy c("mbart_tiny", "model.encoder.layer_norm.weight");  // MBart's final norm
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), NotFoundError,
                         {c.weights(), "model.encoder.layer_norm.weight"});
  }
  {
    BadCopy c("bart_untied", "lm_head.weight");  // untied: lm_head is required
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), NotFoundError, {c.weights(), "lm_head.weight"});
  }
  {
    BadCopy c("bart_tiny", "", "model.encoder.layers.0.fc1.weight");
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), ShapeError,
                         {c.weights(), "model.encoder.layers.0.fc1.weight"});
  }
  {
    BadCopy c("bart_tiny", "", "model.decoder.embed_positions.weight");
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), ShapeError,
                         {c.weights(), "model.decoder.embed_positions.weight"});
  }
  {  // config.json sizes the model: a wrong d_model shows as a shape mismatch
    BadCopy c("bart_tiny", "", "", [](nlohmann::json& j) { j["encoder_ffn_dim"] = 50; });
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), ShapeError,
                         {c.weights(), "model.encoder.layers.0.fc1"});
  }
  {
    BadCopy c("bart_tiny", "", "", [](nlohmann::json& j) { j["activation_function"] = "mish"; });
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), ValueError,
                         {c.config(), "activation_function", "mish"});
  }
  {
    BadCopy c("bart_tiny", "", "", [](nlohmann::json& j) { j["model_type"] = "t5"; });
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), ValueError, {c.config(), "model_type", "t5"});
  }
  {
    BadCopy c("bart_tiny", "", "", [](nlohmann::json& j) { j["decoder_attention_heads"] = 5; });
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), ValueError, {c.config(), "decoder_attention_heads"});
  }
  {
    BadCopy c("bart_tiny", "", "", [](nlohmann::json& j) { j.erase("d_model"); });
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), FormatError, {c.config(), "d_model"});
  }
  {
    BadCopy c("bart_tiny");
    peft_test::write_file(c.dir / "config.json", "{\"model_type\": \"bart\", \"d_model\": ");
    PEFT_CHECK_THROW_MSG(BartModel::load(c.dir.path()), FormatError, {c.config()});
  }
  {
    BadCopy c("bart_tiny");
    fs::remove(c.dir / "model.safetensors");
    BOOST_CHECK_THROW(BartModel::load(c.dir.path()), Error);
  }
}

BOOST_AUTO_TEST_CASE(bad_calls) {
  const auto model = BartModel::load(fixture("bart_tiny"));
  const std::string src = model->source();
  PEFT_CHECK_THROW_MSG(model->encode(ids({0, 5, 96, 2})), ValueError, {"96", "vocabulary", src});
  PEFT_CHECK_THROW_MSG(model->encode(ids({0, -1, 2})), ValueError, {"-1", "vocabulary"});
  PEFT_CHECK_THROW_MSG(model->encode(at::zeros({2, 4}, at::kLong)), ShapeError, {"[2, 4]"});
  PEFT_CHECK_THROW_MSG(model->encode(at::zeros({4}, at::kLong)), ShapeError, {"encode"});
  PEFT_CHECK_THROW_MSG(model->encode(at::zeros({1, 33}, at::kLong)), ValueError, {"33", "32 positions"});
  const at::Tensor enc = model->encode(ids({0, 5, 6, 2}));
  PEFT_CHECK_THROW_MSG(model->start(enc.squeeze(0)), ShapeError, {"start"});
  models::KVCache cache = model->start(enc);
  PEFT_CHECK_THROW_MSG(model->decode(ids({2, 300}), cache), ValueError, {"300", "vocabulary"});
  model->decode(ids({2, 0}), cache);
  PEFT_CHECK_THROW_MSG(model->decode(at::full({2, 1}, 5, at::kLong), cache), ShapeError, {"rows"});
  PEFT_CHECK_THROW_MSG(model->decode(ids(std::vector<int64_t>(31, 5)), cache), ValueError, {"32 positions"});
  PEFT_CHECK_THROW_MSG(model->decode(ids({5}), cache, 1), ValueError, {"logits_at"});
  models::KVCache empty;
  PEFT_CHECK_THROW_MSG(model->decode(ids({2}), empty), ValueError, {"start()"});
  // An adapter bound to another model object is refused.
  const auto other = BartModel::load(fixture("bart_tiny"));
  const auto bound = other->bind(adapters::PeftAdapter::load(fixture("bart_tiny") / "lora"));
  PEFT_CHECK_THROW_MSG(model->encode(at::zeros({1, 3}, at::kLong), bound.get()), ValueError,
                       {"another model"});
  // An adapter with modules the model lacks (bart_untied has one layer each side) does not bind.
  PEFT_CHECK_THROW_MSG(BartModel::load(fixture("bart_untied"))
                           ->bind(adapters::PeftAdapter::load(fixture("bart_tiny") / "lora")),
                       ValueError, {"model.decoder.layers.1", "not an adaptable"});
}
