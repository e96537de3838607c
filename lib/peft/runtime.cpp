#include "peft/runtime.h"

#include "peft/openblas_kernels.h"

#include <link.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/version.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>

namespace peft {

namespace {
int collect_blas(struct dl_phdr_info* info, size_t, void* data) {
  const char* name = info->dlpi_name;
  if (name != nullptr && std::strstr(name, "libblas.so") != nullptr) *static_cast<std::string*>(data) = name;
  return 0;
}
}  // namespace

std::string loaded_blas_library() {
  std::string found;
  dl_iterate_phdr(collect_blas, &found);
  if (found.empty()) return found;
  std::error_code ec;
  auto resolved = std::filesystem::canonical(found, ec);
  return ec ? found : resolved.string();
}

RuntimeInfo configure_runtime(int threads) {
  static std::mutex mutex;
  static bool warned = false;
  std::lock_guard<std::mutex> lock(mutex);

  if (threads <= 0) threads = static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  if (at::get_num_threads() != threads) at::set_num_threads(threads);

  RuntimeInfo info;
  info.threads = at::get_num_threads();
  info.blas_library = loaded_blas_library();
  info.blas_is_openblas = info.blas_library.find("openblas") != std::string::npos;
  // libtorch parallelises with its OpenMP pool; OpenBLAS's pthread build has a second
  // pool whose idle threads busy-wait (sched_yield) between calls, so the two pools fight
  // for the cores. Measured on 2 cores: peft-transcribe --beam 5 on a LibriVox file x3
  // took 13.5 s with both pools, 7.2 s with OpenBLAS on one thread (beam 1: 6.3 vs 6.0 s).
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(openblas_function("openblas_set_num_threads"))) {
    set(1);
    info.blas_threads = 1;
  }
  const OpenBlasCore core = check_openblas_core();
  info.blas_core = core.in_use;
  info.blas_core_detected = core.detected;
  info.torch_version = TORCH_VERSION;
  if (!info.blas_is_openblas && !warned) {
    warned = true;
    std::cerr << "gst-peft: warning: libtorch is using "
              << (info.blas_library.empty() ? std::string("no libblas.so.3") : info.blas_library)
              << ", not OpenBLAS; float matrix products will be far slower (measured 2.5 vs "
                 "150 GFLOP/s). Install libopenblas0-pthread (./setup does).\n";
  }
  return info;
}

}  // namespace peft
