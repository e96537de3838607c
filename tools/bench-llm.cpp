// bench-llm: prefill and decode speed of a Llama-family model as llama.cpp's llama-bench
// measures them (pp: a prompt of P tokens in one pass; tg: G tokens decoded one at a
// time from an empty context; random token ids; median of the repetitions), plus the
// process's peak RSS. Prints one JSON line; tools/benchmarks/bench-summarizer runs it next to
// llama-bench.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/models/llama.h"
#include "peft/quant/quant_type.h"
#include "peft/runtime.h"

using namespace peft;

namespace {

double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, quant_name = "none";
  int64_t prompt = 512, gen = 128, reps = 3;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "bench-llm: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model")
      model_path = next();
    else if (a == "--quant")
      quant_name = next();
    else if (a == "-p")
      prompt = std::stoll(next());
    else if (a == "-n")
      gen = std::stoll(next());
    else if (a == "-r")
      reps = std::stoll(next());
    else if (a == "-t")
      threads = std::stoi(next());
    else {
      std::cerr
          << "usage: bench-llm --model GGUF|DIR [--quant none|f32|int8|int4|nf4] [-p 512] [-n 128] [-r 3] "
             "[-t threads]\n";
      return 2;
    }
  }
  try {
    const RuntimeInfo runtime = configure_runtime(threads);
    quant::QuantOptions q;
    q.type = quant::parse_quant_type(quant_name);
    q.group_size = 32;  // as ggml's 4-bit blocks
    const auto model = models::LlamaModel::load(model_path, q);
    std::mt19937_64 rng(1);
    std::uniform_int_distribution<int64_t> token(100, model->config().vocab_size - 1);
    std::vector<double> pp, tg;
    for (int64_t r = 0; r < reps + 1; ++r) {  // the first round warms up and is not counted
      std::vector<int64_t> ids(static_cast<size_t>(prompt));
      for (auto& t : ids) t = token(rng);
      models::KVCache cache = model->start();
      auto t0 = std::chrono::steady_clock::now();
      model->decode(at::tensor(ids, at::kLong).view({1, prompt}), cache, prompt - 1);
      const double p_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      models::KVCache steps = model->start();
      t0 = std::chrono::steady_clock::now();
      for (int64_t k = 0; k < gen; ++k)
        model->decode(at::tensor({token(rng)}, at::kLong).view({1, 1}), steps);
      const double g_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) {
        pp.push_back(prompt / p_s);
        tg.push_back(gen / g_s);
      }
    }
    std::cout << nlohmann::json{{"model", model_path},
                                {"quant", quant_name},
                                {"weights", model->weight_summary()},
                                {"weight_bytes", model->weight_bytes()},
                                {"threads", runtime.threads},
                                {"pp_tokens", prompt},
                                {"tg_tokens", gen},
                                {"pp_tps", median(pp)},
                                {"tg_tps", median(tg)},
                                {"peak_rss_mib", peak_rss_mib()}}
                     .dump()
              << "\n";
  } catch (const Error& e) {
    std::cerr << "bench-llm: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
