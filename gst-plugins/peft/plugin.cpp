// Registration of the "peft" plugin. The elements (whisperasr, peftsummarize) arrive
// with their own folders; until then the plugin loads and registers nothing.
#include <gst/gst.h>

#include "peftsummarize/gstpeftsummarize.h"

static gboolean plugin_init(GstPlugin* plugin) {
  gboolean ok = TRUE;
  ok &= GST_ELEMENT_REGISTER(peftsummarize, plugin);
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, peft,
                  "Speech recognition and summarization with quantized models and LoRA/AdaLoRA adapters",
                  plugin_init, VERSION, "MIT/X11", PACKAGE, "gst-peft source tree")
