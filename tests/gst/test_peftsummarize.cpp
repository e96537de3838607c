// The peftsummarize element through GStreamer (GstHarness), with the real SmolLM2 and
// short summaries: caps, summaries' timestamps and messages, EOS, flushing, final-only,
// adapter swaps while PLAYING, model errors, model sharing, and merging when text comes
// faster than the model summarizes it, GAP events that let downstream preroll.
#define BOOST_TEST_MODULE peftsummarize
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr GstClockTime S = GST_SECOND;

// One sentence per second of "speech"; windows of different text get different summaries.
const char* const kSentences[] = {
    "The city council met on Tuesday to discuss the new budget.",
    "Members agreed to spend more on buses and to repair the old bridge.",
    "A storm crossed the coast on Friday night and closed the harbour.",
    "Trains were stopped and many homes lost power until Sunday.",
    "The school opened a new library with thousands of donated books.",
    "Children read aloud to visitors during the opening ceremony.",
    "Farmers expect a good harvest after a warm and rainy summer.",
    "Prices of apples and wheat fell at the weekly market.",
    "The hospital hired twenty nurses to shorten waiting times.",
    "Patients said the new emergency room was calm and clean.",
    "A local team won the regional football cup after extra time.",
    "Fans celebrated in the main square until late at night.",
};
std::string sentence(size_t k) { return kSentences[k % (sizeof kSentences / sizeof *kSentences)]; }

size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

fs::path default_model_file() { return peft_test::models_dir() / "smollm2-135m-instruct"; }

size_t model_file_bytes() {
  size_t total = 0;
  for (const auto& e : fs::directory_iterator(default_model_file()))
    if (e.path().extension() == ".gguf") total += fs::file_size(e.path());
  return total;
}

// One element, loaded at construction, kept in READY for the whole run so that the
// other elements share its model (one load for the suite); its load's RSS growth is the
// yardstick of the sharing test.
struct Suite {
  GstElement* keeper = nullptr;
  size_t first_load_rss = 0;
  Suite() {
    gst_init(nullptr, nullptr);
    keeper = gst_element_factory_make("peftsummarize", "keeper");
    BOOST_REQUIRE_MESSAGE(keeper, "peftsummarize not found (GST_PLUGIN_PATH is set by meson test)");
    gst_object_ref_sink(keeper);
    const size_t before = rss_bytes();
    BOOST_REQUIRE(gst_element_set_state(keeper, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
    first_load_rss = rss_bytes() - before;
    instance = this;
  }
  ~Suite() {
    gst_element_set_state(keeper, GST_STATE_NULL);
    gst_object_unref(keeper);
  }
  static Suite* instance;
};
Suite* Suite::instance = nullptr;
BOOST_TEST_GLOBAL_FIXTURE(Suite);

// What left the element's src pad, in order.
struct Out {
  bool buffer = false;
  GstEventType event = GST_EVENT_UNKNOWN;
  std::string text;  // buffer text, or the caps of a CAPS event
  GstClockTime pts = GST_CLOCK_TIME_NONE, duration = GST_CLOCK_TIME_NONE;  // of a buffer or a GAP
};

class Recorder {
 public:
  explicit Recorder(GstPad* srcpad) {
    gst_pad_add_probe(
        srcpad,
        static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM |
                                     GST_PAD_PROBE_TYPE_EVENT_FLUSH),
        probe, this, nullptr);
  }
  // Waits (up to `seconds`) until `done(outputs)`; true if it happened.
  bool wait(const std::function<bool(const std::vector<Out>&)>& done, int seconds = 120) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cond_.wait_for(lock, std::chrono::seconds(seconds), [&] { return done(out_); });
  }
  bool wait_buffers(size_t n) {
    return wait([n](const std::vector<Out>& o) { return buffers_in(o).size() >= n; });
  }
  bool wait_event(GstEventType type) {
    return wait([type](const std::vector<Out>& o) {
      for (const Out& x : o)
        if (x.event == type) return true;
      return false;
    });
  }
  std::vector<Out> outputs() {
    std::lock_guard<std::mutex> lock(mutex_);
    return out_;
  }
  static std::vector<Out> buffers_in(const std::vector<Out>& o) {
    std::vector<Out> b;
    for (const Out& x : o)
      if (x.buffer) b.push_back(x);
    return b;
  }
  std::vector<Out> buffers() { return buffers_in(outputs()); }

