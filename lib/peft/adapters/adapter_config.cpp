// peft 0.13's config handling re-derived: LoraConfig / AdaLoraConfig fields and
// defaults (tuners/lora/config.py, tuners/adalora/config.py), target matching
// (tuners/tuners_utils.py check_target_module_exists), the LoRA rank/alpha pattern lookup
// (tuners/lora/model.py _create_and_replace), and PeftConfig.save_pretrained's JSON.
#include "peft/adapters/adapter_config.h"

#include <cmath>
#include <fstream>
#include <regex>

#include "peft/error.h"
#include "peft/io/json_file.h"

namespace peft::adapters {

namespace {

bool full_match(const std::string& pattern, const std::string& text) {
  return std::regex_match(text, std::regex(pattern, std::regex::ECMAScript));
}

// A Python-style regex that std::regex (ECMAScript) cannot compile is refused up front,
// naming the key, rather than failing later while matching.
void check_regex(const std::string& pattern, const std::string& origin, const std::string& key) {
  try {
    std::regex re(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw ValueError(origin + ": " + key + " '" + pattern +
                     "' is not a regular expression std::regex accepts (" + e.what() + ")");
  }
}

// A JSON object of values of one type (null or absent: empty), errors naming the key.
template <class V>
std::map<std::string, V> json_map(const nlohmann::json& j, const std::string& key,
                                  const std::string& origin) {
  std::map<std::string, V> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  const nlohmann::json& obj = j[key];
  if (!obj.is_object()) throw FormatError(origin, "key '" + key + "'", "expected an object");
  for (const auto& item : obj.items()) {
    if constexpr (std::is_same_v<V, std::vector<bool>>) {
      const nlohmann::json& v = item.value();
      bool ok = v.is_array();
      for (size_t i = 0; ok && i < v.size(); ++i) ok = v[i].is_boolean();
      if (!ok)
        throw FormatError(origin, "key '" + key + "' entry '" + item.key() + "'",
                          "expected a list of booleans");
      out[item.key()] = v.get<std::vector<bool>>();
    } else {
      out[item.key()] = io::json_get<V>(obj, item.key(), origin + " " + key);
    }
  }
  return out;
}

nlohmann::json number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::abs(v) < 1e15) return static_cast<int64_t>(v);
  return v;
}

}  // namespace

AdapterConfig AdapterConfig::read(const std::filesystem::path& file) {
  return from_json(io::read_json_file(file), file.string());
}

