// whisperasr: speech to timestamped text with Whisper.
//
//   gst-launch-1.0 filesrc location=talk.ogg ! decodebin ! audioconvert ! audioresample !
//       whisperasr ! fakesink dump=true
//
// Threads. The sink pad's chain function only copies the samples into a WorkQueue
// (common/work_queue.h) with the serialized events, in order; the src pad's task pops
// everything queued, runs StreamingTranscriber on it and pushes the results. The
// streaming thread waits only while `latency` worth of audio is already queued
// (backpressure for files; a live source is never held longer than the latency, after
// which the audio is queued anyway and the inference thread catches up).
//
// Timeline. Text buffers carry PTS and duration on the input's timeline (the buffers'
// timestamps; the input SEGMENT is forwarded unchanged). Audio is assumed contiguous
// between timestamps: a hole of up to 5 s is filled with silence, anything else (a
// jump backwards, a longer hole, DISCONT with a jump) ends the current utterance stream
// (its text is committed) and starts a new one at the new timestamp.
//
// Output. Committed segments (or their words, with word-timestamps) become buffers; GAP
// events cover the stream time decided to hold no text, so muxers and overlays
// downstream keep moving; the first output of a timeline is a GAP at its first audio,
// so sinks downstream preroll before any text is decided (common/sparse_output.h).
// Every final segment (and, with partial-results, every partial one) is posted as an
// element message "whisperasr" {text, start, end (ns), final, language, avg-logprob,
// no-speech-prob}. EOS, a new SEGMENT, STREAM_START and input GAP events drain:
// everything heard is committed before the event goes on. FLUSH drops everything.
//
// Latency. Text is decided at most `latency` after its audio arrived (the transcriber's
// step plus its latency bound; see streaming_transcriber.h), plus inference time, for
// which `lateness` is the allowance: the LATENCY query adds latency + lateness. When a
// live source outruns inference, the queued audio is transcribed with one decode
// instead of one per step (StreamingTranscriber::PushMode::catch_up) and a WARNING
// with details {backlog-seconds, decodes-skipped} is posted (at most every 10 s).
#include "whisperasr/gstwhisperasr.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/default_models.h"
#include "common/element_error.h"
#include "common/malloc_tuning.h"
#include "common/quantization_enum.h"
#include "common/shared_model.h"
#include "common/sparse_output.h"
#include "common/work_queue.h"
#include "peft/adapters/peft_adapter.h"
#include "peft/audio/vad.h"
#include "peft/audio/vad_gate.h"
#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/streaming_transcriber.h"

GST_DEBUG_CATEGORY_STATIC(whisper_asr_debug);
#define GST_CAT_DEFAULT whisper_asr_debug

namespace fs = std::filesystem;
using peft::transcription::DecodingOptions;
using peft::transcription::Segment;
using peft::transcription::StreamingOptions;
using peft::transcription::StreamingTranscriber;
using peft::transcription::StreamUpdate;

namespace {

constexpr int kRate = StreamingTranscriber::kSampleRate;
constexpr double kMaxFilledHoleSeconds = 5.0;   // longer holes in the timestamps restart the stream
constexpr double kTimestampSlackSeconds = 0.1;  // timestamp jitter tolerated before a hole counts
constexpr double kWarningIntervalSeconds = 10.0;

enum Task { kTranscribe = 0, kTranslate = 1 };

GType task_enum_get_type() {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {
        {kTranscribe, "Transcribe in the spoken language", "transcribe"},
        {kTranslate, "Translate into English (multilingual models)", "translate"},
        {0, nullptr, nullptr}};
    g_once_init_leave(&type, g_enum_register_static("GstWhisperAsrTask", values));
  }
  return type;
}

// Property values; guarded by State::settings_mutex (set from any thread).
struct Settings {
  std::string model;  // "": the default tiny.en
  int quantization = static_cast<int>(peft::quant::QuantType::none);
  std::string adapter;
  std::string language;
  int task = kTranscribe;
  guint beam_size = 1;
  bool vad = false;
  double vad_threshold = 0.5;
  // Whisper commits whole segments (sentences): with 5 s, forced commits cut the test
  // stream's LibriVox sentences (tests/gst/test_whisperasr.cpp with latency=5000); 10 s
  // let them commit whole.
  guint latency_ms = 10000;
  guint lateness_ms = 1000;
  gint n_threads = 0;
  bool partial_results = false;
  std::string initial_prompt;
  bool word_timestamps = false;
  bool temperature_fallback = false;
  double no_speech_threshold = 0.6;
  double logprob_threshold = -1.0;
  double compression_ratio_threshold = 2.4;
};

struct Chunk {
  std::vector<float> samples;
  GstClockTime pts = GST_CLOCK_TIME_NONE;
};

using gstpeft::seconds_to_clock;
double to_seconds(GstClockTime t) { return static_cast<double>(t) / GST_SECOND; }

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\n") - a + 1);
}

}  // namespace

// Everything C++ the element holds; the GObject struct points at it.
struct WhisperAsrState {
  std::mutex settings_mutex;
  Settings settings;
  bool adapter_changed = false;  // set while PLAYING: the task binds it before its next decode