 private:
  static GstPadProbeReturn probe(GstPad*, GstPadProbeInfo* info, gpointer user_data) {
    auto* self = static_cast<Recorder*>(user_data);
    Out o;
    if (GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info); buf && (info->type & GST_PAD_PROBE_TYPE_BUFFER)) {
      o.buffer = true;
      GstMapInfo map;
      gst_buffer_map(buf, &map, GST_MAP_READ);
      o.text.assign(reinterpret_cast<const char*>(map.data), map.size);
      gst_buffer_unmap(buf, &map);
      o.pts = GST_BUFFER_PTS(buf);
      o.duration = GST_BUFFER_DURATION(buf);
    } else if (GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info)) {
      o.event = GST_EVENT_TYPE(ev);
      if (o.event == GST_EVENT_CAPS) {
        GstCaps* caps;
        gst_event_parse_caps(ev, &caps);
        gchar* s = gst_caps_to_string(caps);
        o.text = s;
        g_free(s);
      } else if (o.event == GST_EVENT_GAP) {
        gst_event_parse_gap(ev, &o.pts, &o.duration);
      }
    }
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->out_.push_back(o);
    self->cond_.notify_all();
    return GST_PAD_PROBE_OK;
  }
  std::mutex mutex_;
  std::condition_variable cond_;
  std::vector<Out> out_;
};

// A peftsummarize configured by `configure`, playing in a harness with text caps, its
// bus and its outputs recorded.
struct Run {
  GstElement* element;
  GstBus* bus;
  GstHarness* h;
  std::unique_ptr<Recorder> rec;

  explicit Run(const std::function<void(GstElement*)>& configure,
               const char* caps = "text/x-raw,format=utf8") {
    element = gst_element_factory_make("peftsummarize", nullptr);
    gst_object_ref_sink(element);
    configure(element);
    bus = gst_bus_new();
    gst_element_set_bus(element, bus);
    GstPad* src = gst_element_get_static_pad(element, "src");
    rec = std::make_unique<Recorder>(src);
    gst_object_unref(src);
    h = gst_harness_new_with_element(element, "sink", "src");
    if (caps) gst_harness_set_src_caps_str(h, caps);
  }
  ~Run() {
    gst_harness_teardown(h);
    gst_element_set_bus(element, nullptr);
    gst_object_unref(bus);
    gst_object_unref(element);
  }
  GstFlowReturn push(const std::string& text, double start, double duration) {
    GstBuffer* buf = gst_buffer_new_memdup(text.data(), text.size());
    GST_BUFFER_PTS(buf) = static_cast<GstClockTime>(start * S);
    GST_BUFFER_DURATION(buf) = static_cast<GstClockTime>(duration * S);
    return gst_harness_push(h, buf);
  }
  // Sentences k .. k+n-1, one per second from second k.
  void push_seconds(size_t k, size_t n) {
    for (size_t i = k; i < k + n; ++i)
      BOOST_REQUIRE(push(sentence(i), static_cast<double>(i), 1.0) == GST_FLOW_OK);
  }
  void eos() { BOOST_REQUIRE(gst_harness_push_event(h, gst_event_new_eos())); }
  std::vector<GstMessage*> messages() {  // caller unrefs
    std::vector<GstMessage*> m;
    while (GstMessage* msg = gst_bus_pop(bus)) m.push_back(msg);
    return m;
  }
};

// The `peftsummarize` element messages' fields.
struct Posted {
  std::string summary;
  guint64 start = 0, end = 0;
  gboolean final = FALSE;
};
std::vector<Posted> summaries_posted(const std::vector<GstMessage*>& msgs) {
  std::vector<Posted> out;
  for (GstMessage* m : msgs) {
    const GstStructure* s = gst_message_get_structure(m);
    if (GST_MESSAGE_TYPE(m) != GST_MESSAGE_ELEMENT || !gst_structure_has_name(s, "peftsummarize")) continue;
    Posted p;
    p.summary = gst_structure_get_string(s, "summary");
    BOOST_REQUIRE(gst_structure_get_uint64(s, "start", &p.start));
    BOOST_REQUIRE(gst_structure_get_uint64(s, "end", &p.end));
    BOOST_REQUIRE(gst_structure_get_boolean(s, "final", &p.final));
    out.push_back(p);
  }
  return out;
}

