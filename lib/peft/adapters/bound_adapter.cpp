#include "peft/adapters/bound_adapter.h"

#include <map>

#include "peft/error.h"

namespace peft::adapters {

std::shared_ptr<const BoundAdapter> BoundAdapter::bind(const ModelIdentity& model,
                                                       const std::string& model_name,
                                                       const std::vector<ModuleSlot>& slots,
                                                       const PeftAdapter& adapter) {
  const std::string origin = adapter.source().empty() ? std::string("adapter") : adapter.source();
  std::map<std::string, size_t> by_name;
  bool any_targeted = false;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].name.empty()) continue;
    by_name[slots[i].name] = i;
    any_targeted = any_targeted || adapter.config().targets(slots[i].name);
  }
  if (!any_targeted) {
    std::string targets =
        adapter.config().target_regex ? "regex '" + *adapter.config().target_regex + "'" : "";
    for (const auto& t : adapter.config().target_modules) targets += (targets.empty() ? "" : ", ") + t;
    throw ValueError(origin + ": target_modules (" + targets + ") match no module of " + model_name);
  }
  auto bound = std::shared_ptr<BoundAdapter>(new BoundAdapter());
  bound->model_ = model.value();
  bound->adapter_ = std::make_shared<const PeftAdapter>(adapter);
  bound->slots_.assign(slots.size(), nullptr);
  for (const auto& [name, module] : bound->adapter_->modules()) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw ValueError(origin + ": module '" + name + "' is not an adaptable linear module of " + model_name);
    const ModuleSlot& slot = slots[it->second];
    if (module.in_features() != slot.in_features || module.out_features() != slot.out_features)
      throw ShapeError(origin + ": module '" + name + "': the adapter maps " +
                       std::to_string(module.in_features()) + " -> " + std::to_string(module.out_features()) +
                       " features, the model's linear " + std::to_string(slot.in_features) + " -> " +
                       std::to_string(slot.out_features));
    bound->slots_[it->second] = &module;
  }
  // peft saves every module it adapted; one missing means a truncated or edited file.
  for (size_t i = 0; i < slots.size(); ++i)
    if (!slots[i].name.empty() && bound->slots_[i] == nullptr && adapter.config().targets(slots[i].name))
      throw NotFoundError(origin + ": module '" + slots[i].name + "' of " + model_name +
                          " is selected by target_modules but the adapter has no tensors for it");
  return bound;
}

}  // namespace peft::adapters
