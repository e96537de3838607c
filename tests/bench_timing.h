// Timing for the hand-run benchmarks in tests/: the median wall time of repeated calls.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace peft_test {

// Median milliseconds of `reps` calls of f (no warm-up: the caller decides).
template <class F>
double median_ms(F&& f, int reps) {
  std::vector<double> t;
  for (int i = 0; i < std::max(reps, 1); ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace peft_test
