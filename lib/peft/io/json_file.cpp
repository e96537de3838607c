#include "peft/io/json_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>
#include <vector>

#include "peft/error.h"

namespace peft::io {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path.string() + ": cannot open: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  // rdbuf() extraction of an empty file sets failbit on `text`, which is no read
  // error; only the input stream's badbit means the OS refused.
  if (in.bad()) throw IoError(path.string() + ": cannot read: " + std::strerror(errno));
  return parse_json(text.str(), path.string());
}

nlohmann::json parse_json(const std::string& text, const std::string& origin) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the 1-based position of the character the parser stopped at.
    throw FormatError(origin, "byte " + std::to_string(e.byte), std::string("invalid JSON: ") + e.what());
  }
}

namespace {

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

// What an error message calls the JSON type that T needs.
template <class T>
std::string expected_name() {
  if constexpr (std::is_same_v<T, bool>) {
    return "a boolean";
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    return "a non-negative integer";
  } else if constexpr (std::is_integral_v<T>) {
    return "an integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    return "a number";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "a string";
  } else {
    static_assert(is_vector<T>::value, "unsupported json_get type");
    return "an array of " + expected_name<typename T::value_type>().substr(2) + "s";
  }
}

// "number 3.5", "string \"abc\"" (shortened): enough to see what was there instead.
std::string describe(const nlohmann::json& v) {
  std::string text = v.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  if (v.is_null() || v.is_object() || v.is_array()) return std::string(v.type_name());
  return std::string(v.type_name()) + " " + text;
}

// Converts `v` to T or throws naming origin and `where` (the key, or key[index]).
template <class T>
T convert(const nlohmann::json& v, const std::string& where, const std::string& origin) {
  auto fail = [&](const std::string& problem) -> T { throw FormatError(origin, where, problem); };
  auto wrong_type = [&]() -> T { return fail("expected " + expected_name<T>() + ", got " + describe(v)); };

  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return wrong_type();
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    // nlohmann stores non-negative integers as unsigned and negative ones as signed;
    // a number written with a fraction or exponent is a float and is refused, as a
    // config value like 3.0 for a layer count is more likely a mistake than intent.
    if (!v.is_number_integer()) return wrong_type();
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        return fail("integer " + std::to_string(u) + " is out of range");
      return static_cast<T>(u);
    }
    const int64_t s = v.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      return fail("expected " + expected_name<T>() + ", got " + std::to_string(s));
    } else {
      if (s < static_cast<int64_t>(std::numeric_limits<T>::min()))
        return fail("integer " + std::to_string(s) + " is out of range");
      return static_cast<T>(s);
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return wrong_type();
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return wrong_type();
    return v.get<std::string>();
  } else {
    if (!v.is_array()) return wrong_type();
    T out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(convert<typename T::value_type>(v[i], where + "[" + std::to_string(i) + "]", origin));
    return out;
  }
}

const nlohmann::json* find_field(const nlohmann::json& obj, const std::string& key,
                                 const std::string& origin) {
  if (!obj.is_object())
    throw FormatError(origin, "key '" + key + "'",
                      std::string("cannot look up in a JSON ") + obj.type_name());
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

}  // namespace

template <class T>
T json_get(const nlohmann::json& obj, const std::string& key, const std::string& origin) {
  const nlohmann::json* v = find_field(obj, key, origin);
  if (v == nullptr)
    throw FormatError(origin, "key '" + key + "'", "missing (expected " + expected_name<T>() + ")");
  return convert<T>(*v, "key '" + key + "'", origin);
}

// null counts as absent: Hugging Face configs write unset optional fields as null.
template <class T>
std::optional<T> json_get_optional(const nlohmann::json& obj, const std::string& key,
                                   const std::string& origin) {
  const nlohmann::json* v = find_field(obj, key, origin);
  if (v == nullptr || v->is_null()) return std::nullopt;
  return convert<T>(*v, "key '" + key + "'", origin);
}

#define PEFT_JSON_GET_INSTANTIATE(T)                                                        \
  template T json_get<T>(const nlohmann::json&, const std::string&, const std::string&);    \
  template std::optional<T> json_get_optional<T>(const nlohmann::json&, const std::string&, \
                                                 const std::string&);

PEFT_JSON_GET_INSTANTIATE(bool)
PEFT_JSON_GET_INSTANTIATE(int32_t)
PEFT_JSON_GET_INSTANTIATE(int64_t)
PEFT_JSON_GET_INSTANTIATE(uint64_t)
PEFT_JSON_GET_INSTANTIATE(double)
PEFT_JSON_GET_INSTANTIATE(float)
PEFT_JSON_GET_INSTANTIATE(std::string)
PEFT_JSON_GET_INSTANTIATE(std::vector<int64_t>)
PEFT_JSON_GET_INSTANTIATE(std::vector<std::string>)
PEFT_JSON_GET_INSTANTIATE(std::vector<double>)

#undef PEFT_JSON_GET_INSTANTIATE

}  // namespace peft::io
