// Embedding gst-peft in your own program: build
//   uridecodebin ! audioconvert ! audioresample ! whisperasr ! peftsummarize ! fakesink
// in code and read the results from the bus: whisperasr posts an element message
// "whisperasr" {text, start, end, final, ...} per segment and peftsummarize one
// "peftsummarize" {summary, start, end, final} per summary (times in nanoseconds).
//
//   peft-embed-example FILE-OR-URI
#include <gst/gst.h>

#include <cstdio>

// uridecodebin's pads appear once it knows the streams: link the first audio one.
static void on_pad_added(GstElement*, GstPad* pad, gpointer convert) {
  GstPad* sink = gst_element_get_static_pad(GST_ELEMENT(convert), "sink");
  GstCaps* caps = gst_pad_query_caps(pad, nullptr);
  const char* kind = gst_structure_get_name(gst_caps_get_structure(caps, 0));
  if (!gst_pad_is_linked(sink) && g_str_has_prefix(kind, "audio/")) gst_pad_link(pad, sink);
  gst_caps_unref(caps);
  gst_object_unref(sink);
}

static double sec(const GstStructure* s, const char* field) {
  guint64 ns = 0;
  gst_structure_get_uint64(s, field, &ns);
  return static_cast<double>(ns) / GST_SECOND;
}

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FILE-OR-URI\n", argv[0]);
    return 2;
  }
  gchar* uri = gst_uri_is_valid(argv[1]) ? g_strdup(argv[1]) : gst_filename_to_uri(argv[1], nullptr);

  GstElement* pipeline = gst_pipeline_new("transcribe");
  GstElement* decode = gst_element_factory_make("uridecodebin", nullptr);
  GstElement* convert = gst_element_factory_make("audioconvert", nullptr);
  GstElement* resample = gst_element_factory_make("audioresample", nullptr);
  GstElement* asr = gst_element_factory_make("whisperasr", nullptr);
  GstElement* summarize = gst_element_factory_make("peftsummarize", nullptr);
  GstElement* sink = gst_element_factory_make("fakesink", nullptr);
  if (!decode || !convert || !resample || !asr || !summarize || !sink) {
    std::fprintf(stderr, "missing an element: is GST_PLUGIN_PATH set to gst-peft's plugin folder?\n");
    return 1;
  }
  // Properties as in gst-inspect-1.0 whisperasr / peftsummarize; empty models = defaults.
  g_object_set(decode, "uri", uri, nullptr);
  g_object_set(asr, "latency", 10000u, nullptr);
  gst_util_set_object_arg(G_OBJECT(summarize), "mode", "final-only");  // an enum, by its nick
  g_object_set(summarize, "max-new-tokens", 48u, nullptr);
  g_object_set(sink, "sync", FALSE, nullptr);
  g_free(uri);

  gst_bin_add_many(GST_BIN(pipeline), decode, convert, resample, asr, summarize, sink, nullptr);
  gst_element_link_many(convert, resample, asr, summarize, sink, nullptr);
  g_signal_connect(decode, "pad-added", G_CALLBACK(on_pad_added), convert);

  int status = 0;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) status = 1;
  GstBus* bus = gst_element_get_bus(pipeline);
  for (bool done = false; !done;) {
    GstMessage* msg = gst_bus_timed_pop_filtered(
        bus, GST_CLOCK_TIME_NONE,
        static_cast<GstMessageType>(GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    const GstStructure* s = gst_message_get_structure(msg);
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      GError* err = nullptr;
      gst_message_parse_error(msg, &err, nullptr);
      std::fprintf(stderr, "error from %s: %s\n", GST_MESSAGE_SRC_NAME(msg), err->message);
      g_error_free(err);
      status = 1;
      done = true;
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
      done = true;
    } else if (gst_structure_has_name(s, "whisperasr")) {
      std::printf("[%.2f - %.2f] %s\n", sec(s, "start"), sec(s, "end"), gst_structure_get_string(s, "text"));
    } else if (gst_structure_has_name(s, "peftsummarize")) {
      gboolean final = FALSE;
      gst_structure_get_boolean(s, "final", &final);
      std::printf("%s [%.2f - %.2f]: %s\n", final ? "Summary" : "Rolling summary", sec(s, "start"),
                  sec(s, "end"), gst_structure_get_string(s, "summary"));
    }
    std::fflush(stdout);
    gst_message_unref(msg);
  }
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return status;
}
