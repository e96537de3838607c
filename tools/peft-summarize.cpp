// peft-summarize: abstractive summary of a text (a transcript, an article) with a
// small language model: an instruction-tuned decoder-only model (default SmolLM2) or a
// T5/BART-style encoder-decoder. Texts longer than the model's input are summarized in
// overlapping chunks, then the chunk summaries are summarized (map-reduce).
#include <cstdlib>
#ifdef __GLIBC__
#endif
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>

#include "cli_common.h"
#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/peft_adapter.h"
#include "peft/error.h"
#include "peft/quant/quant_type.h"
#include "peft/runtime.h"
#include "peft/summarization/summarizer.h"
#include "peft/summarization/text_model.h"
#include "peft/text/tokenizer.h"

namespace fs = std::filesystem;
using namespace peft;

namespace {

const char* kUsage = R"(usage: peft-summarize [options] [FILE]

Summarizes the UTF-8 text in FILE (or standard input when FILE is - or absent) and
prints the summary. Decoding options mean what they mean in Hugging Face's generate().

options:
  --model PATH          summarizer: a GGUF file (or a directory holding one) of a
                        Llama-family instruction model, or a Hugging Face directory
                        (config.json, *.safetensors) of one (llama, mistral, qwen2, with
                        tokenizer.json and a ChatML or Llama 3 chat template), of T5
                        (with spiece.model or tokenizer.json), of BART (with
                        tokenizer.json) or of MBart / MBart-50 (with
                        sentencepiece.bpe.model or tokenizer.json) (default:
                        $PEFT_MODELS_DIR/smollm2-135m-instruct, where PEFT_MODELS_DIR
                        defaults to the source tree's models/default)
  --quant TYPE          none (weights as stored, GGUF blocks included), f32 (dequantized),
                        int8, int4 or nf4 (default none)
  --group-size N        weights per scale for int4/nf4: 32, 64 or 128 (default 64)
  --source-lang CODE    MBart only: the text's language code, e.g. en_XX, de_DE (default:
                        the tokenizer's src_lang, else en_XX)
  --target-lang CODE    MBart only: the summary's language code, forced as its first token
                        (default: the model's forced_bos_token_id)
  --adapter DIR         a LoRA or AdaLoRA adapter in Hugging Face PEFT's files, trained on
                        this model; applied to every generation
  --instruction TEXT    what the model is asked to do with the text (default: the
                        model family's: "Summarize the following text in one or two
                        sentences. Reply with the summary only." for chat models, the
                        prefix "summarize:" for T5, nothing for BART)
  --max-new-tokens N    longest summary, in tokens (default 96)
  --min-new-tokens N    shortest summary, in tokens (default 0)
  --beam N              beam search with N beams; 1 is greedy (default 1)
  --length-penalty X    beam scores divided by length^X (default 1.0)
  --early-stopping      stop beam search once N hypotheses are finished
  --sample              sample instead of choosing the most likely token
  --temperature X       sampling temperature (default 1.0)
  --top-k N             sample among the N most likely tokens; 0: all (default 0)
  --top-p X             sample within the smallest set of probability >= X (default 1.0)
  --seed N              sampling seed; the same seed gives the same summary (default 0)
  --repetition-penalty X  > 1 discourages repeating tokens (default 1.0)
  --no-repeat-ngram N   never repeat an n-gram of N tokens; 0: off (default 0)
  --stop TEXT           stop when the summary contains TEXT (repeatable)
  --chunk-tokens N      longest chunk of input text, in tokens (default: what the model's
                        context leaves, at most 2048)
  --overlap-tokens N    tokens shared by neighbouring chunks (default 64)
  --stream              print the summary token by token as it is generated (greedy or
                        sampled decoding; of a long text, the final round is streamed)
  --threads N           CPU threads (default: all cores)
  -h, --help            this help

Exit status: 0 on success, 1 when the model or the input cannot be read, 2 on bad options.
)";

struct Args {
  fs::path model;
  std::optional<fs::path> adapter;
  std::string input = "-";
  summarization::TextModelOptions load;
  summarization::SummaryOptions summary;
  bool stream = false;
  int threads = 0;
};

using cli::default_models_dir;
using cli::to_number;
using cli::usage_error;

Args parse_args(int argc, char** argv) {
  Args a;
  a.model = default_models_dir() / "smollm2-135m-instruct";
  a.summary.generation.max_new_tokens = 96;
  bool have_input = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    auto& g = a.summary.generation;
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--model") {
      a.model = value();
    } else if (arg == "--adapter") {
      a.adapter = fs::path(value());
    } else if (arg == "--quant") {
      try {
        a.load.quant.type = quant::parse_quant_type(value());
      } catch (const ValueError& e) {
        usage_error(e.what());
      }
    } else if (arg == "--group-size") {
      a.load.quant.group_size = to_number<int64_t>(arg, value());
    } else if (arg == "--source-lang") {
      a.load.source_language = value();
    } else if (arg == "--target-lang") {
      a.load.target_language = value();
    } else if (arg == "--instruction") {
      a.summary.instruction = value();
    } else if (arg == "--max-new-tokens") {
      g.max_new_tokens = to_number<int64_t>(arg, value());
    } else if (arg == "--min-new-tokens") {
      g.min_new_tokens = to_number<int64_t>(arg, value());
    } else if (arg == "--beam") {
      g.num_beams = to_number<int64_t>(arg, value());
    } else if (arg == "--length-penalty") {
      g.length_penalty = to_number<double>(arg, value());
    } else if (arg == "--early-stopping") {
      g.early_stopping = true;
    } else if (arg == "--sample") {
      g.do_sample = true;
    } else if (arg == "--temperature") {
      g.temperature = to_number<double>(arg, value());
    } else if (arg == "--top-k") {
      g.top_k = to_number<int64_t>(arg, value());
    } else if (arg == "--top-p") {
      g.top_p = to_number<double>(arg, value());
    } else if (arg == "--seed") {
      g.seed = to_number<uint64_t>(arg, value());
    } else if (arg == "--repetition-penalty") {
      g.repetition_penalty = to_number<double>(arg, value());
    } else if (arg == "--no-repeat-ngram") {
      g.no_repeat_ngram_size = to_number<int64_t>(arg, value());
    } else if (arg == "--stop") {
      g.stop_strings.push_back(value());
    } else if (arg == "--chunk-tokens") {
      a.summary.chunk_tokens = to_number<int64_t>(arg, value());
      if (a.summary.chunk_tokens < 1) usage_error("--chunk-tokens must be >= 1");
    } else if (arg == "--overlap-tokens") {
      a.summary.overlap_tokens = to_number<int64_t>(arg, value());
    } else if (arg == "--stream") {
      a.stream = true;
    } else if (arg == "--threads") {
      a.threads = static_cast<int>(to_number<int64_t>(arg, value()));
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      usage_error("unknown option " + arg);
    } else {
      if (have_input) usage_error("one input file at most (got '" + a.input + "' and '" + arg + "')");
      a.input = arg;
      have_input = true;
    }
  }
  try {
    a.summary.generation.validate();
    if (a.load.quant.type != quant::QuantType::none) a.load.quant.validate();
  } catch (const ValueError& e) {
    usage_error(e.what());
  }
  if (a.stream && a.summary.generation.num_beams > 1)
    usage_error("--stream needs greedy or sampled decoding");
  return a;
}

