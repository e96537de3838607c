// peft-transcribe-media: any media GStreamer decodes (a file or a URI) or a live source
// description, through whisperasr (and peftsummarize), to a transcript, SubRip and WebVTT
// captions and a summary (text and JSON). GStreamer and the gst-peft plugin only: no torch.
//
//   SOURCE ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=16000,channels=1 !
//       whisperasr ! appsink                                     (captions, exact PTS/duration)
//   appsrc ! peftsummarize ! fakesink                            (summaries, read from the bus)
//
// The summarizer runs in a second pipeline fed from the captions appsink: a network source
// that drops can then be rebuilt (--reconnect) while the summarizer keeps the whole
// transcript, on one timeline that keeps increasing across reconnects.
//
// Stopping: --duration drops the audio after S seconds of stream time and pushes EOS into
// whisperasr (a pad probe before it); SIGINT/SIGTERM do the same and also send EOS to the
// source, so a live run drains and ends with complete outputs. A second signal aborts.
// Outputs are written as NAME.EXT.partial and renamed after the final EOS only.
#include <getopt.h>
#include <glib-unix.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "atomic_file.h"
#include "cli_common.h"
#include "network_source.h"
#include "subtitle_writer.h"

namespace fs = std::filesystem;
using peft::cli::usage_error;
using peft_pipelines::AtomicFile;
using peft_pipelines::format_timestamp;
using peft_pipelines::SubtitleFormat;
using peft_pipelines::SubtitleWriter;

namespace {

const char* const kUsage = R"(usage: peft-transcribe-media [options] INPUT
       peft-transcribe-media [options] --source DESCRIPTION

Transcribes speech with the gst-peft plugin's whisperasr element and summarizes the
transcript with peftsummarize, writing NAME.txt (one line per segment), NAME.srt,
NAME.vtt, NAME.summary.txt and NAME.summary.json ({"input", "summary", "start", "end",
"windows": [{"summary", "start", "end"}]}, times in seconds). Outputs are written as
NAME.EXT.partial and renamed when the stream has ended, so a failed or killed run leaves
no finished-looking file.