// Text and debug string of the ERROR or WARNING messages.
std::vector<std::string> problems(const std::vector<GstMessage*>& msgs, GstMessageType type,
                                  const GstStructure** details = nullptr) {
  std::vector<std::string> out;
  for (GstMessage* m : msgs) {
    if (GST_MESSAGE_TYPE(m) != type) continue;
    GError* err = nullptr;
    gchar* debug = nullptr;
    if (type == GST_MESSAGE_ERROR) {
      gst_message_parse_error(m, &err, &debug);
    } else {
      gst_message_parse_warning(m, &err, &debug);
      if (details) gst_message_parse_warning_details(m, details);
    }
    out.push_back(std::string(err->message) + " | " + (debug ? debug : ""));
    g_error_free(err);
    g_free(debug);
  }
  return out;
}

void unref_all(std::vector<GstMessage*>& msgs) {
  for (GstMessage* m : msgs) gst_message_unref(m);
  msgs.clear();
}

void set_uint(GstElement* e, const char* name, guint v) { g_object_set(e, name, v, nullptr); }

}  // namespace

BOOST_AUTO_TEST_CASE(text_caps_are_accepted_and_audio_refused) {
  Run run([](GstElement*) {}, nullptr);
  GstPad* sink = gst_element_get_static_pad(run.element, "sink");
  GstCaps* text = gst_caps_from_string("text/x-raw,format=utf8");
  GstCaps* audio = gst_caps_from_string("audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved");
  GstCaps* pango = gst_caps_from_string("text/x-raw,format=pango-markup");
  BOOST_TEST(gst_pad_query_accept_caps(sink, text));
  BOOST_TEST(!gst_pad_query_accept_caps(sink, audio));
  BOOST_TEST(!gst_pad_query_accept_caps(sink, pango));
  // Audio caps sent to the element: refused (not set on its pad), and data after them
  // is not negotiated.
  gst_pad_push_event(run.h->srcpad, gst_event_new_caps(audio));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_push_event(run.h->srcpad, gst_event_new_segment(&segment));
  BOOST_TEST(!gst_pad_has_current_caps(sink));
  BOOST_TEST(run.push("not audio", 0, 1) == GST_FLOW_NOT_NEGOTIATED);
  BOOST_TEST(run.rec->buffers().empty());
  gst_caps_unref(audio);
  gst_caps_unref(pango);
  gst_object_unref(sink);

  // Text caps: stream-start, the element's own caps and the segment leave in order.
  gst_harness_set_src_caps(run.h, text);
  BOOST_REQUIRE(run.push(sentence(0), 0, 1) == GST_FLOW_OK);
  BOOST_REQUIRE(run.rec->wait_event(GST_EVENT_SEGMENT));
  const std::vector<Out> out = run.rec->outputs();
  BOOST_REQUIRE(out.size() >= 3u);
  BOOST_TEST(out[0].event == GST_EVENT_STREAM_START);
  BOOST_TEST(out[1].event == GST_EVENT_CAPS);
  BOOST_TEST(out[1].text == "text/x-raw, format=(string)utf8");
  BOOST_TEST(out[2].event == GST_EVENT_SEGMENT);

  // LATENCY: upstream's, unchanged (see the element's src_query for why).
  gst_harness_set_upstream_latency(run.h, 123 * GST_MSECOND);
  GstQuery* latency = gst_query_new_latency();
  BOOST_REQUIRE(gst_pad_peer_query(run.h->sinkpad, latency));
  gboolean live = FALSE;
  GstClockTime min = 0, max = 0;
  gst_query_parse_latency(latency, &live, &min, &max);
  BOOST_TEST(min == 123 * GST_MSECOND);
  gst_query_unref(latency);
}

