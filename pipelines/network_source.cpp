// The reconnecting network source (network_source.h). A GstBin subclass, because only a
// bin sees its children's ERROR messages before the application does (handle_message),
// which is what lets it retry instead of stopping the pipeline.
//
// Inside: one uridecodebin per connection attempt ("connection-N") whose audio pad is
// linked to an identity ("out") whose src pad is the bin's ghost "src" pad; a pad probe
// on identity's sink pad sees everything that leaves a connection, and hides what would
// tell downstream a new stream began (further STREAM_STARTs, and SEGMENTs that move the
// timeline back). A worker thread, running between READY->PAUSED and PAUSED->READY,
// replaces failed connections after the delay and watches for stalls: GStreamer forbids
// changing elements' states from their own streaming threads, where failures are seen.
#include "network_source.h"

#include <gst/gst.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

struct Impl {
  std::string uri;
  peft::pipelines::ReconnectOptions options;
  GstElement* out = nullptr;  // identity, owned by the bin

  std::mutex mutex;
  std::condition_variable wake;
  std::thread worker;
  bool worker_stop = false;

  // One connection at a time: its elements (the uridecodebin and fakesinks for streams
  // that are not audio), whether its audio is linked and has flowed.
  std::vector<GstElement*> connection;
  bool audio_linked = false;
  bool had_audio = false;
  bool lost = false;  // this connection failed; its EOS is dropped, its errors swallowed
  int failures = 0;   // attempts in a row without audio
  bool reconnect_pending = false;
  Clock::time_point reconnect_at;
  Clock::time_point last_audio;
  bool stopping = false;     // EOS sent to the element
  bool finished = false;     // EOS went downstream, or the final error was posted
  bool started = false;      // a STREAM_START went downstream
  bool has_segment = false;  // a TIME segment went downstream, mapping running time = PTS + shift
  gint64 segment_shift = 0;
};

}  // namespace

G_BEGIN_DECLS
#define PEFT_TYPE_NETWORK_SOURCE (peft_network_source_get_type())
G_DECLARE_FINAL_TYPE(PeftNetworkSource, peft_network_source, PEFT, NETWORK_SOURCE, GstBin)
G_END_DECLS

struct _PeftNetworkSource {
  GstBin parent;
  Impl* impl;
};

G_DEFINE_TYPE(PeftNetworkSource, peft_network_source, GST_TYPE_BIN)

namespace {

// Posts with the child's debug string as it was (gst_element_message_full would put this
// file's location in front of it).
void post(PeftNetworkSource* self, GstMessageType type, GQuark domain, gint code, const std::string& text,
          const std::string& debug) {
  GError* err = g_error_new_literal(domain, code, text.c_str());
  GstMessage* message =
      type == GST_MESSAGE_ERROR
          ? gst_message_new_error(GST_OBJECT(self), err, debug.empty() ? nullptr : debug.c_str())
          : gst_message_new_warning(GST_OBJECT(self), err, debug.empty() ? nullptr : debug.c_str());
  g_error_free(err);
  gst_element_post_message(GST_ELEMENT(self), message);
}

// A connection failed (an error, the server closed it, a stall): schedule the next
// attempt, or post the final error. Returns false when the failure was already handled
// (a failing connection often reports several errors).
bool on_failure(PeftNetworkSource* self, GQuark domain, gint code, const std::string& what,
                const std::string& debug) {
  Impl& s = *self->impl;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (s.lost || s.stopping || s.finished) return false;
  s.lost = true;
  const int max = s.options.max_reconnects;
  if (s.failures < max) {
    ++s.failures;
    s.reconnect_pending = true;
    s.reconnect_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(s.options.delay_seconds));
    const std::string text = what + "; reconnecting in " + seconds_text(s.options.delay_seconds) +
                             " (attempt " + std::to_string(s.failures) + " of " + std::to_string(max) + ")";
    lock.unlock();
    s.wake.notify_all();
    post(self, GST_MESSAGE_WARNING, domain, code, text, debug);
  } else {
    s.finished = true;
    std::string text = what;
    if (max > 0) text += "; gave up after " + std::to_string(max) + (max == 1 ? " reconnect" : " reconnects");
    lock.unlock();
    post(self, GST_MESSAGE_ERROR, domain, code, text, debug);
  }
  return true;
}

