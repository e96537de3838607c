// What the command-line programs share: their malloc setting, where the default models
// are, and the usage errors (exit status 2, "<program>: <message>" then a pointer to
// --help) for options and their numeric values.
#pragma once

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>
#include <type_traits>

namespace peft::cli {

// The program name every message starts with; each program sets it first thing.
inline std::string& program() {
  static std::string name = "peft";
  return name;
}

// One malloc arena: libtorch's worker threads otherwise get arenas of their own that
// keep freed activations. Measured in peft-transcribe (5.4 min of speech, beam 1, 2
// threads): peak RSS 630 -> 547 MB, time unchanged (18.7 vs 18.3 s). A process-wide
// choice, so each program makes it first thing, not the library (the GStreamer elements
// make theirs in gst-plugins/peft/common/malloc_tuning.h).
inline void use_one_malloc_arena() {
#ifdef __GLIBC__
  mallopt(M_ARENA_MAX, 1);
#endif
}

// $PEFT_MODELS_DIR, else the source tree's models/default (set at build time).
inline std::filesystem::path default_models_dir() {
  const char* env = std::getenv("PEFT_MODELS_DIR");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path(PEFT_DEFAULT_MODELS_DIR);
}

[[noreturn]] inline void usage_error(const std::string& message) {
  std::cerr << program() << ": " << message << "\n(see " << program() << " --help)\n";
  std::exit(2);
}

// `value` as a T (integral or floating point) in full, else a usage error naming `flag`.
template <class T>
T to_number(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    T v;
    if constexpr (std::is_integral_v<T>) {
      const long long wide = std::stoll(value, &used);
      if (wide < static_cast<long long>(std::numeric_limits<T>::min()) ||
          (wide > 0 && static_cast<unsigned long long>(wide) > std::numeric_limits<T>::max()))
        used = 0;  // out of T's range
      v = static_cast<T>(wide);
    } else
      v = static_cast<T>(std::stod(value, &used));
    if (used == value.size()) return v;
  } catch (const std::exception&) {
  }
  usage_error(flag + (std::is_integral_v<T> ? " expects an integer, got '" : " expects a number, got '") +
              value + "'");
}

}  // namespace peft::cli
