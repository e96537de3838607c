#include "peftsummarize/gstpeftsummarize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
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
#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/peft_adapter.h"
#include "peft/error.h"
#include "peft/runtime.h"
#include "peft/summarization/rolling_summarizer.h"
#include "peft/summarization/text_model.h"

GST_DEBUG_CATEGORY_STATIC(peft_summarize_debug);
#define GST_CAT_DEFAULT peft_summarize_debug

namespace {

using peft::summarization::RollingOptions;
using peft::summarization::RollingSummarizer;
using peft::summarization::SpanSummary;
using peft::summarization::TextModel;
using peft::summarization::TimedText;

enum class Mode { rolling = 0, window = 1, final_only = 2 };

constexpr double kDefaultWindow = 60.0, kDefaultHop = 30.0;
constexpr guint kDefaultMaxNewTokens = 96;

std::string default_model() { return (gstpeft::default_models_dir() / "smollm2-135m-instruct").string(); }

// What the properties say; read under State::settings_mutex.
struct Settings {
  std::string model;  // "" = default_model()
  int quantization = static_cast<int>(peft::quant::QuantType::none);
  std::string adapter;          // "" = none
  uint64_t adapter_serial = 0;  // bumped on every set, so the worker sees each change
  Mode mode = Mode::rolling;
  double window = kDefaultWindow, hop = kDefaultHop;
  std::string instruction;
  guint max_new_tokens = kDefaultMaxNewTokens;
  guint beam_size = 1;
  guint n_threads = 0;
};

// Text between the streaming thread and the task, times in ns on the segment timeline.
struct Text {
  std::string text;
  GstClockTime start = 0, end = 0;
};

struct State {
  std::mutex settings_mutex;
  Settings settings;

  // Loaded at NULL->READY, released at READY->NULL (no task runs at either).
  std::shared_ptr<const TextModel> model;
  // The adapter in use and the settings' serial it reflects: the task's while it runs,
  // the state-change thread's otherwise.
  std::shared_ptr<const peft::adapters::BoundAdapter> adapter;
  uint64_t adapter_serial = 0;
  // Read from the settings at READY->PAUSED.
  RollingOptions options;

  gstpeft::WorkQueue<Text> queue;
  // The task's last flow return, which the chain function hands upstream.
  std::atomic<GstFlowReturn> flow{GST_FLOW_FLUSHING};
  // Set on flush and deactivation: a generation in progress stops at its next token.
  std::atomic<bool> abort{false};

  // Streaming thread: where the previous buffer's text ended (for buffers without times).
  GstClockTime last_start = 0, last_end = 0;
  std::string sink_stream_id;  // of the last STREAM_START received

  // Task thread (or, while it is paused or stopped, the thread that restarts it).
  std::unique_ptr<RollingSummarizer> summarizer;
  bool runtime_configured = false;
  std::string stream_id;         // of the last STREAM_START forwarded
  double input_end = 0;          // stream seconds of text (and input GAPs) taken in
  gstpeft::SparseOutput output;  // what went downstream: summaries and GAPs
};

double to_seconds(GstClockTime t) { return static_cast<double>(t) / GST_SECOND; }
using gstpeft::seconds_to_clock;

}  // namespace

struct _GstPeftSummarize {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;
  std::unique_ptr<State> state;  // placement-new in init, destroyed in finalize
};

G_DEFINE_TYPE(GstPeftSummarize, gst_peft_summarize, GST_TYPE_ELEMENT)
GST_ELEMENT_REGISTER_DEFINE(peftsummarize, "peftsummarize", GST_RANK_NONE, GST_TYPE_PEFT_SUMMARIZE)

enum {
  PROP_0,
  PROP_MODEL,
  PROP_QUANTIZATION,
  PROP_ADAPTER,
  PROP_MODE,
  PROP_WINDOW,
  PROP_HOP,
  PROP_INSTRUCTION,
  PROP_MAX_NEW_TOKENS,
  PROP_BEAM_SIZE,
  PROP_N_THREADS,
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format=(string)utf8"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format=(string)utf8"));

