// A LoRA or AdaLoRA adapter in Hugging Face PEFT's files, read and written:
//   adapter_config.json        (adapter_config.h)
//   adapter_model.safetensors  metadata {"format": "pt"}; per adapted module <m>:
//     LoRA     base_model.model.<m>.lora_A.weight [r, in], .lora_B.weight [out, r]
//     AdaLoRA  base_model.model.<m>.lora_A [k, in], .lora_E [k, 1], .lora_B [out, k],
//              k = the ranks rank_pattern keeps (init_r for modules it does not list)
// (peft's get_peft_model_state_dict with the adapter name stripped). The older
// adapter_model.bin (a torch pickle) is not read: convert it with peft, which saves
// safetensors by default.
//
// An adapter is model-independent; WhisperModel::bind() checks it against a model and
// gives the immutable BoundAdapter that decoding uses.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "peft/adapters/adapter_config.h"
#include "peft/adapters/lora.h"

namespace peft::adapters {

class PeftAdapter {
 public:
  // Reads `dir`. Throws peft::Error subclasses naming the file, tensor or module: another
  // peft_type, missing files or tensors, tensors of modules target_modules does not
  // select, ranks that disagree with r / rank_pattern, rank_pattern entries of the wrong
  // length or naming modules without tensors, NaN or infinite weights.
  static PeftAdapter load(const std::filesystem::path& dir);

  // From parts (validated as load() does). Module names are the model's, without
  // "base_model.model.".
  PeftAdapter(AdapterConfig config, std::vector<LoraModule> modules, std::string source = "");

  // Writes adapter_config.json and adapter_model.safetensors into `dir` (created).
  void save(const std::filesystem::path& dir) const;

  const AdapterConfig& config() const { return config_; }
  const std::map<std::string, LoraModule>& modules() const { return modules_; }
  const std::string& source() const { return source_; }  // the directory, or "" if built in code

  // The scaling peft gives module `name` of this config with `rank` kept ranks.
  static double scaling_for(const AdapterConfig& config, const std::string& name, int64_t rank);

 private:
  void validate() const;

  AdapterConfig config_;
  std::map<std::string, LoraModule> modules_;
  std::string source_;
};

}  // namespace peft::adapters
