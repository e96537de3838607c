// The whisperasr element under GstHarness with the real tiny.en: caps, timestamps of the
// text against known speech positions (the LibriVox utterances of pocketsphinx-testdata
// placed at known times between silences), EOS drain, FLUSH reset, GAP over silence, a
// live adapter swap, the LATENCY answer, bad models and bad samples, model sharing, and
// state cycles without growth.
#define BOOST_TEST_MODULE whisperasr
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "peft/audio/wav.h"
#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "pocketsphinx_testdata.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

constexpr int kRate = 16000;
const char* const kCaps = "audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved";

struct GstInit {
  GstInit() { gst_init(nullptr, nullptr); }
};
BOOST_GLOBAL_FIXTURE(GstInit);

struct Utterance {
  double start = 0, end = 0;  // seconds in the test stream
  std::string reference;
};

// 1 s of silence, then the five LibriVox utterances with pauses of 2, 1, 3, 1.5 and 2 s.
struct Speech {
  std::vector<float> audio;
  std::vector<Utterance> utterances;
};

const Speech& speech() {
  static const Speech s = [] {
    Speech out;
    out.audio.assign(kRate, 0.0f);
    const double pauses[] = {2.0, 1.0, 3.0, 1.5, 2.0};
    const auto utterances = peft_test::pocketsphinx_utterances("librivox");
    BOOST_REQUIRE_EQUAL(utterances.size(), 5u);
    for (size_t i = 0; i < utterances.size(); ++i) {
      const auto wav = peft::audio::read_wav(utterances[i].wav);
      BOOST_REQUIRE_EQUAL(wav.sample_rate, kRate);
      Utterance u;
      u.start = static_cast<double>(out.audio.size()) / kRate;
      out.audio.insert(out.audio.end(), wav.samples.begin(), wav.samples.end());
      u.end = static_cast<double>(out.audio.size()) / kRate;
      u.reference = utterances[i].reference;
      out.utterances.push_back(u);
      out.audio.resize(out.audio.size() + static_cast<size_t>(pauses[i] * kRate), 0.0f);
    }
    return out;
  }();
  return s;
}

std::vector<float> librivox(const std::string& id) {
  return peft::audio::read_wav(peft_test::kPocketsphinxData +
                               "librivox/sense_and_sensibility_01_austen_64kb-" + id + ".wav")
      .samples;
}

double seconds(GstClockTime t) { return static_cast<double>(t) / GST_SECOND; }

struct Text {
  std::string text;
  double start = 0, duration = 0;
};
struct Output {
  std::vector<Text> buffers;
  std::vector<std::pair<double, double>> gaps;  // [start, end)
  bool eos = false;
  std::string all_text() const {
    std::string t;
    for (const auto& b : buffers) t += b.text + " ";
    return t;
  }
};

// An element with its own bus (so its messages can be read without a pipeline).
struct Element {
  GstElement* element;
  GstBus* bus;
  explicit Element(const char* factory = "whisperasr") {
    element = gst_element_factory_make(factory, nullptr);
    BOOST_REQUIRE_MESSAGE(element != nullptr, "no " << factory << " element: is GST_PLUGIN_PATH set?");
    gst_object_ref_sink(element);
    bus = gst_bus_new();
    gst_element_set_bus(element, bus);
  }
  ~Element() {
    gst_element_set_state(element, GST_STATE_NULL);
    gst_element_set_bus(element, nullptr);
    gst_object_unref(bus);
    gst_object_unref(element);
  }
  // The text of every message of `type` posted so far (ERROR/WARNING: message and debug).
  std::vector<std::string> messages(GstMessageType type) {
    std::vector<std::string> out;
    while (GstMessage* m = gst_bus_pop(bus)) {
      if (GST_MESSAGE_TYPE(m) == type) {
        GError* err = nullptr;
        gchar* debug = nullptr;
        if (type == GST_MESSAGE_ERROR) gst_message_parse_error(m, &err, &debug);
        if (type == GST_MESSAGE_WARNING) gst_message_parse_warning(m, &err, &debug);
        if (err) {
          out.push_back(std::string(err->message) + " | " + (debug ? debug : ""));
          g_error_free(err);
          g_free(debug);
        } else if (const GstStructure* st = gst_message_get_structure(m)) {
          gchar* s = gst_structure_to_string(st);
          out.push_back(s);
          g_free(s);
        }
      }
      gst_message_unref(m);
    }
    return out;
  }
};

