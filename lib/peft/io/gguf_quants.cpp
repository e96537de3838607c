#include "peft/io/gguf_quants.h"

#include <cstring>
#include <string>

#include "peft/error.h"
#include "peft/io/half.h"

// Each decoder turns one block into block_elements(t) floats. The arithmetic follows
// ggml's order (scale = d * sub-scale first, then scale * q - min) so results match
// ggml and gguf-py bit for bit: with f16 scales and small integer quants every
// product is exact in float, leaving at most one rounding, in the subtraction.

namespace peft::io {

namespace {

float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

// ---- 32-element formats -------------------------------------------------------
// Q4_0 / Q4_1: byte j holds element j in its low nibble and element j + 16 in its
// high nibble.

// Q4_0: f16 d, 16 bytes of nibbles; value = (q - 8) * d.
void q4_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q4_1: f16 d, f16 m, 16 bytes of nibbles; value = q * d + m.
void q4_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// The fifth bit of element i of a Q5 block is bit i of a little-endian u32.
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

int q5_value(const uint8_t* qs, uint32_t qh, int i) {
  const int low = i < 16 ? (qs[i] & 0x0F) : (qs[i - 16] >> 4);
  const int high = static_cast<int>((qh >> i) & 1u) << 4;
  return low | high;
}

// Q5_0: f16 d, u32 high bits, 16 bytes of nibbles; value = (q - 16) * d.
void q5_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint32_t qh = load_u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int i = 0; i < 32; ++i) y[i] = static_cast<float>(q5_value(qs, qh, i) - 16) * d;
}

// Q5_1: f16 d, f16 m, u32 high bits, 16 bytes of nibbles; value = q * d + m.
void q5_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint32_t qh = load_u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int i = 0; i < 32; ++i) y[i] = static_cast<float>(q5_value(qs, qh, i)) * d + m;
}

// Q8_0: f16 d, 32 int8; value = q * d.
void q8_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int i = 0; i < 32; ++i) y[i] = static_cast<float>(qs[i]) * d;
}

// Q8_1: f16 d, f16 s (d * sum of q, a cache for dot products, not needed here), 32 int8.
void q8_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const auto* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int i = 0; i < 32; ++i) y[i] = static_cast<float>(qs[i]) * d;
}

// ---- 256-element k-quants -----------------------------------------------------

// Q2_K: 16 bytes of (4-bit scale | 4-bit min << 4) per 16 elements, 64 bytes of 2-bit
// quants, f16 d, f16 dmin. Each 128-element half uses 32 quant bytes; element
// 32 * k + l of that half is bits 2k..2k+1 of byte l. value = d*sc*q - dmin*m.
void q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = load_f16(b + 80);
  const float dmin = load_f16(b + 82);
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, k = (i % 128) / 32, l = i % 32;
    const uint8_t sc = scales[i / 16];
    const float dl = d * static_cast<float>(sc & 0x0F);
    const float ml = dmin * static_cast<float>(sc >> 4);
    const int q = (qs[half * 32 + l] >> (2 * k)) & 3;
    y[i] = dl * static_cast<float>(q) - ml;
  }
}

// Q3_K: 32 bytes of high-bit masks, 64 bytes of 2-bit quants, 12 bytes holding 16
// 6-bit signed scales (offset 32), f16 d. Low 2 bits are laid out as in Q2_K; the
// third bit of element i is bit i / 32 of hmask[i % 32], and a CLEAR bit subtracts 4
// (q = low - 4 when the mask bit is 0). value = d * (scale - 32) * q.
void q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* packed = b + 96;
  const float d = load_f16(b + 108);
  // Scale s: low 4 bits in packed[s % 8] (low nibble for s < 8, high for s >= 8),
  // high 2 bits in packed[8 + s % 4] at bit 2 * (s / 4).
  float dl[16];
  for (int s = 0; s < 16; ++s) {
    const int low = s < 8 ? (packed[s] & 0x0F) : (packed[s - 8] >> 4);
    const int high = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
    dl[s] = d * static_cast<float>((low | (high << 4)) - 32);
  }
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, k = (i % 128) / 32, l = i % 32;
    const int low = (qs[half * 32 + l] >> (2 * k)) & 3;
    const bool high_set = (hmask[l] >> (i / 32)) & 1;
    y[i] = dl[i / 16] * static_cast<float>(low - (high_set ? 0 : 4));
  }
}

