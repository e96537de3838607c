// Dequantization of ggml block formats (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1 Q2_K Q3_K Q4_K
// Q5_K Q6_K Q8_K) to float, re-derived from the block layouts in ggml-common.h.
#pragma once

#include <cstdint>

#include "peft/io/dtype.h"

namespace peft::io {

// `count` must be a multiple of block_elements(t); `src` holds count / block_elements
// blocks. Throws ValueError for a non-block type or a partial block.
void dequantize_blocks(DType t, const uint8_t* src, uint64_t count, float* dst);

}  // namespace peft::io