  // Loaded at NULL -> READY, released at READY -> NULL.
  std::shared_ptr<const peft::models::WhisperModel> model;
  std::shared_ptr<const peft::text::WhisperTokenizer> tokenizer;
  std::shared_ptr<const peft::adapters::BoundAdapter> adapter;
  std::optional<peft::audio::VadGate> gate;

  // READY -> PAUSED .. PAUSED -> READY. Touched by the task only (and by the state
  // change while the task is stopped).
  std::unique_ptr<StreamingTranscriber> stream;
  gstpeft::WorkQueue<Chunk> queue;
  bool active = false;            // an utterance stream is running (timeline set)
  double input_end = 0;           // stream seconds just after the last sample received
  gstpeft::SparseOutput output;   // what went downstream: buffers and GAPs
  std::atomic<bool> live{false};  // read by the streaming thread
  bool live_checked = false;
  int n_threads = 0;
  bool threads_set = false;  // n-threads applied on the task's thread
  double step_seconds = 1.0;
  double last_warning = -1e9;
  std::atomic<GstFlowReturn> flow{GST_FLOW_OK};
};

struct _GstWhisperAsr {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;
  std::unique_ptr<WhisperAsrState> state;  // placement-constructed in init
};

G_DEFINE_TYPE(GstWhisperAsr, gst_whisper_asr, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE(whisperasr, "whisperasr", GST_RANK_NONE, GST_TYPE_WHISPER_ASR,
                                      GST_DEBUG_CATEGORY_INIT(whisper_asr_debug, "whisperasr", 0,
                                                              "Whisper speech recognition"));

enum {
  PROP_0,
  PROP_MODEL,
  PROP_QUANTIZATION,
  PROP_ADAPTER,
  PROP_LANGUAGE,
  PROP_LANGUAGE_CODE,
  PROP_TASK,
  PROP_BEAM_SIZE,
  PROP_VAD,
  PROP_VAD_THRESHOLD,
  PROP_LATENCY,
  PROP_LATENESS,
  PROP_N_THREADS,
  PROP_PARTIAL_RESULTS,
  PROP_INITIAL_PROMPT,
  PROP_WORD_TIMESTAMPS,
  PROP_TEMPERATURE_FALLBACK,
  PROP_NO_SPEECH_THRESHOLD,
  PROP_LOGPROB_THRESHOLD,
  PROP_COMPRESSION_RATIO_THRESHOLD,
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format=(string)F32LE, rate=(int)16000, channels=(int)1, "
                    "layout=(string)interleaved"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format=(string)utf8"));

// ---------------------------------------------------------------------------------------
// Output (task thread)

static bool push_gap_until(GstWhisperAsr* self, double until) {
  return self->state->output.gap_until(self->srcpad, until);
}

static void post_segment_message(GstWhisperAsr* self, const Segment& seg, bool final,
                                 const std::string& language) {
  GstStructure* st = gst_structure_new(
      "whisperasr", "text", G_TYPE_STRING, trim(seg.text).c_str(), "start", G_TYPE_UINT64,
      seconds_to_clock(seg.start), "end", G_TYPE_UINT64, seconds_to_clock(seg.end), "final", G_TYPE_BOOLEAN,
      final, "language", G_TYPE_STRING, language.c_str(), "avg-logprob", G_TYPE_DOUBLE, seg.avg_logprob,
      "no-speech-prob", G_TYPE_DOUBLE, seg.no_speech_prob, nullptr);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), st));
}

static GstFlowReturn push_text(GstWhisperAsr* self, const std::string& text, double start, double end) {
  WhisperAsrState& s = *self->state;
  if (text.empty()) return GST_FLOW_OK;
  push_gap_until(self, start);
  GstBuffer* buf = gst_buffer_new_memdup(text.data(), text.size());
  GST_BUFFER_PTS(buf) = seconds_to_clock(start);
  GST_BUFFER_DURATION(buf) = seconds_to_clock(end) - seconds_to_clock(start);
  s.output.pushed(end);
  return gst_pad_push(self->srcpad, buf);
}

// Records a downstream flow return; errors stop the stream as GStreamer elements do.
static void note_flow(GstWhisperAsr* self, GstFlowReturn ret) {
  if (ret == GST_FLOW_OK) return;
  WhisperAsrState& s = *self->state;
  GstFlowReturn expected = GST_FLOW_OK;
  s.flow.compare_exchange_strong(expected, ret);
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) GST_ELEMENT_FLOW_ERROR(self, ret);
}

static void emit(GstWhisperAsr* self, const StreamUpdate& update) {
  WhisperAsrState& s = *self->state;
  bool words, partials;
  {
    std::lock_guard<std::mutex> lock(s.settings_mutex);
    words = s.settings.word_timestamps;
    partials = s.settings.partial_results;
  }
  const std::string& language = s.stream->language();
  for (const Segment& seg : update.committed) {
    post_segment_message(self, seg, true, language);
    if (words && !seg.words.empty()) {
      for (const auto& w : seg.words) note_flow(self, push_text(self, trim(w.word), w.start, w.end));
    } else {
      note_flow(self, push_text(self, trim(seg.text), seg.start, seg.end));
    }
  }
  if (partials && update.decodes > 0)
    for (const Segment& seg : update.partial) post_segment_message(self, seg, false, language);
  // Everything before the transcriber's uncommitted audio is decided (audio the VAD gate
  // still holds is after its position).
  push_gap_until(self, s.stream->position() - s.stream->uncommitted_seconds());
}

