// peft-inspect: what a checkpoint holds. Opens any checkpoint libpeft reads
// (safetensors file / sharded index / HF directory, GGUF, CTranslate2 model.bin or
// directory) and prints its format, metadata and tensors.
#include <algorithm>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "peft/error.h"
#include "peft/io/checkpoint.h"
#ifdef PEFT_HAVE_TORCH
#include "peft/runtime.h"
#endif

namespace {

const char* kUsage = R"(usage: peft-inspect [options] CHECKPOINT...

Prints what each checkpoint holds: format, metadata, tensor count and bytes per
dtype, and tensors (name, dtype, shape).

CHECKPOINT  a .safetensors file, a model.safetensors.index.json, a .gguf file, a
            CTranslate2 model.bin, or a directory holding one of these.

options:
  --all-tensors   list every tensor (default: the first 20)
  --no-metadata   do not print metadata
  --runtime       also print the libtorch runtime: version, threads, BLAS library, OpenBLAS kernels
  -h, --help      this text
)";

std::string summarize(const nlohmann::json& v) {
  if (v.is_array()) {
    std::string s = "array[" + std::to_string(v.size()) + "]";
    if (!v.empty()) s += " first " + summarize(v.front());
    return s;
  }
  // Strings in files are not guaranteed UTF-8: replace bad bytes instead of throwing.
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 100) s = s.substr(0, 97) + "...";
  return s;
}

void inspect(const std::string& path, bool all_tensors, bool metadata) {
  auto ckpt = peft::io::open_checkpoint(path);
  std::cout << path << ": " << ckpt->format() << " checkpoint (" << ckpt->path() << ")\n";
  if (metadata && !ckpt->metadata().empty()) {
    std::cout << "  metadata:\n";
    for (const auto& [key, value] : ckpt->metadata().items())
      std::cout << "    " << key << " = " << summarize(value) << "\n";
  }
  std::map<std::string, std::pair<size_t, uint64_t>> by_dtype;  // count, bytes
  uint64_t total = 0;
  for (const auto& t : ckpt->tensors()) {
    auto& e = by_dtype[std::string(peft::io::dtype_name(t.dtype))];
    e.first++;
    e.second += t.nbytes;
    total += t.nbytes;
  }
  std::cout << "  tensors: " << ckpt->tensors().size() << ", " << std::fixed << std::setprecision(1)
            << static_cast<double>(total) / (1 << 20) << " MiB";
  for (const auto& [name, e] : by_dtype) std::cout << "; " << name << " " << e.first;
  std::cout << "\n";
  const size_t shown = all_tensors ? ckpt->tensors().size() : std::min<size_t>(20, ckpt->tensors().size());
  for (size_t i = 0; i < shown; ++i) {
    const auto& t = ckpt->tensors()[i];
    std::cout << "    " << std::left << std::setw(56) << t.name << " " << std::setw(5)
              << peft::io::dtype_name(t.dtype) << " " << peft::io::shape_to_string(t.shape) << "\n";
  }
  if (shown < ckpt->tensors().size())
    std::cout << "    ... " << ckpt->tensors().size() - shown << " more (--all-tensors)\n";
}

}  // namespace

int main(int argc, char** argv) {
  bool all_tensors = false, metadata = true, runtime = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--all-tensors") {
      all_tensors = true;
    } else if (a == "--no-metadata") {
      metadata = false;
    } else if (a == "--runtime") {
      runtime = true;
    } else if (!a.empty() && a[0] == '-') {
      std::cerr << "peft-inspect: unknown option " << a << "\n" << kUsage;
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  if (paths.empty() && !runtime) {
    std::cerr << kUsage;
    return 2;
  }
  if (runtime) {
#ifdef PEFT_HAVE_TORCH
    const auto info = peft::configure_runtime(0);
    std::cout << "runtime: libtorch " << info.torch_version << ", " << info.threads << " threads, BLAS "
              << (info.blas_library.empty() ? "none loaded" : info.blas_library)
              << (info.blas_is_openblas ? "" : " (not OpenBLAS: slow)");
    if (!info.blas_core.empty()) {
      std::cout << ", kernels " << info.blas_core;
      if (info.blas_core != info.blas_core_detected)
        std::cout << " (OpenBLAS chose " << info.blas_core_detected << ": CPU not recognised)";
    }
    std::cout << "\n";
#else
    std::cout << "runtime: built without libtorch\n";
#endif
  }
  int status = 0;
  for (const auto& p : paths) {
    try {
      inspect(p, all_tensors, metadata);
    } catch (const peft::Error& e) {
      std::cerr << "peft-inspect: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}