BOOST_AUTO_TEST_CASE(rolling_summaries_are_stamped_with_their_windows_and_eos_gives_the_final_one) {
  Run run([](GstElement* e) {
    gst_util_set_object_arg(G_OBJECT(e), "mode", "rolling");
    g_object_set(e, "window", 4.0, "hop", 2.0, nullptr);
    set_uint(e, "max-new-tokens", 6);
  });
  // Boundaries at 4, 6, 8 s: windows [0, 4], [2, 6], [4, 8]. Each is awaited before the
  // text of the next is pushed, so none is merged.
  run.push_seconds(0, 4);
  BOOST_REQUIRE(run.rec->wait_buffers(1));
  run.push_seconds(4, 2);
  BOOST_REQUIRE(run.rec->wait_buffers(2));
  run.push_seconds(6, 2);
  BOOST_REQUIRE(run.rec->wait_buffers(3));
  run.eos();
  BOOST_REQUIRE(run.rec->wait_event(GST_EVENT_EOS));

  const std::vector<Out> out = run.rec->outputs();
  const std::vector<Out> b = Recorder::buffers_in(out);
  BOOST_REQUIRE(b.size() == 4u);
  for (size_t i = 0; i < 3; ++i) {
    BOOST_TEST_MESSAGE("summary " << i << ": " << b[i].text);
    BOOST_TEST(b[i].pts == 2 * i * S);
    BOOST_TEST(b[i].duration == 4 * S);
    BOOST_TEST(!b[i].text.empty());
  }
  // The final summary of the whole stream, then EOS, and nothing after.
  BOOST_TEST_MESSAGE("final: " << b[3].text);
  BOOST_TEST(b[3].pts == 0u);
  BOOST_TEST(b[3].duration == 8 * S);
  BOOST_TEST(!b[3].text.empty());
  BOOST_REQUIRE(out.back().event == GST_EVENT_EOS);
  BOOST_TEST(out[out.size() - 2].buffer);

  std::vector<GstMessage*> msgs = run.messages();
  const std::vector<Posted> posted = summaries_posted(msgs);
  BOOST_REQUIRE(posted.size() == 4u);
  for (size_t i = 0; i < 4; ++i) {
    BOOST_TEST(posted[i].summary == b[i].text);
    BOOST_TEST(posted[i].start == b[i].pts);
    BOOST_TEST(posted[i].end == b[i].pts + b[i].duration);
    BOOST_TEST(static_cast<bool>(posted[i].final) == (i == 3));
  }
  unref_all(msgs);
}

BOOST_AUTO_TEST_CASE(flush_forgets_the_text_before_it) {
  Run run([](GstElement* e) {
    gst_util_set_object_arg(G_OBJECT(e), "mode", "window");
    g_object_set(e, "window", 2.0, nullptr);
    set_uint(e, "max-new-tokens", 6);
  });
  // Text at 10-12 s makes a summary due; the flush comes while it is (likely) being
  // generated, and stops it.
  run.push_seconds(10, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the generation starts
  const auto t0 = Clock::now();
  BOOST_REQUIRE(gst_harness_push_event(run.h, gst_event_new_flush_start()));
  BOOST_REQUIRE(gst_harness_push_event(run.h, gst_event_new_flush_stop(TRUE)));
  const double flush_s = std::chrono::duration<double>(Clock::now() - t0).count();
  BOOST_TEST_MESSAGE("flush took " << flush_s << " s (a generation in progress stops at its next token)");
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  BOOST_REQUIRE(gst_harness_push_event(run.h, gst_event_new_segment(&segment)));
  run.push_seconds(20, 2);
  run.eos();
  BOOST_REQUIRE(run.rec->wait_event(GST_EVENT_EOS));

  // After FLUSH_STOP: the window [20, 22] and the final summary of the same span; the
  // text at 10-12 s is in neither.
  const std::vector<Out> out = run.rec->outputs();
  size_t after = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].event == GST_EVENT_FLUSH_STOP) after = i + 1;
  BOOST_REQUIRE(after > 0u);
  const std::vector<Out> b =
      Recorder::buffers_in(std::vector<Out>(out.begin() + static_cast<long>(after), out.end()));
  BOOST_REQUIRE(b.size() == 2u);
  for (const Out& x : b) {
    BOOST_TEST(x.pts == 20 * S);
    BOOST_TEST(x.duration == 2 * S);
  }
}