GType gst_peft_summarize_mode_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {
        {static_cast<gint>(Mode::rolling),
         "Every hop seconds, a summary of the last window seconds (hop < window)", "rolling"},
        {static_cast<gint>(Mode::window), "Disjoint windows: a summary every window seconds (hop = window)",
         "window"},
        {static_cast<gint>(Mode::final_only), "Only the summary of the whole stream, at EOS", "final-only"},
        {0, nullptr, nullptr}};
    g_once_init_leave(&type, g_enum_register_static("GstPeftSummarizeMode", values));
  }
  return type;
}

// ---- the task: summaries ------------------------------------------------------------

// Applies an `adapter` set since the last summary. A bad one (while streaming) is a
// WARNING naming the file; the previous adapter stays.
static void apply_adapter_change(GstPeftSummarize* self) {
  State& st = *self->state;
  std::string path;
  uint64_t serial;
  {
    std::lock_guard<std::mutex> lock(st.settings_mutex);
    path = st.settings.adapter;
    serial = st.settings.adapter_serial;
  }
  if (serial == st.adapter_serial) return;
  st.adapter_serial = serial;
  if (path.empty()) {
    st.summarizer->set_adapter(nullptr);
    st.adapter.reset();
    GST_INFO_OBJECT(self, "adapter removed");
    return;
  }
  try {
    auto bound = st.model->bind(peft::adapters::PeftAdapter::load(path));
    st.summarizer->set_adapter(bound.get());
    st.adapter = std::move(bound);
    GST_INFO_OBJECT(self, "adapter %s applied", path.c_str());
  } catch (const std::exception& e) {
    const std::string kept =
        st.adapter ? "keeping the adapter " + st.adapter->adapter().source() : "keeping no adapter";
    gstpeft::post_error(GST_ELEMENT(self), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ,
                        "Cannot use the adapter " + path + " (" + kept + "): " + e.what(), "adapter=" + path,
                        /*warning=*/true);
  }
}

// Posts the `peftsummarize` message and pushes the summary buffer.
static GstFlowReturn emit(GstPeftSummarize* self, const SpanSummary& s) {
  const GstClockTime start = seconds_to_clock(s.start), end = std::max(start, seconds_to_clock(s.end));
  GstStructure* st = gst_structure_new("peftsummarize", "summary", G_TYPE_STRING, s.text.c_str(), "start",
                                       G_TYPE_UINT64, static_cast<guint64>(start), "end", G_TYPE_UINT64,
                                       static_cast<guint64>(end), "final", G_TYPE_BOOLEAN, s.final, nullptr);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), st));
  GstBuffer* buf = gst_buffer_new_memdup(s.text.data(), s.text.size());
  GST_BUFFER_PTS(buf) = start;
  GST_BUFFER_DURATION(buf) = end - start;
  GST_DEBUG_OBJECT(self, "summary %" GST_TIME_FORMAT " .. %" GST_TIME_FORMAT "%s: %s", GST_TIME_ARGS(start),
                   GST_TIME_ARGS(end), s.final ? " (final)" : "", s.text.c_str());
  self->state->output.pushed(s.end);
  return gst_pad_push(self->srcpad, buf);
}

// A GAP downstream up to where no summary but the final one can still start (the next
// rolling window's start, or all text taken in): sinks after this element preroll, and
// tees, queues and overlays never wait on it for time it has consumed. (Summaries are
// stamped with the span they describe, so a rolling summary starts a window before the
// text that completed it, and the final one at the start of the stream.)
static void push_settled_gap(GstPeftSummarize* self) {
  State& st = *self->state;
  st.output.gap_until(self->srcpad, st.summarizer->settled_until(st.input_end));
}