struct Harness {
  GstHarness* h;
  // Not live unless asked: pushing faster than real time is then a file being read,
  // not a live source outrunning inference.
  explicit Harness(Element& e, bool live = false) {
    h = gst_harness_new_with_element(e.element, "sink", "src");
    gst_harness_set_live(h, live);
    gst_harness_set_src_caps_str(h, kCaps);
    gst_harness_play(h);
  }
  ~Harness() { gst_harness_teardown(h); }

  void push(const std::vector<float>& audio, double start, size_t chunk = kRate / 10) {
    for (size_t i = 0; i < audio.size(); i += chunk) {
      const size_t n = std::min(chunk, audio.size() - i);
      GstBuffer* b = gst_buffer_new_memdup(audio.data() + i, n * sizeof(float));
      GST_BUFFER_PTS(b) =
          static_cast<GstClockTime>(std::llround((start + static_cast<double>(i) / kRate) * GST_SECOND));
      GST_BUFFER_DURATION(b) = gst_util_uint64_scale(n, GST_SECOND, kRate);
      BOOST_REQUIRE_EQUAL(gst_harness_push(h, b), GST_FLOW_OK);
    }
  }
  // Everything that reached the harness's sink so far, waiting for EOS when `until_eos`.
  Output collect(bool until_eos) {
    Output out;
    while (true) {
      GstEvent* ev = until_eos ? gst_harness_pull_event(h) : gst_harness_try_pull_event(h);
      if (!ev) break;
      if (GST_EVENT_TYPE(ev) == GST_EVENT_GAP) {
        GstClockTime ts, dur;
        gst_event_parse_gap(ev, &ts, &dur);
        out.gaps.emplace_back(seconds(ts), seconds(ts + dur));
      }
      const bool eos = GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
      gst_event_unref(ev);
      if (eos) {
        out.eos = true;
        break;
      }
    }
    while (GstBuffer* b = gst_harness_try_pull(h)) {
      GstMapInfo map;
      BOOST_REQUIRE(gst_buffer_map(b, &map, GST_MAP_READ));
      out.buffers.push_back({std::string(reinterpret_cast<const char*>(map.data), map.size),
                             seconds(GST_BUFFER_PTS(b)), seconds(GST_BUFFER_DURATION(b))});
      gst_buffer_unmap(b, &map);
      gst_buffer_unref(b);
    }
    return out;
  }
  Output finish() {
    BOOST_REQUIRE(gst_harness_push_event(h, gst_event_new_eos()));
    Output out = collect(true);
    BOOST_REQUIRE_MESSAGE(out.eos, "no EOS came out");
    return out;
  }
};

double wer(const std::string& reference, const std::string& hypothesis) {
  return peft::metrics::wer(peft::metrics::normalize_english(reference),
                            peft::metrics::normalize_english(hypothesis));
}

