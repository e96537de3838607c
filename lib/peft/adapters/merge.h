// Folding an adapter's module into a projection's weight: W' = W + sign * delta_weight
// (sign -1 takes it out again), re-quantized to the layer's format when the weight is
// quantized. Every model's merged()/unmerged() applies it slot by slot.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "peft/adapters/bound_adapter.h"
#include "peft/adapters/lora.h"
#include "peft/layers/linear.h"

namespace peft::adapters {

// `what` names the module in errors (e.g. "model.layers.3.mlp.up_proj of <model>").
inline void merge_slot(layers::Linear& linear, const BoundAdapter& adapter, size_t slot, double sign,
                       const std::string& what) {
  if (const LoraModule* lora = adapter.module(slot))
    linear = linear.with_weight(linear.dense_weight() + sign * lora->delta_weight(), what);
}

}  // namespace peft::adapters
