// How a model's linear weights are stored after loading: as the checkpoint has them
// (none), or quantized at load time. Parsed from the `--quant` option of the tools.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace peft::quant {

enum class QuantType {
  none,  // as stored: float32 / float16, or a checkpoint's own quantized blocks (CT2 int8, GGUF)
  f32,   // float32: a quantized checkpoint (GGUF blocks, CT2 int8) dequantized at load
  int8,  // per-output-channel symmetric int8 (int8_weight.h)
  int4,  // group-wise symmetric int4, two values per byte (group4_weight.h)
  nf4,   // group-wise NormalFloat4 (QLoRA), two values per byte (group4_weight.h)
};

// "none" | "f32" | "int8" | "int4" | "nf4"; anything else throws peft::ValueError naming it.
QuantType parse_quant_type(std::string_view text);
std::string to_string(QuantType type);

struct QuantOptions {
  QuantType type = QuantType::none;
  // int4 / nf4: weights per scale along a row (32, 64 or 128); must divide the layer's
  // in_features.
  int64_t group_size = 64;
  // nf4 / int4: quantize the per-group scales again (8-bit, blocks of 256, as
  // bitsandbytes' compress_statistics does), ~0.37 bit per weight saved at group 64.
  bool double_quant = false;
  // Also quantize token embeddings (for Whisper: the tied output projection, the largest
  // weight). Off by default: lookups and the vocabulary projection are the most sensitive.
  bool quantize_embeddings = false;

  // Throws peft::ValueError on a group size other than 32, 64 or 128.
  void validate() const;
};

}  // namespace peft::quant