  INPUT                 a media file (anything GStreamer decodes: WAV, FLAC, MP3, Ogg,
                        the audio track of MP4/MKV...) or a URI (file://, http(s)://,
                        rtsp://...), decoded with uridecodebin
  --source DESC         instead of INPUT: a gst-launch description of a (live) audio
                        source, e.g. "autoaudiosrc", "pulsesrc device=X", "alsasrc", or
                        "filesrc location=a.wav ! wavparse ! identity sync=true"
  --output-dir DIR      where the outputs go (created if missing; default: .)
  --name NAME           basename of the outputs (default: INPUT's file stem; "live"
                        with --source)
  --formats LIST        comma-separated among txt,srt,vtt,summary (default: all four;
                        summary = NAME.summary.txt and NAME.summary.json)
  --print               at the end, print the transcript (one line per segment) on
                        stdout, then a blank line and "Summary: ..." (off by default:
                        without it, stdout stays empty unless --live-captions)
  --live-captions       print each caption as it is decided,
                        "[hh:mm:ss.mmm --> hh:mm:ss.mmm] text", and each summary as
                        "[summary hh:mm:ss.mmm --> hh:mm:ss.mmm] text" ("final summary"
                        for the last one)
  --no-summary          no summarizer (no summary outputs; faster)
  --duration S          stop after S seconds of stream time (sends EOS; outputs complete)
  --reconnect N         network URIs (rtsp://, http://...): when the stream fails or
                        ends before the run is stopped (signal or --duration), rebuild
                        the pipeline and go on, up to N times in all (default 0);
                        caption times keep increasing across reconnects. When the
                        retries run out after an error, the run fails (exit 1); after an
                        end of stream, it ends normally.
                        rtsp:// (over TCP) differs: only the connection is replaced
                        (transcription and summary go on), the server's end of stream
                        (RTCP BYE) ends the run normally, a connection closed by the
                        server or without audio for 20 s counts as a failure, and N
                        counts attempts in a row (the count restarts once audio flows);
                        when they run out, the run fails (exit 1)
  --reconnect-delay S   seconds between reconnects (default 2)

whisperasr properties:
  --asr-model PATH --asr-quantization Q --adapter DIR --language L --latency MS
  --beam-size N --n-threads N (also the summarizer's)
peftsummarize properties:
  --summary-model PATH --summary-quantization Q --summary-adapter DIR
  --summary-mode rolling|window|final-only --window S --hop S --max-new-tokens N
See `gst-inspect-1.0 whisperasr` and `gst-inspect-1.0 peftsummarize` for their meaning
and defaults (models: $PEFT_MODELS_DIR, else the source tree's models/default).

The plugin is found through GST_PLUGIN_PATH; when that is unset and the plugin is not
installed, the build tree's gst-plugins folder is used.

Signals: SIGINT/SIGTERM end the stream (EOS) and the outputs are completed; a second one
aborts (exit 130, no outputs).
Exit status: 0 done; 1 error (one line on stderr naming the input, GStreamer's error and
the element that posted it; no outputs); 2 bad usage.
  -h, --help            this text
)";

struct Options {
  std::string input;   // file path or URI
  std::string source;  // --source description
  fs::path output_dir = ".";
  std::string name;
  bool txt = true, srt = true, vtt = true, summary = true;
  bool print = false, live_captions = false, no_summary = false;
  double duration = 0;  // 0: until the stream ends
  int reconnect = 0;
  double reconnect_delay = 2.0;
  // (element, property, value, flag): applied to the element of that factory name.
  struct Prop {
    std::string element, property, value, flag;
  };
  std::vector<Prop> props;
};

Options parse_args(int argc, char** argv) {
  enum {
    kSource = 1000,
    kOutputDir,
    kName,
    kFormats,
    kPrint,
    kLiveCaptions,
    kNoSummary,
    kDuration,
    kReconnect,
    kReconnectDelay,
    kAsrModel,
    kAsrQuant,
    kAdapter,
    kLanguage,
    kLatency,
    kBeamSize,
    kNThreads,
    kSummaryModel,
    kSummaryQuant,
    kSummaryAdapter,
    kSummaryMode,
    kWindow,
    kHop,
    kMaxNewTokens
  };
  static const option long_options[] = {{"source", required_argument, nullptr, kSource},
                                        {"output-dir", required_argument, nullptr, kOutputDir},
                                        {"name", required_argument, nullptr, kName},
                                        {"formats", required_argument, nullptr, kFormats},
                                        {"print", no_argument, nullptr, kPrint},
                                        {"live-captions", no_argument, nullptr, kLiveCaptions},
                                        {"no-summary", no_argument, nullptr, kNoSummary},
                                        {"duration", required_argument, nullptr, kDuration},
                                        {"reconnect", required_argument, nullptr, kReconnect},
                                        {"reconnect-delay", required_argument, nullptr, kReconnectDelay},
                                        {"asr-model", required_argument, nullptr, kAsrModel},
                                        {"asr-quantization", required_argument, nullptr, kAsrQuant},
                                        {"adapter", required_argument, nullptr, kAdapter},
                                        {"language", required_argument, nullptr, kLanguage},
                                        {"latency", required_argument, nullptr, kLatency},
                                        {"beam-size", required_argument, nullptr, kBeamSize},
                                        {"n-threads", required_argument, nullptr, kNThreads},
                                        {"summary-model", required_argument, nullptr, kSummaryModel},
                                        {"summary-quantization", required_argument, nullptr, kSummaryQuant},
                                        {"summary-adapter", required_argument, nullptr, kSummaryAdapter},
                                        {"summary-mode", required_argument, nullptr, kSummaryMode},
                                        {"window", required_argument, nullptr, kWindow},
                                        {"hop", required_argument, nullptr, kHop},
                                        {"max-new-tokens", required_argument, nullptr, kMaxNewTokens},
                                        {"help", no_argument, nullptr, 'h'},
                                        {nullptr, 0, nullptr, 0}};
  Options o;
  opterr = 0;
  auto asr = [&](const char* prop, const char* flag) {
    o.props.push_back({"whisperasr", prop, optarg, flag});
  };
  auto sum = [&](const char* prop, const char* flag) {
    o.props.push_back({"peftsummarize", prop, optarg, flag});
  };
  for (int c; (c = getopt_long(argc, argv, "h", long_options, nullptr)) != -1;) {
    switch (c) {
      case 'h':
        std::cout << kUsage;
        std::exit(0);
      case kSource:
        o.source = optarg;
        break;
      case kOutputDir:
        o.output_dir = optarg;
        break;
      case kName:
        o.name = optarg;
        break;
      case kFormats: {
        o.txt = o.srt = o.vtt = o.summary = false;
        std::stringstream list(optarg);
        int n = 0;
        for (std::string f; std::getline(list, f, ',');) {
          if (f == "txt")
            o.txt = true;
          else if (f == "srt")
            o.srt = true;
          else if (f == "vtt")
            o.vtt = true;
          else if (f == "summary")
            o.summary = true;
          else
            usage_error("--formats: unknown format '" + f + "' (txt, srt, vtt, summary)");
          ++n;
        }
        if (n == 0) usage_error("--formats: no format given");
        break;
      }
      case kPrint:
        o.print = true;
        break;
      case kLiveCaptions:
        o.live_captions = true;
        break;
      case kNoSummary:
        o.no_summary = true;
        break;
      case kDuration:
        o.duration = peft::cli::to_number<double>("--duration", optarg);
        if (!(o.duration > 0)) usage_error("--duration must be positive");
        break;
      case kReconnect:
        o.reconnect = peft::cli::to_number<int>("--reconnect", optarg);
        if (o.reconnect < 0) usage_error("--reconnect must be 0 or more");
        break;
      case kReconnectDelay:
        o.reconnect_delay = peft::cli::to_number<double>("--reconnect-delay", optarg);
        if (o.reconnect_delay < 0) usage_error("--reconnect-delay must be 0 or more");
        break;
      case kAsrModel:
        asr("model", "--asr-model");
        break;
      case kAsrQuant:
        asr("quantization", "--asr-quantization");
        break;
      case kAdapter:
        asr("adapter", "--adapter");
        break;
      case kLanguage:
        asr("language", "--language");
        break;
      case kLatency:
        asr("latency", "--latency");
        break;
      case kBeamSize:
        asr("beam-size", "--beam-size");
        break;
      case kNThreads:
        asr("n-threads", "--n-threads");
        sum("n-threads", "--n-threads");
        break;
      case kSummaryModel:
        sum("model", "--summary-model");
        break;
      case kSummaryQuant:
        sum("quantization", "--summary-quantization");
        break;
      case kSummaryAdapter:
        sum("adapter", "--summary-adapter");
        break;
      case kSummaryMode:
        sum("mode", "--summary-mode");
        break;
      case kWindow:
        sum("window", "--window");
        break;
      case kHop:
        sum("hop", "--hop");
        break;
      case kMaxNewTokens:
        sum("max-new-tokens", "--max-new-tokens");
        break;
      default:
        usage_error(optopt > 0 && optopt < 128
                        ? std::string("option -") + static_cast<char>(optopt) + " is unknown"
                        : std::string("unknown option or missing value: ") + argv[optind - 1]);
    }
  }
  const int rest = argc - optind;
  if (o.source.empty()) {
    if (rest != 1) usage_error(rest == 0 ? "no INPUT given (or --source)" : "more than one INPUT given");
    o.input = argv[optind];
  } else if (rest != 0) {
    usage_error("INPUT and --source are exclusive");
  }
  if (o.name.find('/') != std::string::npos) usage_error("--name must not contain '/'");
  if (!o.txt && !o.srt && !o.vtt && !o.summary && !o.print && !o.live_captions)
    usage_error("nothing to do: no --formats and neither --print nor --live-captions");
  return o;
}

// Sets `prop` from its string form as gst-launch would, checking type and range; a usage
// error naming the flag otherwise.
void set_property(GstElement* element, const Options::Prop& p) {
  GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(element), p.property.c_str());
  if (!spec) usage_error(p.flag + ": this " + p.element + " has no property '" + p.property + "'");
  GValue value = G_VALUE_INIT;
  g_value_init(&value, spec->value_type);
  const bool ok = gst_value_deserialize_with_pspec(&value, p.value.c_str(), spec) &&
                  !g_param_value_validate(spec, &value);
  if (ok) g_object_set_property(G_OBJECT(element), p.property.c_str(), &value);
  g_value_unset(&value);
  if (!ok) usage_error(p.flag + ": '" + p.value + "' is not a valid " + p.element + " " + p.property);
}

void apply_properties(GstElement* element, const std::string& factory, const Options& o) {
  for (const auto& p : o.props)
    if (p.element == factory) set_property(element, p);
}

double seconds(GstClockTime t) { return static_cast<double>(t) / GST_SECOND; }
GstClockTime clock_time(double s) { return s <= 0 ? 0 : static_cast<GstClockTime>(s * GST_SECOND + 0.5); }

// "MESSAGE (ELEMENT: first sentence of the debug text)" on one line.
std::string describe(GstMessage* msg, GError* err, const gchar* debug) {
  std::string detail = debug ? debug : "";
  // GStreamer's debug strings start "file(line): function (): /object/path:\n" then the text.
  // Only the text is kept (there is none when the debug string is only the location).
  if (detail.find("(): ") != std::string::npos) {
    const size_t nl = detail.find('\n');
    detail = nl == std::string::npos ? "" : detail.substr(nl + 1);
  }
  const size_t end = detail.find_first_of("\n");
  if (end != std::string::npos) detail.resize(end);
  const size_t stop = detail.find(". ");
  if (stop != std::string::npos) detail.resize(stop + 1);
  std::string out = peft_pipelines::one_line(err ? err->message : "unknown error");
  out += std::string(" (") + GST_MESSAGE_SRC_NAME(msg);
  detail = peft_pipelines::one_line(detail);
  if (!detail.empty() && detail != out) out += ": " + detail;
  return out + ")";
}

struct Summary {
  std::string text;
  double start = 0, end = 0;
};

// Everything one run holds; callbacks get it as user data.
class Run {
 public:
  explicit Run(Options o) : o_(std::move(o)) {}
  int exec();

 private:
  // Pipelines.
  bool start_attempt();
  void stop_attempt();
  bool start_summarizer();
  void finish_transcription();
  void finish();
  void fail(const std::string& message);
  void request_stop();

  static void on_pad_added(GstElement*, GstPad* pad, gpointer self);
  static void on_no_more_pads(GstElement* decodebin, gpointer self);
  static GstFlowReturn on_caption(GstAppSink* sink, gpointer self);
  static GstPadProbeReturn on_audio(GstPad* pad, GstPadProbeInfo* info, gpointer self);
  static gboolean on_asr_bus(GstBus*, GstMessage* msg, gpointer self);
  static gboolean on_summary_bus(GstBus*, GstMessage* msg, gpointer self);
  static gboolean on_signal(gpointer self);
  static gboolean on_reconnect(gpointer self);

  void caption(double start, double end, const std::string& text);
  void warn(GstMessage* msg);
  std::string error_text(GstMessage* msg);
  std::string pop_error(GstElement* pipeline);

  Options o_;
  std::string label_;  // how messages name the input
  std::string uri_;
  bool network_ = false;
  bool source_reconnects_ = false;  // RTSP: the source reconnects by itself (network_source.h)
  bool summarize_ = false;
  GMainLoop* loop_ = nullptr;
  int exit_code_ = 0;

  GstElement* asr_ = nullptr;  // the transcription pipeline of this attempt
  guint asr_watch_ = 0;
  GstElement* convert_ = nullptr;  // its audioconvert (uridecodebin links into it)
  bool audio_linked_ = false;
  std::string http_status_;  // what the last http-headers message said went wrong, if anything
  GstElement* summarizer_ = nullptr;
  GstElement* text_src_ = nullptr;  // the summarizer's appsrc
  guint summary_watch_ = 0;
  guint reconnect_timer_ = 0;
  int retries_used_ = 0;
  enum class Phase { transcribing, waiting, summarizing, done } phase_ = Phase::transcribing;

  std::atomic<bool> stop_{false};      // signal or --duration: the run ends at the next EOS
  std::atomic<bool> eos_sent_{false};  // the probe pushed EOS in this attempt
  int signals_ = 0;

  // Captions and times; the captions appsink's thread writes, the main thread reads after EOS.
  std::mutex mutex_;
  double offset_ = 0;            // seconds added to this attempt's stream times
  double attempt_position_ = 0;  // stream seconds of audio seen in this attempt
  std::vector<std::string> lines_;
  double first_start_ = -1, last_end_ = 0;
  std::unique_ptr<AtomicFile> txt_, srt_, vtt_;
  std::unique_ptr<SubtitleWriter> srt_writer_, vtt_writer_;
  std::vector<Summary> windows_;
  std::optional<Summary> final_;
};

int Run::exec() {
  // Check the element properties before anything loads.
  for (const char* factory : {"whisperasr", "peftsummarize"}) {
    GstElement* e = gst_element_factory_make(factory, nullptr);
    if (!e) {
      std::cerr << peft::cli::program() << ": the GStreamer element '" << factory
                << "' is not installed (set GST_PLUGIN_PATH to the build's gst-plugins folder)\n";
      return 1;
    }
    gst_object_ref_sink(e);
    apply_properties(e, factory, o_);
    gst_object_unref(e);
  }

  // The input.
  if (!o_.source.empty()) {
    label_ = o_.source;
    if (o_.name.empty()) o_.name = "live";
  } else if (gst_uri_is_valid(o_.input.c_str())) {
    uri_ = o_.input;
    label_ = o_.input;
    gchar* scheme = gst_uri_get_protocol(uri_.c_str());
    network_ = g_ascii_strcasecmp(scheme, "file") != 0;
    g_free(scheme);
    if (o_.name.empty()) {
      GstUri* parsed = gst_uri_from_string(uri_.c_str());
      const gchar* path = parsed ? gst_uri_get_path(parsed) : nullptr;
      o_.name = path ? fs::path(path).stem().string() : "";
      if (parsed) gst_uri_unref(parsed);
      if (o_.name.empty()) o_.name = "stream";
    }
  } else {
    label_ = o_.input;
    std::error_code ec;
    if (!fs::is_regular_file(o_.input, ec)) {
      std::cerr << peft::cli::program() << ": " << label_ << ": no such file\n";
      return 1;
    }
    GError* err = nullptr;
    gchar* uri = gst_filename_to_uri(o_.input.c_str(), &err);
    if (!uri) {
      std::cerr << peft::cli::program() << ": " << label_ << ": " << err->message << "\n";
      g_error_free(err);
      return 1;
    }
    uri_ = uri;
    g_free(uri);
    if (o_.name.empty()) o_.name = fs::path(o_.input).stem().string();
  }
  summarize_ = !o_.no_summary && (o_.summary || o_.print || o_.live_captions);

  try {
    std::error_code ec;
    fs::create_directories(o_.output_dir, ec);
    const fs::path base = o_.output_dir / o_.name;
    if (o_.txt) txt_ = std::make_unique<AtomicFile>(base.string() + ".txt");
    if (o_.srt) {
      srt_ = std::make_unique<AtomicFile>(base.string() + ".srt");
      srt_writer_ = std::make_unique<SubtitleWriter>(srt_->stream(), SubtitleFormat::srt);
    }
    if (o_.vtt) {
      vtt_ = std::make_unique<AtomicFile>(base.string() + ".vtt");
      vtt_writer_ = std::make_unique<SubtitleWriter>(vtt_->stream(), SubtitleFormat::vtt);
    }
  } catch (const std::exception& e) {
    std::cerr << peft::cli::program() << ": " << e.what() << "\n";
    return 1;
  }

  loop_ = g_main_loop_new(nullptr, FALSE);
  const guint sigint = g_unix_signal_add(SIGINT, on_signal, this);
  const guint sigterm = g_unix_signal_add(SIGTERM, on_signal, this);
  if ((!summarize_ || start_summarizer()) && start_attempt()) g_main_loop_run(loop_);
  g_source_remove(sigint);
  g_source_remove(sigterm);
  if (reconnect_timer_) g_source_remove(reconnect_timer_);
  stop_attempt();
  if (summarizer_) {
    gst_element_set_state(summarizer_, GST_STATE_NULL);
    if (summary_watch_) g_source_remove(summary_watch_);
    gst_object_unref(summarizer_);
    summarizer_ = nullptr;
  }
  g_main_loop_unref(loop_);
  return exit_code_;
}

bool Run::start_summarizer() {
  GError* err = nullptr;
  summarizer_ = gst_parse_launch(
      "appsrc name=text format=time caps=text/x-raw,format=utf8 ! peftsummarize name=peftsummarize ! "
      "fakesink sync=false",
      &err);
  if (!summarizer_ || err) {
    fail(std::string("cannot build the summarizer: ") + (err ? err->message : "?"));
    if (err) g_error_free(err);
    return false;
  }
  GstElement* sum = gst_bin_get_by_name(GST_BIN(summarizer_), "peftsummarize");
  apply_properties(sum, "peftsummarize", o_);
  gst_object_unref(sum);
  text_src_ = gst_bin_get_by_name(GST_BIN(summarizer_), "text");
  gst_object_unref(text_src_);  // the bin keeps it
  GstBus* bus = gst_element_get_bus(summarizer_);
  summary_watch_ = gst_bus_add_watch(bus, on_summary_bus, this);
  gst_object_unref(bus);
  // Loads the model now (NULL -> READY), so a missing one fails before any audio.
  if (gst_element_set_state(summarizer_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    fail(pop_error(summarizer_));
    return false;
  }
  return true;
}

bool Run::start_attempt() {
  const std::string tail =
      "audioconvert name=convert ! audioresample ! "
      "capsfilter name=audio caps=audio/x-raw,format=F32LE,rate=16000,channels=1 ! whisperasr "
      "name=whisperasr ! "
      "appsink name=captions sync=false caps=text/x-raw,format=utf8";
  const std::string description = o_.source.empty() ? tail : o_.source + " ! " + tail;
  GError* err = nullptr;
  GstElement* pipeline =
      gst_parse_launch_full(description.c_str(), nullptr, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!pipeline || err) {
    fail(std::string("cannot build the pipeline: ") + (err ? err->message : "?"));
    if (err) g_error_free(err);
    if (pipeline) gst_object_unref(pipeline);
    return false;
  }
  asr_ = pipeline;
  audio_linked_ = false;
  http_status_.clear();
  eos_sent_ = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    attempt_position_ = 0;
  }
  convert_ = gst_bin_get_by_name(GST_BIN(asr_), "convert");
  gst_object_unref(convert_);
  if (o_.source.empty() && peft::pipelines::is_rtsp_uri(uri_)) {
    // RTSP (network_source.h): TCP transport, and the reconnects happen inside the
    // source, so whisperasr's pending text and the stream's timeline survive them.
    peft::pipelines::ReconnectOptions reconnect;
    reconnect.max_reconnects = o_.reconnect;
    reconnect.delay_seconds = o_.reconnect_delay;
    GstElement* source = peft::pipelines::make_network_source(uri_, reconnect);
    gst_bin_add(GST_BIN(asr_), source);
    gst_element_link(source, convert_);
    source_reconnects_ = true;
  } else if (o_.source.empty()) {
    GstElement* decode = gst_element_factory_make("uridecodebin", "decode");
    g_object_set(decode, "uri", uri_.c_str(), "expose-all-streams", FALSE, nullptr);
    GstCaps* audio = gst_caps_from_string("audio/x-raw");
    g_object_set(decode, "caps", audio, nullptr);
    gst_caps_unref(audio);
    g_signal_connect(decode, "pad-added", G_CALLBACK(on_pad_added), this);
    g_signal_connect(decode, "no-more-pads", G_CALLBACK(on_no_more_pads), this);
    gst_bin_add(GST_BIN(asr_), decode);
  }
  GstElement* asr = gst_bin_get_by_name(GST_BIN(asr_), "whisperasr");
  apply_properties(asr, "whisperasr", o_);
  gst_object_unref(asr);

  GstElement* caps = gst_bin_get_by_name(GST_BIN(asr_), "audio");
  GstPad* pad = gst_element_get_static_pad(caps, "src");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_audio, this, nullptr);
  gst_object_unref(pad);
  gst_object_unref(caps);

  GstElement* sink = gst_bin_get_by_name(GST_BIN(asr_), "captions");
  GstAppSinkCallbacks callbacks = {};
  callbacks.new_sample = on_caption;
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, this, nullptr);
  gst_object_unref(sink);

  GstBus* bus = gst_element_get_bus(asr_);
  asr_watch_ = gst_bus_add_watch(bus, on_asr_bus, this);
  gst_object_unref(bus);
  phase_ = Phase::transcribing;
  if (gst_element_set_state(asr_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    const std::string why = pop_error(asr_);
    stop_attempt();
    if (network_ && !source_reconnects_ && retries_used_ < o_.reconnect && !stop_) {
      ++retries_used_;
      std::cerr << peft::cli::program() << ": " << label_ << ": " << why << "; reconnecting in "
                << o_.reconnect_delay << " s (" << retries_used_ << "/" << o_.reconnect << ")\n";
      phase_ = Phase::waiting;
      reconnect_timer_ = g_timeout_add(static_cast<guint>(o_.reconnect_delay * 1000), on_reconnect, this);
      return true;
    }
    fail(why);
    return false;
  }
  return true;
}

void Run::stop_attempt() {
  if (!asr_) return;
  gst_element_set_state(asr_, GST_STATE_NULL);
  if (asr_watch_) g_source_remove(asr_watch_);
  asr_watch_ = 0;
  gst_object_unref(asr_);
  asr_ = nullptr;
  convert_ = nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  offset_ += attempt_position_;
  if (offset_ < last_end_) offset_ = last_end_;
  attempt_position_ = 0;
}

std::string Run::error_text(GstMessage* msg) {
  GError* err = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(msg, &err, &debug);
  std::string out = describe(msg, err, debug);
  g_clear_error(&err);
  g_free(debug);
  return out;
}

std::string Run::pop_error(GstElement* pipeline) {
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  gst_object_unref(bus);
  if (!msg) return "the pipeline failed to start";
  std::string out = error_text(msg);
  gst_message_unref(msg);
  return out;
}

void Run::warn(GstMessage* msg) {
  GError* err = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_warning(msg, &err, &debug);
  std::cerr << peft::cli::program() << ": warning: " << label_ << ": " << describe(msg, err, debug) << "\n";
  g_clear_error(&err);
  g_free(debug);
}

void Run::fail(const std::string& message) {
  std::cerr << peft::cli::program() << ": " << label_ << ": " << message << "\n";
  for (auto* f : {txt_.get(), srt_.get(), vtt_.get()})
    if (f) f->discard();
  exit_code_ = 1;
  phase_ = Phase::done;
  if (loop_) g_main_loop_quit(loop_);
}

void Run::on_pad_added(GstElement*, GstPad* pad, gpointer data) {
  auto* self = static_cast<Run*>(data);
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  const bool audio = caps && !gst_caps_is_empty(caps) &&
                     g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "audio/");
  if (caps) gst_caps_unref(caps);
  if (!audio || self->audio_linked_) return;  // the first audio stream only
  GstPad* sink = gst_element_get_static_pad(self->convert_, "sink");
  if (gst_pad_link(pad, sink) == GST_PAD_LINK_OK) self->audio_linked_ = true;
  gst_object_unref(sink);
}

void Run::on_no_more_pads(GstElement* decodebin, gpointer data) {
  auto* self = static_cast<Run*>(data);
  if (self->audio_linked_) return;
  GError* err = g_error_new_literal(GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE, "no audio stream");
  gst_element_post_message(decodebin,
                           gst_message_new_error(GST_OBJECT(decodebin), err,
                                                 "The media holds no audio stream GStreamer decodes."));
  g_error_free(err);
}

GstPadProbeReturn Run::on_audio(GstPad* pad, GstPadProbeInfo* info, gpointer data) {
  auto* self = static_cast<Run*>(data);
  GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
  // After our EOS: drop the buffer and answer EOS, so the source and decoders stop too.
  auto drop_as_eos = [&] {
    gst_buffer_unref(buf);
    GST_PAD_PROBE_INFO_FLOW_RETURN(info) = GST_FLOW_EOS;
    return GST_PAD_PROBE_HANDLED;
  };
  if (self->eos_sent_) return drop_as_eos();
  double start = -1, end = -1;
  if (GST_BUFFER_PTS_IS_VALID(buf)) {
    GstEvent* ev = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0);
    if (ev) {
      const GstSegment* seg = nullptr;
      gst_event_parse_segment(ev, &seg);
      const guint64 st = gst_segment_to_stream_time(seg, GST_FORMAT_TIME, GST_BUFFER_PTS(buf));
      if (GST_CLOCK_TIME_IS_VALID(st)) {
        start = seconds(st);
        end = start + (GST_BUFFER_DURATION_IS_VALID(buf) ? seconds(GST_BUFFER_DURATION(buf)) : 0);
      }
      gst_event_unref(ev);
    }
  }
  double offset = 0;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    offset = self->offset_;
    if (end > self->attempt_position_) self->attempt_position_ = end;
  }
  const bool over = self->o_.duration > 0 && start >= 0 && offset + start >= self->o_.duration;
  if (over) self->stop_ = true;
  if (!self->stop_) return GST_PAD_PROBE_OK;
  self->eos_sent_ = true;
  gst_pad_push_event(pad, gst_event_new_eos());
  return drop_as_eos();
}