BOOST_AUTO_TEST_CASE(a_new_stream_ends_the_previous_one) {
  Run run([](GstElement* e) { set_uint(e, "max-new-tokens", 4); });  // 60 s windows: none due
  run.push_seconds(0, 2);
  BOOST_REQUIRE(gst_harness_push_event(run.h, gst_event_new_stream_start("another-stream")));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  BOOST_REQUIRE(gst_harness_push_event(run.h, gst_event_new_segment(&segment)));
  BOOST_REQUIRE(run.push(sentence(6), 0, 1) == GST_FLOW_OK);  // its own timeline, from 0 again
  run.eos();
  BOOST_REQUIRE(run.rec->wait_event(GST_EVENT_EOS));
  // final summary of [0, 2], the new STREAM_START, ..., final summary of [0, 1], EOS.
  std::vector<Out> out = run.rec->outputs();
  std::vector<Out> order;
  for (const Out& x : out)
    if (x.buffer || x.event == GST_EVENT_STREAM_START || x.event == GST_EVENT_EOS) order.push_back(x);
  BOOST_REQUIRE(order.size() == 5u);
  BOOST_TEST(order[0].event == GST_EVENT_STREAM_START);
  BOOST_TEST(order[1].buffer);
  BOOST_TEST(order[1].pts == 0u);
  BOOST_TEST(order[1].duration == 2 * S);
  BOOST_TEST(order[2].event == GST_EVENT_STREAM_START);
  BOOST_TEST(order[3].buffer);
  BOOST_TEST(order[3].pts == 0u);
  BOOST_TEST(order[3].duration == 1 * S);
  BOOST_TEST(order[4].event == GST_EVENT_EOS);
  std::vector<GstMessage*> msgs = run.messages();
  BOOST_TEST(problems(msgs, GST_MESSAGE_ERROR).empty());
  unref_all(msgs);
}

BOOST_AUTO_TEST_CASE(final_only_gives_one_summary) {
  Run run([](GstElement* e) {
    gst_util_set_object_arg(G_OBJECT(e), "mode", "final-only");
    g_object_set(e, "window", 2.0, nullptr);
    set_uint(e, "max-new-tokens", 6);
  });
  run.push_seconds(0, 6);
  // Text without PTS is taken to start where the previous text ended, text without
  // duration to take no time: [6, 6] and [7, 7].
  const std::string untimed = "The mayor thanked everyone for coming.";
  BOOST_REQUIRE(gst_harness_push(run.h, gst_buffer_new_memdup(untimed.data(), untimed.size())) ==
                GST_FLOW_OK);
  GstBuffer* no_duration = gst_buffer_new_memdup(untimed.data(), untimed.size());
  GST_BUFFER_PTS(no_duration) = 7 * S;
  BOOST_REQUIRE(gst_harness_push(run.h, no_duration) == GST_FLOW_OK);
  run.eos();
  BOOST_REQUIRE(run.rec->wait_event(GST_EVENT_EOS));
  const std::vector<Out> b = run.rec->buffers();
  BOOST_REQUIRE(b.size() == 1u);
  BOOST_TEST(b[0].pts == 0u);
  BOOST_TEST(b[0].duration == 7 * S);
  std::vector<GstMessage*> msgs = run.messages();
  const std::vector<Posted> posted = summaries_posted(msgs);
  BOOST_REQUIRE(posted.size() == 1u);
  BOOST_TEST(posted[0].final);
  unref_all(msgs);
}

