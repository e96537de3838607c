// peft-transcribe: speech to text with Whisper. Reads WAV files (any rate, any channel
// count) or raw float32 audio, and prints one transcript per file.
#include <algorithm>
#include <cstdlib>
#ifdef __GLIBC__
#endif
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_common.h"
#include "peft/adapters/peft_adapter.h"
#include "peft/audio/resample.h"
#include "peft/audio/vad.h"
#include "peft/audio/wav.h"
#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/quant/quant_type.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/batched_transcription.h"
#include "peft/transcription/speech_snapping.h"
#include "peft/transcription/streaming_transcriber.h"
#include "peft/transcription/transcript_format.h"
#include "peft/transcription/vad_transcription.h"
#include "peft/transcription/whisper_decoding.h"

namespace fs = std::filesystem;
using namespace peft;

namespace {

const char* kUsage = R"(usage: peft-transcribe [options] AUDIO...

Transcribes each AUDIO file with Whisper and prints its transcript. Decoding follows
faster-whisper's defaults (beam 5, temperature fallback, condition on previous text).

AUDIO             a WAV file (PCM 8/16/24/32-bit or float, any rate, any channels: mixed
                  to mono and resampled to 16 kHz), or raw little-endian float32 mono
                  samples with --raw-rate

options:
  --model PATH      Whisper model: a CTranslate2 directory (faster-whisper layout), a
                    Hugging Face directory with config.json, *.safetensors and
                    tokenizer.json, or an openai-whisper checkpoint file (*.pt) (default:
                    $PEFT_MODELS_DIR/whisper-tiny.en, where PEFT_MODELS_DIR defaults to
                    the source tree's models/default)
  --tokenizer FILE  tokenizer.json, or openai-whisper's multilingual.tiktoken /
                    gpt2.tiktoken (default: tokenizer.json in the model's directory, or
                    beside the .pt file; openai's .pt files carry none)
  --adapter DIR     a LoRA or AdaLoRA adapter in Hugging Face PEFT's files
                    (adapter_config.json + adapter_model.safetensors) trained on this
                    Whisper model; checked against the model, applied to every window
  --beam N          beam size at temperature 0; 1 is greedy (default 5)
  --language CODE   language of the speech for multilingual models, or auto (default):
                    detected on the first 30 s, printed to stderr and in --format json
  --task TASK       transcribe | translate (into English; multilingual models only)
  --initial-prompt TEXT
                    text that conditions the first window (names, spelling)
  --no-condition    do not condition each window on the previous text
  --without-timestamps
                    decode without timestamp tokens (one segment per 30 s window)
  --temperature T   decode at temperature T only (no fallback)
  --word-timestamps time each word (cross-attention alignment, as faster-whisper's
                    word_timestamps=True); segments then start and end at their first
                    and last word, closer to the speech than Whisper's timestamps;
                    --format json lists the words of each segment (text, srt and vtt
                    are unchanged). Not with --batch.
  --snap-to-speech  move word and segment times onto the speech Silero VAD finds in the
                    whole audio (implies --word-timestamps): words running into a
                    silence end where the speech ends, words placed in a silence move to
                    its edge. Whisper's last words often run 1-4 s into the silence
                    after them; on 10 minutes of utterances and silences
                    (tests/transcription/test_whisper_long_audio.cpp) every segment is then
                    within 0.35 s of its speech. Needs the VAD model; not with --batch.
  --vad             transcribe only the speech Silero VAD finds; times stay on the
                    original timeline
  --vad-model FILE  Silero VAD TorchScript file (default:
                    $PEFT_MODELS_DIR/silero-vad/silero_vad.jit)
  --vad-threshold P speech probability threshold (default 0.5)
  --batch N         batched mode (faster-whisper's BatchedInferencePipeline): VAD cuts
                    the speech into chunks of at most 30 s, decoded N at a time and
                    independently (no previous-text conditioning, first temperature
                    only, no seeking); faster on long files. Needs the VAD model.
  --stream-latency MS
                    transcribe as the whisperasr element does live (StreamingTranscriber:
                    decodes of the growing audio, committed by local agreement, every
                    sample decided within MS milliseconds), the file fed in 100 ms
                    pieces: the element's output without GStreamer. The element's
                    defaults are --stream-latency 10000 --beam 1 --temperature 0.
                    Not with --vad, --batch or --snap-to-speech.
  --threads N       libtorch threads (default: all cores)
  --quant Q         none | int8 | int4 | nf4: quantize the model's projections at load
                    time (default none: as the checkpoint stores them; a CTranslate2
                    int8 model stays int8). int8: per output channel; int4 / nf4: one
                    scale per --group-size weights of a row. The model's weight bytes are
                    printed to stderr after loading.
  --group-size N    int4 / nf4 group size: 32, 64 (default) or 128
  --double-quant    int4 / nf4: also quantize the group scales (8-bit, as bitsandbytes)
  --quant-embeddings
                    also quantize the token embedding (the output projection)
  --format F        text | srt | vtt | json (default text)
  --raw-rate HZ     read AUDIO as raw float32 at this sample rate
  -h, --help        this text

With several files, each transcript is preceded by "==> FILE <==" (text format).
Exit status: 0 when every file was transcribed, 1 when one failed (the others are still
transcribed), 2 for bad options.
)";

struct Args {
  fs::path model;
  fs::path tokenizer;  // empty: beside the model
  fs::path adapter;    // empty: none
  transcription::DecodingOptions decoding;
  bool vad = false;
  bool snap_to_speech = false;
  int batch = 0;              // 0: sequential long-form transcription
  int stream_latency_ms = 0;  // > 0: StreamingTranscriber with this latency
  fs::path vad_model;
  audio::VadOptions vad_options;
  bool vad_threshold_given = false;
  int threads = 0;
  quant::QuantOptions quant;
  transcription::TranscriptFormat format = transcription::TranscriptFormat::kText;
  std::optional<int> raw_rate;
  std::vector<std::string> files;
};

using cli::default_models_dir;
using cli::usage_error;

int to_int(const std::string& flag, const std::string& value) { return cli::to_number<int>(flag, value); }
float to_float(const std::string& flag, const std::string& value) {
  return cli::to_number<float>(flag, value);
}

Args parse_args(int argc, char** argv) {
  Args a;
  a.model = default_models_dir() / "whisper-tiny.en";
  a.vad_model = default_models_dir() / "silero-vad" / "silero_vad.jit";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--model") {
      a.model = value();
    } else if (arg == "--beam") {
      a.decoding.beam_size = to_int(arg, value());
    } else if (arg == "--tokenizer") {
      a.tokenizer = value();
    } else if (arg == "--adapter") {
      a.adapter = value();
    } else if (arg == "--language") {
      a.decoding.language = value();
      if (a.decoding.language == "auto") a.decoding.language.clear();
    } else if (arg == "--task") {
      a.decoding.task = value();
    } else if (arg == "--initial-prompt") {
      a.decoding.initial_prompt = value();
    } else if (arg == "--no-condition") {
      a.decoding.condition_on_previous_text = false;
    } else if (arg == "--without-timestamps") {
      a.decoding.without_timestamps = true;
    } else if (arg == "--temperature") {
      a.decoding.temperatures = {to_float(arg, value())};
    } else if (arg == "--word-timestamps") {
      a.decoding.word_timestamps = true;
    } else if (arg == "--snap-to-speech") {
      a.snap_to_speech = true;
      a.decoding.word_timestamps = true;
    } else if (arg == "--vad") {
      a.vad = true;
    } else if (arg == "--vad-model") {
      a.vad_model = value();
    } else if (arg == "--vad-threshold") {
      a.vad_options.threshold = to_float(arg, value());
      a.vad_threshold_given = true;
    } else if (arg == "--batch") {
      a.batch = to_int(arg, value());
      if (a.batch < 1) usage_error("--batch must be >= 1");
    } else if (arg == "--stream-latency") {
      a.stream_latency_ms = to_int(arg, value());
      if (a.stream_latency_ms <= 0) usage_error("--stream-latency must be positive");
    } else if (arg == "--threads") {
      a.threads = to_int(arg, value());
    } else if (arg == "--quant") {
      try {
        a.quant.type = quant::parse_quant_type(value());
      } catch (const ValueError& e) {
        usage_error(e.what());
      }
    } else if (arg == "--group-size") {
      a.quant.group_size = to_int(arg, value());
    } else if (arg == "--double-quant") {
      a.quant.double_quant = true;
    } else if (arg == "--quant-embeddings") {
      a.quant.quantize_embeddings = true;
    } else if (arg == "--format") {
      try {
        a.format = transcription::parse_transcript_format(value());
      } catch (const ValueError& e) {
        usage_error(e.what());
      }
    } else if (arg == "--raw-rate") {
      a.raw_rate = to_int(arg, value());
      if (*a.raw_rate <= 0) usage_error("--raw-rate must be positive");
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      usage_error("unknown option " + arg);
    } else {
      a.files.push_back(arg);
    }
  }
  if (a.files.empty()) usage_error("no audio file given");
  if (a.decoding.word_timestamps && a.batch > 0)
    usage_error(std::string(a.snap_to_speech ? "--snap-to-speech" : "--word-timestamps") +
                " does not work with --batch (yet)");
  if (a.stream_latency_ms > 0 && (a.vad || a.batch > 0 || a.snap_to_speech))
    usage_error("--stream-latency does not work with --vad, --batch or --snap-to-speech");
  try {
    if (a.stream_latency_ms > 0)
      transcription::StreamingOptions::with_latency(a.stream_latency_ms / 1000.0, a.decoding).validate();
    a.decoding.validate();
    a.quant.validate();
    if (a.vad || a.snap_to_speech) a.vad_options.validate();
  } catch (const ValueError& e) {
    usage_error(e.what());
  }
  return a;
}

std::vector<float> load_audio(const std::string& path, std::optional<int> raw_rate) {
  if (raw_rate) return audio::resample(audio::read_raw_f32(path), *raw_rate);
  audio::WavAudio wav = audio::read_wav(path);
  if (wav.truncated)
    std::cerr << "peft-transcribe: warning: " << path << ": data chunk truncated; using what is there\n";
  return audio::resample(wav.samples, wav.sample_rate);
}

// The whisperasr element's work on a whole file: 100 ms pushes (the result does not depend
// on the piece size: streaming_transcriber.h), then finish().
std::vector<transcription::Segment> transcribe_streaming(
    std::shared_ptr<const models::WhisperModel> model,
    std::shared_ptr<const text::WhisperTokenizer> tokenizer, const std::vector<float>& samples,
    const Args& args) {
  transcription::StreamingTranscriber stream(
      std::move(model), std::move(tokenizer),
      transcription::StreamingOptions::with_latency(args.stream_latency_ms / 1000.0, args.decoding));
  std::vector<transcription::Segment> segments;
  auto keep = [&](transcription::StreamUpdate&& u) {
    for (auto& segment : u.committed) segments.push_back(std::move(segment));
  };
  constexpr size_t kPiece = transcription::StreamingTranscriber::kSampleRate / 10;
  for (size_t at = 0; at < samples.size(); at += kPiece)
    keep(stream.push(samples.data() + at, std::min(kPiece, samples.size() - at)));
  keep(stream.finish());
  return segments;
}

}  // namespace

