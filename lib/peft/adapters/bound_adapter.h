// An adapter checked against one loaded model: for each of the model's adaptable linear
// modules (numbered by the model, "slots"), the adapter's module or none. Immutable, so
// one BoundAdapter serves any number of threads, and several can be bound to the same
// model at once; each forward call names the one it uses (or none).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "peft/adapters/model_identity.h"
#include "peft/adapters/peft_adapter.h"

namespace peft::adapters {

// A model's adaptable linear module: its Hugging Face name ("" for an unused slot) and
// its widths.
struct ModuleSlot {
  std::string name;
  int64_t in_features = 0, out_features = 0;
};

class BoundAdapter {
 public:
  // Checks `adapter` against `slots` (the model's modules) and binds it. Throws
  // ValueError when target_modules select none of the model's modules or the adapter
  // has a module the model lacks, ShapeError when a module's widths differ from the
  // model's; `model_name` (e.g. its path) is named in the messages. `model` identifies
  // the model object, so that using the binding with another model is refused.
  static std::shared_ptr<const BoundAdapter> bind(const ModelIdentity& model, const std::string& model_name,
                                                  const std::vector<ModuleSlot>& slots,
                                                  const PeftAdapter& adapter);

  // The adapter's module for `slot`, or nullptr.
  const LoraModule* module(size_t slot) const { return slot < slots_.size() ? slots_[slot] : nullptr; }
  bool bound_to(const ModelIdentity& model) const { return model_ == model.value(); }
  const PeftAdapter& adapter() const { return *adapter_; }

 private:
  BoundAdapter() = default;
  uint64_t model_ = 0;
  std::shared_ptr<const PeftAdapter> adapter_;  // owns the modules slots_ point to
  std::vector<const LoraModule*> slots_;
};

}  // namespace peft::adapters
