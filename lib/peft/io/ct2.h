// CTranslate2 model directories (model.bin + config.json + vocabulary.{txt,json}).
// model.bin: u32 binary_version, spec name, u32 spec revision, variables (name, rank,
// dims, dtype, byte count, bytes), then aliases (alias -> target). Strings are u16
// length (including the NUL) + bytes. int8 weights come with "<name>_scale" (f32 per
// output row, scale = 127 / row absmax: value = q / scale).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "peft/io/checkpoint.h"
#include "peft/io/mapped_file.h"

namespace peft::io {

class ByteReader;

class Ct2Checkpoint final : public Checkpoint {
 public:
  // `path`: model.bin or the directory holding it. Reads config.json when present
  // into metadata() (plus "spec", "revision", "binary_version"). Aliases resolve to
  // their target tensor (chains followed; cycles and dangling aliases are FormatError).
  explicit Ct2Checkpoint(const std::filesystem::path& path);

  // Cheap sniff: does the file start like a CTranslate2 model.bin?
  static bool looks_like_ct2(const std::filesystem::path& file);

  std::string format() const override { return "ct2"; }
  TensorData raw(const std::string& name) const override;

  uint32_t binary_version() const { return binary_version_; }
  const std::string& spec() const { return spec_; }
  uint32_t revision() const { return revision_; }
  // The file's alias table as written (alias -> the name it points to, which may itself
  // be an alias). raw() follows chains to the variable.
  const std::map<std::string, std::string>& aliases() const { return aliases_; }

  // Scalar variables (rank 0, e.g. "encoder/num_heads", int16/int32/int8/float with an
  // integral value).
  // Throws NotFoundError / FormatError when missing or not a scalar.
  int64_t scalar_int(const std::string& name) const;
  // Vocabulary from vocabulary.txt (one token per line) or vocabulary.json (array).
  // Empty when the directory has neither.
  const std::vector<std::string>& vocabulary() const { return vocabulary_; }

 private:
  void parse_model_bin();
  void read_variable(ByteReader& reader, uint32_t index);
  void read_aliases(ByteReader& reader);

  std::shared_ptr<const MappedFile> file_;
  uint32_t binary_version_ = 0;
  std::string spec_;
  uint32_t revision_ = 0;
  std::map<std::string, uint64_t> offsets_;
  std::map<std::string, std::string> aliases_;
  // Every alias (including the implied "<alias>_scale" ones) -> the variable it resolves to.
  std::map<std::string, std::string> alias_targets_;
  std::vector<std::string> vocabulary_;
};

// Dequantizes an int8 CT2 weight [rows, ...] with its per-row scale [rows]:
// value = q / scale[row]. Throws ShapeError when the two do not fit together.
std::vector<float> ct2_dequantize_int8(const TensorData& weight, const TensorData& scale);

}  // namespace peft::io