// ---------------------------------------------------------------------------------------
// Inference (task thread)

static void fail(GstWhisperAsr* self, const peft::Error& e) {
  gstpeft::post_error(GST_ELEMENT(self), GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
                      std::string("whisperasr: ") + e.what(), e.what());
  self->state->flow = GST_FLOW_ERROR;
}

static void feed(GstWhisperAsr* self, const std::vector<float>& samples,
                 StreamingTranscriber::PushMode mode) {
  if (samples.empty()) return;
  emit(self, self->state->stream->push(samples, mode));
}

// Ends the running utterance stream: all it heard is committed and pushed.
static void drain(GstWhisperAsr* self) {
  WhisperAsrState& s = *self->state;
  if (!s.active) return;
  if (s.gate) feed(self, s.gate->finish(), StreamingTranscriber::PushMode::every_step);
  emit(self, s.stream->finish());
  push_gap_until(self, s.stream->position());
  s.active = false;
}

static void start_stream(GstWhisperAsr* self, double at) {
  WhisperAsrState& s = *self->state;
  s.stream->reset(at);
  if (s.gate) s.gate->reset();
  s.active = true;
  s.input_end = at;
  // The first output of a timeline is a GAP here, so that sinks downstream preroll
  // before the first words are decided (seconds later).
  s.output.advance_to(at);
  push_gap_until(self, at);
  if (!s.live_checked) {
    GstQuery* q = gst_query_new_latency();
    gboolean live = FALSE;
    if (gst_pad_peer_query(self->sinkpad, q)) gst_query_parse_latency(q, &live, nullptr, nullptr);
    gst_query_unref(q);
    s.live = live;
    s.live_checked = true;
  }
}

static void apply_adapter_change(GstWhisperAsr* self) {
  WhisperAsrState& s = *self->state;
  std::string path;
  {
    std::lock_guard<std::mutex> lock(s.settings_mutex);
    if (!s.adapter_changed) return;
    s.adapter_changed = false;
    path = s.settings.adapter;
  }
  try {
    std::shared_ptr<const peft::adapters::BoundAdapter> bound;
    if (!path.empty()) bound = s.model->bind(peft::adapters::PeftAdapter::load(path));
    s.adapter = bound;
    s.stream->set_adapter(bound);
    GST_INFO_OBJECT(self, "adapter now '%s'", path.c_str());
  } catch (const peft::Error& e) {
    gstpeft::post_error(GST_ELEMENT(self), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
                        "Could not load adapter '" + path + "'; keeping the previous one", e.what(), true);
  }
}

// A run of consecutive audio chunks: placed on the timeline, gated, transcribed.
static void process_audio(GstWhisperAsr* self, std::vector<Chunk>& chunks) {
  WhisperAsrState& s = *self->state;
  std::vector<float> audio;  // contiguous audio not yet fed
  size_t backlog = 0;
  for (const Chunk& c : chunks) backlog += c.samples.size();
  const double backlog_seconds = static_cast<double>(backlog) / kRate;
  const bool behind = s.live && backlog_seconds > 2 * s.step_seconds;
  const auto mode =
      behind ? StreamingTranscriber::PushMode::catch_up : StreamingTranscriber::PushMode::every_step;
  if (behind) {
    const double now =
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    if (now - s.last_warning >= kWarningIntervalSeconds) {
      s.last_warning = now;
      GstStructure* details = gst_structure_new(
          "whisperasr-behind", "backlog-seconds", G_TYPE_DOUBLE, backlog_seconds, "decodes-skipped",
          G_TYPE_INT, std::max(0, static_cast<int>(backlog_seconds / s.step_seconds) - 1), nullptr);
      gchar* text = g_strdup_printf(
          "Inference is behind the live stream by %.1f s of audio: transcribing it with one decode instead "
          "of "
          "one per %.2f s step",
          backlog_seconds, s.step_seconds);
      gst_element_message_full_with_details(GST_ELEMENT(self), GST_MESSAGE_WARNING, GST_CORE_ERROR,
                                            GST_CORE_ERROR_CLOCK, text, nullptr, __FILE__, GST_FUNCTION,
                                            __LINE__, details);
    }
  }
  auto flush_audio = [&] {
    if (s.gate) {
      std::vector<float> gated = s.gate->process(audio);
      audio.swap(gated);
    }
    feed(self, audio, mode);
    audio.clear();
  };
  for (Chunk& c : chunks) {
    if (GST_CLOCK_TIME_IS_VALID(c.pts)) {
      const double at = to_seconds(c.pts);
      if (!s.active) {
        start_stream(self, at);
      } else {
        const double hole = at - s.input_end;
        if (hole > kTimestampSlackSeconds && hole <= kMaxFilledHoleSeconds) {
          audio.resize(audio.size() + static_cast<size_t>(std::llround(hole * kRate)), 0.0f);
          s.input_end = at;
        } else if (hole > kMaxFilledHoleSeconds || hole < -kTimestampSlackSeconds) {
          GST_DEBUG_OBJECT(self, "timestamp jump of %.3f s: new utterance stream", hole);
          flush_audio();
          drain(self);
          start_stream(self, at);
        }
      }
    } else if (!s.active) {
      start_stream(self, s.output.position());
    }
    audio.insert(audio.end(), c.samples.begin(), c.samples.end());
    s.input_end += static_cast<double>(c.samples.size()) / kRate;
  }
  flush_audio();
}

