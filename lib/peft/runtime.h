// Process-wide libtorch settings every program and element applies once: the number
// of intra-op threads (libtorch here starts at 1) and a check that the BLAS libtorch
// calls is OpenBLAS (Debian's reference BLAS is ~60x slower for fp32 GEMM), running
// kernels made for this CPU (openblas_kernels.h).
#pragma once

#include <string>

namespace peft {

struct RuntimeInfo {
  int threads = 1;           // at::get_num_threads() after configure_runtime
  std::string blas_library;  // resolved path of the loaded libblas.so.3 ("" if none)
  bool blas_is_openblas = false;
  int blas_threads =
      0;  // 1 when OpenBLAS was set to one thread (libtorch's pool does the parallel work); 0: untouched
  std::string blas_core;           // OpenBLAS's kernel set in use ("" if unknown)
  std::string blas_core_detected;  // the one OpenBLAS chose when it loaded (differs when replaced)
  std::string torch_version;
};

// Sets libtorch's intra-op thread count (`threads` <= 0: all online cores), OpenBLAS's
// own pool to one thread (see runtime.cpp for why), and, the first time it is called in
// a process, replaces OpenBLAS's kernels when it did not recognise the CPU
// (check_openblas_core) and warns on stderr when the BLAS in use is not OpenBLAS. Safe
// to call from several threads; call it before any BLAS work starts.
RuntimeInfo configure_runtime(int threads = 0);

// Path of the libblas.so.3 loaded in this process, resolved through symlinks (the
// Debian alternatives system points it at reference BLAS or OpenBLAS).
std::string loaded_blas_library();

}  // namespace peft
