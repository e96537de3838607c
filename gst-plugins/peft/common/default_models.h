// Where the elements find models when their `model` property is left empty:
// $PEFT_MODELS_DIR, else the source tree's models/default (filled by models/fetch-default;
// the path is fixed at build time, as for the command-line tools).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace gstpeft {

inline std::filesystem::path default_models_dir() {
  const char* env = std::getenv("PEFT_MODELS_DIR");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path(PEFT_DEFAULT_MODELS_DIR);
}

// The key SharedModels uses: the model's canonical path (so "./m" and "m" are one
// model) and the quantization.
inline std::string model_key(const std::filesystem::path& path, const std::string& quantization) {
  std::error_code ec;
  std::filesystem::path canonical = std::filesystem::weakly_canonical(path, ec);
  return (ec ? path : canonical).string() + "|" + quantization;
}

}  // namespace gstpeft