// Summarizes a batch of text in one push: summaries that fell due while the previous
// one was being generated are merged into one (with a WARNING), so neither upstream
// waits nor pending work grows.
static GstFlowReturn summarize_batch(GstPeftSummarize* self, std::vector<TimedText>& batch) {
  State& st = *self->state;
  if (batch.empty()) return GST_FLOW_OK;
  // Before the model runs (seconds): no summary will start before this text (or the
  // next window), which lets a sink downstream preroll in the meantime.
  st.output.gap_until(self->srcpad, st.summarizer->settled_until(batch.front().start));
  apply_adapter_change(self);
  const std::vector<SpanSummary> out = st.summarizer->push(batch);
  batch.clear();
  for (const SpanSummary& s : out) {
    if (st.abort) return GST_FLOW_FLUSHING;  // cut short by a flush: not a summary
    if (s.merged > 1) {
      const guint64 start = seconds_to_clock(s.start), end = seconds_to_clock(s.end);
      GST_ELEMENT_WARNING_WITH_DETAILS(
          self, RESOURCE, BUSY,
          ("Summarizing is slower than the stream: %d summaries that fell due were merged into one",
           s.merged),
          ("text piled up while the previous summary was generated; one summary covers %.3f s .. %.3f s",
           s.start, s.end),
          ("merged", G_TYPE_INT, s.merged, "start", G_TYPE_UINT64, start, "end", G_TYPE_UINT64, end,
           nullptr));
    }
    GstFlowReturn ret = emit(self, s);
    if (ret != GST_FLOW_OK) return ret;
  }
  push_settled_gap(self);
  return GST_FLOW_OK;
}

// The stream id of a STREAM_START event.
static std::string stream_id_of(GstEvent* event) {
  const gchar* id = nullptr;
  gst_event_parse_stream_start(event, &id);
  return id ? id : "";
}

// A serialized event in stream order. EOS, and a STREAM_START that begins another
// stream, first push the final summary of the stream that ended.
static GstFlowReturn handle_event(GstPeftSummarize* self, gstpeft::EventPtr event) {
  State& st = *self->state;
  bool ends_stream = GST_EVENT_TYPE(event.get()) == GST_EVENT_EOS;
  bool was_running = ends_stream;  // a stream's events went downstream before this one
  if (GST_EVENT_TYPE(event.get()) == GST_EVENT_STREAM_START) {
    std::string id = stream_id_of(event.get());
    ends_stream = id != st.stream_id;
    was_running = !st.stream_id.empty();
    st.stream_id = std::move(id);
  }
  if (GST_EVENT_TYPE(event.get()) == GST_EVENT_GAP) {
    // No text until the GAP's end: our own GAP says what that settles (forwarding this
    // one could pass a rolling summary still to come).
    GstClockTime ts, duration;
    gst_event_parse_gap(event.get(), &ts, &duration);
    if (GST_CLOCK_TIME_IS_VALID(ts))
      st.input_end =
          std::max(st.input_end, to_seconds(ts + (GST_CLOCK_TIME_IS_VALID(duration) ? duration : 0)));
    push_settled_gap(self);
    return GST_FLOW_OK;
  }
  if (ends_stream) {
    // No rolling summary can come any more: all the text taken in is settled (the final
    // summary, stamped from the stream's start, goes back in time; an overlay that is
    // past its start leaves it undrawn).
    if (was_running) st.output.gap_until(self->srcpad, st.input_end);
    apply_adapter_change(self);
    const SpanSummary s = st.summarizer->finish();
    if (st.abort) return GST_FLOW_FLUSHING;
    if (!s.text.empty()) {
      GstFlowReturn ret = emit(self, s);
      if (ret != GST_FLOW_OK) return ret;
    }
  }
  if (GST_EVENT_TYPE(event.get()) == GST_EVENT_SEGMENT) {
    const GstSegment* segment;
    gst_event_parse_segment(event.get(), &segment);
    st.input_end = to_seconds(segment->start);
    st.output.reset(st.input_end);
  }
  gst_pad_push_event(self->srcpad, event.release());
  return GST_FLOW_OK;
}

