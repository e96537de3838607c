// Whisper checkpoints as other programs write them: a Hugging Face directory that
// transformers' save_pretrained wrote, and the same weights as an openai-whisper .pt
// (torch.save of dims + state dict). Both are a small random-weight model with
// large-v3's 128-bin front end and Whisper's real 1500/448 positions
// (tests/reference/make_hf_whisper_fixture.py); the golden outputs are transformers'.
#define BOOST_TEST_MODULE whisper_layouts
#include <ATen/ATen.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "test_support.h"

using namespace peft;
namespace fs = std::filesystem;

namespace {

fs::path whisper_fixtures() { return peft_test::fixtures_dir() / "whisper"; }

const nlohmann::json& golden() {
  static const nlohmann::json g =
      nlohmann::json::parse(peft_test::read_file(whisper_fixtures() / "random_golden.json"));
  return g;
}

// The reference script's mel_value(c, t), computed in double and rounded to float as numpy does.
at::Tensor test_mel(int64_t n_mels, int64_t frames) {
  at::Tensor mel = at::empty({1, n_mels, frames}, at::kFloat);
  auto a = mel.accessor<float, 3>();
  for (int64_t c = 0; c < n_mels; ++c)
    for (int64_t t = 0; t < frames; ++t)
      a[0][c][t] =
          static_cast<float>(0.6 * std::sin(0.0123 * double(t + 1) * double(c + 1) + 0.1 * double(c)) +
                             0.25 * std::cos(0.05 * double(t)) - 0.2);
  return mel;
}

at::Tensor from_json(const nlohmann::json& rows) {
  std::vector<float> flat;
  for (const auto& r : rows)
    for (float v : r) flat.push_back(v);
  return at::tensor(flat).view({static_cast<int64_t>(rows.size()), -1});
}

struct Outputs {
  at::Tensor encoder, logits;
};

Outputs run(const models::WhisperModel& model) {
  const auto& d = model.dims();
  const at::Tensor enc = model.encode(test_mel(d.n_mels, 2 * d.n_audio_ctx));
  auto cache = model.start(enc);
  const std::vector<int64_t> tokens = golden().at("tokens");
  const at::Tensor logits = model.decode(at::tensor(tokens, at::kLong).unsqueeze(0), cache);
  return {enc[0], logits[0]};
}

// Float32 both sides from the same fp16 weights: the outputs differ only by the order of
// float32 sums (OpenBLAS here, torch's kernels there), a few ulp of the largest terms.
// 1e-5 of the largest value allows ~100 ulp; a wrong weight or layout moves values by
// a good fraction of that largest value.
void check_close(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  BOOST_REQUIRE_EQUAL(got.sizes(), want.sizes());
  const float scale = want.abs().max().item<float>();
  const float diff = (got - want).abs().max().item<float>();
  BOOST_TEST_MESSAGE(what << ": max |diff| " << diff << " (largest value " << scale << ")");
  BOOST_CHECK_MESSAGE(diff <= 1e-5f * scale, what << ": max |diff| " << diff << " > 1e-5 x " << scale);
}

void check_against_golden(const models::WhisperModel& model, const std::string& what) {
  const Outputs out = run(model);
  const std::vector<int64_t> frames = golden().at("encoder_frames");
  check_close(out.encoder.index_select(0, at::tensor(frames, at::kLong)),
              from_json(golden().at("encoder_output")), what + " encoder frames");
  const double abs_sum = out.encoder.abs().sum().item<double>(), want = golden().at("encoder_abs_sum");
  BOOST_CHECK_MESSAGE(std::abs(abs_sum - want) <= 1e-5 * want,
                      what << ": encoder |sum| " << abs_sum << ", transformers " << want);
  check_close(out.logits, from_json(golden().at("logits")), what + " logits");
}

void check_dims(const models::WhisperDims& d) {
  const auto& g = golden().at("dims");
  BOOST_CHECK_EQUAL(d.n_mels, g.at("n_mels").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_mels, 128);
  BOOST_CHECK_EQUAL(d.n_audio_ctx, g.at("n_audio_ctx").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_audio_state, g.at("n_audio_state").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_audio_head, g.at("n_audio_head").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_audio_layer, g.at("n_audio_layer").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_vocab, g.at("n_vocab").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_text_ctx, g.at("n_text_ctx").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_text_state, g.at("n_text_state").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_text_head, g.at("n_text_head").get<int64_t>());
  BOOST_CHECK_EQUAL(d.n_text_layer, g.at("n_text_layer").get<int64_t>());
}

// The .pt fixture's bytes with `from` replaced by `to` (same length) in its pickle.
std::string patched_pt(const std::string& from, const std::string& to) {
  BOOST_REQUIRE_EQUAL(from.size(), to.size());
  std::string bytes = peft_test::read_file(whisper_fixtures() / "random_openai.pt");
  const size_t at = bytes.find(from);
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "'" << from << "' is not in the fixture");
  BOOST_REQUIRE_MESSAGE(bytes.find(from, at + 1) == std::string::npos, "'" << from << "' is there twice");
  bytes.replace(at, from.size(), to);
  return bytes;
}

}  // namespace