int main(int argc, char** argv) {
  cli::program() = "peft-transcribe";
  cli::use_one_malloc_arena();
  Args args = parse_args(argc, argv);
  configure_runtime(args.threads);

  std::shared_ptr<const models::WhisperModel> model;
  std::shared_ptr<const text::WhisperTokenizer> tokenizer;
  std::optional<audio::SileroVad> vad;
  try {
    model = models::WhisperModel::load(args.model, args.quant);
    std::cerr << "peft-transcribe: model weights: " << model->weight_bytes() << " bytes (--quant "
              << quant::to_string(args.quant.type) << ")\n";
    if (!args.adapter.empty()) args.decoding.adapter = model->bind(adapters::PeftAdapter::load(args.adapter));
    const fs::path dir = fs::is_directory(args.model) ? args.model : args.model.parent_path();
    tokenizer = std::make_shared<const text::WhisperTokenizer>(
        args.tokenizer.empty() ? dir / "tokenizer.json" : args.tokenizer, model->dims().n_vocab);
    if (!tokenizer->multilingual() && !args.decoding.language.empty() && args.decoding.language != "en")
      std::cerr << "peft-transcribe: warning: the model is English-only; transcribing as English, not '"
                << args.decoding.language << "'\n";
    if (args.vad || args.batch > 0 || args.snap_to_speech)
      vad.emplace(audio::SileroVad::load(args.vad_model.string()));
  } catch (const Error& e) {
    std::cerr << "peft-transcribe: " << e.what() << "\n";
    return 1;
  }

  int status = 0;
  for (const auto& file : args.files) {
    try {
      const std::vector<float> samples = load_audio(file, args.raw_rate);
      transcription::TranscriptionInfo info;
      std::vector<transcription::Segment> segments;
      if (args.stream_latency_ms > 0) {
        segments = transcribe_streaming(model, tokenizer, samples, args);
      } else if (args.batch > 0) {
        transcription::BatchedOptions batched;
        batched.batch_size = args.batch;
        if (args.vad_threshold_given) {
          audio::VadOptions v;
          v.min_silence_duration_ms = 160;  // the batched mode's defaults
          v.min_speech_duration_ms = 0;
          v.split_at_longest_silence = false;
          v.threshold = args.vad_options.threshold;
          batched.vad = v;
        }
        segments = transcription::transcribe_batched(*model, *tokenizer, *vad, samples, args.decoding,
                                                     batched, &info);
      } else if (args.vad) {
        segments = transcription::transcribe_speech(*model, *tokenizer, *vad, samples, args.decoding,
                                                    args.vad_options, &info);
      } else {
        segments = transcription::transcribe(*model, *tokenizer, samples, args.decoding, &info);
      }
      if (args.snap_to_speech) {
        audio::VadOptions v = transcription::snapping_vad_options();
        if (args.vad_threshold_given) v.threshold = args.vad_options.threshold;
        transcription::snap_to_speech(segments, vad->speech_timestamps(samples, v));
      }
      if (!info.all_language_probs.empty())
        std::cerr << "peft-transcribe: " << file << ": detected language '" << info.language
                  << "' (probability " << info.language_probability << ")\n";
      if (args.files.size() > 1 && args.format == transcription::TranscriptFormat::kText)
        std::cout << "==> " << file << " <==\n";
      std::cout << transcription::format_transcript(segments, args.format, file, &info) << std::flush;
    } catch (const Error& e) {
      std::cerr << "peft-transcribe: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}