static void pause_task(GstPeftSummarize* self, GstFlowReturn ret) {
  State& st = *self->state;
  st.flow = ret;
  GST_DEBUG_OBJECT(self, "pausing the task: %s", gst_flow_get_name(ret));
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) {
    if (ret != GST_FLOW_ERROR) GST_ELEMENT_FLOW_ERROR(self, ret);  // errors were posted where they arose
    gst_pad_push_event(self->srcpad, gst_event_new_eos());
  }
  gst_pad_pause_task(self->srcpad);
}

static void summarize_loop(gpointer user_data) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(user_data);
  State& st = *self->state;
  std::vector<gstpeft::WorkQueue<Text>::Item> items = st.queue.pop_all();
  if (items.empty()) {  // flushing
    pause_task(self, GST_FLOW_FLUSHING);
    return;
  }
  if (!st.runtime_configured) {
    // libgomp's thread count belongs to the calling thread: set it on this one.
    guint n_threads;
    {
      std::lock_guard<std::mutex> lock(st.settings_mutex);
      n_threads = st.settings.n_threads;
    }
    const peft::RuntimeInfo info = peft::configure_runtime(static_cast<int>(n_threads));
    GST_INFO_OBJECT(self, "summarizing with %d threads", info.threads);
    st.runtime_configured = true;
  }
  GstFlowReturn ret = GST_FLOW_OK;
  try {
    std::vector<TimedText> batch;
    for (auto& item : items) {
      if (!item.event) {
        batch.push_back({std::move(item.data.text), to_seconds(item.data.start), to_seconds(item.data.end)});
        st.input_end = std::max(st.input_end, batch.back().end);
        continue;
      }
      if ((ret = summarize_batch(self, batch)) != GST_FLOW_OK) break;
      if ((ret = handle_event(self, std::move(item.event))) != GST_FLOW_OK) break;
    }
    if (ret == GST_FLOW_OK) ret = summarize_batch(self, batch);
  } catch (const std::exception& e) {
    gstpeft::post_error(GST_ELEMENT(self), GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
                        std::string("Summarizing failed: ") + e.what(), "in the summarizer task");
    ret = GST_FLOW_ERROR;
  }
  if (ret != GST_FLOW_OK) pause_task(self, ret);
}

// A fresh stream: no text, no summaries due. Called while the task is not running.
static void reset_stream(GstPeftSummarize* self) {
  State& st = *self->state;
  st.summarizer = std::make_unique<RollingSummarizer>(st.model, st.options, st.adapter.get());
  st.last_start = st.last_end = 0;
  st.input_end = 0;
  st.output.reset(0);
}

// Queues the sticky events the sink pad keeps through a flush (stream-start, caps,
// tags): the flush may have dropped them from the queue before the task forwarded them.
// Forwarding them again when they did get through changes nothing downstream.
static gboolean requeue_sticky(GstPad* /*pad*/, GstEvent** event, gpointer user_data) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(user_data);
  State& st = *self->state;
  switch (GST_EVENT_TYPE(*event)) {
    case GST_EVENT_SEGMENT:  // the stream after the flush brings its own
    case GST_EVENT_EOS:
      break;
    case GST_EVENT_CAPS: {
      GstCaps* caps = gst_pad_get_pad_template_caps(self->srcpad);
      st.queue.push_event(gst_event_new_caps(caps));
      gst_caps_unref(caps);
      break;
    }
    default:
      st.queue.push_event(gst_event_ref(*event));
  }
  return TRUE;
}

static void start_task(GstPeftSummarize* self, bool after_flush) {
  State& st = *self->state;
  reset_stream(self);
  st.abort = false;
  st.flow = GST_FLOW_OK;
  if (!after_flush) st.stream_id = st.sink_stream_id = "";
  st.queue.set_flushing(false);
  if (after_flush) gst_pad_sticky_events_foreach(self->sinkpad, requeue_sticky, self);
  gst_pad_start_task(self->srcpad, summarize_loop, self, nullptr);
}

