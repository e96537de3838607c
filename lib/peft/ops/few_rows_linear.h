// y = x W^T + b for a few rows of x: the shape of every decoder step (one row per beam
// or sequence), where a GEMM is bound by reading W from memory, not by arithmetic.
//
// BLAS packs W into panels on each call before multiplying, which for a handful of
// rows costs more than the product itself (measured here: a [5, 384] x [384, 51864]
// sgemm took 30 ms, one pass over the weights 4-6 ms). This kernel streams W once, row
// by row, and computes all x rows against each W row while it is in cache. W may stay
// in the checkpoint's float16 (converted to float32 in registers: same values as
// converting at load time, half the bytes to read); x, b, y and arithmetic are float32.
//
//   at::Tensor y = peft::ops::few_rows_linear(x, weight, bias);  // x [..., K] -> [..., N]
#pragma once

#include <ATen/core/Tensor.h>

namespace peft::ops {

// Rows of x (the product of its leading dimensions) up to which few_rows_linear is the
// better choice; above it, BLAS.
constexpr int64_t kFewRows = 16;

// x float32 [..., K]; weight float32 or float16 [N, K], contiguous; bias float32 [N]
// or undefined. Returns float32 [..., N]. Throws peft::ShapeError on mismatched shapes
// and peft::ValueError on other dtypes. Any number of rows works; it is fast for few.
at::Tensor few_rows_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// Columns [n0, n1) of y float32 [m_rows, n] = x float32 [m_rows, k] W^T (+ bias when not
// null), W float32 (half false) or float16 (half true) [n, k] contiguous at w, on the
// calling thread: for callers that split the work over their own threads (the Llama
// decoder's fused step). No checks.
void few_rows_linear_rows(const float* x, int64_t m_rows, const void* w, bool half, int64_t n, int64_t k,
                          int64_t n0, int64_t n1, const float* bias, float* y);

// True when the CPU has AVX2, FMA and F16C, which the fast kernel uses (else a portable
// loop runs: same results up to summation order).
bool few_rows_linear_vectorized();

}  // namespace peft::ops
