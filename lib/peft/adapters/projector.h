// The projection every adaptable model computes: y = linear(x) + the bound adapter's
// delta for that module (slot), or linear(x) alone when the call has no adapter or the
// adapter leaves the module alone. One per forward call and layer; models number their
// slots (see BoundAdapter) and pass the first slot of the layer.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/model_identity.h"
#include "peft/error.h"
#include "peft/layers/linear.h"

namespace peft::adapters {

class Projector {
 public:
  Projector(const BoundAdapter* adapter, size_t first_slot) : adapter_(adapter), first_(first_slot) {}
  at::Tensor operator()(const layers::Linear& linear, const at::Tensor& x, size_t slot) const {
    at::Tensor y = linear(x);
    if (adapter_ != nullptr)
      if (const LoraModule* m = adapter_->module(first_ + slot)) y = y + m->delta(x);
    return y;
  }

 private:
  const BoundAdapter* adapter_;
  size_t first_;
};

// Throws ValueError when `adapter` (may be null) was bound to a model other than `model`;
// `where` names the calling method.
inline void check_bound(const BoundAdapter* adapter, const ModelIdentity& model, const char* where) {
  if (adapter != nullptr && !adapter->bound_to(model))
    throw ValueError(std::string(where) + ": the adapter '" + adapter->adapter().source() +
                     "' was bound to another model; bind it to this one");
}

}  // namespace peft::adapters