static gboolean src_activate_mode(GstPad* pad, GstObject* parent, GstPadMode mode, gboolean active) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(parent);
  State& st = *self->state;
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  if (active) {
    st.runtime_configured = false;
    start_task(self, /*after_flush=*/false);
    return TRUE;
  }
  st.abort = true;
  st.queue.set_flushing(true);
  st.flow = GST_FLOW_FLUSHING;
  return gst_pad_stop_task(pad);
}

// ---- the streaming thread: queue text and events, never wait ------------------------

static GstFlowReturn sink_chain(GstPad* /*pad*/, GstObject* parent, GstBuffer* buf) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(parent);
  State& st = *self->state;
  const GstFlowReturn flow = st.flow;
  if (flow != GST_FLOW_OK) {
    gst_buffer_unref(buf);
    return flow;
  }
  Text t;
  GstMapInfo map;
  if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
    t.text.assign(reinterpret_cast<const char*>(map.data), map.size);
    gst_buffer_unmap(buf, &map);
  }
  // Without a PTS the text is taken to start where the previous one ended; without a
  // duration it takes no time. Times never go back (the summarizer needs order).
  t.start = GST_BUFFER_PTS_IS_VALID(buf) ? GST_BUFFER_PTS(buf) : st.last_end;
  t.start = std::max(t.start, st.last_start);
  t.end = GST_BUFFER_DURATION_IS_VALID(buf) ? t.start + GST_BUFFER_DURATION(buf) : t.start;
  gst_buffer_unref(buf);
  st.last_start = t.start;
  st.last_end = std::max(st.last_end, t.end);
  if (!st.queue.push_data(std::move(t))) return GST_FLOW_FLUSHING;
  return GST_FLOW_OK;
}

static gboolean sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(parent);
  State& st = *self->state;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_FLUSH_START: {
      // Downstream first (a push blocked there returns), then stop the task.
      const gboolean res = gst_pad_push_event(self->srcpad, event);
      st.abort = true;
      st.queue.set_flushing(true);
      gst_pad_pause_task(self->srcpad);
      return res;
    }
    case GST_EVENT_FLUSH_STOP: {
      // (The task is paused by FLUSH_START; make sure of it if none came.)
      st.abort = true;
      st.queue.set_flushing(true);
      gst_pad_pause_task(self->srcpad);
      const gboolean res = gst_pad_push_event(self->srcpad, event);
      // Pending text and the summarizer's state belong to the stream before the flush.
      if (gst_pad_is_active(self->srcpad)) start_task(self, /*after_flush=*/true);
      return res;
    }
    case GST_EVENT_STREAM_START: {
      // Another stream's text starts its own timeline (the task drains the previous one).
      std::string id = stream_id_of(event);
      if (id != st.sink_stream_id) st.last_start = st.last_end = 0;
      st.sink_stream_id = std::move(id);
      return st.queue.push_event(event);
    }
    case GST_EVENT_CAPS: {
      // The template admits only text/x-raw,format=utf8; the summaries have the same caps.
      gst_event_unref(event);
      GstCaps* caps = gst_pad_get_pad_template_caps(self->srcpad);
      const bool queued = st.queue.push_event(gst_event_new_caps(caps));
      gst_caps_unref(caps);
      return queued;
    }
    case GST_EVENT_SEGMENT: {
      const GstSegment* segment;
      gst_event_parse_segment(event, &segment);
      if (segment->format != GST_FORMAT_TIME) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Text must come with a TIME segment"),
                          ("got a %s segment", gst_format_get_name(segment->format)));
        gst_event_unref(event);
        return FALSE;
      }
      return st.queue.push_event(event);
    }
    default:
      // Serialized events (stream-start, segment, gap, tags, EOS) keep their place
      // among the summaries.
      if (GST_EVENT_IS_SERIALIZED(event)) return st.queue.push_event(event);
      return gst_pad_event_default(pad, parent, event);
  }
}

static gboolean src_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(parent);
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    // Upstream's latency, unchanged. A summary is known only after its window has passed
    // and the model has run (seconds to minutes, unbounded on a busy machine), so no
    // latency this element could add would be a promise it can keep, and adding the
    // window (60 s by default) would delay every live sink in the pipeline by as much.
    // Summaries are side information stamped with the span they describe; sinks that
    // show them should not sync to the clock.
    return gst_pad_peer_query(self->sinkpad, query);
  }
  return gst_pad_query_default(pad, parent, query);
}