GstFlowReturn Run::on_caption(GstAppSink* sink, gpointer data) {
  auto* self = static_cast<Run*>(data);
  GstSample* sample = gst_app_sink_pull_sample(sink);
  if (!sample) return GST_FLOW_EOS;
  GstBuffer* buf = gst_sample_get_buffer(sample);
  const GstSegment* seg = gst_sample_get_segment(sample);
  double start = -1, duration = 0;
  if (buf && GST_BUFFER_PTS_IS_VALID(buf) && seg) {
    const guint64 st = gst_segment_to_stream_time(seg, GST_FORMAT_TIME, GST_BUFFER_PTS(buf));
    if (GST_CLOCK_TIME_IS_VALID(st)) start = seconds(st);
  }
  if (buf && GST_BUFFER_DURATION_IS_VALID(buf)) duration = seconds(GST_BUFFER_DURATION(buf));
  std::string text;
  GstMapInfo map;
  if (buf && gst_buffer_map(buf, &map, GST_MAP_READ)) {
    text.assign(reinterpret_cast<const char*>(map.data), map.size);
    gst_buffer_unmap(buf, &map);
  }
  gst_sample_unref(sample);
  self->caption(start, start < 0 ? -1 : start + duration, text);
  return GST_FLOW_OK;
}

void Run::caption(double start, double end, const std::string& raw) {
  const std::string text = peft_pipelines::one_line(raw);
  if (text.empty()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (start < 0) {  // no timestamp: right after the previous caption
    start = last_end_;
    end = last_end_;
  } else {
    start += offset_;
    end += offset_;
  }
  if (start < last_end_) start = last_end_;  // monotonic, as in the subtitle files
  if (end < start) end = start;
  if (first_start_ < 0) first_start_ = start;
  last_end_ = end;
  lines_.push_back(text);
  if (txt_) txt_->stream() << text << std::endl;
  if (srt_writer_) srt_writer_->add(start, end, text);
  if (vtt_writer_) vtt_writer_->add(start, end, text);
  if (o_.live_captions)
    std::cout << "[" << format_timestamp(start, SubtitleFormat::vtt) << " --> "
              << format_timestamp(end, SubtitleFormat::vtt) << "] " << text << std::endl;
  if (text_src_) {
    GstBuffer* buf = gst_buffer_new_memdup(text.data(), text.size());
    GST_BUFFER_PTS(buf) = clock_time(start);
    GST_BUFFER_DURATION(buf) = clock_time(end) - clock_time(start);
    gst_app_src_push_buffer(GST_APP_SRC(text_src_), buf);
  }
}

gboolean Run::on_asr_bus(GstBus*, GstMessage* msg, gpointer data) {
  auto* self = static_cast<Run*>(data);
  if (GST_MESSAGE_SRC(msg) && self->asr_ && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING) self->warn(msg);
  // souphttpsrc reports a refused connection or an HTTP error only as a flow error: its
  // http-headers message says what happened.
  const GstStructure* st = gst_message_get_structure(msg);
  guint code = 0;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT && st && gst_structure_has_name(st, "http-headers") &&
      gst_structure_get_uint(st, "http-status-code", &code))
    self->http_status_ = code == 0     ? "no answer from the server"
                         : code >= 400 ? "HTTP status " + std::to_string(code)
                                       : "";
  const bool error = GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR;
  const bool eos = GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS;
  if (!(error || eos) || self->phase_ != Phase::transcribing) return TRUE;
  std::string why = error ? self->error_text(msg) : "the stream ended";
  if (error && !self->http_status_.empty()) why = self->http_status_ + ": " + why;
  // The watch is removed with the pipeline below: everything after uses no `msg`.
  if (self->network_ && !self->source_reconnects_ && !self->stop_ &&
      self->retries_used_ < self->o_.reconnect) {
    ++self->retries_used_;
    std::cerr << peft::cli::program() << ": " << self->label_ << ": " << why << "; reconnecting in "
              << self->o_.reconnect_delay << " s (" << self->retries_used_ << "/" << self->o_.reconnect
              << ")\n";
    self->asr_watch_ = 0;  // returning FALSE removes it
    self->stop_attempt();
    self->phase_ = Phase::waiting;
    self->reconnect_timer_ =
        g_timeout_add(static_cast<guint>(self->o_.reconnect_delay * 1000), on_reconnect, self);
    return FALSE;
  }
  self->asr_watch_ = 0;
  self->stop_attempt();
  if (error)
    self->fail(self->network_ && !self->source_reconnects_ && self->o_.reconnect > 0
                   ? why + "; no reconnects left"
                   : why);
  else
    self->finish_transcription();
  return FALSE;
}