std::string reference_text(const Speech& s) {
  std::string r;
  for (const auto& u : s.utterances) r += u.reference + " ";
  return r;
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(caps_are_audio_f32_16k_mono_in_utf8_text_out) {
  Element e;
  GstPad* sink = gst_element_get_static_pad(e.element, "sink");
  GstCaps* good = gst_caps_from_string(kCaps);
  GstCaps* rate = gst_caps_from_string("audio/x-raw,format=F32LE,rate=44100,channels=1,layout=interleaved");
  GstCaps* s16 = gst_caps_from_string("audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved");
  GstCaps* stereo = gst_caps_from_string("audio/x-raw,format=F32LE,rate=16000,channels=2,layout=interleaved");
  BOOST_CHECK(gst_pad_query_accept_caps(sink, good));
  BOOST_CHECK(!gst_pad_query_accept_caps(sink, rate));
  BOOST_CHECK(!gst_pad_query_accept_caps(sink, s16));
  BOOST_CHECK(!gst_pad_query_accept_caps(sink, stereo));
  for (GstCaps* c : {good, rate, s16, stereo}) gst_caps_unref(c);
  gst_object_unref(sink);

  // In a pipeline, wrong caps fail negotiation with an error; audioconvert and
  // audioresample in front make any audio fit.
  for (const auto& [desc, ok] : std::vector<std::pair<std::string, bool>>{
           {"audiotestsrc num-buffers=5 ! audio/x-raw,format=S16LE,rate=44100,channels=2 ! whisperasr ! "
            "fakesink",
            false},
           {"audiotestsrc num-buffers=5 wave=silence ! audio/x-raw,format=S16LE,rate=44100,channels=2 ! "
            "audioconvert ! audioresample ! whisperasr ! fakesink",
            true}}) {
    GError* err = nullptr;
    GstElement* pipeline = gst_parse_launch(desc.c_str(), &err);
    BOOST_REQUIRE_MESSAGE(pipeline, desc);
    gst_element_set_state(pipeline, GST_STATE_PLAYING);
    GstBus* bus = gst_element_get_bus(pipeline);
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, 60 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    BOOST_REQUIRE(m);
    BOOST_CHECK_MESSAGE((GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) == ok, desc);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError* e2 = nullptr;
      gst_message_parse_error(m, &e2, nullptr);
      BOOST_TEST_MESSAGE("error: " << e2->message);
      g_error_free(e2);
    }
    gst_message_unref(m);
    gst_object_unref(bus);
    BOOST_CHECK_EQUAL(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    gst_object_unref(pipeline);
  }

  Element e2;
  Harness h(e2);
  h.push(std::vector<float>(kRate, 0.0f), 0.0);
  h.finish();
  GstCaps* out = gst_pad_get_current_caps(h.h->sinkpad);
  BOOST_REQUIRE(out);
  BOOST_CHECK_EQUAL(std::string(gst_structure_get_name(gst_caps_get_structure(out, 0))), "text/x-raw");
  BOOST_CHECK_EQUAL(std::string(gst_structure_get_string(gst_caps_get_structure(out, 0), "format")), "utf8");
  gst_caps_unref(out);
}

// Segment buffers on the speech's timeline; EOS drains the last utterance.
BOOST_AUTO_TEST_CASE(segment_timestamps_follow_the_speech) {
  const Speech& s = speech();
  Element e;
  Harness h(e);
  const double offset = 10.0;  // the stream starts at 10 s: times must follow the input's PTS
  h.push(s.audio, offset);
  const Output out = h.finish();
  BOOST_TEST_MESSAGE(out.all_text());
  BOOST_REQUIRE(!out.buffers.empty());
  double last = 0;
  for (const Text& t : out.buffers) {
    BOOST_TEST_MESSAGE("[" << t.start << " +" << t.duration << "] " << t.text);
    BOOST_CHECK_GE(t.start + 1e-9, last);
    last = t.start;
    BOOST_CHECK_GT(t.duration, 0.0);
    // Whisper's segment timestamps are coarse (a segment often starts where the previous
    // one ended, in the pause before its speech or at the end of the speech before), so
    // what is checked is that each segment holds most of the utterance it overlaps most
    // and does not start after that utterance's first second.
    const Utterance* best = nullptr;
    double best_overlap = 0;
    for (const Utterance& u : s.utterances) {
      const double overlap =
          std::min(t.start + t.duration, offset + u.end) - std::max(t.start, offset + u.start);
      if (overlap > best_overlap) best_overlap = overlap, best = &u;
    }
    BOOST_REQUIRE_MESSAGE(best,
                          "segment [" << t.start << " +" << t.duration << "] holds no speech: " << t.text);
    BOOST_CHECK_MESSAGE(
        best_overlap >= 0.5 * (best->end - best->start) && t.start <= offset + best->start + 1.0,
        "segment [" << t.start << ", " << t.start + t.duration << "] is not where the speech at ["
                    << offset + best->start << ", " << offset + best->end << "] is: " << t.text);
  }
  BOOST_CHECK_LE(wer(reference_text(s), out.all_text()), 0.15);
  // The last utterance ends 2 s before the stream: its words come out by EOS.
  const std::string last_word =
      s.utterances.back().reference.substr(s.utterances.back().reference.rfind(' ') + 1);
  BOOST_CHECK_MESSAGE(
      peft::metrics::normalize_english(out.buffers.back().text).find(last_word) != std::string::npos,
      "the last word '" << last_word << "' is not in the last buffer: " << out.buffers.back().text);
  BOOST_CHECK_GE(out.buffers.back().start, offset + s.utterances.back().start - 1.0);
}

BOOST_AUTO_TEST_CASE(word_buffers_with_word_timestamps) {
  const Speech& s = speech();
  Element e;
  g_object_set(e.element, "word-timestamps", TRUE, nullptr);
  Harness h(e);
  h.push(s.audio, 0.0, kRate / 4);
  const Output out = h.finish();
  BOOST_REQUIRE_GT(out.buffers.size(), 40u);
  size_t inside = 0;
  for (const Text& t : out.buffers) {
    BOOST_CHECK(t.text.find(' ') == std::string::npos);
    const double mid = t.start + t.duration / 2;
    if (std::any_of(s.utterances.begin(), s.utterances.end(),
                    [&](const Utterance& u) { return mid >= u.start - 0.3 && mid <= u.end + 0.3; }))
      ++inside;
  }
  BOOST_TEST_MESSAGE(inside << " of " << out.buffers.size() << " words inside their utterance");
  BOOST_CHECK_GE(inside, out.buffers.size() * 95 / 100);
  BOOST_CHECK_LE(wer(reference_text(s), out.all_text()), 0.15);
}

BOOST_AUTO_TEST_CASE(gap_events_over_silence) {
  Element e;
  Harness h(e);
  h.push(std::vector<float>(8 * kRate, 0.0f), 3.0);
  const Output out = h.finish();
  BOOST_CHECK(out.buffers.empty());
  double covered = 0, last_end = 0;
  for (auto [a, b] : out.gaps) {
    BOOST_CHECK_GE(a + 1e-6, last_end);
    BOOST_CHECK_GE(a, 3.0 - 1e-6);
    BOOST_CHECK_LE(b, 11.0 + 1e-6);
    covered += b - a;
    last_end = b;
  }
  BOOST_TEST_MESSAGE(out.gaps.size() << " GAP events covering " << covered << " s");
  BOOST_CHECK_GE(covered, 7.9);
}

BOOST_AUTO_TEST_CASE(flush_drops_what_came_before) {
  Element e;
  Harness h(e);
  const auto before = librivox("0890");  // "unless to be rather cold hearted ..."
  h.push(std::vector<float>(before.begin(), before.begin() + 2 * kRate), 0.0);
  BOOST_REQUIRE(gst_harness_push_event(h.h, gst_event_new_flush_start()));
  BOOST_REQUIRE(gst_harness_push_event(h.h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  BOOST_REQUIRE(gst_harness_push_event(h.h, gst_event_new_segment(&segment)));
  (void)h.collect(false);                       // whatever came out before the flush
  std::vector<float> after = librivox("0880");  // "he was not an ill disposed young man"
  after.resize(after.size() + kRate, 0.0f);
  h.push(after, 100.0);
  const Output out = h.finish();
  BOOST_TEST_MESSAGE(out.all_text());
  BOOST_REQUIRE(!out.buffers.empty());
  for (const Text& t : out.buffers) BOOST_CHECK_GE(t.start, 100.0 - 1e-6);
  BOOST_CHECK_LE(wer("he was not an ill disposed young man", out.all_text()), 0.3);
}

BOOST_AUTO_TEST_CASE(adapter_swap_while_playing) {
  Element e;
  Harness h(e);
  std::vector<float> audio = librivox("0880");
  audio.resize(audio.size() + 11 * kRate, 0.0f);  // committed before the next audio at the latest
  h.push(audio, 0.0);
  GstBuffer* first = gst_harness_pull(h.h);
  BOOST_REQUIRE(first);
  GstMapInfo map;
  gst_buffer_map(first, &map, GST_MAP_READ);
  const std::string base(reinterpret_cast<const char*>(map.data), map.size);
  gst_buffer_unmap(first, &map);
  gst_buffer_unref(first);
  BOOST_TEST_MESSAGE("without adapter: " << base);

  // A file that is not an adapter: a WARNING naming it, and decoding goes on.
  g_object_set(e.element, "adapter", "/nonexistent/adapter", nullptr);
  h.push(audio, 30.0);
  std::vector<std::string> warnings;
  for (int i = 0; i < 600 && warnings.empty(); ++i) {  // applied when the task next wakes
    g_usleep(100000);
    warnings = e.messages(GST_MESSAGE_WARNING);
  }
  for (const auto& w : warnings) BOOST_TEST_MESSAGE("warning: " << w);
  BOOST_REQUIRE_EQUAL(warnings.size(), 1u);
  BOOST_CHECK(warnings[0].find("/nonexistent/adapter") != std::string::npos);
  const std::string fixtures = peft_test::fixtures_dir().string();
  g_object_set(e.element, "adapter", (fixtures + "/gst/tiny_en_lora").c_str(), nullptr);
  h.push(audio, 60.0);
  const Output out = h.finish();
  std::string during, with;
  for (const Text& t : out.buffers) (t.start < 60.0 ? during : with) += t.text;
  BOOST_TEST_MESSAGE("bad adapter set: " << during << " | with adapter: " << with);
  BOOST_CHECK_EQUAL(during, base);
  BOOST_CHECK_NE(with, base);
  BOOST_CHECK(e.messages(GST_MESSAGE_WARNING).empty());
}

// gst-plugins-rs's transcriberbin (not packaged for Debian 12, so not run here) sets
// "latency" and "lateness" as guint milliseconds, when present, and "language-code"
// (e.g. "en-US") unconditionally on its transcriber.
BOOST_AUTO_TEST_CASE(properties_transcriberbin_sets) {
  Element e;
  GObjectClass* klass = G_OBJECT_GET_CLASS(e.element);
  for (const char* name : {"latency", "lateness"}) {
    GParamSpec* spec = g_object_class_find_property(klass, name);
    BOOST_REQUIRE(spec);
    BOOST_CHECK_EQUAL(G_PARAM_SPEC_VALUE_TYPE(spec), G_TYPE_UINT);
  }
  GParamSpec* code = g_object_class_find_property(klass, "language-code");
  BOOST_REQUIRE(code);
  BOOST_CHECK_EQUAL(G_PARAM_SPEC_VALUE_TYPE(code), G_TYPE_STRING);
  for (const auto& [tag, language] : {std::pair<const char*, const char*>{"en-US", "en"}, {"pt_BR", "pt"},
                                      {"FR", "fr"}, {"", ""}}) {
    g_object_set(e.element, "language-code", tag, nullptr);
    gchar* got = nullptr;
    g_object_get(e.element, "language", &got, nullptr);
    BOOST_CHECK_EQUAL(std::string(got), language);
    g_free(got);
  }
}

BOOST_AUTO_TEST_CASE(latency_query_adds_latency_and_lateness) {
  Element e;
  g_object_set(e.element, "latency", 3000u, "lateness", 500u, nullptr);
  Harness h(e);
  gst_harness_set_upstream_latency(h.h, 20 * GST_MSECOND);
  GstPad* src = gst_element_get_static_pad(e.element, "src");
  GstQuery* q = gst_query_new_latency();
  BOOST_REQUIRE(gst_pad_query(src, q));
  gboolean live;
  GstClockTime min, max;
  gst_query_parse_latency(q, &live, &min, &max);
  BOOST_CHECK_EQUAL(min, 3520 * GST_MSECOND);
  gst_query_unref(q);
  gst_object_unref(src);
}

BOOST_AUTO_TEST_CASE(missing_or_corrupt_model_is_an_error_naming_the_file) {
  {
    Element e;
    g_object_set(e.element, "model", "/nonexistent/whisper-model", nullptr);
    BOOST_CHECK_EQUAL(gst_element_set_state(e.element, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
    const auto errors = e.messages(GST_MESSAGE_ERROR);
    BOOST_REQUIRE_EQUAL(errors.size(), 1u);
    BOOST_TEST_MESSAGE(errors[0]);
    BOOST_CHECK(errors[0].find("/nonexistent/whisper-model") != std::string::npos);
  }
  {
    peft_test::TempDir dir;
    std::ofstream(dir.path() / "config.json") << "{\"not\": \"a whisper config\"";
    std::ofstream(dir.path() / "model.bin") << "garbage";
    Element e;
    g_object_set(e.element, "model", dir.path().c_str(), nullptr);
    BOOST_CHECK_EQUAL(gst_element_set_state(e.element, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
    const auto errors = e.messages(GST_MESSAGE_ERROR);
    BOOST_REQUIRE_EQUAL(errors.size(), 1u);
    BOOST_TEST_MESSAGE(errors[0]);
    BOOST_CHECK(errors[0].find(dir.path().string()) != std::string::npos);
  }
  // In a pipeline: the state change fails, the bus has the error, and NULL is clean.
  GError* err = nullptr;
  GstElement* pipeline = gst_parse_launch(
      "audiotestsrc ! audio/x-raw,format=F32LE,rate=16000,channels=1 ! whisperasr "
      "model=/nonexistent/m ! fakesink",
      &err);
  BOOST_REQUIRE(pipeline);
  BOOST_CHECK_EQUAL(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* m = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND, GST_MESSAGE_ERROR);
  BOOST_REQUIRE(m);
  GError* e2 = nullptr;
  gst_message_parse_error(m, &e2, nullptr);
  BOOST_CHECK(std::string(e2->message).find("/nonexistent/m") != std::string::npos);
  g_error_free(e2);
  gst_message_unref(m);
  gst_object_unref(bus);
  BOOST_CHECK_EQUAL(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  gst_object_unref(pipeline);
}

BOOST_AUTO_TEST_CASE(nan_samples_are_an_error_naming_them) {
  Element e;
  Harness h(e);
  std::vector<float> audio(3 * kRate, 0.01f);
  audio[kRate + 5] = std::numeric_limits<float>::quiet_NaN();
  GstFlowReturn ret = GST_FLOW_OK;
  for (int i = 0; i < 100 && ret == GST_FLOW_OK; ++i) {
    GstBuffer* b = gst_buffer_new_memdup(audio.data(), audio.size() * sizeof(float));
    GST_BUFFER_PTS(b) = static_cast<GstClockTime>(i) * 3 * GST_SECOND;
    ret = gst_harness_push(h.h, b);
    g_usleep(50000);
  }
  BOOST_CHECK_EQUAL(ret, GST_FLOW_ERROR);
  const auto errors = e.messages(GST_MESSAGE_ERROR);
  BOOST_REQUIRE_GE(errors.size(), 1u);
  BOOST_TEST_MESSAGE(errors[0]);
  BOOST_CHECK(errors[0].find("NaN") != std::string::npos);
}

// Two elements asking for the same model and quantization hold one copy.
BOOST_AUTO_TEST_CASE(elements_share_one_model) {
  const long before = rss_kib();
  Element a;
  g_object_set(a.element, "quantization", 2 /* int8: not loaded by the other tests */, nullptr);
  BOOST_REQUIRE_EQUAL(gst_element_set_state(a.element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  const long one = rss_kib();
  Element b;
  g_object_set(b.element, "quantization", 2, nullptr);
  BOOST_REQUIRE_EQUAL(gst_element_set_state(b.element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  const long two = rss_kib();
  BOOST_TEST_MESSAGE("RSS +" << (one - before) << " KiB for the first element, +" << (two - one)
                             << " KiB for the second");
  BOOST_CHECK_GT(one - before, 20 * 1024);
  BOOST_CHECK_LT(two - one, (one - before) / 10);
}

// 100 NULL -> PLAYING -> NULL cycles of a short pipeline; a second element keeps the
// model loaded so the cycles measure the element, not the model's reloads.
BOOST_AUTO_TEST_CASE(state_cycles_do_not_grow) {
  Element keeper;
  BOOST_REQUIRE_EQUAL(gst_element_set_state(keeper.element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  GError* err = nullptr;
  GstElement* pipeline = gst_parse_launch(
      "audiotestsrc num-buffers=4 samplesperbuffer=4000 wave=silence ! "
      "audio/x-raw,format=F32LE,rate=16000,channels=1 ! whisperasr ! fakesink",
      &err);
  BOOST_REQUIRE(pipeline);
  GstBus* bus = gst_element_get_bus(pipeline);
  long at10 = 0;
  for (int cycle = 1; cycle <= 100; ++cycle) {
    BOOST_REQUIRE_NE(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, 30 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    BOOST_REQUIRE(m);
    BOOST_REQUIRE_EQUAL(GST_MESSAGE_TYPE(m), GST_MESSAGE_EOS);
    gst_message_unref(m);
    BOOST_REQUIRE_EQUAL(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    if (cycle == 10) at10 = rss_kib();
  }
  const long at100 = rss_kib();
  BOOST_TEST_MESSAGE("RSS after 10 cycles " << at10 << " KiB, after 100 " << at100 << " KiB");
  BOOST_CHECK_LT(at100 - at10, 8 * 1024);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
}

// A live source that outruns inference (here: 40 s of audio pushed at once): the element
// transcribes the backlog with few decodes, warns, and still gets the text.
BOOST_AUTO_TEST_CASE(live_backlog_is_caught_up_with_a_warning) {
  const Speech& s = speech();
  Element e;
  Harness h(e, /*live=*/true);
  h.push(s.audio, 0.0, kRate);
  const Output out = h.finish();
  const auto warnings = e.messages(GST_MESSAGE_WARNING);
  BOOST_REQUIRE_GE(warnings.size(), 1u);
  BOOST_TEST_MESSAGE("warning: " << warnings[0]);
  BOOST_CHECK(warnings[0].find("behind") != std::string::npos);
  BOOST_TEST_MESSAGE(out.all_text());
  BOOST_CHECK_LE(wer(reference_text(s), out.all_text()), 0.35);
}
