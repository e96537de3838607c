#include "peft/adapters/lora.h"

#include <ATen/ATen.h>

#include "peft/error.h"
#include "peft/io/dtype.h"
#include "peft/ops/all_finite.h"

namespace peft::adapters {

namespace {

at::Tensor checked(const std::string& module, const char* what, const at::Tensor& t, int64_t rank) {
  if (!t.defined() || t.dim() != rank)
    throw ShapeError("adapter module '" + module + "': " + what + " must have " + std::to_string(rank) +
                     " dimensions, got " + (t.defined() ? io::shape_to_string(t.sizes().vec()) : "none"));
  at::Tensor f = t.to(at::kFloat).contiguous();
  if (!ops::all_finite(f))
    throw ValueError("adapter module '" + module + "': " + what + " holds NaN or infinite values");
  return f;
}

}  // namespace

LoraModule LoraModule::lora(std::string name, at::Tensor a, at::Tensor b, double scaling) {
  LoraModule m;
  m.kind_ = Kind::Lora;
  m.a_ = checked(name, "lora_A", a, 2);
  m.b_ = checked(name, "lora_B", b, 2);
  if (m.b_.size(1) != m.a_.size(0))
    throw ShapeError("adapter module '" + name + "': lora_A " + io::shape_to_string(m.a_.sizes().vec()) +
                     " and lora_B " + io::shape_to_string(m.b_.sizes().vec()) + " disagree on the rank");
  m.name_ = std::move(name);
  m.scaling_ = scaling;
  m.down_ = m.a_;
  m.up_ = m.b_ * scaling;
  return m;
}

LoraModule LoraModule::adalora(std::string name, at::Tensor a, at::Tensor e, at::Tensor b, double scaling) {
  LoraModule m;
  m.kind_ = Kind::AdaLora;
  m.a_ = checked(name, "lora_A", a, 2);
  m.e_ = checked(name, "lora_E", e, 2);
  m.b_ = checked(name, "lora_B", b, 2);
  const int64_t k = m.a_.size(0);
  if (m.e_.size(0) != k || m.e_.size(1) != 1 || m.b_.size(1) != k)
    throw ShapeError("adapter module '" + name + "': lora_A " + io::shape_to_string(m.a_.sizes().vec()) +
                     ", lora_E " + io::shape_to_string(m.e_.sizes().vec()) + " and lora_B " +
                     io::shape_to_string(m.b_.sizes().vec()) + " do not fit ([k, in], [k, 1], [out, k])");
  m.name_ = std::move(name);
  m.scaling_ = scaling;
  m.down_ = m.a_ * m.e_;
  m.up_ = m.b_ * scaling;
  return m;
}

at::Tensor LoraModule::delta(const at::Tensor& x) const {
  if (x.size(-1) != in_features())
    throw ShapeError("adapter module '" + name_ + "': input width " + std::to_string(x.size(-1)) +
                     ", expected " + std::to_string(in_features()));
  if (rank() == 0) {
    auto sizes = x.sizes().vec();
    sizes.back() = out_features();
    return at::zeros(sizes, x.options().dtype(at::kFloat));
  }
  return at::matmul(at::matmul(x.to(at::kFloat), down_.t()), up_.t());
}

at::Tensor LoraModule::delta_weight() const {
  if (rank() == 0) return at::zeros({out_features(), in_features()}, at::kFloat);
  return at::mm(up_, down_);
}

}  // namespace peft::adapters
