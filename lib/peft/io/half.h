// IEEE binary16 and bfloat16 <-> float conversions, exact for every value (including
// subnormals, infinities and NaN payloads' sign), without depending on torch.
#pragma once

#include <cstdint>
#include <cstring>

namespace peft::io {

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even

inline float bf16_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint16_t float_to_bf16(float f);  // round to nearest even, NaN stays NaN

}  // namespace peft::io
