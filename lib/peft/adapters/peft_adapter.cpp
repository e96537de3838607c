// peft's adapter files re-derived from utils/save_and_load.py (get/set_peft_model_state_dict)
// and tuners/adalora/model.py (resize_state_dict_by_rank_pattern, resize_modules_by_rank_pattern).
#include "peft/adapters/peft_adapter.h"

#include <ATen/ATen.h>

#include <cmath>

#include "peft/error.h"
#include "peft/io/safetensors.h"
#include "peft/io/torch_tensor.h"

namespace peft::adapters {

namespace fs = std::filesystem;

namespace {

const std::string kPrefix = "base_model.model.";
const std::string kEKey = ".lora_E";  // rank_pattern keys: "<module>.lora_E"

struct Parts {
  at::Tensor a, e, b;
};

// "<module>.lora_A.weight" (LoRA) / "<module>.lora_A" (AdaLoRA) -> suffix lists.
const std::vector<std::pair<std::string, at::Tensor Parts::*>>& suffixes(PeftType type) {
  static const std::vector<std::pair<std::string, at::Tensor Parts::*>> lora = {
      {".lora_A.weight", &Parts::a}, {".lora_B.weight", &Parts::b}};
  static const std::vector<std::pair<std::string, at::Tensor Parts::*>> adalora = {
      {".lora_A", &Parts::a}, {".lora_E", &Parts::e}, {".lora_B", &Parts::b}};
  return type == PeftType::Lora ? lora : adalora;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

double PeftAdapter::scaling_for(const AdapterConfig& c, const std::string& name, int64_t rank) {
  if (c.peft_type == PeftType::Lora) {
    const double r = static_cast<double>(c.lora_rank(name));
    return c.lora_alpha_for(name) / (c.use_rslora ? std::sqrt(r) : r);
  }
  // SVDLinear.update_layer: scaling = alpha if alpha > 0 else r, where r is init_r when
  // the layer is created and the kept rank when loading resizes it by rank_pattern; the
  // divisor ranknum stays init_r either way (it is copied back after the resize).
  const bool resized = c.rank_pattern.count(name + kEKey) != 0;
  const double s = c.lora_alpha > 0 ? c.lora_alpha : static_cast<double>(resized ? rank : c.init_r);
  return s / (static_cast<double>(c.init_r) + 1e-5);
}

PeftAdapter PeftAdapter::load(const fs::path& dir) {
  const fs::path config_file = dir / "adapter_config.json";
  const fs::path weights_file = dir / "adapter_model.safetensors";
  if (!fs::exists(config_file)) throw NotFoundError(config_file.string() + ": no adapter config");
  AdapterConfig config = AdapterConfig::read(config_file);
  if (!fs::exists(weights_file)) {
    if (fs::exists(dir / "adapter_model.bin"))
      throw NotFoundError(
          weights_file.string() +
          ": not found; adapter_model.bin (a torch pickle) is not read: save the adapter with "
          "peft's safe_serialization=True (its default) to get adapter_model.safetensors");
    throw NotFoundError(weights_file.string() + ": not found");
  }
  const io::SafetensorsCheckpoint ckpt(weights_file);
  const std::string origin = weights_file.string();

  std::map<std::string, Parts> parts;
  for (const auto& info : ckpt.tensors()) {
    const std::string& key = info.name;
    if (key.compare(0, kPrefix.size(), kPrefix) != 0)
      throw ValueError(origin + ": tensor '" + key + "': expected a name starting with '" + kPrefix + "'");
    std::string module;
    at::Tensor Parts::*slot = nullptr;
    for (const auto& [suffix, member] : suffixes(config.peft_type))
      if (ends_with(key, suffix) && key.size() > kPrefix.size() + suffix.size()) {
        module = key.substr(kPrefix.size(), key.size() - kPrefix.size() - suffix.size());
        slot = member;
      }
    if (slot == nullptr)
      throw ValueError(
          origin + ": tensor '" + key + "' is not a " + config.type_name() + " tensor of a linear module (" +
          (config.peft_type == PeftType::Lora ? "lora_A.weight, lora_B.weight" : "lora_A, lora_E, lora_B") +
          ")");
    if (info.dtype != io::DType::F32 && info.dtype != io::DType::F16 && info.dtype != io::DType::BF16 &&
        info.dtype != io::DType::F64)
      throw ValueError(origin + ": tensor '" + key + "': dtype " + std::string(io::dtype_name(info.dtype)) +
                       ", expected a float type");
    parts[module].*slot = io::load_tensor(ckpt, key).to(at::kFloat).clone();
  }
  if (parts.empty()) throw ValueError(origin + ": no adapter tensors");

  std::vector<LoraModule> modules;
  for (auto& [name, p] : parts) {
    for (const auto& [suffix, member] : suffixes(config.peft_type))
      if (!(p.*member).defined())
        throw NotFoundError(origin + ": module '" + name + "': tensor '" + kPrefix + name + suffix +
                            "' is missing");
    const int64_t rank = p.a.dim() > 0 ? p.a.size(0) : 0;
    const double scaling = scaling_for(config, name, rank);
    modules.push_back(config.peft_type == PeftType::Lora ? LoraModule::lora(name, p.a, p.b, scaling)
                                                         : LoraModule::adalora(name, p.a, p.e, p.b, scaling));
  }
  return PeftAdapter(std::move(config), std::move(modules), dir.string());
}

PeftAdapter::PeftAdapter(AdapterConfig config, std::vector<LoraModule> modules, std::string source)
    : config_(std::move(config)), source_(std::move(source)) {
  for (auto& m : modules) {
    const std::string name = m.name();
    if (!modules_.emplace(name, std::move(m)).second)
      throw ValueError((source_.empty() ? "adapter" : source_) + ": module '" + name + "' given twice");
  }
  validate();
}

void PeftAdapter::validate() const {
  const std::string origin = source_.empty() ? std::string("adapter") : source_;
  if (modules_.empty()) throw ValueError(origin + ": no adapted modules");
  const bool lora = config_.peft_type == PeftType::Lora;
  for (const auto& [name, m] : modules_) {
    if ((m.kind() == LoraModule::Kind::Lora) != lora)
      throw ValueError(origin + ": module '" + name + "' is not a " + config_.type_name() + " module");
    if (!config_.targets(name))
      throw ValueError(origin + ": module '" + name + "' has tensors but target_modules does not select it");
    int64_t expected = lora ? config_.lora_rank(name) : config_.init_r;
    std::string why = lora ? "r" : "init_r";
    if (!lora) {
      auto it = config_.rank_pattern.find(name + kEKey);
      if (it != config_.rank_pattern.end()) {
        expected = 0;
        for (bool kept : it->second) expected += kept ? 1 : 0;
        why = "its rank_pattern entry keeps";
      }
    }
    if (m.rank() != expected)
      throw ShapeError(origin + ": module '" + name + "': rank " + std::to_string(m.rank()) + ", but " + why +
                       " " + std::to_string(expected));
    if (std::abs(m.scaling() - scaling_for(config_, name, m.rank())) > 1e-12 * std::abs(m.scaling()))
      throw ValueError(origin + ": module '" + name + "': scaling " + std::to_string(m.scaling()) +
                       " differs from the config's " + std::to_string(scaling_for(config_, name, m.rank())));
  }
  for (const auto& [key, flags] : config_.rank_pattern) {
    if (!ends_with(key, kEKey))
      throw ValueError(origin + ": rank_pattern key '" + key + "' does not end in '" + kEKey + "'");
    const std::string module = key.substr(0, key.size() - kEKey.size());
    if (modules_.count(module) == 0)
      throw ValueError(origin + ": rank_pattern names module '" + module +
                       "', which the adapter has no tensors for");
    if (static_cast<int64_t>(flags.size()) != config_.init_r)
      throw ValueError(origin + ": rank_pattern['" + key + "'] has " + std::to_string(flags.size()) +
                       " entries; init_r is " + std::to_string(config_.init_r));
  }
}

void PeftAdapter::save(const fs::path& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string() + ": cannot create the directory: " + ec.message());
  std::vector<at::Tensor> keep;  // contiguous float32 copies the writer points into
  std::vector<io::TensorToWrite> tensors;
  for (const auto& [name, m] : modules_) {
    for (const auto& [suffix, member] : suffixes(config_.peft_type)) {
      Parts p{m.a(), m.e(), m.b()};
      at::Tensor t = (p.*member).to(at::kFloat).contiguous();
      keep.push_back(t);
      io::TensorToWrite w;
      w.name = kPrefix + name + suffix;
      w.dtype = io::DType::F32;
      w.shape = t.sizes().vec();
      w.data = t.data_ptr();
      w.nbytes = static_cast<uint64_t>(t.numel()) * sizeof(float);
      tensors.push_back(std::move(w));
    }
  }
  io::write_safetensors(dir / "adapter_model.safetensors", tensors, {{"format", "pt"}});
  config_.write(dir / "adapter_config.json");
}

}  // namespace peft::adapters
