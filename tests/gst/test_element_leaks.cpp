// Leak check of both elements, meant to run under LeakSanitizer: meson runs this suite
// with liblsan preloaded (tests/meson.build), so at exit every block that nothing points
// to any more is reported and the process exits non-zero. The pipelines below take the
// paths a leak would hide in: real speech through whisperasr into peftsummarize, state
// cycles that stop the tasks mid-stream, a flush, and a model that fails to load.
// One-time allocations of library constructors are suppressed in tests/gst/lsan.supp.
#define BOOST_TEST_MODULE element_leaks
#include <gst/gst.h>
#include <boost/test/unit_test.hpp>

#include <string>

#include "pocketsphinx_testdata.h"

namespace {

struct GstInit {
  GstInit() { gst_init(nullptr, nullptr); }
};
BOOST_GLOBAL_FIXTURE(GstInit);

// Owns a parsed pipeline and its bus.
struct Pipeline {
  explicit Pipeline(const std::string& description) {
    GError* err = nullptr;
    element = gst_parse_launch(description.c_str(), &err);
    if (err) {
      BOOST_TEST_MESSAGE("parse: " << err->message);
      g_error_free(err);
    }
    BOOST_REQUIRE(element);
    bus = gst_element_get_bus(element);
  }
  ~Pipeline() {
    gst_element_set_state(element, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(element);
  }
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // The first EOS or ERROR within `timeout`; nullopt-like GST_MESSAGE_UNKNOWN on timeout.
  GstMessageType wait_end(GstClockTime timeout = 120 * GST_SECOND) {
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, timeout, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    if (!m) return GST_MESSAGE_UNKNOWN;
    const GstMessageType type = GST_MESSAGE_TYPE(m);
    gst_message_unref(m);
    return type;
  }

  GstElement* element = nullptr;
  GstBus* bus = nullptr;
};

std::string speech_pipeline(const std::string& wav) {
  return "filesrc location=" + wav +
         " ! wavparse ! audioconvert ! audioresample ! "
         "audio/x-raw,format=F32LE,rate=16000,channels=1 ! whisperasr latency=3000 ! tee name=t "
         "t. ! queue ! peftsummarize mode=window window=4 hop=4 max-new-tokens=6 ! fakesink "
         "t. ! queue ! fakesink";
}

std::string first_librivox_wav() {
  const auto utterances = peft_test::pocketsphinx_utterances("librivox");
  BOOST_REQUIRE(!utterances.empty());
  return utterances.front().wav;
}

}  // namespace

// Elements in READY that keep both default models loaded, so that state cycles of the
// pipelines under test exercise the elements rather than reloading the models.
struct ModelKeeper {
  ModelKeeper() {
    for (GstElement*& e : elements) {
      e = gst_element_factory_make(&e == &elements[0] ? "whisperasr" : "peftsummarize", nullptr);
      BOOST_REQUIRE(e);
      BOOST_REQUIRE_EQUAL(gst_element_set_state(e, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
    }
  }
  ~ModelKeeper() {
    for (GstElement* e : elements) {
      gst_element_set_state(e, GST_STATE_NULL);
      gst_object_unref(e);
    }
  }
  ModelKeeper(const ModelKeeper&) = delete;
  ModelKeeper& operator=(const ModelKeeper&) = delete;
  GstElement* elements[2] = {nullptr, nullptr};
};

BOOST_AUTO_TEST_CASE(speech_through_both_elements_to_eos) {
  ModelKeeper keeper;
  Pipeline p(speech_pipeline(first_librivox_wav()));
  for (int run = 0; run < 2; ++run) {
    BOOST_REQUIRE_NE(gst_element_set_state(p.element, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    BOOST_CHECK_EQUAL(p.wait_end(), GST_MESSAGE_EOS);
    BOOST_REQUIRE_EQUAL(gst_element_set_state(p.element, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
}

// Stopping while the tasks hold queued audio, text and partial decodes.
BOOST_AUTO_TEST_CASE(state_cycles_that_stop_mid_stream) {
  ModelKeeper keeper;
  Pipeline p(speech_pipeline(first_librivox_wav()));
  for (int cycle = 0; cycle < 8; ++cycle) {
    BOOST_REQUIRE_NE(gst_element_set_state(p.element, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    g_usleep(static_cast<gulong>(20000 * (cycle % 5)));
    BOOST_REQUIRE_EQUAL(gst_element_set_state(p.element, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
}

BOOST_AUTO_TEST_CASE(flushing_seek_mid_stream) {
  ModelKeeper keeper;
  Pipeline p(speech_pipeline(first_librivox_wav()));
  BOOST_REQUIRE_NE(gst_element_set_state(p.element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  BOOST_REQUIRE_NE(gst_element_get_state(p.element, nullptr, nullptr, 30 * GST_SECOND),
                   GST_STATE_CHANGE_FAILURE);
  BOOST_REQUIRE_NE(gst_element_set_state(p.element, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  g_usleep(300000);
  BOOST_CHECK(gst_element_seek_simple(p.element, GST_FORMAT_TIME,
                                      static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH), GST_SECOND));
  BOOST_CHECK_EQUAL(p.wait_end(), GST_MESSAGE_EOS);
}

BOOST_AUTO_TEST_CASE(models_that_fail_to_load) {
  for (const char* element : {"whisperasr", "peftsummarize"}) {
    const std::string source =
        std::string(element) == "whisperasr"
            ? "audiotestsrc num-buffers=2 ! audio/x-raw,format=F32LE,rate=16000,channels=1"
            : "fakesrc num-buffers=0";
    Pipeline p(source + " ! " + element + " model=/nonexistent/model ! fakesink");
    BOOST_CHECK_EQUAL(gst_element_set_state(p.element, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    BOOST_CHECK_EQUAL(p.wait_end(5 * GST_SECOND), GST_MESSAGE_ERROR);
  }
}