static void handle_event(GstWhisperAsr* self, GstEvent* event) {
  WhisperAsrState& s = *self->state;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_CAPS: {
      gst_event_unref(event);
      GstCaps* caps = gst_static_pad_template_get_caps(&src_template);
      gst_pad_push_event(self->srcpad, gst_event_new_caps(caps));
      gst_caps_unref(caps);
      return;
    }
    case GST_EVENT_SEGMENT: {
      const GstSegment* seg = nullptr;
      gst_event_parse_segment(event, &seg);
      if (seg->format != GST_FORMAT_TIME) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                          ("whisperasr needs a TIME segment, got %s", gst_format_get_name(seg->format)),
                          (nullptr));
        s.flow = GST_FLOW_ERROR;
        gst_event_unref(event);
        return;
      }
      drain(self);
      s.output.reset(to_seconds(seg->start));
      break;
    }
    case GST_EVENT_STREAM_START:
      drain(self);
      break;
    case GST_EVENT_GAP: {
      drain(self);
      GstClockTime ts, duration;
      gst_event_parse_gap(event, &ts, &duration);
      if (GST_CLOCK_TIME_IS_VALID(ts))  // forwarded below
        s.output.pushed(to_seconds(ts + (GST_CLOCK_TIME_IS_VALID(duration) ? duration : 0)));
      break;
    }
    case GST_EVENT_EOS:
      drain(self);
      break;
    default:
      break;
  }
  gst_pad_push_event(self->srcpad, event);
}

static void task_loop(gpointer user_data) {
  GstWhisperAsr* self = GST_WHISPER_ASR(user_data);
  WhisperAsrState& s = *self->state;
  auto items = s.queue.pop_all();
  if (items.empty()) {  // flushing
    gst_pad_pause_task(self->srcpad);
    return;
  }
  if (!s.threads_set) {
    // libgomp keeps the thread count per thread: set it on the thread that computes.
    peft::configure_runtime(s.n_threads);
    s.threads_set = true;
  }
  apply_adapter_change(self);
  std::vector<Chunk> run;
  try {
    for (auto& item : items) {
      if (s.flow != GST_FLOW_OK && s.flow != GST_FLOW_EOS) break;
      if (!item.event) {
        run.push_back(std::move(item.data));
        continue;
      }
      if (!run.empty()) process_audio(self, run);
      run.clear();
      handle_event(self, item.event.release());
    }
    if (!run.empty() && s.flow == GST_FLOW_OK) process_audio(self, run);
  } catch (const peft::Error& e) {
    fail(self, e);
  }
  if (s.flow != GST_FLOW_OK && s.flow != GST_FLOW_EOS) gst_pad_pause_task(self->srcpad);
}

// ---------------------------------------------------------------------------------------
// Streaming thread

static GstFlowReturn sink_chain(GstPad*, GstObject* parent, GstBuffer* buffer) {
  GstWhisperAsr* self = GST_WHISPER_ASR(parent);
  WhisperAsrState& s = *self->state;
  const GstFlowReturn last = s.flow;
  if (last != GST_FLOW_OK) {
    gst_buffer_unref(buffer);
    return last;
  }
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) {
    gst_buffer_unref(buffer);
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("Could not map an input buffer"), (nullptr));
    return GST_FLOW_ERROR;
  }
  if (map.size % sizeof(float) != 0) {
    const gsize size = map.size;
    gst_buffer_unmap(buffer, &map);
    gst_buffer_unref(buffer);
    GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                      ("Input buffer of %" G_GSIZE_FORMAT " bytes is not whole F32LE samples", size),
                      (nullptr));
    return GST_FLOW_ERROR;
  }
  Chunk chunk;
  chunk.samples.resize(map.size / sizeof(float));
  std::memcpy(chunk.samples.data(), map.data, map.size);
  chunk.pts = GST_BUFFER_PTS(buffer);
  gst_buffer_unmap(buffer, &map);
  gst_buffer_unref(buffer);

  guint latency_ms;
  {
    std::lock_guard<std::mutex> lock(s.settings_mutex);
    latency_ms = s.settings.latency_ms;
  }
  // Backpressure: at most `latency` of audio waits for inference. A file source is paced
  // by it; a live source waits at most `latency`, then the audio is queued anyway and
  // the inference thread catches up (it transcribes whatever is queued in one go).
  const size_t limit = static_cast<size_t>(latency_ms) * kRate / 1000;
  const auto samples_of = [](const Chunk& c) { return c.samples.size(); };
  if (s.live) {
    s.queue.wait_until_below(limit, samples_of, std::chrono::milliseconds(latency_ms));
  } else {
    while (!s.queue.wait_until_below(limit, samples_of, std::chrono::milliseconds(1000))) {
    }
  }
  if (!s.queue.push_data(std::move(chunk))) return GST_FLOW_FLUSHING;
  return s.flow;
}

