#include "peft/error.h"

namespace peft {

namespace {
std::string format_message(const std::string& file, const std::string& where,
                           const std::string& problem) {
  std::string msg = file.empty() ? std::string("<memory>") : file;
  if (!where.empty()) msg += ": " + where;
  msg += ": " + problem;
  return msg;
}
}  // namespace

FormatError::FormatError(std::string file, std::string where, const std::string& problem)
    : Error(format_message(file, where, problem)), file_(std::move(file)), where_(std::move(where)) {}

}  // namespace peft
