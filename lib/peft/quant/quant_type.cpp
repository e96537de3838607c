#include "peft/quant/quant_type.h"

#include "peft/error.h"

namespace peft::quant {

QuantType parse_quant_type(std::string_view text) {
  if (text == "none") return QuantType::none;
  if (text == "f32" || text == "float32") return QuantType::f32;
  if (text == "int8") return QuantType::int8;
  if (text == "int4") return QuantType::int4;
  if (text == "nf4") return QuantType::nf4;
  throw ValueError("quantization type '" + std::string(text) + "' is not one of none, f32, int8, int4, nf4");
}

std::string to_string(QuantType type) {
  switch (type) {
    case QuantType::none:
      return "none";
    case QuantType::f32:
      return "f32";
    case QuantType::int8:
      return "int8";
    case QuantType::int4:
      return "int4";
    case QuantType::nf4:
      return "nf4";
  }
  return "?";
}

void QuantOptions::validate() const {
  if (group_size != 32 && group_size != 64 && group_size != 128)
    throw ValueError("quantization group size " + std::to_string(group_size) + " is not 32, 64 or 128");
}

}  // namespace peft::quant