static gboolean sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstWhisperAsr* self = GST_WHISPER_ASR(parent);
  WhisperAsrState& s = *self->state;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_FLUSH_START:
      s.queue.set_flushing(true);
      gst_pad_push_event(self->srcpad, event);
      gst_pad_pause_task(self->srcpad);  // returns once the task is out of its loop
      return TRUE;
    case GST_EVENT_FLUSH_STOP: {
      const gboolean ok = gst_pad_push_event(self->srcpad, event);
      s.active = false;
      s.output.reset(0);
      s.flow = GST_FLOW_OK;
      if (s.gate) s.gate->reset();
      s.queue.set_flushing(false);
      gst_pad_start_task(self->srcpad, task_loop, self, nullptr);
      return ok;
    }
    case GST_EVENT_CAPS: {
      GstCaps* caps = nullptr;
      gst_event_parse_caps(event, &caps);
      if (!gst_pad_query_accept_caps(pad, caps)) {
        GST_ELEMENT_ERROR(
            self, CORE, NEGOTIATION,
            ("whisperasr takes audio/x-raw F32LE 16000 Hz mono (put audioconvert ! audioresample "
             "before it), not %" GST_PTR_FORMAT,
             caps),
            (nullptr));
        gst_event_unref(event);
        return FALSE;
      }
      break;
    }
    default:
      break;
  }
  if (GST_EVENT_IS_SERIALIZED(event)) {
    if (!s.queue.push_event(event)) return FALSE;  // flushing: dropped
    return TRUE;
  }
  return gst_pad_event_default(pad, parent, event);
}

static gboolean src_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstWhisperAsr* self = GST_WHISPER_ASR(parent);
  WhisperAsrState& s = *self->state;
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    if (!gst_pad_peer_query(self->sinkpad, query)) return FALSE;
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency(query, &live, &min, &max);
    GstClockTime ours;
    {
      std::lock_guard<std::mutex> lock(s.settings_mutex);
      ours = (static_cast<GstClockTime>(s.settings.latency_ms) + s.settings.lateness_ms) * GST_MSECOND;
    }
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID(max)) max += ours;
    gst_query_set_latency(query, live, min, max);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

static gboolean src_activate_mode(GstPad* pad, GstObject* parent, GstPadMode mode, gboolean active) {
  GstWhisperAsr* self = GST_WHISPER_ASR(parent);
  WhisperAsrState& s = *self->state;
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  if (active) {
    s.flow = GST_FLOW_OK;
    s.queue.set_flushing(false);
    return gst_pad_start_task(pad, task_loop, self, nullptr);
  }
  s.queue.set_flushing(true);
  return gst_pad_stop_task(pad);
}

// ---------------------------------------------------------------------------------------
// Loading and state changes

static bool load_models(GstWhisperAsr* self) {
  gstpeft::tune_malloc_for_inference();
  WhisperAsrState& s = *self->state;
  Settings settings;
  {
    std::lock_guard<std::mutex> lock(s.settings_mutex);
    settings = s.settings;
    s.adapter_changed = false;
  }
  const fs::path path =
      settings.model.empty() ? gstpeft::default_models_dir() / "whisper-tiny.en" : fs::path(settings.model);
  peft::quant::QuantOptions quant;
  quant.type = gstpeft::to_quant_type(settings.quantization);
  const std::string what = "Loading Whisper model " + path.string();
  gst_element_post_message(
      GST_ELEMENT(self),
      gst_message_new_progress(GST_OBJECT(self), GST_PROGRESS_TYPE_START, "load-model", what.c_str()));
  std::string stage = "model";
  std::string file = path.string();
  try {
    s.model = gstpeft::SharedModels<peft::models::WhisperModel>::get(
        gstpeft::model_key(path, peft::quant::to_string(quant.type)),
        [&] { return peft::models::WhisperModel::load(path, quant); });
    const fs::path dir = fs::is_directory(path) ? path : path.parent_path();
    stage = "tokenizer";
    file = (dir / "tokenizer.json").string();
    const std::string tokenizer_key = file + "|" + std::to_string(s.model->dims().n_vocab);
    s.tokenizer = gstpeft::SharedModels<peft::text::WhisperTokenizer>::get(tokenizer_key, [&] {
      return std::make_shared<const peft::text::WhisperTokenizer>(dir / "tokenizer.json",
                                                                  s.model->dims().n_vocab);
    });
    if (settings.vad) {
      stage = "VAD model";
      file = (gstpeft::default_models_dir() / "silero-vad" / "silero_vad.jit").string();
      peft::audio::VadGateOptions v;
      v.threshold = settings.vad_threshold;
      s.gate.emplace(peft::audio::SileroVad::load(file), v);
    }
    if (!settings.adapter.empty()) {
      stage = "adapter";
      file = settings.adapter;
      s.adapter = s.model->bind(peft::adapters::PeftAdapter::load(settings.adapter));
    }
  } catch (const peft::Error& e) {
    gstpeft::post_error(GST_ELEMENT(self), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
                        "Could not load the " + stage + " '" + file + "': " + e.what(), e.what());
    gst_element_post_message(
        GST_ELEMENT(self),
        gst_message_new_progress(GST_OBJECT(self), GST_PROGRESS_TYPE_ERROR, "load-model", e.what()));
    s.model.reset();
    s.tokenizer.reset();
    s.gate.reset();
    s.adapter.reset();
    return false;
  }
  const std::string done = "Loaded " + path.string();
  gst_element_post_message(
      GST_ELEMENT(self),
      gst_message_new_progress(GST_OBJECT(self), GST_PROGRESS_TYPE_COMPLETE, "load-model", done.c_str()));
  return true;
}

