// Which loaded model object an adapter was bound to. A model's address is not enough: a
// model freed and another loaded at the same address would accept the old binding. Each
// model object holds one of these; it is unique within the process, and a copy of a
// model (merged(), unmerged()) gets a new one, so a binding made for one object is
// refused by every other.
#pragma once

#include <atomic>
#include <cstdint>

namespace peft::adapters {

class ModelIdentity {
 public:
  ModelIdentity() : value_(next()) {}
  ModelIdentity(const ModelIdentity&) : ModelIdentity() {}
  ModelIdentity& operator=(const ModelIdentity&) { return *this; }  // an object keeps its identity

  uint64_t value() const { return value_; }
  bool operator==(const ModelIdentity& o) const { return value_ == o.value_; }

 private:
  static uint64_t next() {
    static std::atomic<uint64_t> counter{0};
    return ++counter;
  }
  uint64_t value_;
};

}  // namespace peft::adapters
