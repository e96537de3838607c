// Reading JSON files with errors that name the file, and typed field access that
// names the key: "config.json: key 'd_model': expected an integer, got string".
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace peft::io {

// Parses a whole file. Throws IoError (cannot read) or FormatError (bad JSON, with the
// parser's byte position).
nlohmann::json read_json_file(const std::filesystem::path& path);

// Parses text that came from `origin` (a file name, used in messages).
nlohmann::json parse_json(const std::string& text, const std::string& origin);

// Required / optional typed fields of a JSON object. T: bool, integers, double, float,
// std::string, std::vector of those. Throw FormatError naming origin and key.
template <class T>
T json_get(const nlohmann::json& obj, const std::string& key, const std::string& origin);
template <class T>
std::optional<T> json_get_optional(const nlohmann::json& obj, const std::string& key,
                                   const std::string& origin);
template <class T>
T json_get_or(const nlohmann::json& obj, const std::string& key, const T& fallback,
              const std::string& origin) {
  auto v = json_get_optional<T>(obj, key, origin);
  return v ? *v : fallback;
}

}  // namespace peft::io
