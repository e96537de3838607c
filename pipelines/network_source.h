// A source element for RTSP URIs (live network streams) that survives the server going
// away: it decodes the URI's first audio stream with uridecodebin and, when the
// connection fails or is lost, replaces the uridecodebin with a new one after a delay,
// up to a number of times in a row. Downstream sees one continuous stream: one
// STREAM_START, caps, and buffers whose times keep increasing across reconnects, so
// whisperasr's captions stay monotonic and peftsummarize's summary covers the whole run.
//
//   GstElement* src = peft::pipelines::make_network_source(uri, options);
//   gst_bin_add(GST_BIN(pipeline), src);          // then link its "src" pad like any source
//
// The element (named "network-source") swallows its children's errors while reconnects
// are left, posting instead a WARNING "Could not read from resource; reconnecting in 2 s
// (attempt 1 of 3)", and otherwise one ERROR ("Could not open resource for reading and
// writing; gave up after 3 reconnects"); both keep the child's GError domain, code and
// debug string (which says why: "Failed to connect.", "The server closed the
// connection."). Messages do not repeat the URI: the application names its input. Up to
// `max_reconnects` attempts are made in a row; the count starts again once audio flows.
// An end of stream sent by the server (RTCP BYE) ends the run normally; a lost
// connection (closed by the server, or no audio for `stall_timeout` seconds) counts as a
// failure. An EOS event sent to the element (a user's Ctrl-C, --duration) ends the
// stream at once, even between two connection attempts.
//
// RTSP sources are set up for this use: interleaved TCP (no UDP ports to open, no loss)
// and `latency_ms` of jitter buffer.
#pragma once

#include <gst/gst.h>

#include <string>

namespace peft::pipelines {

struct ReconnectOptions {
  int max_reconnects = 0;      // attempts in a row; the count restarts once audio flows again
  double delay_seconds = 2.0;  // before each attempt
  double stall_timeout =
      20.0;  // seconds without audio while PLAYING that count as a lost connection (0: never)
  unsigned rtsp_latency_ms = 500;  // rtspsrc's jitter buffer
};

// rtsp://, rtsps://, rtspt://, rtspu://: the live sources this element is for. (A
// non-live network source such as http:// would restart from its beginning on each
// connection, with times going back; peft-transcribe-media rebuilds its pipeline for
// those instead.)
bool is_rtsp_uri(const std::string& uri);

// A floating GstBin with one always "src" pad (decoded audio, any raw format). Other
// streams of the URI (a camera's video) go undecoded into a fakesink.
GstElement* make_network_source(const std::string& uri, const ReconnectOptions& options);

}  // namespace peft::pipelines
