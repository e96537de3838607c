#include "common/quantization_enum.h"

namespace gstpeft {

GType quantization_enum_get_type() {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    using peft::quant::QuantType;
    static const GEnumValue values[] = {
        {static_cast<gint>(QuantType::none),
         "As stored (float16/float32, or the checkpoint's own quantized blocks)", "none"},
        {static_cast<gint>(QuantType::f32), "float32 (a quantized checkpoint dequantized at load)", "f32"},
        {static_cast<gint>(QuantType::int8), "int8 per output channel", "int8"},
        {static_cast<gint>(QuantType::int4), "int4 in groups of 64", "int4"},
        {static_cast<gint>(QuantType::nf4), "NormalFloat4 in groups of 64 (QLoRA)", "nf4"},
        {0, nullptr, nullptr}};
    g_once_init_leave(&type, g_enum_register_static("GstPeftQuantization", values));
  }
  return type;
}

}  // namespace gstpeft