AdapterConfig AdapterConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw FormatError(origin, "top level", "expected a JSON object");
  AdapterConfig c;
  c.original = j;
  const std::string type = io::json_get_or<std::string>(j, "peft_type", "", origin);
  if (type == "LORA") {
    c.peft_type = PeftType::Lora;
  } else if (type == "ADALORA") {
    c.peft_type = PeftType::AdaLora;
  } else {
    throw ValueError(origin + ": peft_type is '" + type + "'; only LORA and ADALORA adapters are supported");
  }

  if (j.contains("target_modules") && j["target_modules"].is_string()) {
    c.target_regex = j["target_modules"].get<std::string>();
    check_regex(*c.target_regex, origin, "target_modules");
  } else {
    c.target_modules = io::json_get_or<std::vector<std::string>>(j, "target_modules", {}, origin);
  }
  if (!c.target_regex && c.target_modules.empty())
    throw ValueError(origin + ": target_modules is missing or empty: no module would be adapted");
  if (j.contains("layers_to_transform") && j["layers_to_transform"].is_number_integer())
    c.layers_to_transform = {j["layers_to_transform"].get<int64_t>()};
  else
    c.layers_to_transform = io::json_get_or<std::vector<int64_t>>(j, "layers_to_transform", {}, origin);
  if (j.contains("layers_pattern") && j["layers_pattern"].is_string())
    c.layers_pattern = {j["layers_pattern"].get<std::string>()};
  else
    c.layers_pattern = io::json_get_or<std::vector<std::string>>(j, "layers_pattern", {}, origin);
  if (c.target_regex && !c.layers_to_transform.empty())
    throw ValueError(origin +
                     ": layers_to_transform cannot be used when target_modules is a regex (peft refuses it)");

  c.r = io::json_get_or<int64_t>(j, "r", 8, origin);
  c.lora_alpha = io::json_get_or<double>(j, "lora_alpha", 8, origin);
  c.lora_dropout = io::json_get_or<double>(j, "lora_dropout", 0, origin);
  c.use_rslora = io::json_get_or<bool>(j, "use_rslora", false, origin);
  c.fan_in_fan_out = io::json_get_or<bool>(j, "fan_in_fan_out", false, origin);
  c.bias = io::json_get_or<std::string>(j, "bias", "none", origin);
  if (c.bias != "none")
    throw ValueError(origin + ": bias is '" + c.bias +
                     "'; only \"none\" is supported (adapters that also train the base biases are not)");
  if (io::json_get_or<bool>(j, "use_dora", false, origin))
    throw ValueError(origin + ": use_dora is true; DoRA adapters are not supported");
  if (j.contains("modules_to_save") && !j["modules_to_save"].is_null() && !j["modules_to_save"].empty())
    throw ValueError(origin +
                     ": modules_to_save is set; adapters carrying fully trained modules are not supported");
  if (j.contains("layer_replication") && !j["layer_replication"].is_null())
    throw ValueError(origin + ": layer_replication is set; it is not supported");
  c.task_type = io::json_get_or<std::string>(j, "task_type", "", origin);
  c.base_model_name_or_path = io::json_get_or<std::string>(j, "base_model_name_or_path", "", origin);

  if (c.peft_type == PeftType::Lora) {
    if (c.r <= 0) throw ValueError(origin + ": r = " + std::to_string(c.r) + ", must be positive");
    c.rank_overrides = json_map<int64_t>(j, "rank_pattern", origin);
    c.alpha_overrides = json_map<double>(j, "alpha_pattern", origin);
    for (const auto& [key, rank] : c.rank_overrides) {
      check_regex(".*\\." + key, origin, "rank_pattern key");
      if (rank <= 0)
        throw ValueError(origin + ": rank_pattern['" + key + "'] = " + std::to_string(rank) +
                         ", must be positive");
    }
    for (const auto& kv : c.alpha_overrides) check_regex(".*\\." + kv.first, origin, "alpha_pattern key");
  } else {
    c.init_r = io::json_get_or<int64_t>(j, "init_r", 12, origin);
    c.target_r = io::json_get_or<int64_t>(j, "target_r", 8, origin);
    c.tinit = io::json_get_or<int64_t>(j, "tinit", 0, origin);
    c.tfinal = io::json_get_or<int64_t>(j, "tfinal", 0, origin);
    c.deltaT = io::json_get_or<int64_t>(j, "deltaT", 1, origin);
    c.total_step = io::json_get_optional<int64_t>(j, "total_step", origin);
    c.beta1 = io::json_get_or<double>(j, "beta1", 0.85, origin);
    c.beta2 = io::json_get_or<double>(j, "beta2", 0.85, origin);
    c.orth_reg_weight = io::json_get_or<double>(j, "orth_reg_weight", 0.5, origin);
    c.rank_pattern = json_map<std::vector<bool>>(j, "rank_pattern", origin);
    if (c.init_r <= 0)
      throw ValueError(origin + ": init_r = " + std::to_string(c.init_r) + ", must be positive");
    // Newer peft (0.14+) checks the schedule when it parses a config; 0.13 writes
    // total_step null by default, so only a given total_step is checked.
    if (c.total_step && (*c.total_step <= 0 || c.tinit >= *c.total_step - c.tfinal))
      throw ValueError(origin + ": total_step " + std::to_string(*c.total_step) + ", tinit " +
                       std::to_string(c.tinit) + ", tfinal " + std::to_string(c.tfinal) +
                       ": the schedule needs total_step > 0 and tinit < total_step - tfinal");
    for (const auto& [key, flags] : c.rank_pattern)
      if (static_cast<int64_t>(flags.size()) != c.init_r)
        throw ValueError(origin + ": rank_pattern['" + key + "'] has " + std::to_string(flags.size()) +
                         " entries; init_r is " + std::to_string(c.init_r));
  }
  return c;
}

