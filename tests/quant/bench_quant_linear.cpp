// Times the compute paths of the quantized weights against float on Whisper tiny's
// shapes, to choose each weight's path by rows of x (the numbers are quoted in
// lib/peft/quant/int8_weight.cpp and group4_weight.cpp). Not a test: run by hand,
//   build/tests/bench_quant_linear [threads (default 2)]
// Prints one line per shape, rows and path: median milliseconds per call.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "peft/layers/linear.h"
#include "peft/quant/group4_weight.h"
#include "peft/quant/int8_weight.h"
#include "peft/runtime.h"

using namespace peft;

namespace {

double median_ms(const std::function<void()>& f, int64_t work) {
  f();  // warm up (and ONEDNN's prepacking)
  return peft_test::median_ms(
      f, static_cast<int>(std::clamp<int64_t>(400'000'000 / std::max<int64_t>(work, 1), 5, 200)));
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  configure_runtime(threads);
  std::printf("threads %d, onednn %s\n", at::get_num_threads(),
              quant::Int8Weight::onednn_available() ? "yes" : "no");
  at::manual_seed(1);
  using I8 = quant::Int8Weight::Path;
  using G4 = quant::Group4Weight::Path;
  for (auto [out, in] : std::vector<std::pair<int64_t, int64_t>>{{384, 384}, {1536, 384}, {51864, 384}}) {
    const at::Tensor w = at::randn({out, in}) * 0.05;
    const auto i8 = quant::Int8Weight::quantize(w, "bench");
    const auto i4 = quant::Group4Weight::quantize(w, quant::QuantType::int4, 64, false, "bench");
    const auto nf4 = quant::Group4Weight::quantize(w, quant::QuantType::nf4, 64, false, "bench");
    const auto nf4dq = quant::Group4Weight::quantize(w, quant::QuantType::nf4, 64, true, "bench");
    const layers::Linear f32(w, at::Tensor()), f16(w.to(at::kHalf), at::Tensor());
    const at::Tensor b = at::randn({out});
    for (int64_t rows : {1, 5, 1500}) {
      if (out > 10000 && rows > 16) continue;  // the vocabulary projection only sees decoder rows
      const at::Tensor x = at::randn({rows, in});
      const int64_t work = rows * out * in;
      auto row = [&](const char* name, const std::function<at::Tensor()>& f) {
        std::printf("[%6ld x %4ld] rows %4ld  %-22s %9.3f ms\n", static_cast<long>(out),
                    static_cast<long>(in), static_cast<long>(rows), name, median_ms([&] { f(); }, work));
        std::fflush(stdout);
      };
      row("float32", [&] { return f32(x); });
      row("float16", [&] { return f16(x); });
      row("int8 kernel", [&] { return i8->linear(x, b, I8::kKernel); });
      if (quant::Int8Weight::onednn_available())
        row("int8 onednn", [&] { return i8->linear(x, b, I8::kOnednn); });
      row("int8 dequant+blas", [&] { return i8->linear(x, b, I8::kDequantBlas); });
      row("int4 g64 kernel", [&] { return i4->linear(x, b, G4::kKernel); });
      row("int4 g64 dequant+blas", [&] { return i4->linear(x, b, G4::kDequantBlas); });
      row("nf4 g64 kernel", [&] { return nf4->linear(x, b, G4::kKernel); });
      row("nf4 g64 dq kernel", [&] { return nf4dq->linear(x, b, G4::kKernel); });
      row("nf4 g64 dequant+blas", [&] { return nf4->linear(x, b, G4::kDequantBlas); });
    }
  }
  return 0;
}
