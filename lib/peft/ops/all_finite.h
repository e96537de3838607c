// Whether every value of a tensor is finite, without allocating: at::isfinite(t).all()
// builds three temporaries the size of t (abs, mul, eq), which for a 51864 x 384 float16
// embedding was the peak of the whole process (210 MB of heap at load, measured with
// heaptrack). This reads the bits once, in parallel over libtorch's threads.
#pragma once

#include <ATen/core/Tensor.h>

namespace peft::ops {

// True when no value of t is NaN or infinite. float32, float64, float16 and bfloat16 are
// checked (a non-contiguous t is made contiguous first); integer and bool tensors are
// always finite.
bool all_finite(const at::Tensor& t);

}  // namespace peft::ops