// ---- state changes: the model ----------------------------------------------------------

static bool load_model(GstPeftSummarize* self) {
  gstpeft::tune_malloc_for_inference();
  State& st = *self->state;
  std::string path, adapter;
  int quantization;
  uint64_t adapter_serial;
  {
    std::lock_guard<std::mutex> lock(st.settings_mutex);
    path = st.settings.model.empty() ? default_model() : st.settings.model;
    quantization = st.settings.quantization;
    adapter = st.settings.adapter;
    adapter_serial = st.settings.adapter_serial;
  }
  peft::quant::QuantOptions quant;
  quant.type = gstpeft::to_quant_type(quantization);
  const std::string what = path + " (quantization " + peft::quant::to_string(quant.type) + ")";
  GstElement* element = GST_ELEMENT(self);
  gst_element_post_message(element, gst_message_new_progress(GST_OBJECT(self), GST_PROGRESS_TYPE_START,
                                                             "load-model", ("Loading " + what).c_str()));
  try {
    st.model =
        gstpeft::SharedModels<TextModel>::get(gstpeft::model_key(path, peft::quant::to_string(quant.type)),
                                              [&] { return TextModel::load(path, quant); });
  } catch (const std::exception& e) {
    const bool missing = dynamic_cast<const peft::NotFoundError*>(&e) != nullptr;
    gstpeft::post_error(element, GST_RESOURCE_ERROR,
                        missing ? GST_RESOURCE_ERROR_NOT_FOUND : GST_RESOURCE_ERROR_READ,
                        std::string("Cannot load the summarizer model: ") + e.what(), "model=" + what);
    gst_element_post_message(element,
                             gst_message_new_progress(GST_OBJECT(self), GST_PROGRESS_TYPE_ERROR, "load-model",
                                                      ("Cannot load " + what).c_str()));
    return false;
  }
  st.adapter.reset();
  st.adapter_serial = adapter_serial;
  if (!adapter.empty()) {
    try {
      st.adapter = st.model->bind(peft::adapters::PeftAdapter::load(adapter));
    } catch (const std::exception& e) {
      gstpeft::post_error(element, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ,
                          "Cannot use the adapter " + adapter + ": " + e.what(), "adapter=" + adapter);
      gst_element_post_message(
          element, gst_message_new_progress(GST_OBJECT(self), GST_PROGRESS_TYPE_ERROR, "load-model",
                                            ("Cannot load " + adapter).c_str()));
      st.model.reset();
      return false;
    }
  }
  gst_element_post_message(element, gst_message_new_progress(GST_OBJECT(self), GST_PROGRESS_TYPE_COMPLETE,
                                                             "load-model", ("Loaded " + what).c_str()));
  return true;
}

// The summarizer's options from the properties; false (with an ERROR) when they cannot work.
static bool read_options(GstPeftSummarize* self) {
  State& st = *self->state;
  RollingOptions o;
  {
    std::lock_guard<std::mutex> lock(st.settings_mutex);
    const Settings& s = st.settings;
    o.window_seconds = s.window;
    o.hop_seconds = s.mode == Mode::rolling ? s.hop : s.window;
    o.rolling = s.mode != Mode::final_only;
    o.summary.instruction = s.instruction;
    o.summary.generation.max_new_tokens = s.max_new_tokens;
    o.summary.generation.num_beams = s.beam_size;
  }
  // A flush or a state change stops a generation at its next token (greedy decoding;
  // beam search finishes its summary, which is then dropped).
  State* state = &st;
  o.summary.generation.on_token = [state](const std::vector<int64_t>&) { return !state->abort.load(); };
  try {
    o.validate();
  } catch (const std::exception& e) {
    gstpeft::post_error(GST_ELEMENT(self), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
                        std::string("Invalid settings: ") + e.what(), "window/hop/max-new-tokens/beam-size");
    return false;
  }
  st.options = std::move(o);
  return true;
}

