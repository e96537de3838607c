// Whisper tiny.en (CTranslate2 fp16 files) through our encoder/decoder.
#define BOOST_TEST_MODULE whisper_model
#include <ATen/ATen.h>

#include "peft/audio/log_mel.h"
#include "peft/audio/wav.h"
#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/safetensors.h"
#include "peft/io/torch_tensor.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "test_support.h"

using namespace peft;

// Greedy decoding with our encoder, decoder and KV cache reproduces the reference's text tokens.
BOOST_AUTO_TEST_CASE(greedy_decode_matches_reference_tokens) {
  configure_runtime(0);
  auto model = models::WhisperModel::load(peft_test::require_model_file("whisper-tiny.en"));
  auto wav = audio::read_wav(
      "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav");
  at::Tensor samples = at::from_blob(wav.samples.data(), {(int64_t)wav.samples.size()}, at::kFloat).clone();
  at::Tensor mel = audio::log_mel_spectrogram(samples, 80, 480000);
  mel = audio::pad_or_trim(mel, 3000).unsqueeze(0);
  at::Tensor feats = model->encode(mel);
  auto cache = model->start(feats);
  std::vector<int64_t> tokens = {50257};  // sot
  at::Tensor logits = model->decode(at::tensor(tokens, at::kLong).unsqueeze(0), cache);
  std::vector<int64_t> out;
  for (int i = 0; i < 40; ++i) {
    int64_t next = logits[0][-1].argmax().item<int64_t>();
    out.push_back(next);
    if (next == 50256) break;
    logits = model->decode(at::tensor(std::vector<int64_t>{next}, at::kLong).unsqueeze(0), cache);
  }
  // faster-whisper 1.2.1 (compute_type float32, same files) gives these text tokens for
  // this utterance; its decoding starts from <|startoftranscript|> too and emits
  // <|notimestamps|>-free timestamps, so compare the text tokens only.
  const std::vector<int64_t> reference = {679, 373, 407, 281, 1468, 12, 2777, 1335, 1862, 582, 13};
  BOOST_REQUIRE_GE(out.size(), reference.size() + 2);
  BOOST_CHECK_EQUAL(out.front(), 50362);  // <|notimestamps|>: greedy prefers it from sot alone
  BOOST_CHECK_EQUAL_COLLECTIONS(out.begin() + 1, out.begin() + 1 + reference.size(), reference.begin(),
                                reference.end());
  BOOST_CHECK_EQUAL(out.back(), 50256);  // <|endoftext|>
}

// The Hugging Face layout: tiny.en's CTranslate2 weights renamed (and the fused
// projections split) into model.safetensors + config.json load into the same model.
namespace {

struct HfExport {
  std::vector<std::pair<std::string, at::Tensor>> tensors;  // float32, contiguous
  void add(const std::string& name, at::Tensor t) {
    tensors.emplace_back(name, t.to(at::kFloat).contiguous());
  }
  void write(const peft_test::TempDir& dir, const std::string& skip = "",
             const std::string& reshape = "") const {
    std::vector<io::TensorToWrite> out;
    std::vector<at::Tensor> keep;
    for (const auto& [name, t0] : tensors) {
      if (name == skip) continue;
      at::Tensor t = name == reshape ? t0.narrow(0, 0, t0.size(0) - 1).contiguous() : t0;
      keep.push_back(t);
      out.push_back({name, io::DType::F32, t.sizes().vec(), t.data_ptr(), static_cast<uint64_t>(t.nbytes())});
    }
    io::write_safetensors(dir / "model.safetensors", out);
    peft_test::write_file(dir / "config.json", R"({"model_type": "whisper", "num_mel_bins": 80,
      "max_source_positions": 1500, "d_model": 384, "encoder_attention_heads": 6, "encoder_layers": 4,
      "vocab_size": 51864, "max_target_positions": 448, "decoder_attention_heads": 6, "decoder_layers": 4})");
  }
};

