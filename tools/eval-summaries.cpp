// eval-summaries: ROUGE of a summarizer on JSONL pairs {"id", "text", "summary"} (as
// tools/make-summary-dataset writes them): each text is summarized, scored against its
// reference summary with rouge-score's ROUGE-1/2/L/Lsum (Porter stemmer), and the mean
// F-measures are printed. Predictions go line by line to a JSONL file; an interrupted
// run started again with the same file skips the pairs already there.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/peft_adapter.h"
#include "peft/error.h"
#include "peft/metrics/rouge.h"
#include "peft/quant/quant_type.h"
#include "peft/runtime.h"
#include "peft/summarization/summarizer.h"
#include "peft/summarization/text_model.h"

namespace fs = std::filesystem;
using namespace peft;

namespace {

const char* kUsage = R"(usage: eval-summaries [options] PAIRS.jsonl

Summarizes the "text" of each line of PAIRS.jsonl and scores it against its "summary"
with ROUGE-1/2/L/Lsum as google-research's rouge-score does (stemming on). Prints the
mean precision, recall and F-measure (x100) of each, and the time per pair.

options:
  --model PATH          summarizer (default $PEFT_MODELS_DIR/smollm2-135m-instruct)
  --quant TYPE          none, f32, int8, int4 or nf4 (default none: as stored)
  --group-size N        int4/nf4 weights per scale (default 64)
  --adapter DIR         a PEFT LoRA/AdaLoRA adapter for the model
  --instruction TEXT    instruction given with each text (default: peft-summarize's)
  --max-new-tokens N    longest summary in tokens (default 48)
  --beam N              beam size (default 1: greedy)
  --limit N             the first N pairs only (default: all)
  --predictions FILE    JSONL of {id, prediction, rouge1, rouge2, rougeL, rougeLsum};
                        pairs whose id is already in FILE are not summarized again
                        (their scores are read back), so an interrupted run resumes
  --threads N           CPU threads (default: all cores)
  -h, --help            this help
)";

using cli::usage_error;

int64_t to_int(const std::string& flag, const std::string& value) {
  return cli::to_number<int64_t>(flag, value);
}

struct Totals {
  metrics::RougeScores sum;
  int64_t n = 0;
  void add(const metrics::RougeScores& s) {
    for (auto [t, x] : {std::pair{&sum.rouge1, &s.rouge1}, std::pair{&sum.rouge2, &s.rouge2},
                        std::pair{&sum.rougeL, &s.rougeL}, std::pair{&sum.rougeLsum, &s.rougeLsum}}) {
      t->precision += x->precision;
      t->recall += x->recall;
      t->fmeasure += x->fmeasure;
    }
    ++n;
  }
};

nlohmann::json to_json(const metrics::RougeScore& s) { return {s.precision, s.recall, s.fmeasure}; }
metrics::RougeScore from_json(const nlohmann::json& j) {
  return {j.at(0).get<double>(), j.at(1).get<double>(), j.at(2).get<double>()};
}

}  // namespace

