// Sparse output, the GStreamer way. whisperasr's captions come seconds after their audio,
// peftsummarize's summaries a window (a minute) after their text: between two buffers
// the src pad would be silent. Downstream cannot tell silence from a stall, so a sink
// after a tee never prerolls (the tee's other branch holds it in PAUSED), and a muxer or
// overlay waits for time this element already consumed. GAP events say which stream
// time holds no output:
//   - the first output on a timeline is a GAP (empty if need be) as soon as the element
//     knows where its output starts, so every sink downstream prerolls at once;
//   - afterwards, a GAP up to each position the element has decided (nothing it will
//     still push starts before it), never past a buffer still to come, so that
//     timestamps downstream only move forward.
//
// One per src pad, used by the thread that pushes on it (and passed that pad). Times
// are stream seconds on the input segment's timeline (both elements keep seconds).
#pragma once

#include <gst/gst.h>

#include <algorithm>
#include <cmath>

namespace gstpeft {

inline GstClockTime seconds_to_clock(double seconds) {
  return static_cast<GstClockTime>(std::llround(std::max(0.0, seconds) * static_cast<double>(GST_SECOND)));
}

class SparseOutput {
 public:
  // A new timeline (SEGMENT, FLUSH_STOP, start): nothing has gone out on it yet, and
  // output cannot start before `at`.
  void reset(double at) {
    end_ = at;
    sent_ = false;
  }
  // Output will not start before `at` (the first audio of a stream, say): moves the
  // position without pushing anything.
  void advance_to(double at) { end_ = std::max(end_, at); }
  // A buffer or a forwarded GAP ending at `end` went downstream.
  void pushed(double end) {
    end_ = std::max(end_, end);
    sent_ = true;
  }
  // Pushes a GAP from the position up to `until` (nothing when `until` is not later),
  // except that the first one on a timeline goes out even when empty. False when
  // downstream refused the event.
  bool gap_until(GstPad* srcpad, double until) {
    const bool preroll = !sent_;
    if (until <= end_ + 1e-6 && !preroll) return true;
    const GstClockTime start = seconds_to_clock(end_);
    const GstClockTime stop = std::max(start, seconds_to_clock(until));
    end_ = std::max(end_, until);
    sent_ = true;
    return gst_pad_push_event(srcpad, gst_event_new_gap(start, stop - start));
  }
  // Stream seconds up to which buffers or GAPs went downstream.
  double position() const { return end_; }

 private:
  double end_ = 0;
  bool sent_ = false;
};

}  // namespace gstpeft