void handle_message(GstBin* bin, GstMessage* message) {
  auto* self = PEFT_NETWORK_SOURCE(bin);
  const GstMessageType type = GST_MESSAGE_TYPE(message);
  // A connection's uridecodebin prerolls (ASYNC_START ... ASYNC_DONE) while its pads
  // appear. The source is live: a bin that passed that on would "lose its state" to
  // PAUSED and stay there (only a pipeline restores it), and a connection removed
  // between the two would leave the pipeline in an unfinished state change that holds
  // back its EOS. A connection added while PLAYING stops at PAUSED after its preroll
  // (a bin inside another leaves it to the parent to go on): the worker sets it to the
  // bin's state then.
  if ((type == GST_MESSAGE_ASYNC_START || type == GST_MESSAGE_ASYNC_DONE) &&
      GST_MESSAGE_SRC(message) != GST_OBJECT(bin)) {
    gst_message_unref(message);
    if (type == GST_MESSAGE_ASYNC_DONE) self->impl->wake.notify_all();
    return;
  }
  if (GST_MESSAGE_SRC(message) != GST_OBJECT(bin) &&
      (type == GST_MESSAGE_ERROR || type == GST_MESSAGE_WARNING)) {
    GError* err = nullptr;
    gchar* debug = nullptr;
    if (type == GST_MESSAGE_ERROR)
      gst_message_parse_error(message, &err, &debug);
    else
      gst_message_parse_warning(message, &err, &debug);
    // rtspsrc says "Could not read from resource" (a WARNING, then EOS) when the server
    // closes the connection; other warnings are only passed on.
    const bool failure = type == GST_MESSAGE_ERROR ||
                         (err->domain == GST_RESOURCE_ERROR && err->code == GST_RESOURCE_ERROR_READ);
    // The child's message without its final period; its debug string (which says why:
    // "The server closed the connection.", "Failed to connect.") goes on unchanged.
    std::string what = err->message;
    if (!what.empty() && what.back() == '.') what.pop_back();
    const std::string detail = debug ? debug : "";
    const GQuark domain = err->domain;
    const gint code = err->code;
    g_error_free(err);
    g_free(debug);
    if (failure) {
      // Handled or not, the child's message is replaced by ours (which says what follows).
      on_failure(self, domain, code, what, detail);
      gst_message_unref(message);
      return;
    }
  }
  GST_BIN_CLASS(peft_network_source_parent_class)->handle_message(bin, message);
}

// Every buffer and serialized event leaving a connection.
GstPadProbeReturn on_connection_output(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* self = static_cast<PeftNetworkSource*>(data);
  Impl& s = *self->impl;
  std::lock_guard<std::mutex> lock(s.mutex);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    s.last_audio = Clock::now();
    if (!s.had_audio) {
      s.had_audio = true;
      s.failures = 0;
      // The first audio of each connection follows a hole: audioresample and whisperasr
      // resynchronise on DISCONT instead of counting samples on.
      if (!GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT)) {
        buf = gst_buffer_make_writable(buf);
        GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
        GST_PAD_PROBE_INFO_DATA(info) = buf;
      }
    }
    return GST_PAD_PROBE_OK;
  }
  GstEvent* event = GST_PAD_PROBE_INFO_EVENT(info);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_STREAM_START:
      // Downstream sees one stream however many connections it took.
      if (s.started) return GST_PAD_PROBE_DROP;
      s.started = true;
      return GST_PAD_PROBE_OK;
    case GST_EVENT_SEGMENT: {
      // A live source (rtspsrc) times its buffers in the pipeline's running time: its
      // SEGMENT after a reconnect maps times as the first one did (base - start is the
      // same) and only moves stream time back to 0. Dropping it keeps stream time going.
      const GstSegment* seg = nullptr;
      gst_event_parse_segment(event, &seg);
      const gint64 shift = static_cast<gint64>(seg->base) - static_cast<gint64>(seg->start);
      if (s.has_segment && seg->format == GST_FORMAT_TIME && seg->rate == 1.0 && shift == s.segment_shift)
        return GST_PAD_PROBE_DROP;
      s.has_segment = seg->format == GST_FORMAT_TIME;
      s.segment_shift = shift;
      if (s.has_segment && GST_CLOCK_TIME_IS_VALID(seg->stop)) {
        // An RTSP server serving a file announces its length (the segment's stop):
        // the audio of a later connection would fall after it and be clipped.
        GstSegment open = *seg;
        open.stop = GST_CLOCK_TIME_NONE;
        open.duration = GST_CLOCK_TIME_NONE;
        GstEvent* replaced = gst_event_new_segment(&open);
        gst_event_set_seqnum(replaced, gst_event_get_seqnum(event));
        gst_event_unref(event);
        GST_PAD_PROBE_INFO_DATA(info) = replaced;
      }
      return GST_PAD_PROBE_OK;
    }
    case GST_EVENT_EOS:
      if (s.stopping) {
        s.finished = true;
        return GST_PAD_PROBE_OK;
      }
      if (s.lost) return GST_PAD_PROBE_DROP;  // the next connection goes on
      s.finished = true;                      // the server ended the stream
      return GST_PAD_PROBE_OK;
    default:
      return GST_PAD_PROBE_OK;
  }
}

