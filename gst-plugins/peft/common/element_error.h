// lib/ throws typed exceptions (peft/error.h); elements turn them into GStreamer errors
// and warnings on the bus, with the exception's message (which names the file, tensor
// or option) as the text users see.
#pragma once

#include <gst/gst.h>

#include <string>

namespace gstpeft {

// Posts an ERROR (or WARNING) message from `element` in `domain`/`code` with `text`, and
// `debug` as its debug string. Like GST_ELEMENT_ERROR, callable from any thread.
inline void post_error(GstElement* element, GQuark domain, gint code, const std::string& text,
                       const std::string& debug, bool warning = false) {
  gst_element_message_full(element, warning ? GST_MESSAGE_WARNING : GST_MESSAGE_ERROR, domain, code,
                           g_strdup(text.c_str()), g_strdup(debug.c_str()), __FILE__, GST_FUNCTION, __LINE__);
}

}  // namespace gstpeft
