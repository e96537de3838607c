#include "peft/models/weight_loader.h"

#include <ATen/ATen.h>

#include "peft/error.h"
#include "peft/io/ct2.h"
#include "peft/io/torch_tensor.h"
#include "peft/ops/all_finite.h"

namespace peft::models {

at::Tensor WeightLoader::get(const std::string& name, const io::Shape& expected) const {
  return fetch(name, expected, false);
}

at::Tensor WeightLoader::get_matrix(const std::string& name, const io::Shape& expected) const {
  return fetch(name, expected, true);
}

at::Tensor WeightLoader::fetch(const std::string& name, const io::Shape& expected, bool keep_half) const {
  const io::TensorInfo& info = ckpt_.info(name);  // throws NotFoundError naming file and tensor
  bool ok = info.shape.size() == expected.size();
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || expected[i] == info.shape[i];
  if (!ok)
    throw ShapeError(ckpt_.path() + ": tensor '" + name + "': shape " + io::shape_to_string(info.shape) +
                     ", the model expects " + io::shape_to_string(expected));
  const io::TensorData raw = ckpt_.raw(name);
  if (info.dtype == io::DType::I8 && ckpt_.contains(name + "_scale")) {
    // CTranslate2 int8 (convolutions, embeddings, linears read as float): q / scale per row.
    std::vector<float> values = io::ct2_dequantize_int8(raw, ckpt_.raw(name + "_scale"));
    at::Tensor t = at::from_blob(values.data(), info.shape, at::TensorOptions().dtype(at::kFloat)).clone();
    if (!ops::all_finite(t))
      throw ValueError(ckpt_.path() + ": tensor '" + name + "': contains NaN or infinite values");
    return t;
  }
  at::Tensor t = io::to_torch(raw);
  t = (keep_half && t.scalar_type() == at::kHalf ? t : t.to(at::kFloat)).contiguous();
  // A view of the file would keep the whole mapping alive and alias it: own the data.
  if (io::shares_storage(t, raw)) t = t.clone();
  if (!ops::all_finite(t))
    throw ValueError(ckpt_.path() + ": tensor '" + name + "': contains NaN or infinite values");
  return t;
}

}  // namespace peft::models