std::string read_input(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError(path + ": cannot open the input text");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

int main(int argc, char** argv) {
  cli::program() = "peft-summarize";
  cli::use_one_malloc_arena();
  const Args args = parse_args(argc, argv);
  try {
    configure_runtime(args.threads);
    const std::string text = read_input(args.input);
    const auto model = summarization::TextModel::load(args.model, args.load);
    std::shared_ptr<const adapters::BoundAdapter> adapter;
    if (args.adapter) adapter = model->bind(adapters::PeftAdapter::load(*args.adapter));
    summarization::SummaryOptions options = args.summary;
    size_t printed = 0;
    if (args.stream)
      options.generation.on_token = [&](const std::vector<int64_t>& ids) {
        // Print what is complete: a character cut by the last token waits for the next.
        std::string so_far = model->tokenizer().decode(ids);
        so_far.erase(0, so_far.find_first_not_of(" \n\t"));  // as the summary, which is trimmed
        while (!so_far.empty() && so_far.size() >= 3 &&
               so_far.compare(so_far.size() - 3, 3, "\xef\xbf\xbd") == 0)
          so_far.resize(so_far.size() - 3);
        if (so_far.size() > printed) {
          std::cout << so_far.substr(printed) << std::flush;
          printed = so_far.size();
        }
        return true;
      };
    const summarization::Summary s = summarization::summarize(*model, text, options, adapter.get());
    for (const auto& w : s.warnings)
      std::cerr << "peft-summarize: warning: " << args.input << ": " << w << "\n";
    if (s.chunks > 1)
      std::cerr << "peft-summarize: " << s.chunks << " chunks, " << s.levels << " rounds of summaries\n";
    if (args.stream) {
      std::cout << "\n";
    } else {
      std::cout << s.text << "\n";
    }
  } catch (const Error& e) {
    std::cerr << "peft-summarize: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
