// The `quantization` property both elements share: a GEnum over peft::quant::QuantType,
// so gst-inspect-1.0 lists the values and gst-launch-1.0 accepts them by nick.
#pragma once

#include <glib-object.h>

#include "peft/quant/quant_type.h"

namespace gstpeft {

// GType of the enum "GstPeftQuantization" (nicks: none, f32, int8, int4, nf4; values
// are the QuantType values).
GType quantization_enum_get_type();

inline peft::quant::QuantType to_quant_type(int value) { return static_cast<peft::quant::QuantType>(value); }

}  // namespace gstpeft