gboolean Run::on_reconnect(gpointer data) {
  auto* self = static_cast<Run*>(data);
  self->reconnect_timer_ = 0;
  self->start_attempt();
  return G_SOURCE_REMOVE;
}

void Run::finish_transcription() {
  if (!summarizer_) return finish();
  phase_ = Phase::summarizing;
  gst_app_src_end_of_stream(GST_APP_SRC(text_src_));
}

gboolean Run::on_summary_bus(GstBus*, GstMessage* msg, gpointer data) {
  auto* self = static_cast<Run*>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_WARNING:
      self->warn(msg);
      break;
    case GST_MESSAGE_ERROR:
      if (self->phase_ != Phase::done) {
        self->summary_watch_ = 0;
        self->fail(self->error_text(msg));
        return FALSE;
      }
      break;
    case GST_MESSAGE_ELEMENT: {
      const GstStructure* s = gst_message_get_structure(msg);
      if (!s || !gst_structure_has_name(s, "peftsummarize")) break;
      Summary sum;
      guint64 start = 0, end = 0;
      gboolean final = FALSE;
      sum.text = peft_pipelines::one_line(gst_structure_get_string(s, "summary") ?: "");
      gst_structure_get_uint64(s, "start", &start);
      gst_structure_get_uint64(s, "end", &end);
      gst_structure_get_boolean(s, "final", &final);
      sum.start = seconds(start);
      sum.end = seconds(end);
      if (self->o_.live_captions)
        std::cout << (final ? "[final summary " : "[summary ")
                  << format_timestamp(sum.start, SubtitleFormat::vtt) << " --> "
                  << format_timestamp(sum.end, SubtitleFormat::vtt) << "] " << sum.text << std::endl;
      if (final)
        self->final_ = sum;
      else
        self->windows_.push_back(sum);
      break;
    }
    case GST_MESSAGE_EOS:
      if (self->phase_ == Phase::summarizing) {
        self->finish();
        self->summary_watch_ = 0;
        return FALSE;
      }
      break;
    default:
      break;
  }
  return TRUE;
}

