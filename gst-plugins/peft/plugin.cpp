// Registration of the "peft" plugin: whisperasr (speech -> timestamped text) and
// peftsummarize (text -> summaries), each in its own folder.
#include <gst/gst.h>

#include "peftsummarize/gstpeftsummarize.h"
#include "whisperasr/gstwhisperasr.h"

static gboolean plugin_init(GstPlugin* plugin) {
  gboolean ok = GST_ELEMENT_REGISTER(whisperasr, plugin);
  ok = GST_ELEMENT_REGISTER(peftsummarize, plugin) && ok;
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, peft,
                  "Speech recognition and summarization with quantized models and LoRA/AdaLoRA adapters",
                  plugin_init, VERSION, "MIT/X11", PACKAGE, "gst-peft source tree")