void remove_connection(PeftNetworkSource* self) {
  Impl& s = *self->impl;
  std::vector<GstElement*> old;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    old.swap(s.connection);
    s.audio_linked = false;
  }
  GstPad* sink = gst_element_get_static_pad(s.out, "sink");
  if (GstPad* peer = gst_pad_get_peer(sink)) {
    gst_pad_unlink(peer, sink);
    gst_object_unref(peer);
  }
  gst_object_unref(sink);
  for (GstElement* e : old) {
    gst_element_set_locked_state(e, TRUE);
    gst_element_set_state(e, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), e);  // drops the bin's reference
    gst_object_unref(e);               // ours
  }
}

void on_source_setup(GstElement*, GstElement* source, gpointer data) {
  auto* self = static_cast<PeftNetworkSource*>(data);
  GObjectClass* klass = G_OBJECT_GET_CLASS(source);
  if (g_object_class_find_property(klass, "protocols"))
    gst_util_set_object_arg(G_OBJECT(source), "protocols", "tcp");
  if (g_object_class_find_property(klass, "latency") &&
      g_str_has_prefix(G_OBJECT_TYPE_NAME(source), "GstRTSP"))
    g_object_set(source, "latency", static_cast<guint>(self->impl->options.rtsp_latency_ms), nullptr);
}

// Streams that are not audio (a camera's video) are not decoded.
gboolean on_autoplug_continue(GstElement*, GstPad*, GstCaps* caps, gpointer) {
  const GstStructure* st = gst_caps_get_structure(caps, 0);
  const gchar* name = gst_structure_get_name(st);
  if (g_str_has_prefix(name, "video/") || g_str_has_prefix(name, "image/")) return FALSE;
  if (g_str_equal(name, "application/x-rtp")) {
    const gchar* media = gst_structure_get_string(st, "media");
    if (media && !g_str_equal(media, "audio")) return FALSE;
  }
  return TRUE;
}

void on_pad_added(GstElement* decoder, GstPad* pad, gpointer data) {
  auto* self = static_cast<PeftNetworkSource*>(data);
  Impl& s = *self->impl;
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  const bool audio = caps && gst_caps_get_size(caps) > 0 &&
                     g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "audio/x-raw");
  if (caps) gst_caps_unref(caps);
  bool link_audio = false;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (std::find(s.connection.begin(), s.connection.end(), decoder) == s.connection.end()) return;
    if (audio && !s.audio_linked) link_audio = s.audio_linked = true;
  }
  if (link_audio) {
    GstPad* sink = gst_element_get_static_pad(s.out, "sink");
    const GstPadLinkReturn ret = gst_pad_link(pad, sink);
    gst_object_unref(sink);
    if (ret == GST_PAD_LINK_OK) return;
  }
  GstElement* sink = gst_element_factory_make("fakesink", nullptr);
  g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.connection.push_back(GST_ELEMENT(gst_object_ref(sink)));
  }
  gst_bin_add(GST_BIN(self), sink);
  gst_element_sync_state_with_parent(sink);
  GstPad* sinkpad = gst_element_get_static_pad(sink, "sink");
  gst_pad_link(pad, sinkpad);
  gst_object_unref(sinkpad);
}