void Run::finish() {
  phase_ = Phase::done;
  std::vector<std::string> written;
  try {
    const fs::path base = o_.output_dir / o_.name;
    std::unique_ptr<AtomicFile> summary_txt, summary_json;
    if (summarize_ && o_.summary) {
      const Summary s = final_.value_or(Summary{});
      summary_txt = std::make_unique<AtomicFile>(base.string() + ".summary.txt");
      if (!s.text.empty()) summary_txt->stream() << s.text << "\n";
      nlohmann::ordered_json j = {{"input", label_}, {"summary", s.text}, {"start", s.start}, {"end", s.end}};
      j["windows"] = nlohmann::ordered_json::array();
      for (const auto& w : windows_)
        j["windows"].push_back({{"summary", w.text}, {"start", w.start}, {"end", w.end}});
      summary_json = std::make_unique<AtomicFile>(base.string() + ".summary.json");
      summary_json->stream() << j.dump(2) << "\n";
    }
    for (auto* f : {txt_.get(), srt_.get(), vtt_.get(), summary_txt.get(), summary_json.get()})
      if (f) {
        f->commit();
        written.push_back(f->path().string());
      }
  } catch (const std::exception& e) {
    fail(e.what());
    return;
  }
  if (o_.print) {
    for (const auto& line : lines_) std::cout << line << "\n";
    if (summarize_) std::cout << "\nSummary: " << (final_ ? final_->text : "") << "\n";
    std::cout.flush();
  }
  if (!written.empty()) {
    std::cerr << peft::cli::program() << ": wrote";
    for (const auto& w : written) std::cerr << " " << w;
    std::cerr << "\n";
  }
  exit_code_ = 0;
  g_main_loop_quit(loop_);
}

