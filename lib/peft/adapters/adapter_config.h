// Hugging Face PEFT's adapter_config.json for LoRA and AdaLoRA (peft 0.13's LoraConfig /
// AdaLoraConfig), read and written so that peft loads what we write and we load what
// peft writes. Keys this reader does not model are kept and written back unchanged.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace peft::adapters {

enum class PeftType { Lora, AdaLora };

struct AdapterConfig {
  PeftType peft_type = PeftType::Lora;

  // Which modules are adapted: a list (a module matches when its name equals an entry
  // or ends with "." + entry, optionally restricted to layers_to_transform), or, when
  // target_regex is set, a regular expression the whole module name must match.
  std::vector<std::string> target_modules;
  std::optional<std::string> target_regex;
  std::vector<int64_t> layers_to_transform;  // empty: every layer
  std::vector<std::string> layers_pattern;   // e.g. "layers"; empty: any "<name>.<N>." part

  int64_t r = 8;                // LoRA rank (AdaLoRA: unused, init_r is)
  double lora_alpha = 8;        // scaling numerator
  double lora_dropout = 0;      // training only: ignored at inference
  bool use_rslora = false;      // LoRA scaling alpha / sqrt(r) instead of alpha / r
  bool fan_in_fan_out = false;  // GPT-2 Conv1D layout; peft resets it for nn.Linear, so do we
  std::string bias = "none";    // only "none": peft would also save the base biases otherwise

  // LoRA's per-module overrides: key = regex, a module "<...>.<key>" matches it.
  std::map<std::string, int64_t> rank_overrides;  // LoRA "rank_pattern"
  std::map<std::string, double> alpha_overrides;  // LoRA "alpha_pattern"

  // AdaLoRA. The rank allocator's state after training: for each adapted module,
  // "<module>.lora_E" -> init_r flags, true for the ranks kept; the saved A, E, B hold
  // the kept ranks only. Modules absent from it keep all init_r ranks.
  int64_t init_r = 12, target_r = 8;
  int64_t tinit = 0, tfinal = 0, deltaT = 1;
  std::optional<int64_t> total_step;
  double beta1 = 0.85, beta2 = 0.85, orth_reg_weight = 0.5;
  std::map<std::string, std::vector<bool>> rank_pattern;

  std::string task_type;  // "" when null
  std::string base_model_name_or_path;

  // Every key as read (or empty for a config built in code); write() starts from it so
  // keys not modelled above survive a round trip.
  nlohmann::json original = nlohmann::json::object();

  // Parses and validates adapter_config.json. Throws peft::ValueError naming the file
  // for another peft_type, a bias other than "none", DoRA, modules_to_save, layer
  // replication, a bad regex; FormatError for malformed fields.
  static AdapterConfig read(const std::filesystem::path& file);
  static AdapterConfig from_json(const nlohmann::json& j, const std::string& origin);

  // peft's layout: every field, sorted keys, two-space indent.
  nlohmann::json to_json() const;
  void write(const std::filesystem::path& file) const;

  // Whether module `name` (e.g. "model.decoder.layers.0.self_attn.q_proj") is adapted.
  bool targets(const std::string& name) const;

  // LoRA: the rank and alpha peft gives module `name` (rank_overrides/alpha_overrides).
  int64_t lora_rank(const std::string& name) const;
  double lora_alpha_for(const std::string& name) const;

  const char* type_name() const { return peft_type == PeftType::Lora ? "LORA" : "ADALORA"; }
};

}  // namespace peft::adapters