HfExport export_tiny_en_as_hf(const io::Checkpoint& ct2) {
  HfExport hf;
  auto get = [&](const std::string& n) { return io::load_tensor(ct2, n); };
  const int64_t d = 384;
  auto norm = [&](const std::string& hf_name, const std::string& ct2_name) {
    hf.add(hf_name + ".weight", get(ct2_name + "/gamma"));
    hf.add(hf_name + ".bias", get(ct2_name + "/beta"));
  };
  auto linear = [&](const std::string& hf_name, const std::string& ct2_name) {
    hf.add(hf_name + ".weight", get(ct2_name + "/weight"));
    hf.add(hf_name + ".bias", get(ct2_name + "/bias"));
  };
  auto fused_qkv = [&](const std::string& hf_prefix, const std::string& ct2_name) {
    const at::Tensor w = get(ct2_name + "/weight"), b = get(ct2_name + "/bias");
    hf.add(hf_prefix + "q_proj.weight", w.narrow(0, 0, d));
    hf.add(hf_prefix + "q_proj.bias", b.narrow(0, 0, d));
    hf.add(hf_prefix + "k_proj.weight", w.narrow(0, d, d));
    hf.add(hf_prefix + "v_proj.weight", w.narrow(0, 2 * d, d));
    hf.add(hf_prefix + "v_proj.bias", b.narrow(0, 2 * d, d));
  };
  for (const std::string side : {"encoder", "decoder"}) {
    const std::string e = "model." + side + ".";
    if (side == "encoder") {
      linear(e + "conv1", "encoder/conv1");
      linear(e + "conv2", "encoder/conv2");
    } else {
      hf.add(e + "embed_tokens.weight", get("decoder/embeddings/weight"));
    }
    hf.add(e + "embed_positions.weight", get(side + "/position_encodings/encodings"));
    norm(e + "layer_norm", side + "/layer_norm");
    for (int i = 0; i < 4; ++i) {
      const std::string p = e + "layers." + std::to_string(i) + ".",
                        c = side + "/layer_" + std::to_string(i) + "/";
      norm(p + "self_attn_layer_norm", c + "self_attention/layer_norm");
      fused_qkv(p + "self_attn.", c + "self_attention/linear_0");
      linear(p + "self_attn.out_proj", c + "self_attention/linear_1");
      norm(p + "final_layer_norm", c + "ffn/layer_norm");
      linear(p + "fc1", c + "ffn/linear_0");
      linear(p + "fc2", c + "ffn/linear_1");
      if (side == "decoder") {
        norm(p + "encoder_attn_layer_norm", c + "attention/layer_norm");
        linear(p + "encoder_attn.q_proj", c + "attention/linear_0");
        const at::Tensor kv = get(c + "attention/linear_1/weight"), kvb = get(c + "attention/linear_1/bias");
        hf.add(p + "encoder_attn.k_proj.weight", kv.narrow(0, 0, d));
        hf.add(p + "encoder_attn.v_proj.weight", kv.narrow(0, d, d));
        hf.add(p + "encoder_attn.v_proj.bias", kvb.narrow(0, d, d));
        linear(p + "encoder_attn.out_proj", c + "attention/linear_2");
      }
    }
  }
  return hf;
}

}  // namespace

BOOST_AUTO_TEST_CASE(hugging_face_layout_gives_the_same_logits) {
  configure_runtime(0);
  auto ct2 = io::open_checkpoint(peft_test::require_model_file("whisper-tiny.en"));
  auto reference = models::WhisperModel::load(*ct2);
  const HfExport hf = export_tiny_en_as_hf(*ct2);
  peft_test::TempDir dir;
  hf.write(dir);
  auto model = models::WhisperModel::load(dir.path());

  at::manual_seed(3);
  const at::Tensor mel = at::randn({1, 80, 3000}) * 0.3;
  const at::Tensor tokens = at::tensor(std::vector<int64_t>{50257, 50362, 679, 373}, at::kLong).unsqueeze(0);
  auto c1 = reference->start(reference->encode(mel));
  auto c2 = model->start(model->encode(mel));
  const at::Tensor l1 = reference->decode(tokens, c1), l2 = model->decode(tokens, c2);
  BOOST_CHECK_LE((l1 - l2).abs().max().item<float>(), 1e-4f * l1.abs().max().item<float>());

  // logits_at: one position's logits (a prompt's prefill), the same values, the cache
  // grown by every token; a position outside the tokens is refused.
  for (int64_t at_pos : {0, 2, 3}) {
    auto c3 = reference->start(reference->encode(mel));
    const at::Tensor one = reference->decode(tokens, c3, at_pos);
    BOOST_TEST(one.sizes() == (std::vector<int64_t>{1, 1, l1.size(2)}));
    BOOST_CHECK_LE((one[0][0] - l1[0][at_pos]).abs().max().item<float>(),
                   1e-5f * l1.abs().max().item<float>());
    BOOST_TEST(c3.length == 4);
  }
  auto c4 = reference->start(reference->encode(mel));
  BOOST_CHECK_THROW(reference->decode(tokens, c4, 4), ValueError);
  BOOST_CHECK_THROW(reference->decode(tokens, c4, -1), ValueError);
}

// A checkpoint that lacks a tensor or has one of the wrong shape fails at load time
// with an error naming the file and the tensor.
BOOST_AUTO_TEST_CASE(missing_or_misshapen_tensor_is_named) {
  auto ct2 = io::open_checkpoint(peft_test::require_model_file("whisper-tiny.en"));
  const HfExport hf = export_tiny_en_as_hf(*ct2);
  {
    peft_test::TempDir dir;
    hf.write(dir, /*skip=*/"model.decoder.layers.2.fc1.weight");
    PEFT_CHECK_THROW_MSG(models::WhisperModel::load(dir.path()), peft::NotFoundError,
                         {"model.safetensors", "model.decoder.layers.2.fc1.weight"});
  }
  {
    peft_test::TempDir dir;
    hf.write(dir, "", /*reshape=*/"model.encoder.layers.1.self_attn.k_proj.weight");
    PEFT_CHECK_THROW_MSG(models::WhisperModel::load(dir.path()), peft::ShapeError,
                         {"model.encoder.layers.1.self_attn.k_proj.weight", "[383, 384]", "[384, 384]"});
  }
}
