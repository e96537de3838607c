// OpenBLAS's choice of kernels, checked and corrected once per process.
//
// A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernel set ("core") from the CPU model
// when it loads. A model newer than the library falls back to an old kernel set:
// OpenBLAS 0.3.21 (Debian 12) on an Intel Xeon of family 6, model 207 (Emerald Rapids,
// AVX-512) chose "Prescott", SSE3 kernels, and SmolLM2's f32 prefill ran at 133 tok/s
// instead of 507 with "SkylakeX" (bench-llm -p 512, 2 threads). When the chosen kernels
// predate AVX2 on a CPU that has AVX2 and FMA, and the user did not name a core with
// OPENBLAS_CORETYPE, the core is chosen again the way OpenBLAS itself does for CPUs it
// cannot identify: Cooperlake (AVX-512 with BF16), SkylakeX (AVX-512), Haswell (AVX2).
#pragma once

#include <string>
#include <vector>

namespace peft {

// What the CPU and the operating system let programs use.
struct CpuVectorFeatures {
  bool avx2_fma = false;     // AVX2 and FMA3
  bool avx512 = false;       // AVX-512 F, CD, BW, DQ and VL
  bool avx512_bf16 = false;  // AVX-512 BF16 (with the above)
};

CpuVectorFeatures cpu_vector_features();

// The OpenBLAS cores to try, best first, in place of `current` (a name as
// openblas_get_corename() gives it); empty when `current` should stay: it is not one of
// the kernel sets that predate AVX2, the CPU lacks AVX2/FMA, or `user_coretype` (the
// OPENBLAS_CORETYPE environment variable, nullptr when unset) names a core.
std::vector<std::string> better_openblas_cores(const std::string& current, const CpuVectorFeatures& cpu,
                                               const char* user_coretype);

struct OpenBlasCore {
  std::string detected;  // the core OpenBLAS chose when it loaded ("" when the BLAS is not OpenBLAS)
  std::string in_use;    // the core in use after the check (== detected when nothing changed)
};

// Looks up the loaded OpenBLAS through its exported functions and, on the first call in
// the process, switches it to a better core when better_openblas_cores() names one (it
// sets OPENBLAS_CORETYPE, which child processes inherit). Later calls only report. Call
// it before any BLAS work starts on another thread: OpenBLAS has no kernels while it
// switches. configure_runtime() calls it.
OpenBlasCore check_openblas_core();

// The address of a function the loaded OpenBLAS exports (`openblas_set_num_threads`...),
// or nullptr. Found through the loaded library itself, not only the global scope: a
// GStreamer plugin is opened with RTLD_LOCAL, and the OpenBLAS it brings in is then
// invisible to dlsym(RTLD_DEFAULT, ...).
void* openblas_function(const char* name);

}  // namespace peft