void on_no_more_pads(GstElement* decoder, gpointer data) {
  auto* self = static_cast<PeftNetworkSource*>(data);
  Impl& s = *self->impl;
  bool no_audio;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (std::find(s.connection.begin(), s.connection.end(), decoder) == s.connection.end()) return;
    no_audio = !s.audio_linked;
  }
  if (no_audio) on_failure(self, GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE, "no audio stream", "");
}

// A new uridecodebin for the URI, in the bin's state. Called before the bin goes to
// PAUSED (the first connection) and from the worker thread (the next ones).
void add_connection(PeftNetworkSource* self) {
  Impl& s = *self->impl;
  GstElement* decoder = gst_element_factory_make("uridecodebin", nullptr);
  g_object_set(decoder, "uri", s.uri.c_str(), nullptr);
  g_signal_connect(decoder, "source-setup", G_CALLBACK(on_source_setup), self);
  g_signal_connect(decoder, "autoplug-continue", G_CALLBACK(on_autoplug_continue), self);
  g_signal_connect(decoder, "pad-added", G_CALLBACK(on_pad_added), self);
  g_signal_connect(decoder, "no-more-pads", G_CALLBACK(on_no_more_pads), self);
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.connection.push_back(GST_ELEMENT(gst_object_ref(decoder)));
    s.audio_linked = s.had_audio = s.lost = false;
    s.last_audio = Clock::now();
  }
  gst_bin_add(GST_BIN(self), decoder);
}

void worker_loop(PeftNetworkSource* self) {
  Impl& s = *self->impl;
  const auto tick = std::chrono::milliseconds(200);
  bool was_playing = false;
  std::unique_lock<std::mutex> lock(s.mutex);
  while (!s.worker_stop) {
    s.wake.wait_for(lock, tick);
    if (s.worker_stop) break;
    // A failed connection goes at once (it may still be trying to reconnect itself).
    if (s.lost && !s.connection.empty()) {
      lock.unlock();
      remove_connection(self);
      lock.lock();
      continue;
    }
    if (s.stopping || s.finished) continue;
    const auto now = Clock::now();
    if (s.reconnect_pending && now >= s.reconnect_at) {
      s.reconnect_pending = false;
      lock.unlock();
      add_connection(self);
      std::vector<GstElement*> current;
      {
        std::lock_guard<std::mutex> l(s.mutex);
        current = s.connection;
      }
      for (GstElement* e : current) gst_element_sync_state_with_parent(e);
      lock.lock();
      continue;
    }
    // Connections that stopped short of the bin's state (see handle_message).
    if (!s.lost) {
      const std::vector<GstElement*> current = s.connection;
      lock.unlock();
      GstState target = GST_STATE_VOID_PENDING, pending = GST_STATE_VOID_PENDING;
      gst_element_get_state(GST_ELEMENT(self), &target, &pending, 0);
      if (pending == GST_STATE_VOID_PENDING && target >= GST_STATE_PAUSED)
        for (GstElement* e : current) {
          GstState state = GST_STATE_VOID_PENDING, next = GST_STATE_VOID_PENDING;
          gst_element_get_state(e, &state, &next, 0);
          if (next == GST_STATE_VOID_PENDING && state != target) gst_element_set_state(e, target);
        }
      lock.lock();
      if (s.worker_stop) break;
    }
    // A stall: no audio for stall_timeout while PLAYING, on a connection not yet failed.
    // Audio held downstream (whisperasr makes a live source wait up to its latency while
    // inference catches up) is not a stall: the connection's thread then holds the
    // stream lock of identity's sink pad.
    GstPad* out_sink = gst_element_get_static_pad(s.out, "sink");
    if (GST_PAD_STREAM_TRYLOCK(out_sink))
      GST_PAD_STREAM_UNLOCK(out_sink);
    else
      s.last_audio = now;
    gst_object_unref(out_sink);
    const bool playing = GST_STATE(self) == GST_STATE_PLAYING;
    if (playing && !was_playing) s.last_audio = now;
    was_playing = playing;
    const double idle = std::chrono::duration<double>(now - s.last_audio).count();
    if (playing && !s.lost && !s.reconnect_pending && s.options.stall_timeout > 0 &&
        idle > s.options.stall_timeout) {
      lock.unlock();
      on_failure(self, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ,
                 "no audio for " + seconds_text(s.options.stall_timeout), "");
      lock.lock();
    }
  }
}