static bool create_stream(GstWhisperAsr* self) {
  WhisperAsrState& s = *self->state;
  Settings settings;
  {
    std::lock_guard<std::mutex> lock(s.settings_mutex);
    settings = s.settings;
  }
  DecodingOptions d;
  d.beam_size = static_cast<int>(settings.beam_size);
  d.language = settings.language;
  d.task = settings.task == kTranslate ? "translate" : "transcribe";
  d.initial_prompt = settings.initial_prompt;
  d.word_timestamps = settings.word_timestamps;
  if (!settings.temperature_fallback) d.temperatures = {0.0f};
  d.no_speech_threshold = static_cast<float>(settings.no_speech_threshold);
  d.log_prob_threshold = static_cast<float>(settings.logprob_threshold);
  d.compression_ratio_threshold = static_cast<float>(settings.compression_ratio_threshold);
  d.adapter = s.adapter;
  if (!s.tokenizer->multilingual()) {
    if (!d.language.empty() && d.language != "en")
      GST_ELEMENT_WARNING(
          self, LIBRARY, SETTINGS,
          ("The model is English-only: transcribing as English, not '%s'", d.language.c_str()), (nullptr));
    d.language.clear();
  }
  const StreamingOptions o = StreamingOptions::with_latency(settings.latency_ms / 1000.0, std::move(d));
  s.step_seconds = o.step_seconds;
  s.n_threads = settings.n_threads;
  s.threads_set = false;
  try {
    s.stream = std::make_unique<StreamingTranscriber>(s.model, s.tokenizer, o);
  } catch (const peft::Error& e) {
    gstpeft::post_error(GST_ELEMENT(self), GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_SETTINGS,
                        std::string("Invalid whisperasr settings: ") + e.what(), e.what());
    return false;
  }
  s.active = false;
  s.output.reset(0);
  s.live_checked = false;
  s.live = false;
  return true;
}

static GstStateChangeReturn change_state(GstElement* element, GstStateChange transition) {
  GstWhisperAsr* self = GST_WHISPER_ASR(element);
  WhisperAsrState& s = *self->state;
  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!load_models(self)) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!create_stream(self)) return GST_STATE_CHANGE_FAILURE;
      break;
    default:
      break;
  }
  const GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_whisper_asr_parent_class)->change_state(element, transition);
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      s.stream.reset();
      if (s.gate) s.gate->reset();
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      s.model.reset();
      s.tokenizer.reset();
      s.adapter.reset();
      s.gate.reset();
      break;
    default:
      break;
  }
  return ret;
}

// ---------------------------------------------------------------------------------------
// Properties

// "en-US", "pt_BR", "EN" -> "en", "pt", "en": Whisper names languages by their ISO 639 code.
static std::string whisper_language(const std::string& tag) {
  std::string language = tag.substr(0, tag.find_first_of("-_"));
  for (char& c : language) c = static_cast<char>(g_ascii_tolower(c));
  return language;
}

