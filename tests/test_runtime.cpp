// Process-wide libtorch settings: thread count and the BLAS behind libtorch.
#define BOOST_TEST_MODULE runtime
#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "peft/openblas_kernels.h"
#include "peft/runtime.h"
#include "test_support.h"

BOOST_AUTO_TEST_CASE(threads_default_to_all_cores) {
  const auto info = peft::configure_runtime(0);
  BOOST_CHECK_EQUAL(info.threads, static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
  BOOST_CHECK_EQUAL(at::get_num_threads(), info.threads);
  BOOST_CHECK_EQUAL(peft::configure_runtime(1).threads, 1);
  BOOST_CHECK(!info.torch_version.empty());
}

// ./setup installs OpenBLAS; this fails on a machine where libtorch would silently run
// its matrix products on the reference BLAS.
BOOST_AUTO_TEST_CASE(blas_is_openblas) {
  const auto info = peft::configure_runtime(0);
  BOOST_TEST_MESSAGE("BLAS: " << info.blas_library);
  BOOST_CHECK_MESSAGE(!info.blas_library.empty(), "no libblas.so.3 loaded with libtorch");
  BOOST_CHECK_MESSAGE(info.blas_is_openblas, "libblas.so.3 is " << info.blas_library);
}

// The rule that replaces OpenBLAS's kernels (openblas_kernels.h), case by case.
BOOST_AUTO_TEST_CASE(openblas_core_is_replaced_only_when_it_predates_the_cpu) {
  using peft::better_openblas_cores;
  peft::CpuVectorFeatures avx512_bf16{true, true, true}, avx512{true, true, false}, avx2{true, false, false},
      sse{false, false, false};
  using Cores = std::vector<std::string>;
  // Not recognised (OpenBLAS 0.3.21 on an Emerald Rapids Xeon): best first.
  BOOST_CHECK(better_openblas_cores("Prescott", avx512_bf16, nullptr) ==
              (Cores{"Cooperlake", "SkylakeX", "Haswell"}));
  BOOST_CHECK(better_openblas_cores("prescott", avx512, nullptr) == (Cores{"SkylakeX", "Haswell"}));
  BOOST_CHECK(better_openblas_cores("Sandybridge", avx2, nullptr) == (Cores{"Haswell"}));
  BOOST_CHECK(better_openblas_cores("Nehalem", avx2, "") == (Cores{"Haswell"}));
  // Kept: the user named a core, the CPU has no AVX2, or the kernels already use AVX2 or
  // are ones this rule does not know.
  BOOST_CHECK(better_openblas_cores("Prescott", avx512_bf16, "Prescott").empty());
  BOOST_CHECK(better_openblas_cores("Prescott", sse, nullptr).empty());
  BOOST_CHECK(better_openblas_cores("Sandybridge", sse, nullptr).empty());
  for (const char* core : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Unknown", "Zen5"})
    BOOST_CHECK_MESSAGE(better_openblas_cores(core, avx512_bf16, nullptr).empty(), core);
}

// On this machine: after configure_runtime, OpenBLAS runs kernels that use the CPU's
// AVX2/FMA whenever the CPU has them (unless OPENBLAS_CORETYPE names a core).
BOOST_AUTO_TEST_CASE(openblas_kernels_fit_the_cpu) {
  const auto info = peft::configure_runtime(0);
  BOOST_TEST_MESSAGE("OpenBLAS kernels: " << info.blas_core << " (chosen on load: " << info.blas_core_detected
                                          << ")");
  if (!info.blas_is_openblas) return;  // blas_is_openblas fails then
  BOOST_REQUIRE_MESSAGE(!info.blas_core.empty(), "OpenBLAS does not say which kernels it runs");
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  if (user != nullptr && !info.blas_core_detected.empty() && info.blas_core == info.blas_core_detected)
    return;
  BOOST_CHECK_MESSAGE(
      peft::better_openblas_cores(info.blas_core, peft::cpu_vector_features(), nullptr).empty(),
      "OpenBLAS runs " << info.blas_core << " kernels on a CPU with AVX2/FMA");
  BOOST_CHECK_EQUAL(peft::check_openblas_core().in_use, info.blas_core);  // later calls only report
}
