#include "peft/openblas_kernels.h"

#include <dlfcn.h>
#include <link.h>
#include <strings.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace peft {

namespace {

// Kernel sets of OpenBLAS's x86-64 DYNAMIC_ARCH list (driver/others/dynamic.c) written
// for CPUs without AVX2: on a CPU with AVX2 and FMA, choosing one of them means the CPU
// was not recognised. Names OpenBLAS adds later are left alone.
constexpr const char* kPreAvx2Cores[] = {
    "Katmai", "Coppermine",  "Northwood", "Prescott",  "Banias",     "Atom",         "Core2",
    "Penryn", "Dunnington",  "Nehalem",   "Athlon",    "Opteron",    "Opteron_SSE3", "Barcelona",
    "Nano",   "Sandybridge", "Bobcat",    "Bulldozer", "Piledriver", "Steamroller",
};

int collect_blas_objects(struct dl_phdr_info* info, size_t, void* data) {
  const char* name = info->dlpi_name;
  if (name != nullptr &&
      (std::strstr(name, "openblas") != nullptr || std::strstr(name, "libblas.so") != nullptr))
    static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}

}  // namespace

CpuVectorFeatures cpu_vector_features() {
  // libgcc's checks include the operating system's support (XGETBV) for the wider registers.
  __builtin_cpu_init();
  CpuVectorFeatures f;
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = f.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
  return f;
}

std::vector<std::string> better_openblas_cores(const std::string& current, const CpuVectorFeatures& cpu,
                                               const char* user_coretype) {
  if (user_coretype != nullptr && *user_coretype != '\0') return {};
  if (!cpu.avx2_fma) return {};
  bool pre_avx2 = false;
  for (const char* name : kPreAvx2Cores) pre_avx2 = pre_avx2 || ::strcasecmp(name, current.c_str()) == 0;
  if (!pre_avx2) return {};
  std::vector<std::string> cores;
  if (cpu.avx512_bf16) cores.push_back("Cooperlake");
  if (cpu.avx512) cores.push_back("SkylakeX");
  cores.push_back("Haswell");
  return cores;
}

void* openblas_function(const char* name) {
  static std::once_flag once;
  static std::vector<void*> handles;
  std::call_once(once, [] {
    std::vector<std::string> objects;
    dl_iterate_phdr(collect_blas_objects, &objects);
    // RTLD_NOLOAD: a handle on what is already loaded; never loads anything new. The
    // handles are kept for the life of the process (libtorch keeps the library anyway).
    for (const auto& object : objects)
      if (void* handle = ::dlopen(object.c_str(), RTLD_LAZY | RTLD_NOLOAD)) handles.push_back(handle);
  });
  for (void* handle : handles)
    if (void* f = ::dlsym(handle, name)) return f;
  return ::dlsym(RTLD_DEFAULT, name);
}

OpenBlasCore check_openblas_core() {
  using CoreName = char* (*)();
  using Hook = void (*)();
  static std::mutex mutex;
  static bool checked = false;
  static OpenBlasCore result;
  std::lock_guard<std::mutex> lock(mutex);
  if (checked) return result;
  checked = true;

  const auto core_name = reinterpret_cast<CoreName>(openblas_function("openblas_get_corename"));
  const auto dynamic_init = reinterpret_cast<Hook>(openblas_function("gotoblas_dynamic_init"));
  const auto dynamic_quit = reinterpret_cast<Hook>(openblas_function("gotoblas_dynamic_quit"));
  if (core_name == nullptr) return result;  // not OpenBLAS
  result.detected = result.in_use = core_name();
  if (dynamic_init == nullptr || dynamic_quit == nullptr) return result;  // built for one CPU kind only

  const CpuVectorFeatures cpu = cpu_vector_features();
  const auto cores = better_openblas_cores(result.detected, cpu, std::getenv("OPENBLAS_CORETYPE"));
  for (const auto& core : cores) {
    // gotoblas_dynamic_init() chooses again only after _quit() has cleared its choice,
    // and then reads OPENBLAS_CORETYPE (a name it lacks makes it fall back on the CPU's
    // features); stop once its kernels are no longer pre-AVX2 ones.
    ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
    dynamic_quit();
    dynamic_init();
    result.in_use = core_name();
    if (better_openblas_cores(result.in_use, cpu, nullptr).empty()) return result;
  }
  if (!cores.empty()) {  // nothing better took: back to OpenBLAS's own choice
    ::unsetenv("OPENBLAS_CORETYPE");
    dynamic_quit();
    dynamic_init();
    result.in_use = core_name();
  }
  return result;
}

}  // namespace peft
