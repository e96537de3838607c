// Registration of the "peft" plugin: whisperasr (speech -> timestamped text) and
// peftsummarize (text -> summaries), each in its own folder.
#include <gst/gst.h>

#include "peft/openblas_kernels.h"
#include "peftsummarize/gstpeftsummarize.h"
#include "whisperasr/gstwhisperasr.h"

static gboolean plugin_init(GstPlugin* plugin) {
  // Here, before any element can run a matrix product: OpenBLAS has no kernels for the
  // moment it takes to choose them again (peft/openblas_kernels.h). The elements'
  // configure_runtime() calls then only report.
  peft::check_openblas_core();
  gboolean ok = GST_ELEMENT_REGISTER(whisperasr, plugin);
  ok = GST_ELEMENT_REGISTER(peftsummarize, plugin) && ok;
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, peft,
                  "Speech recognition and summarization with quantized models and LoRA/AdaLoRA adapters",
                  plugin_init, VERSION, "MIT/X11", PACKAGE, "gst-peft source tree")