// Q4_K / Q5_K share 8 (scale, min) pairs of 6 bits packed in 12 bytes: pairs 0..3
// are the low 6 bits of bytes 0..3 (scale) and 4..7 (min); pairs 4..7 take their low
// 4 bits from the nibbles of bytes 8..11 and their top 2 bits from the spare top
// bits of bytes 0..3 (scale) and 4..7 (min).
void kquant_scale_min(const uint8_t* s, int j, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles. Each 64 elements use
// 32 bytes: the first 32 elements are the low nibbles, the next 32 the high ones.
void q4_k(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int j = 0; j < 8; ++j) {  // 32-element sub-block j
    int sc, m;
    kquant_scale_min(scales, j, sc, m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * static_cast<float>((q[l] >> shift) & 0x0F) - ml;
  }
}

// Q5_K: as Q4_K with 32 bytes of fifth bits before the nibbles: element l of
// sub-block j has its fifth bit at bit j of qh[l].
void q5_k(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    kquant_scale_min(scales, j, sc, m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      const int v = ((q[l] >> shift) & 0x0F) | (((qh[l] >> j) & 1) << 4);
      y[32 * j + l] = dl * static_cast<float>(v) - ml;
    }
  }
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales, f16
// d. In each 128-element half (64 ql bytes, 32 qh bytes), element 32 * k + l takes
// its low nibble from ql[l + 32 * (k % 2)] (low nibble for k < 2, high otherwise)
// and its high 2 bits from bits 2k..2k+1 of qh[l]. value = d * scale * (q - 32).
void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_f16(b + 208);
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, k = (i % 128) / 32, l = i % 32;
    const uint8_t low_byte = ql[64 * half + l + 32 * (k % 2)];
    const int low = k < 2 ? (low_byte & 0x0F) : (low_byte >> 4);
    const int high = (qh[32 * half + l] >> (2 * k)) & 3;
    const float dl = d * static_cast<float>(scales[i / 16]);
    y[i] = dl * static_cast<float>((low | (high << 4)) - 32);
  }
}

// Q8_K: f32 d, 256 int8, 16 int16 block sums (a dot-product cache, unused here).
void q8_k(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, 4);
  const auto* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int i = 0; i < 256; ++i) y[i] = d * static_cast<float>(qs[i]);
}

using BlockDecoder = void (*)(const uint8_t*, float*);

BlockDecoder decoder_for(DType t) {
  switch (t) {
    case DType::Q4_0:
      return q4_0;
    case DType::Q4_1:
      return q4_1;
    case DType::Q5_0:
      return q5_0;
    case DType::Q5_1:
      return q5_1;
    case DType::Q8_0:
      return q8_0;
    case DType::Q8_1:
      return q8_1;
    case DType::Q2_K:
      return q2_k;
    case DType::Q3_K:
      return q3_k;
    case DType::Q4_K:
      return q4_k;
    case DType::Q5_K:
      return q5_k;
    case DType::Q6_K:
      return q6_k;
    case DType::Q8_K:
      return q8_k;
    default:
      return nullptr;
  }
}

}  // namespace

void dequantize_blocks(DType t, const uint8_t* src, uint64_t count, float* dst) {
  const BlockDecoder decode = decoder_for(t);
  if (decode == nullptr) throw ValueError(std::string(dtype_name(t)) + ": not a ggml block-quantized type");
  const uint64_t per_block = block_elements(t);
  if (count % per_block != 0)
    throw ValueError(std::string(dtype_name(t)) + ": " + std::to_string(count) +
                     " elements are not a whole number of " + std::to_string(per_block) + "-element blocks");
  const uint64_t stride = block_bytes(t);
  for (uint64_t b = 0; b < count / per_block; ++b) decode(src + b * stride, dst + b * per_block);
}

}  // namespace peft::io