nlohmann::json AdapterConfig::to_json() const {
  nlohmann::json j = original.is_object() ? original : nlohmann::json::object();
  // peft's fields with its defaults, for a config built in code; a read config keeps its own.
  const nlohmann::json defaults = {{"inference_mode", true},
                                   {"init_lora_weights", true},
                                   {"layer_replication", nullptr},
                                   {"loftq_config", nlohmann::json::object()},
                                   {"megatron_config", nullptr},
                                   {"megatron_core", "megatron.core"},
                                   {"modules_to_save", nullptr},
                                   {"revision", nullptr},
                                   {"use_dora", false}};
  for (const auto& [key, value] : defaults.items())
    if (!j.contains(key)) j[key] = value;

  j["peft_type"] = type_name();
  if (target_regex)
    j["target_modules"] = *target_regex;
  else
    j["target_modules"] = target_modules;
  if (layers_to_transform.empty())
    j["layers_to_transform"] = nullptr;
  else if (!(original.contains("layers_to_transform") && original["layers_to_transform"].is_number_integer()))
    j["layers_to_transform"] = layers_to_transform;
  if (layers_pattern.empty())
    j["layers_pattern"] = nullptr;
  else if (!(original.contains("layers_pattern") && original["layers_pattern"].is_string()))
    j["layers_pattern"] = layers_pattern;
  j["r"] = r;
  j["lora_alpha"] = number(lora_alpha);
  j["lora_dropout"] = lora_dropout;
  j["use_rslora"] = use_rslora;
  j["fan_in_fan_out"] = fan_in_fan_out;
  j["bias"] = bias;
  j["task_type"] = task_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(task_type);
  j["base_model_name_or_path"] =
      base_model_name_or_path.empty() && !original.contains("base_model_name_or_path")
          ? nlohmann::json(nullptr)
          : nlohmann::json(base_model_name_or_path);
  nlohmann::json alphas = nlohmann::json::object();
  for (const auto& [key, alpha] : alpha_overrides) alphas[key] = number(alpha);
  j["alpha_pattern"] = alphas;
  if (peft_type == PeftType::Lora) {
    j["rank_pattern"] = rank_overrides;
    if (rank_overrides.empty()) j["rank_pattern"] = nlohmann::json::object();
  } else {
    j["init_r"] = init_r;
    j["target_r"] = target_r;
    j["tinit"] = tinit;
    j["tfinal"] = tfinal;
    j["deltaT"] = deltaT;
    j["total_step"] = total_step ? nlohmann::json(*total_step) : nlohmann::json(nullptr);
    j["beta1"] = beta1;
    j["beta2"] = beta2;
    j["orth_reg_weight"] = orth_reg_weight;
    // peft writes None when no rank was ever allocated.
    j["rank_pattern"] = rank_pattern.empty() ? nlohmann::json(nullptr) : nlohmann::json(rank_pattern);
  }
  return j;
}

void AdapterConfig::write(const std::filesystem::path& file) const {
  // json.dumps(indent=2, sort_keys=True) with ASCII escapes, no trailing newline: nlohmann
  // objects are sorted maps, so dump(2) with ensure_ascii gives the same text.
  const std::string text = to_json().dump(2, ' ', /*ensure_ascii=*/true);
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw IoError(file.string() + ": cannot write the adapter config");
}

bool AdapterConfig::targets(const std::string& name) const {
  if (target_regex) return full_match(*target_regex, name);
  bool found = false;
  for (const auto& t : target_modules) {
    if (name == t) return true;  // named exactly: no layer filter (as in peft)
    if (name.size() > t.size() + 1 && name.compare(name.size() - t.size(), t.size(), t) == 0 &&
        name[name.size() - t.size() - 1] == '.')
      found = true;
  }
  if (!found || layers_to_transform.empty()) return found;
  std::smatch m;
  std::optional<int64_t> index;
  if (layers_pattern.empty()) {
    static const std::regex any_layer(R"(^.*\.[^.]*\.(\d+)\.)");
    if (std::regex_search(name, m, any_layer)) index = std::stoll(m[1]);
  } else {
    for (const auto& p : layers_pattern)
      if (std::regex_search(name, m, std::regex("^.*\\." + p + "\\.(\\d+)\\."))) {
        index = std::stoll(m[1]);
        break;
      }
  }
  if (!index) return false;
  for (int64_t l : layers_to_transform)
    if (l == *index) return true;
  return false;
}

namespace {
// peft: the first key of rank_pattern then alpha_pattern (in that order) such that
// the module name matches ".*\.<key>$" decides both the rank and alpha lookups.
std::optional<std::string> pattern_key(const AdapterConfig& c, const std::string& name) {
  for (const auto& kv : c.rank_overrides)
    if (full_match(".*\\." + kv.first, name)) return kv.first;
  for (const auto& kv : c.alpha_overrides)
    if (full_match(".*\\." + kv.first, name)) return kv.first;
  return std::nullopt;
}
}  // namespace

int64_t AdapterConfig::lora_rank(const std::string& name) const {
  const auto key = pattern_key(*this, name);
  if (key) {
    auto it = rank_overrides.find(*key);
    if (it != rank_overrides.end()) return it->second;
  }
  return r;
}

double AdapterConfig::lora_alpha_for(const std::string& name) const {
  const auto key = pattern_key(*this, name);
  if (key) {
    auto it = alpha_overrides.find(*key);
    if (it != alpha_overrides.end()) return it->second;
  }
  return lora_alpha;
}

}  // namespace peft::adapters