BOOST_AUTO_TEST_CASE(hugging_face_checkpoint_written_by_transformers) {
  configure_runtime(0);
  auto model = models::WhisperModel::load(whisper_fixtures() / "random_hf");
  check_dims(model->dims());
  check_against_golden(*model, "HF");
}

BOOST_AUTO_TEST_CASE(openai_pt_checkpoint) {
  configure_runtime(0);
  auto ckpt = io::open_checkpoint(whisper_fixtures() / "random_openai.pt");
  BOOST_CHECK_EQUAL(ckpt->format(), "pytorch");
  BOOST_CHECK_EQUAL(ckpt->metadata().at("dims").at("n_mels").get<int64_t>(), 128);
  // openai registers the encoder's sinusoids as a persistent buffer: they are saved.
  BOOST_CHECK(ckpt->contains("encoder.positional_embedding"));
  BOOST_CHECK(ckpt->info("encoder.conv1.weight").dtype == io::DType::F16);
  BOOST_CHECK_EQUAL(io::shape_to_string(ckpt->info("encoder.conv1.weight").shape), "[16, 128, 3]");

  auto model = models::WhisperModel::load(whisper_fixtures() / "random_openai.pt");
  check_dims(model->dims());
  check_against_golden(*model, "openai .pt");
  // Same fp16 weights, same code: the two layouts give bit-identical outputs.
  auto hf = models::WhisperModel::load(whisper_fixtures() / "random_hf");
  const Outputs a = run(*model), b = run(*hf);
  BOOST_CHECK(at::equal(a.encoder, b.encoder));
  BOOST_CHECK(at::equal(a.logits, b.logits));
}

BOOST_AUTO_TEST_CASE(bad_pt_files_are_named) {
  peft_test::TempDir dir;
  const std::string good = peft_test::read_file(whisper_fixtures() / "random_openai.pt");
  {
    const auto p = dir / "truncated.pt";
    peft_test::write_file(p, good.substr(0, good.size() / 2));
    PEFT_CHECK_THROW_MSG(models::WhisperModel::load(p), peft::FormatError, {"truncated.pt"});
  }
  {
    const auto p = dir / "cut_at_the_end.pt";
    peft_test::write_file(p, good.substr(0, good.size() - 30));
    PEFT_CHECK_THROW_MSG(models::WhisperModel::load(p), peft::FormatError, {"cut_at_the_end.pt"});
  }
  {
    const auto p = dir / "missing.pt";
    peft_test::write_file(p, patched_pt("decoder.blocks.1.mlp.0.weight", "decoder.blocks.1.mlp.0.weighx"));
    PEFT_CHECK_THROW_MSG(models::WhisperModel::load(p), peft::NotFoundError,
                         {"missing.pt", "'decoder.blocks.1.mlp.0.weight'"});
  }
  {
    // A global outside the short list is refused, never resolved.
    const auto p = dir / "global.pt";
    peft_test::write_file(p, patched_pt("collections\nOrderedDict", "collections\nOrderedDicx"));
    PEFT_CHECK_THROW_MSG(models::WhisperModel::load(p), peft::FormatError,
                         {"global.pt", "data.pkl", "collections.OrderedDicx"});
  }
  {
    const auto p = dir / "dims.pt";
    peft_test::write_file(p, patched_pt("n_text_head", "n_text_hexd"));
    PEFT_CHECK_THROW_MSG(models::WhisperModel::load(p), peft::Error, {"dims.pt", "n_text_head"});
  }
}
