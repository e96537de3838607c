// Checkpoint tensors as libtorch tensors: zero-copy views into the mapping, the
// mapping kept alive by the tensor, dequantized GGUF blocks, unaligned data copied.
#define BOOST_TEST_MODULE torch_tensor
#include <ATen/ATen.h>

#include <random>

#include "peft/io/checkpoint.h"
#include "peft/io/half.h"
#include "peft/io/torch_tensor.h"
#include "test_support.h"

using namespace peft::io;

namespace {
at::Tensor reference_float(const Checkpoint& ckpt, const std::string& name) {
  const auto info = ckpt.info(name);
  std::vector<float> v = ckpt.to_float(name);
  return at::from_blob(v.data(), std::vector<int64_t>(info.shape.begin(), info.shape.end()),
                       at::TensorOptions().dtype(at::kFloat))
      .clone();
}
}  // namespace

BOOST_AUTO_TEST_CASE(ct2_f16_weight_is_a_view_of_the_file) {
  auto ckpt = open_checkpoint(peft_test::require_model_file("whisper-tiny.en"));
  TensorData raw = ckpt->raw("encoder/conv1/weight");
  at::Tensor w = to_torch(raw);
  BOOST_CHECK(w.scalar_type() == at::kHalf);
  BOOST_CHECK(w.sizes() == at::IntArrayRef({384, 80, 3}));
  BOOST_CHECK(shares_storage(w, raw));
  BOOST_CHECK(at::equal(w.to(at::kFloat), reference_float(*ckpt, "encoder/conv1/weight")));
}

BOOST_AUTO_TEST_CASE(tensor_keeps_the_mapping_alive) {
  at::Tensor w;
  double expected = 0;
  {
    auto ckpt = open_checkpoint(peft_test::require_model_file("whisper-tiny.en"));
    w = load_tensor(*ckpt, "decoder/embeddings/weight");
    expected = w.to(at::kDouble).sum().item<double>();
  }  // the checkpoint is gone; the tensor still owns the mapping
  BOOST_CHECK_EQUAL(w.to(at::kDouble).sum().item<double>(), expected);
}

BOOST_AUTO_TEST_CASE(gguf_blocks_dequantize_to_float) {
  auto ckpt = open_checkpoint(
      peft_test::require_model_file("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"));
  for (const char* name : {"blk.0.attn_k.weight", "token_embd.weight", "blk.0.attn_norm.weight"}) {
    at::Tensor t = load_tensor(*ckpt, name);
    BOOST_CHECK(t.scalar_type() == at::kFloat);
    BOOST_CHECK(at::equal(t, reference_float(*ckpt, name)));
  }
  BOOST_CHECK(load_tensor(*ckpt, "token_embd.weight").sizes() == at::IntArrayRef({49152, 576}));
}

// Our f16 conversion agrees with c10::Half (an independent implementation) both ways.
BOOST_AUTO_TEST_CASE(half_conversion_matches_c10) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-30.0f, 17.0f);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::ldexp(1.0f + (rng() % 1000) / 1000.0f, static_cast<int>(mag(rng))) * ((rng() & 1) ? 1 : -1);
    const c10::Half h(f);
    BOOST_REQUIRE_EQUAL(float_to_half(f), h.x);
    BOOST_REQUIRE_EQUAL(half_to_float(h.x), static_cast<float>(h));
  }
}

BOOST_AUTO_TEST_CASE(unaligned_data_is_copied) {
  peft_test::TempDir dir;
  // A safetensors file whose header length leaves the F32 data at an odd file offset.
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while ((8 + header.size()) % 4 != 1) header += ' ';
  std::string bytes;
  peft_test::put<uint64_t>(bytes, header.size());
  bytes += header;
  peft_test::put<float>(bytes, 1.5f);
  peft_test::put<float>(bytes, -2.0f);
  peft_test::write_file(dir / "odd.safetensors", bytes);
  BOOST_REQUIRE((8 + header.size()) % 4 != 0);

  auto ckpt = open_checkpoint(dir / "odd.safetensors");
  TensorData raw = ckpt->raw("a");
  at::Tensor t = to_torch(raw);
  BOOST_CHECK(!shares_storage(t, raw));
  BOOST_CHECK_EQUAL(t[0].item<float>(), 1.5f);
  BOOST_CHECK_EQUAL(t[1].item<float>(), -2.0f);
}