GstStateChangeReturn change_state(GstElement* element, GstStateChange transition) {
  auto* self = PEFT_NETWORK_SOURCE(element);
  Impl& s = *self->impl;
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.failures = 0;
      s.stopping = s.finished = s.started = s.reconnect_pending = false;
      s.has_segment = false;
      s.worker_stop = false;
    }
    s.worker = std::thread(worker_loop, self);
  } else if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.worker_stop = true;
    }
    s.wake.notify_all();
    if (s.worker.joinable()) s.worker.join();
  }
  return GST_ELEMENT_CLASS(peft_network_source_parent_class)->change_state(element, transition);
}

// An EOS sent to the element (the application stopping) ends the stream now, whether a
// connection is up or the next one is still waiting for its delay.
gboolean send_event(GstElement* element, GstEvent* event) {
  auto* self = PEFT_NETWORK_SOURCE(element);
  Impl& s = *self->impl;
  if (GST_EVENT_TYPE(event) != GST_EVENT_EOS)
    return GST_ELEMENT_CLASS(peft_network_source_parent_class)->send_event(element, event);
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stopping = true;
    s.reconnect_pending = false;
  }
  GstPad* sink = gst_element_get_static_pad(s.out, "sink");
  const gboolean ok = gst_pad_send_event(sink, event);
  gst_object_unref(sink);
  return ok;
}

void dispose(GObject* object) {
  auto* self = PEFT_NETWORK_SOURCE(object);
  if (self->impl) {
    std::vector<GstElement*> refs;
    {
      std::lock_guard<std::mutex> lock(self->impl->mutex);
      refs.swap(self->impl->connection);
    }
    for (GstElement* e : refs) gst_object_unref(e);
  }
  G_OBJECT_CLASS(peft_network_source_parent_class)->dispose(object);
}

void finalize(GObject* object) {
  auto* self = PEFT_NETWORK_SOURCE(object);
  delete self->impl;
  self->impl = nullptr;
  G_OBJECT_CLASS(peft_network_source_parent_class)->finalize(object);
}

}  // namespace

static void peft_network_source_class_init(PeftNetworkSourceClass* klass) {
  G_OBJECT_CLASS(klass)->dispose = dispose;
  G_OBJECT_CLASS(klass)->finalize = finalize;
  GST_ELEMENT_CLASS(klass)->change_state = change_state;
  GST_ELEMENT_CLASS(klass)->send_event = send_event;
  GST_BIN_CLASS(klass)->handle_message = handle_message;
}

static void peft_network_source_init(PeftNetworkSource* self) {
  self->impl = new Impl();
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}

namespace peft::pipelines {

bool is_rtsp_uri(const std::string& uri) {
  for (const char* scheme : {"rtsp://", "rtsps://", "rtspt://", "rtspu://"})
    if (g_ascii_strncasecmp(uri.c_str(), scheme, std::char_traits<char>::length(scheme)) == 0) return true;
  return false;
}

GstElement* make_network_source(const std::string& uri, const ReconnectOptions& options) {
  auto* self = static_cast<PeftNetworkSource*>(
      g_object_new(PEFT_TYPE_NETWORK_SOURCE, "name", "network-source", nullptr));
  Impl& s = *self->impl;
  s.uri = uri;
  s.options = options;
  s.out = gst_element_factory_make("identity", "out");
  g_object_set(s.out, "silent", TRUE, nullptr);
  // The pipeline sends EOS (a user's stop) to the bins that hold a source element; the
  // bin loses that mark whenever a connection is removed, unless another child has it.
  GST_OBJECT_FLAG_SET(s.out, GST_ELEMENT_FLAG_SOURCE);
  gst_bin_add(GST_BIN(self), s.out);
  GstPad* target = gst_element_get_static_pad(s.out, "src");
  gst_element_add_pad(GST_ELEMENT(self), gst_ghost_pad_new("src", target));
  gst_object_unref(target);
  GstPad* sink = gst_element_get_static_pad(s.out, "sink");
  gst_pad_add_probe(
      sink, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
      on_connection_output, self, nullptr);
  gst_object_unref(sink);
  add_connection(self);
  return GST_ELEMENT(self);
}

}  // namespace peft::pipelines