BOOST_AUTO_TEST_CASE(adapter_swapped_while_playing_changes_the_summaries) {
  Run run([](GstElement* e) {
    gst_util_set_object_arg(G_OBJECT(e), "mode", "window");
    g_object_set(e, "window", 2.0, nullptr);
    set_uint(e, "max-new-tokens", 8);
  });
  BOOST_REQUIRE(GST_STATE(run.element) == GST_STATE_PLAYING);
  const std::string adapter = (peft_test::fixtures_dir() / "gst" / "smollm2_lora").string();
  const std::string missing = (peft_test::fixtures_dir() / "gst" / "no_such_adapter").string();
  // The same two sentences in every window, so the adapter is the only difference.
  auto window = [&](size_t k) {
    BOOST_REQUIRE(run.push(sentence(0), 2.0 * k, 1) == GST_FLOW_OK);
    BOOST_REQUIRE(run.push(sentence(1), 2.0 * k + 1, 1) == GST_FLOW_OK);
    BOOST_REQUIRE(run.rec->wait_buffers(k + 1));
    return run.rec->buffers()[k].text;
  };
  const std::string base = window(0);
  g_object_set(run.element, "adapter", adapter.c_str(), nullptr);
  const std::string adapted = window(1);
  g_object_set(run.element, "adapter", missing.c_str(), nullptr);  // WARNING; the adapter stays
  const std::string kept = window(2);
  g_object_set(run.element, "adapter", "", nullptr);
  const std::string again = window(3);
  BOOST_TEST_MESSAGE("base: " << base << "\nadapted: " << adapted);
  BOOST_TEST(adapted != base);
  BOOST_TEST(kept == adapted);
  BOOST_TEST(again == base);

  std::vector<GstMessage*> msgs = run.messages();
  const std::vector<std::string> warnings = problems(msgs, GST_MESSAGE_WARNING);
  BOOST_REQUIRE(warnings.size() == 1u);
  BOOST_TEST_MESSAGE(warnings[0]);
  BOOST_TEST(warnings[0].find(missing) != std::string::npos);
  BOOST_TEST(problems(msgs, GST_MESSAGE_ERROR).empty());
  unref_all(msgs);
}

