// One loaded model per (file, quantization) in a process: every element instance that
// asks for the same model gets the same immutable object (the models are immutable after
// loading and serve concurrent decoders, see peft/models/whisper.h and
// peft/summarization/text_model.h). The cache holds weak references, so a model is freed
// when the last element using it lets go (state NULL), and loaded again when wanted.
//
//   auto model = SharedModels<WhisperModel>::get(key, [&] { return WhisperModel::load(path, quant); });
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace gstpeft {

template <class Model>
class SharedModels {
 public:
  // The model for `key` if one is alive, else the one `load()` returns (which may throw:
  // nothing is cached then). Loads of different keys run concurrently; two elements
  // asking for the same key at once load it once (the second waits for the first).
  template <class Load>
  static std::shared_ptr<const Model> get(const std::string& key, Load&& load) {
    Registry& r = registry();
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard<std::mutex> lock(r.mutex);
      std::shared_ptr<Slot>& s = r.slots[key];
      if (!s) s = std::make_shared<Slot>();
      slot = s;
    }
    std::lock_guard<std::mutex> lock(slot->mutex);
    if (std::shared_ptr<const Model> alive = slot->model.lock()) return alive;
    std::shared_ptr<const Model> model = load();
    slot->model = model;
    ++slot->loads;
    return model;
  }

  // How many times `key` was loaded in this process (tests: sharing means one load).
  static int loads(const std::string& key) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.slots.find(key);
    if (it == r.slots.end()) return 0;
    std::lock_guard<std::mutex> slot_lock(it->second->mutex);
    return it->second->loads;
  }

 private:
  struct Slot {
    std::mutex mutex;  // held while loading, so one load per key at a time
    std::weak_ptr<const Model> model;
    int loads = 0;
  };
  struct Registry {
    std::mutex mutex;
    std::map<std::string, std::shared_ptr<Slot>> slots;
  };
  static Registry& registry() {
    static Registry r;  // never destroyed before the elements: function-local static
    return r;
  }
};

}  // namespace gstpeft