static void set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  GstWhisperAsr* self = GST_WHISPER_ASR(object);
  WhisperAsrState& s = *self->state;
  std::lock_guard<std::mutex> lock(s.settings_mutex);
  Settings& p = s.settings;
  auto str = [&] { return std::string(g_value_get_string(value) ? g_value_get_string(value) : ""); };
  switch (id) {
    case PROP_MODEL:
      p.model = str();
      break;
    case PROP_QUANTIZATION:
      p.quantization = g_value_get_enum(value);
      break;
    case PROP_ADAPTER:
      p.adapter = str();
      s.adapter_changed = true;
      break;
    case PROP_LANGUAGE:
      p.language = str();
      break;
    case PROP_LANGUAGE_CODE:
      p.language = whisper_language(str());
      break;
    case PROP_TASK:
      p.task = g_value_get_enum(value);
      break;
    case PROP_BEAM_SIZE:
      p.beam_size = g_value_get_uint(value);
      break;
    case PROP_VAD:
      p.vad = g_value_get_boolean(value);
      break;
    case PROP_VAD_THRESHOLD:
      p.vad_threshold = g_value_get_double(value);
      break;
    case PROP_LATENCY:
      p.latency_ms = g_value_get_uint(value);
      break;
    case PROP_LATENESS:
      p.lateness_ms = g_value_get_uint(value);
      break;
    case PROP_N_THREADS:
      p.n_threads = g_value_get_int(value);
      break;
    case PROP_PARTIAL_RESULTS:
      p.partial_results = g_value_get_boolean(value);
      break;
    case PROP_INITIAL_PROMPT:
      p.initial_prompt = str();
      break;
    case PROP_WORD_TIMESTAMPS:
      p.word_timestamps = g_value_get_boolean(value);
      break;
    case PROP_TEMPERATURE_FALLBACK:
      p.temperature_fallback = g_value_get_boolean(value);
      break;
    case PROP_NO_SPEECH_THRESHOLD:
      p.no_speech_threshold = g_value_get_double(value);
      break;
    case PROP_LOGPROB_THRESHOLD:
      p.logprob_threshold = g_value_get_double(value);
      break;
    case PROP_COMPRESSION_RATIO_THRESHOLD:
      p.compression_ratio_threshold = g_value_get_double(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  GstWhisperAsr* self = GST_WHISPER_ASR(object);
  WhisperAsrState& s = *self->state;
  std::lock_guard<std::mutex> lock(s.settings_mutex);
  const Settings& p = s.settings;
  switch (id) {
    case PROP_MODEL:
      g_value_set_string(value, p.model.c_str());
      break;
    case PROP_QUANTIZATION:
      g_value_set_enum(value, p.quantization);
      break;
    case PROP_ADAPTER:
      g_value_set_string(value, p.adapter.c_str());
      break;
    case PROP_LANGUAGE:
    case PROP_LANGUAGE_CODE:
      g_value_set_string(value, p.language.c_str());
      break;
    case PROP_TASK:
      g_value_set_enum(value, p.task);
      break;
    case PROP_BEAM_SIZE:
      g_value_set_uint(value, p.beam_size);
      break;
    case PROP_VAD:
      g_value_set_boolean(value, p.vad);
      break;
    case PROP_VAD_THRESHOLD:
      g_value_set_double(value, p.vad_threshold);
      break;
    case PROP_LATENCY:
      g_value_set_uint(value, p.latency_ms);
      break;
    case PROP_LATENESS:
      g_value_set_uint(value, p.lateness_ms);
      break;
    case PROP_N_THREADS:
      g_value_set_int(value, p.n_threads);
      break;
    case PROP_PARTIAL_RESULTS:
      g_value_set_boolean(value, p.partial_results);
      break;
    case PROP_INITIAL_PROMPT:
      g_value_set_string(value, p.initial_prompt.c_str());
      break;
    case PROP_WORD_TIMESTAMPS:
      g_value_set_boolean(value, p.word_timestamps);
      break;
    case PROP_TEMPERATURE_FALLBACK:
      g_value_set_boolean(value, p.temperature_fallback);
      break;
    case PROP_NO_SPEECH_THRESHOLD:
      g_value_set_double(value, p.no_speech_threshold);
      break;
    case PROP_LOGPROB_THRESHOLD:
      g_value_set_double(value, p.logprob_threshold);
      break;
    case PROP_COMPRESSION_RATIO_THRESHOLD:
      g_value_set_double(value, p.compression_ratio_threshold);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void finalize(GObject* object) {
  GstWhisperAsr* self = GST_WHISPER_ASR(object);
  self->state.~unique_ptr();
  G_OBJECT_CLASS(gst_whisper_asr_parent_class)->finalize(object);
}

static void gst_whisper_asr_class_init(GstWhisperAsrClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;
  element_class->change_state = change_state;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  const auto rw_ready = static_cast<GParamFlags>(rw | GST_PARAM_MUTABLE_READY);
  const auto rw_playing = static_cast<GParamFlags>(rw | GST_PARAM_MUTABLE_PLAYING);
  const Settings d;
  g_object_class_install_property(
      gobject_class, PROP_MODEL,
      g_param_spec_string(
          "model", "Model",
          "Whisper model: a CTranslate2 or Hugging Face directory, or an openai-whisper .pt file "
          "(its directory must hold tokenizer.json). Empty: the fetched tiny.en "
          "($PEFT_MODELS_DIR/whisper-tiny.en, else the source tree's models/default). Read when "
          "the element goes from NULL to READY; elements in a process asking for the same file and "
          "quantization share one loaded model",
          "", rw));
  g_object_class_install_property(
      gobject_class, PROP_QUANTIZATION,
      g_param_spec_enum(
          "quantization", "Quantization",
          "How the model's projection weights are held in memory, applied at load (NULL to READY)",
          gstpeft::quantization_enum_get_type(), d.quantization, rw));
  g_object_class_install_property(
      gobject_class, PROP_ADAPTER,
      g_param_spec_string(
          "adapter", "Adapter",
          "A LoRA or AdaLoRA adapter directory in Hugging Face PEFT's files (adapter_config.json + "
          "adapter_model.safetensors) trained on this model; empty: none. Changeable while "
          "PLAYING: the next decode uses it (a file that fails to load gives a WARNING and the "
          "previous adapter stays)",
          "", rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_LANGUAGE,
      g_param_spec_string(
          "language", "Language",
          "Spoken language as a Whisper code (en, fr, de, ...); empty: detected on each decode "
          "window by multilingual models. English-only models always transcribe English",
          "", rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_LANGUAGE_CODE,
      g_param_spec_string(
          "language-code", "Language code",
          "The language property under the name gst-plugins-rs's transcriberbin sets on its "
          "transcriber: a BCP 47 tag such as en-US is cut to its language (en); reads back as "
          "language",
          "", rw_ready));
  g_object_class_install_property(gobject_class, PROP_TASK,
                                  g_param_spec_enum("task", "Task", "Transcribe, or translate into English",
                                                    task_enum_get_type(), d.task, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_BEAM_SIZE,
      g_param_spec_uint(
          "beam-size", "Beam size",
          "Beams of the beam search (1: greedy decoding, the cheapest for live use; faster-whisper's "
          "default is 5)",
          1, 16, d.beam_size, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_VAD,
      g_param_spec_boolean(
          "vad", "Voice activity detection",
          "Replace audio that Silero VAD ($PEFT_MODELS_DIR/silero-vad/silero_vad.jit) finds "
          "no speech in (with 256 ms of padding around speech) by silence before recognition: "
          "no text is hallucinated in noise or music, and silence costs no decoding. Delays the "
          "audio by ~0.3 s",
          d.vad, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_VAD_THRESHOLD,
      g_param_spec_double(
          "vad-threshold", "VAD threshold",
          "Speech probability from which Silero VAD counts a 32 ms chunk as speech (with vad)", 0.01, 0.99,
          d.vad_threshold, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_LATENCY,
      g_param_spec_uint(
          "latency", "Latency",
          "Milliseconds of audio after which its text is decided at the latest: text is committed "
          "when two decodes agree on it, or forced once its audio is this old. Decodes run every "
          "min(1000, latency / 4) ms. Reported in the LATENCY query (with lateness)",
          1000, 29000, d.latency_ms, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_LATENESS,
      g_param_spec_uint(
          "lateness", "Lateness",
          "Milliseconds allowed for inference on top of latency: the LATENCY query reports latency + "
          "lateness, so text decided at `latency` and computed within `lateness` is on time "
          "downstream",
          0, 30000, d.lateness_ms, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_N_THREADS,
      g_param_spec_int(
          "n-threads", "Threads",
          "Threads for inference (0: all online cores); set on the element's own inference thread", 0, 256,
          d.n_threads, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_PARTIAL_RESULTS,
      g_param_spec_boolean(
          "partial-results", "Partial results",
          "Also post the not yet final hypothesis after each decode, as \"whisperasr\" element "
          "messages with final=false (buffers carry final text only)",
          d.partial_results, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_INITIAL_PROMPT,
      g_param_spec_string(
          "initial-prompt", "Initial prompt",
          "Text that conditions the first decodes (names, spelling, style) until text has been "
          "committed; then the committed text does",
          "", rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_WORD_TIMESTAMPS,
      g_param_spec_boolean("word-timestamps", "Word timestamps",
                           "One buffer per word, timed by the cross-attention alignment (as faster-whisper's "
                           "word_timestamps), instead of one per segment",
                           d.word_timestamps, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_TEMPERATURE_FALLBACK,
      g_param_spec_boolean(
          "temperature-fallback", "Temperature fallback",
          "Decode again with sampling at temperatures 0.2 .. 1.0 when a decode fails the "
          "compression-ratio or log-probability threshold (faster-whisper's default; costs up to "
          "six decodes, so off for live use)",
          d.temperature_fallback, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_NO_SPEECH_THRESHOLD,
      g_param_spec_double("no-speech-threshold", "No-speech threshold",
                          "A decode window whose no-speech probability is above this and whose average log "
                          "probability is below logprob-threshold is silence (no text)",
                          0.0, 1.0, d.no_speech_threshold, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_LOGPROB_THRESHOLD,
      g_param_spec_double(
          "logprob-threshold", "Log-probability threshold",
          "Average token log probability below which a decode counts as failed (silence test, and "
          "fallback with temperature-fallback)",
          -100.0, 0.0, d.logprob_threshold, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_COMPRESSION_RATIO_THRESHOLD,
      g_param_spec_double(
          "compression-ratio-threshold", "Compression-ratio threshold",
          "gzip compression ratio of a decode's text above which it counts as repetitive (failed: "
          "fallback with temperature-fallback)",
          1.0, 100.0, d.compression_ratio_threshold, rw_ready));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Whisper speech recognition", "Filter/Audio/Text",
      "Transcribes speech into timestamped text with Whisper (quantized models, LoRA/AdaLoRA adapters)",
      "gst-peft");
  gst_type_mark_as_plugin_api(task_enum_get_type(), static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(gstpeft::quantization_enum_get_type(), static_cast<GstPluginAPIFlags>(0));
}

static void gst_whisper_asr_init(GstWhisperAsr* self) {
  new (&self->state) std::unique_ptr<WhisperAsrState>(std::make_unique<WhisperAsrState>());
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(sink_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(sink_event));
  GST_PAD_SET_PROXY_ALLOCATION(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(self->srcpad, GST_DEBUG_FUNCPTR(src_query));
  gst_pad_set_activatemode_function(self->srcpad, GST_DEBUG_FUNCPTR(src_activate_mode));
  gst_pad_use_fixed_caps(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
