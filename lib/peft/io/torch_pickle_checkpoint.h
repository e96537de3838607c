// openai-whisper checkpoints (.pt): what torch.save writes for
//   {"dims": {...ModelDimensions...}, "model_state_dict": model.state_dict()}
// a zip archive (zip_archive.h) of a pickle, <archive>/data.pkl, and one member per
// tensor storage, <archive>/data/<key>.
//
// libtorch 1.13's own reader cannot load these files: torch::jit::pickle_load fails on
// the state dict ("Expected GenericDict but got None": its unpickler turns
// collections.OrderedDict into None, expecting it only as _rebuild_tensor_v2's hooks
// argument) and on any one-entry dict ("Unknown opcode for unpickling at 0x73", the
// SETITEM opcode). So the pickle is interpreted here, restricted to what torch.save
// emits for plain tensors: dicts, tuples, lists, numbers, strings, OrderedDict,
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the torch.*Storage types.
// Any other global is refused (FormatError), never resolved, so a .pt file cannot run
// code. Tensors are zero-copy views of the mapped storages.
//
//   TorchPickleCheckpoint ckpt("base.pt");
//   ckpt.metadata()["dims"]["n_audio_state"];   // 512
//   ckpt.raw("encoder.conv1.weight");          // F16 [512, 80, 3]
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "peft/io/checkpoint.h"
#include "peft/io/mapped_file.h"

namespace peft::io {

class TorchPickleCheckpoint final : public Checkpoint {
 public:
  // Tensors: the entries of "model_state_dict", by their state-dict names. Metadata:
  // the other top-level entries holding plain values (openai's "dims") as JSON. Throws
  // FormatError naming the file and what is wrong (truncated, not a torch.save zip,
  // an unsupported pickle opcode or global, a non-contiguous tensor).
  explicit TorchPickleCheckpoint(const std::filesystem::path& path);

  // A zip file named *.pt or *.pth.
  static bool looks_like_torch_zip(const std::filesystem::path& file);

  std::string format() const override { return "pytorch"; }
  TensorData raw(const std::string& name) const override;

 private:
  std::shared_ptr<const MappedFile> file_;
  std::map<std::string, uint64_t> offsets_;  // tensor -> first byte in the file
};

}  // namespace peft::io