void Run::request_stop() {
  stop_ = true;
  if (phase_ == Phase::waiting) {  // between reconnects: end with what we have
    if (reconnect_timer_) g_source_remove(reconnect_timer_);
    reconnect_timer_ = 0;
    finish_transcription();
  } else if (phase_ == Phase::transcribing && asr_) {
    // The probe pushes EOS at the next buffer; a stalled source gets it here too.
    gst_element_send_event(asr_, gst_event_new_eos());
  }
}

gboolean Run::on_signal(gpointer data) {
  auto* self = static_cast<Run*>(data);
  if (++self->signals_ == 1) {
    std::cerr << peft::cli::program() << ": stopping (finishing the outputs; signal again to abort)\n";
    self->request_stop();
    return G_SOURCE_CONTINUE;
  }
  std::cerr << peft::cli::program() << ": aborted\n";
  for (auto* f : {self->txt_.get(), self->srt_.get(), self->vtt_.get()})
    if (f) f->discard();
  self->exit_code_ = 130;
  self->phase_ = Phase::done;
  g_main_loop_quit(self->loop_);
  return G_SOURCE_CONTINUE;
}

}  // namespace

int main(int argc, char** argv) {
  peft::cli::program() = "peft-transcribe-media";
  Options options = parse_args(argc, argv);
  gst_init(nullptr, nullptr);
  // A build tree's programs find the build's plugin without GST_PLUGIN_PATH.
  if (!std::getenv("GST_PLUGIN_PATH")) {
    GstElementFactory* f = gst_element_factory_find("whisperasr");
    if (f)
      gst_object_unref(f);
    else
      gst_registry_scan_path(gst_registry_get(), PEFT_BUILD_PLUGIN_DIR);
  }
  Run run(std::move(options));
  return run.exec();
}