int main(int argc, char** argv) {
  cli::program() = "eval-summaries";
  cli::use_one_malloc_arena();
  fs::path model_path = cli::default_models_dir() / "smollm2-135m-instruct";
  std::optional<fs::path> adapter_dir, predictions_path;
  quant::QuantOptions quant;
  summarization::SummaryOptions options;
  options.generation.max_new_tokens = 48;
  int64_t limit = -1;
  int threads = 0;
  std::string pairs_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--model") {
      model_path = value();
    } else if (arg == "--quant") {
      try {
        quant.type = quant::parse_quant_type(value());
      } catch (const ValueError& e) {
        usage_error(e.what());
      }
    } else if (arg == "--group-size") {
      quant.group_size = to_int(arg, value());
    } else if (arg == "--adapter") {
      adapter_dir = fs::path(value());
    } else if (arg == "--instruction") {
      options.instruction = value();
    } else if (arg == "--max-new-tokens") {
      options.generation.max_new_tokens = to_int(arg, value());
    } else if (arg == "--beam") {
      options.generation.num_beams = to_int(arg, value());
    } else if (arg == "--limit") {
      limit = to_int(arg, value());
    } else if (arg == "--predictions") {
      predictions_path = fs::path(value());
    } else if (arg == "--threads") {
      threads = static_cast<int>(to_int(arg, value()));
    } else if (!arg.empty() && arg[0] == '-') {
      usage_error("unknown option " + arg);
    } else {
      if (!pairs_path.empty()) usage_error("one PAIRS.jsonl file at most");
      pairs_path = arg;
    }
  }
  if (pairs_path.empty()) usage_error("no PAIRS.jsonl given");
  try {
    options.generation.validate();
    if (quant.type != quant::QuantType::none) quant.validate();
  } catch (const ValueError& e) {
    usage_error(e.what());
  }

  try {
    configure_runtime(threads);
    std::ifstream pairs(pairs_path);
    if (!pairs) throw IoError(pairs_path + ": cannot open");
    // Scores already written by an earlier run.
    std::map<std::string, metrics::RougeScores> done;
    if (predictions_path && fs::exists(*predictions_path)) {
      std::ifstream old(*predictions_path);
      std::string line;
      int64_t n = 0;
      while (std::getline(old, line)) {
        ++n;
        try {
          const auto j = nlohmann::json::parse(line);
          done[j.at("id").get<std::string>()] = {from_json(j.at("rouge1")), from_json(j.at("rouge2")),
                                                 from_json(j.at("rougeL")), from_json(j.at("rougeLsum"))};
        } catch (const std::exception&) {
          // A line cut by an interruption: that pair is summarized again.
          std::cerr << "eval-summaries: " << predictions_path->string() << ":" << n
                    << ": unreadable line ignored (an interrupted write?)\n";
        }
      }
    }
    const auto model = summarization::TextModel::load(model_path, quant);
    std::shared_ptr<const adapters::BoundAdapter> adapter;
    if (adapter_dir) adapter = model->bind(adapters::PeftAdapter::load(*adapter_dir));
    std::ofstream out;
    if (predictions_path) {
      out.open(*predictions_path, std::ios::app);
      if (!out) throw IoError(predictions_path->string() + ": cannot open for appending");
    }
    Totals totals;
    double seconds = 0;
    int64_t summarized = 0, line_no = 0;
    std::string line;
    while ((limit < 0 || totals.n < limit) && std::getline(pairs, line)) {
      ++line_no;
      nlohmann::json pair;
      try {
        pair = nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        throw FormatError(pairs_path, "line " + std::to_string(line_no), e.what());
      }
      const std::string id = pair.value("id", std::to_string(line_no));
      if (const auto it = done.find(id); it != done.end()) {
        totals.add(it->second);
        continue;
      }
      const auto t0 = std::chrono::steady_clock::now();
      const summarization::Summary s =
          summarization::summarize(*model, pair.at("text").get<std::string>(), options, adapter.get());
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++summarized;
      const metrics::RougeScores r = metrics::rouge(pair.at("summary").get<std::string>(), s.text, true);
      totals.add(r);
      if (out.is_open()) {
        out << nlohmann::json{{"id", id},
                              {"prediction", s.text},
                              {"rouge1", to_json(r.rouge1)},
                              {"rouge2", to_json(r.rouge2)},
                              {"rougeL", to_json(r.rougeL)},
                              {"rougeLsum", to_json(r.rougeLsum)}}
                   .dump()
            << "\n"
            << std::flush;
      }
    }
    if (totals.n == 0) throw ValueError(pairs_path + ": no pairs");
    std::cout << std::fixed << std::setprecision(2) << "pairs " << totals.n << " (summarized now "
              << summarized << ", " << (summarized ? seconds / summarized : 0.0) << " s each), model "
              << model->source() << ", quant " << quant::to_string(quant.type) << "\n";
    std::cout << "metric      precision  recall  F-measure  (mean x100)\n";
    for (auto [name, s] :
         {std::pair{"rouge1", &totals.sum.rouge1}, std::pair{"rouge2", &totals.sum.rouge2},
          std::pair{"rougeL", &totals.sum.rougeL}, std::pair{"rougeLsum", &totals.sum.rougeLsum}})
      std::cout << std::setw(10) << std::left << name << std::right << std::setw(11)
                << 100 * s->precision / totals.n << std::setw(8) << 100 * s->recall / totals.n
                << std::setw(11) << 100 * s->fmeasure / totals.n << "\n";
  } catch (const Error& e) {
    std::cerr << "eval-summaries: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
