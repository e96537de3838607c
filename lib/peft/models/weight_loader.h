// Fetches float32 weights from a checkpoint by name, checking the shape the model
// expects, so a wrong or incomplete checkpoint fails at load time with an error that
// names the file and the tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "peft/io/checkpoint.h"

namespace peft::models {

class WeightLoader {
 public:
  explicit WeightLoader(const io::Checkpoint& ckpt) : ckpt_(ckpt) {}

  bool has(const std::string& name) const { return ckpt_.contains(name); }
  // Contiguous float32 copy of the tensor (CTranslate2 int8 + "<name>_scale" dequantized). Throws NotFoundError (missing) or ShapeError
  // (shape differs from `expected`; -1 in `expected` matches any size).
  at::Tensor get(const std::string& name, const io::Shape& expected) const;
  // The same for a weight matrix of a linear layer or embedding, kept in float16 when
  // the checkpoint stores float16 (layers::Linear computes in float32 from it; the
  // values are identical, the memory half). Other dtypes come as float32.
  at::Tensor get_matrix(const std::string& name, const io::Shape& expected) const;
  // Shape as stored; throws NotFoundError.
  const io::Shape& shape(const std::string& name) const { return ckpt_.info(name).shape; }
  const io::Checkpoint& checkpoint() const { return ckpt_; }

 private:
  at::Tensor fetch(const std::string& name, const io::Shape& expected, bool keep_half) const;

  const io::Checkpoint& ckpt_;
};

}  // namespace peft::models