static GstStateChangeReturn change_state(GstElement* element, GstStateChange transition) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(element);
  State& st = *self->state;
  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!load_model(self)) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!read_options(self)) return GST_STATE_CHANGE_FAILURE;
      break;
    default:
      break;
  }
  const GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_peft_summarize_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) return ret;
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      st.summarizer.reset();
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      st.adapter.reset();
      st.model.reset();  // freed here unless another element shares it
      break;
    default:
      break;
  }
  return ret;
}

// ---- properties ----------------------------------------------------------------------

static void set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(object);
  State& st = *self->state;
  std::lock_guard<std::mutex> lock(st.settings_mutex);
  Settings& s = st.settings;
  auto str = [&] { return std::string(g_value_get_string(value) ? g_value_get_string(value) : ""); };
  switch (prop_id) {
    case PROP_MODEL:
      s.model = str();
      break;
    case PROP_QUANTIZATION:
      s.quantization = g_value_get_enum(value);
      break;
    case PROP_ADAPTER:
      s.adapter = str();
      ++s.adapter_serial;
      break;
    case PROP_MODE:
      s.mode = static_cast<Mode>(g_value_get_enum(value));
      break;
    case PROP_WINDOW:
      s.window = g_value_get_double(value);
      break;
    case PROP_HOP:
      s.hop = g_value_get_double(value);
      break;
    case PROP_INSTRUCTION:
      s.instruction = str();
      break;
    case PROP_MAX_NEW_TOKENS:
      s.max_new_tokens = g_value_get_uint(value);
      break;
    case PROP_BEAM_SIZE:
      s.beam_size = g_value_get_uint(value);
      break;
    case PROP_N_THREADS:
      s.n_threads = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(object);
  State& st = *self->state;
  std::lock_guard<std::mutex> lock(st.settings_mutex);
  const Settings& s = st.settings;
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string(value, s.model.empty() ? default_model().c_str() : s.model.c_str());
      break;
    case PROP_QUANTIZATION:
      g_value_set_enum(value, s.quantization);
      break;
    case PROP_ADAPTER:
      g_value_set_string(value, s.adapter.c_str());
      break;
    case PROP_MODE:
      g_value_set_enum(value, static_cast<gint>(s.mode));
      break;
    case PROP_WINDOW:
      g_value_set_double(value, s.window);
      break;
    case PROP_HOP:
      g_value_set_double(value, s.hop);
      break;
    case PROP_INSTRUCTION:
      g_value_set_string(value, s.instruction.c_str());
      break;
    case PROP_MAX_NEW_TOKENS:
      g_value_set_uint(value, s.max_new_tokens);
      break;
    case PROP_BEAM_SIZE:
      g_value_set_uint(value, s.beam_size);
      break;
    case PROP_N_THREADS:
      g_value_set_uint(value, s.n_threads);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_peft_summarize_finalize(GObject* object) {
  GstPeftSummarize* self = GST_PEFT_SUMMARIZE(object);
  self->state.~unique_ptr<State>();
  G_OBJECT_CLASS(gst_peft_summarize_parent_class)->finalize(object);
}

static void gst_peft_summarize_class_init(GstPeftSummarizeClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GST_DEBUG_CATEGORY_INIT(peft_summarize_debug, "peftsummarize", 0, "PEFT text summarizer");

  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = gst_peft_summarize_finalize;
  element_class->change_state = change_state;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  const auto rw_ready = static_cast<GParamFlags>(rw | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_MODEL,
      g_param_spec_string(
          "model", "Model",
          "Summarizer: a GGUF file (or a directory holding one) of a Llama-family instruction "
          "model, or a Hugging Face directory of a Llama/Qwen2, T5 or BART model. Loaded at "
          "NULL->READY; elements with the same model and quantization share one copy. Empty: "
          "the default ($PEFT_MODELS_DIR/smollm2-135m-instruct)",
          default_model().c_str(), rw));
  g_object_class_install_property(
      gobject_class, PROP_QUANTIZATION,
      g_param_spec_enum("quantization", "Quantization",
                        "How the model's linear weights are held once loaded (read at NULL->READY)",
                        gstpeft::quantization_enum_get_type(),
                        static_cast<gint>(peft::quant::QuantType::none), rw));
  g_object_class_install_property(
      gobject_class, PROP_ADAPTER,
      g_param_spec_string(
          "adapter", "Adapter",
          "A LoRA/AdaLoRA adapter directory in Hugging Face PEFT's files (adapter_config.json, "
          "adapter_model.safetensors) trained on the model; empty: none. Changeable while "
          "PLAYING: applied from the next summary; a bad one then gives a WARNING naming the file "
          "and the previous adapter stays (before READY it is an ERROR)",
          "", static_cast<GParamFlags>(rw | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property(
      gobject_class, PROP_MODE,
      g_param_spec_enum("mode", "Mode",
                        "Which summaries: rolling (every hop seconds, the last window seconds), window "
                        "(disjoint windows of window seconds), final-only (only the whole stream's, at EOS). "
                        "Every mode also gives the final summary at EOS. Read at READY->PAUSED",
                        GST_TYPE_PEFT_SUMMARIZE_MODE, static_cast<gint>(Mode::rolling), rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_WINDOW,
      g_param_spec_double(
          "window", "Window",
          "Seconds of stream time each summary covers, counted from the first text's PTS. A "
          "text buffer without PTS is taken to start at the previous buffer's end, one without "
          "duration to take no time. Read at READY->PAUSED",
          0.1, 86400.0, kDefaultWindow, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_HOP,
      g_param_spec_double(
          "hop", "Hop",
          "Seconds of stream time between rolling summaries (mode=rolling; at most the window). "
          "Read at READY->PAUSED",
          0.1, 86400.0, kDefaultHop, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_INSTRUCTION,
      g_param_spec_string("instruction", "Instruction",
                          "What the model is asked to do with the text; empty: the model family's default "
                          "(chat models: a one-or-two-sentence summary; T5: \"summarize:\"). Read at "
                          "READY->PAUSED",
                          "", rw_ready));
  g_object_class_install_property(gobject_class, PROP_MAX_NEW_TOKENS,
                                  g_param_spec_uint("max-new-tokens", "Max new tokens",
                                                    "Longest summary, in tokens. Read at READY->PAUSED", 1,
                                                    4096, kDefaultMaxNewTokens, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_BEAM_SIZE,
      g_param_spec_uint("beam-size", "Beam size",
                        "Beams of beam search; 1: greedy decoding. Read at READY->PAUSED", 1, 16, 1,
                        rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_N_THREADS,
      g_param_spec_uint("n-threads", "Threads",
                        "CPU threads for generation; 0: all cores. Read at READY->PAUSED", 0, 1024, 0,
                        rw_ready));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "PEFT text summarizer", "Filter/Text",
      "Abstractive summaries of timed text (a transcript) with a small language model and an optional "
      "LoRA/AdaLoRA adapter: rolling or windowed summaries as it streams, and one of the whole stream at "
      "EOS; "
      "each also posted as a 'peftsummarize' element message {summary, start, end, final}",
      "gst-peft");
  gst_type_mark_as_plugin_api(GST_TYPE_PEFT_SUMMARIZE_MODE, static_cast<GstPluginAPIFlags>(0));
}

static void gst_peft_summarize_init(GstPeftSummarize* self) {
  new (&self->state) std::unique_ptr<State>(std::make_unique<State>());
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  GST_PAD_SET_ACCEPT_TEMPLATE(self->sinkpad);
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(sink_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(sink_event));
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_use_fixed_caps(self->srcpad);
  gst_pad_set_activatemode_function(self->srcpad, GST_DEBUG_FUNCPTR(src_activate_mode));
  gst_pad_set_query_function(self->srcpad, GST_DEBUG_FUNCPTR(src_query));
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