BOOST_AUTO_TEST_CASE(a_missing_or_corrupt_model_is_an_error_naming_the_file) {
  peft_test::TempDir dir;
  const fs::path corrupt = dir / "corrupt.gguf";
  peft_test::write_file(corrupt, std::string("GGUF\x03\x00\x00\x00", 8) + std::string(40, '\x7f'));
  for (const fs::path& model : {dir / "no_such_model.gguf", corrupt}) {
    GstElement* e = gst_element_factory_make("peftsummarize", nullptr);
    gst_object_ref_sink(e);
    g_object_set(e, "model", model.c_str(), nullptr);
    GstBus* bus = gst_bus_new();
    gst_element_set_bus(e, bus);
    BOOST_TEST(gst_element_set_state(e, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE);
    std::vector<GstMessage*> msgs;
    while (GstMessage* m = gst_bus_pop(bus)) msgs.push_back(m);
    const std::vector<std::string> errors = problems(msgs, GST_MESSAGE_ERROR);
    BOOST_REQUIRE(errors.size() == 1u);
    BOOST_TEST_MESSAGE(errors[0]);
    BOOST_TEST(errors[0].find(model.string()) != std::string::npos);
    size_t progress = 0;
    for (GstMessage* m : msgs) progress += GST_MESSAGE_TYPE(m) == GST_MESSAGE_PROGRESS;
    BOOST_TEST(progress == 2u);  // start, error
    unref_all(msgs);
    gst_element_set_state(e, GST_STATE_NULL);
    gst_element_set_bus(e, nullptr);
    gst_object_unref(bus);
    gst_object_unref(e);
  }
}

BOOST_AUTO_TEST_CASE(elements_with_the_same_model_share_it) {
  // The suite's keeper holds the model; a second element's NULL->READY must not load it
  // again. Loading shows in RSS (checked on the keeper's load), sharing does not.
  const size_t weights = model_file_bytes();
  BOOST_TEST_MESSAGE("model file " << weights << " bytes; first load raised RSS by "
                                   << Suite::instance->first_load_rss);
  BOOST_REQUIRE(Suite::instance->first_load_rss > weights / 2);
  GstElement* e = gst_element_factory_make("peftsummarize", nullptr);
  gst_object_ref_sink(e);
  // The same file by another spelling of its path.
  const std::string path = (default_model_file() / ".." / "smollm2-135m-instruct").string();
  g_object_set(e, "model", path.c_str(), nullptr);
  const size_t before = rss_bytes();
  BOOST_REQUIRE(gst_element_set_state(e, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  const size_t grew = rss_bytes() > before ? rss_bytes() - before : 0;
  BOOST_TEST_MESSAGE("second element's NULL->READY raised RSS by " << grew);
  BOOST_TEST(grew < weights / 20);
  gst_element_set_state(e, GST_STATE_NULL);
  gst_object_unref(e);
}

BOOST_AUTO_TEST_CASE(text_faster_than_the_model_is_merged_without_blocking) {
  Run run([](GstElement* e) {
    gst_util_set_object_arg(G_OBJECT(e), "mode", "window");
    g_object_set(e, "window", 1.0, nullptr);
    set_uint(e, "max-new-tokens", 6);
  });
  // The first window's text, then while its summary is being generated, 29 more
  // windows' worth at once: each buffer makes a summary due.
  constexpr size_t kWindows = 30;
  const auto t0 = Clock::now();
  BOOST_REQUIRE(run.push(sentence(0), 0, 1.0) == GST_FLOW_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  double slowest_push = 0;
  const auto b0 = Clock::now();
  for (size_t i = 1; i < kWindows; ++i) {
    const auto p0 = Clock::now();
    BOOST_REQUIRE(run.push(sentence(i), static_cast<double>(i), 1.0) == GST_FLOW_OK);
    slowest_push = std::max(slowest_push, std::chrono::duration<double>(Clock::now() - p0).count());
  }
  const double burst = std::chrono::duration<double>(Clock::now() - b0).count();
  BOOST_REQUIRE(run.rec->wait_buffers(1));
  const double first_summary = std::chrono::duration<double>(Clock::now() - t0).count();
  run.eos();
  BOOST_REQUIRE(run.rec->wait_event(GST_EVENT_EOS));
  BOOST_TEST_MESSAGE("burst of " << kWindows - 1 << " buffers: " << burst * 1e3 << " ms (slowest push "
                                 << slowest_push * 1e3 << " ms); first summary after " << first_summary
                                 << " s");
  // The chain never waited for a generation.
  BOOST_TEST(burst < first_summary / 2);
  BOOST_TEST(slowest_push < 0.1);

  const std::vector<Out> b = run.rec->buffers();
  BOOST_REQUIRE(b.size() >= 2u);
  const size_t windowed = b.size() - 1;  // the last is the final summary
  BOOST_TEST_MESSAGE(windowed << " summaries for " << kWindows << " windows");
  BOOST_TEST(windowed < kWindows);
  // The merged summaries tile the stream: each starts where the previous ended.
  GstClockTime at = 0;
  for (size_t i = 0; i < windowed; ++i) {
    BOOST_TEST(b[i].pts == at);
    at = b[i].pts + b[i].duration;
  }
  BOOST_TEST(at == kWindows * S);
  BOOST_TEST(b.back().pts == 0u);
  BOOST_TEST(b.back().duration == kWindows * S);

  std::vector<GstMessage*> msgs = run.messages();
  const GstStructure* details = nullptr;
  const std::vector<std::string> warnings = problems(msgs, GST_MESSAGE_WARNING, &details);
  BOOST_REQUIRE(!warnings.empty());
  BOOST_TEST_MESSAGE(warnings[0]);
  BOOST_REQUIRE(details != nullptr);
  gint merged = 0;
  BOOST_TEST(gst_structure_get_int(details, "merged", &merged));
  BOOST_TEST(merged > 1);
  unref_all(msgs);
}

BOOST_AUTO_TEST_CASE(a_gap_in_the_text_is_not_a_merge) {
  Run run([](GstElement* e) {
    gst_util_set_object_arg(G_OBJECT(e), "mode", "window");
    g_object_set(e, "window", 1.0, nullptr);
    set_uint(e, "max-new-tokens", 4);
  });
  run.push_seconds(0, 1);
  BOOST_REQUIRE(run.rec->wait_buffers(1));
  // Silence from 1 to 10 s (windows without text give no summary), then text again.
  // The input GAP is not forwarded: the next window's summary starts at 1 s, so no GAP
  // may pass that.
  BOOST_REQUIRE(gst_harness_push_event(run.h, gst_event_new_gap(1 * S, 9 * S)));
  BOOST_REQUIRE(run.push(sentence(10), 10, 1) == GST_FLOW_OK);
  BOOST_REQUIRE(run.rec->wait_buffers(2));
  std::vector<char> order;  // 'b'uffer, 'g'ap
  for (const Out& x : run.rec->outputs())
    if (x.buffer || x.event == GST_EVENT_GAP) order.push_back(x.buffer ? 'b' : 'g');
  BOOST_TEST((order == std::vector<char>{'g', 'b', 'b'}));  // the preroll GAP [0, 0] first
  const std::vector<Out> b = run.rec->buffers();
  BOOST_TEST(b[0].pts == 0u);
  BOOST_TEST(b[0].duration == 1 * S);
  BOOST_TEST(b[1].pts == 1 * S);  // from the end of the last summary to the boundary passed
  BOOST_TEST(b[1].duration == 10 * S);
  std::vector<GstMessage*> msgs = run.messages();
  BOOST_TEST(problems(msgs, GST_MESSAGE_WARNING).empty());
  unref_all(msgs);
}

// The first thing after the segment is a GAP, long before the first summary is due, so
// that a sink downstream prerolls (a tee'd peftsummarize ! fakesink otherwise holds the
// whole pipeline in PAUSED); later GAPs follow the text taken in, up to the start of the
// next window, and never pass a summary still to come; the final summary (stamped with
// the whole stream) is the one exception.
BOOST_AUTO_TEST_CASE(gaps_let_downstream_preroll_and_never_pass_a_summary) {
  Run run([](GstElement* e) {
    gst_util_set_object_arg(G_OBJECT(e), "mode", "rolling");
    g_object_set(e, "window", 4.0, "hop", 2.0, nullptr);
    set_uint(e, "max-new-tokens", 4);
  });
  BOOST_REQUIRE(gst_harness_push_event(run.h, gst_event_new_gap(0, 2 * S)));  // silence first
  BOOST_REQUIRE(run.rec->wait_event(GST_EVENT_GAP));
  BOOST_TEST(run.rec->buffers().empty());
  run.push_seconds(2, 3);  // [2, 5]: the first boundary is at 6 s
  BOOST_REQUIRE(run.rec->wait([](const std::vector<Out>& o) {
    for (const Out& x : o)
      if (x.event == GST_EVENT_GAP && x.pts + x.duration >= 2 * S) return true;
    return false;
  }));
  BOOST_TEST(run.rec->buffers().empty());
  run.push_seconds(5, 6);  // boundaries at 6, 8, 10 s: windows [2, 6], [4, 8], [6, 10]
  BOOST_REQUIRE(gst_harness_push_event(run.h, gst_event_new_gap(11 * S, 20 * S)));
  run.eos();
  BOOST_REQUIRE(run.rec->wait_event(GST_EVENT_EOS));

  const std::vector<Out> out = run.rec->outputs();
  size_t first_gap = out.size(), first_buffer = out.size(), segment = out.size();
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].event == GST_EVENT_SEGMENT && segment == out.size()) segment = i;
    if (out[i].event == GST_EVENT_GAP && first_gap == out.size()) first_gap = i;
    if (out[i].buffer && first_buffer == out.size()) first_buffer = i;
  }
  BOOST_REQUIRE(first_buffer < out.size());
  BOOST_TEST(segment < first_gap);
  BOOST_TEST(first_gap < first_buffer);
  const std::vector<Out> b = Recorder::buffers_in(out);
  BOOST_REQUIRE(b.size() >= 2u);
  // Rolling summaries (all but the final one) never start before a GAP already sent ended.
  GstClockTime gap_end = 0;
  size_t summaries = 0;
  for (const Out& x : out) {
    if (x.event == GST_EVENT_GAP) {
      BOOST_TEST(x.pts >= gap_end);
      gap_end = x.pts + x.duration;
    }
    if (x.buffer && summaries++ + 1 < b.size()) {
      BOOST_TEST_MESSAGE("summary at " << x.pts / double(S) << " s after GAPs up to " << gap_end / double(S)
                                       << " s");
      BOOST_TEST(x.pts >= gap_end);
    }
  }
  BOOST_TEST(gap_end >= 2 * S);
}
