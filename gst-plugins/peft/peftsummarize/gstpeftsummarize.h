// peftsummarize: abstractive summaries of timed text (a transcript from whisperasr, or
// any text/x-raw,format=utf8 source) with a small language model and an optional PEFT
// adapter. Rolling summaries every `hop` seconds of stream time over the last `window`
// seconds, disjoint windows, or only a final summary at EOS; each summary is a buffer
// (PTS = start of the span, duration = the span) and a `peftsummarize` element message.
// Between summaries, GAP events up to the next rolling window's start keep downstream
// moving (sinks preroll, tees and overlays never wait on it); input GAPs are folded into
// them. Generation runs on the src pad's task; the sink chain only queues text.
//
//   gst-launch-1.0 ... ! text/x-raw,format=utf8 ! peftsummarize mode=window window=60 ! fakesink
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_PEFT_SUMMARIZE (gst_peft_summarize_get_type())
G_DECLARE_FINAL_TYPE(GstPeftSummarize, gst_peft_summarize, GST, PEFT_SUMMARIZE, GstElement)

// The `mode` property's GEnum ("GstPeftSummarizeMode": rolling, window, final-only).
#define GST_TYPE_PEFT_SUMMARIZE_MODE (gst_peft_summarize_mode_get_type())
GType gst_peft_summarize_mode_get_type(void);

GST_ELEMENT_REGISTER_DECLARE(peftsummarize);

G_END_DECLS
