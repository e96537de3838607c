// glibc malloc settings for a process running the elements, applied once, when an element
// first loads a model (not when the plugin is only scanned or inspected).
//
// Why: inference allocates and frees activations of a few MB to tens of MB every decode.
// glibc's defaults hand such blocks back to the kernel (munmap, heap trimming) and fault
// them in again at the next decode. Measured with 4 min of speech through
// `whisperasr ! tee ! peftsummarize` in gst-launch-1.0: 1.4-2.3 M page faults and 6-9 s of
// system time; with these settings 0.47 M, about what the same work takes through
// peft-transcribe (one arena, on the main thread). Large blocks then come from the heap and freed
// memory stays with the process up to kTrimThreshold above what is in use: peak memory is
// unchanged, memory is returned to the system later.
//
// A process-wide setting, made only when the user has not chosen one: when the
// environment has MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or glibc.malloc tunables
// in GLIBC_TUNABLES, or PEFT_KEEP_MALLOC_SETTINGS is set, nothing is changed.
#pragma once

#include <cstdlib>
#include <cstring>
#include <mutex>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace gstpeft {

inline void tune_malloc_for_inference() {
#ifdef __GLIBC__
  static std::once_flag once;
  std::call_once(once, [] {
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (std::getenv("PEFT_KEEP_MALLOC_SETTINGS") || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
        std::getenv("MALLOC_TRIM_THRESHOLD_") || (tunables && std::strstr(tunables, "glibc.malloc")))
      return;
    // Blocks below 32 MB (the ceiling of glibc's own dynamic threshold on 64-bit,
    // DEFAULT_MMAP_THRESHOLD_MAX) from the heap; up to 512 MB free at the top of a heap kept. Setting only
    // one of the two makes things worse: either fixes the other at its default (measured: 4.6 M and 18.9 M
    // page faults on the run above).
    constexpr int kMmapThreshold = 32 << 20, kTrimThreshold = 512 << 20;
    mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
    mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
  });
#endif
}

}  // namespace gstpeft
