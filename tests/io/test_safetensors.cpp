#define BOOST_TEST_MODULE safetensors
#include "test_support.h"

#include <cstring>
#include <map>
#include <numeric>

#include "peft/error.h"
#include "peft/io/half.h"
#include "peft/io/json_file.h"
#include "peft/io/safetensors.h"

using namespace peft::io;
using peft_test::TempDir;
namespace fs = std::filesystem;

namespace {

fs::path st_fixture(const std::string& name) {
  return peft_test::fixtures_dir() / "io" / "safetensors" / name;
}

nlohmann::json expected_json() { return read_json_file(st_fixture("expected.json")); }

// Element i of a tensor as the JSON value the reference script stored for it.
nlohmann::json element(const TensorData& t, uint64_t i) {
  const uint8_t* p = t.data + i * (t.info.nbytes / t.info.numel);
  auto load = [p](auto v) {
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  switch (t.info.dtype) {
    case DType::F64:
      return load(double{});
    case DType::F32:
      return static_cast<double>(load(float{}));
    case DType::F16:
      return static_cast<double>(half_to_float(load(uint16_t{})));
    case DType::BF16:
      return static_cast<double>(bf16_to_float(load(uint16_t{})));
    case DType::I64:
      return load(int64_t{});
    case DType::I32:
      return load(int32_t{});
    case DType::I16:
      return load(int16_t{});
    case DType::I8:
      return load(int8_t{});
    case DType::U8:
      return load(uint8_t{});
    case DType::BOOL:
      return *p != 0;
    default:
      BOOST_FAIL("unexpected dtype");
      return nullptr;
  }
}

void check_tensor(const Checkpoint& ckpt, const std::string& name, const nlohmann::json& want) {
  BOOST_TEST_CONTEXT("tensor " << name) {
    BOOST_REQUIRE(ckpt.contains(name));
    const TensorData t = ckpt.raw(name);
    BOOST_TEST(std::string(dtype_name(t.info.dtype)) == want["dtype"].get<std::string>());
    BOOST_TEST(t.info.shape == want["shape"].get<Shape>(), boost::test_tools::per_element());
    const auto& values = want["values"];
    BOOST_REQUIRE_EQUAL(t.info.numel, values.size());
    for (uint64_t i = 0; i < t.info.numel; ++i)
      BOOST_TEST(element(t, i) == values[i], "element " << i << ": " << element(t, i) << " vs " << values[i]);
  }
}

// The mapping a TensorData points into (raw() hands the MappedFile as owner).
std::shared_ptr<const MappedFile> mapping_of(const TensorData& t) {
  return std::static_pointer_cast<const MappedFile>(t.owner);
}

std::vector<TensorToWrite> tensors_of(const Checkpoint& ckpt) {
  std::vector<TensorToWrite> out;
  for (const auto& info : ckpt.tensors()) {
    TensorData t = ckpt.raw(info.name);
    out.push_back({info.name, info.dtype, info.shape, t.data, info.nbytes});
  }
  return out;
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  BOOST_REQUIRE_GE(bytes.size(), 8u);
  std::memcpy(&n, bytes.data(), 8);
  return n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(golden_all_dtypes_written_by_reference) {
  const auto want = expected_json()["all_dtypes"];
  auto ckpt = open_checkpoint(st_fixture("all_dtypes.safetensors"));
  BOOST_TEST(ckpt->format() == "safetensors");

  // Header order is the reference writer's (by alignment, then name), kept by tensors().
  std::vector<std::string> names;
  for (const auto& t : ckpt->tensors()) names.push_back(t.name);
  const auto order = want["header_order"].get<std::vector<std::string>>();
  BOOST_TEST(names == order, boost::test_tools::per_element());
  BOOST_TEST(names.size() == 12u);

  for (const auto& [name, t] : want["tensors"].items()) check_tensor(*ckpt, name, t);
  BOOST_TEST(ckpt->info("scalar").shape.empty());
  BOOST_TEST(ckpt->info("scalar").numel == 1u);
  BOOST_TEST(ckpt->info("empty").numel == 0u);
  BOOST_TEST(ckpt->info("empty").nbytes == 0u);

  BOOST_TEST(ckpt->metadata() == want["metadata"]);
  const auto& st = dynamic_cast<const SafetensorsCheckpoint&>(*ckpt);
  BOOST_TEST(st.string_metadata().at("format") == "pt");
  BOOST_TEST(st.string_metadata().size() == want["metadata"].size());

  // to_float goes through the same bytes.
  BOOST_TEST(ckpt->to_float("bf16")[0] == want["tensors"]["bf16"]["values"][0].get<float>());
  PEFT_CHECK_THROW_MSG(ckpt->raw("nope"), peft::NotFoundError, {"all_dtypes.safetensors", "nope"});
}

BOOST_AUTO_TEST_CASE(raw_is_zero_copy_into_the_mapping) {
  SafetensorsCheckpoint ckpt(st_fixture("all_dtypes.safetensors"));
  const std::string bytes = peft_test::read_file(st_fixture("all_dtypes.safetensors"));
  const uint64_t data_start = 8 + header_length(bytes);
  for (const auto& info : ckpt.tensors()) {
    TensorData t = ckpt.raw(info.name);
    auto file = mapping_of(t);
    BOOST_REQUIRE(file);
    BOOST_TEST(t.data >= file->data() + data_start);
    BOOST_TEST(t.data + t.info.nbytes <= file->data() + file->size());
    BOOST_TEST(std::memcmp(t.data, bytes.data() + (t.data - file->data()), t.info.nbytes) == 0);
  }
  // The mapping outlives the checkpoint while a TensorData holds it.
  TensorData kept = ckpt.raw("f64");
  {
    SafetensorsCheckpoint gone(st_fixture("all_dtypes.safetensors"));
    kept = gone.raw("f64");
  }
  BOOST_TEST(element(kept, 0) == expected_json()["all_dtypes"]["tensors"]["f64"]["values"][0]);
}

// Our writer lays a file out exactly as the reference does: same header JSON
// (compact, metadata first), same space padding, same data order.
BOOST_AUTO_TEST_CASE(writer_reproduces_reference_file_bytes) {
  SafetensorsCheckpoint ref(st_fixture("reference_layout.safetensors"));
  TempDir dir;
  write_safetensors(dir / "out.safetensors", tensors_of(ref), ref.string_metadata());
  BOOST_TEST(peft_test::read_file(dir / "out.safetensors") ==
             peft_test::read_file(st_fixture("reference_layout.safetensors")));
}

// written_by_peft.safetensors is what write_safetensors makes of all_dtypes; the
// reference script's --check loads it with python safetensors. This test keeps the
// committed file equal to what the writer produces now (PEFT_UPDATE_FIXTURES=1
// rewrites it; then rerun the script's --check).
BOOST_AUTO_TEST_CASE(writer_output_is_the_reference_checked_file) {
  SafetensorsCheckpoint ref(st_fixture("all_dtypes.safetensors"));
  TempDir dir;
  write_safetensors(dir / "w.safetensors", tensors_of(ref), ref.string_metadata());
  const std::string written = peft_test::read_file(dir / "w.safetensors");
  const char* update = std::getenv("PEFT_UPDATE_FIXTURES");
  if (update && *update) peft_test::write_file(st_fixture("written_by_peft.safetensors"), written);
  BOOST_TEST(written == peft_test::read_file(st_fixture("written_by_peft.safetensors")));
}

BOOST_AUTO_TEST_CASE(round_trip_every_dtype) {
  // Byte patterns per dtype; values do not matter to the container, only bytes.
  std::map<std::string, std::vector<uint8_t>> buffers;
  std::vector<TensorToWrite> in;
  auto add = [&](const std::string& name, DType dt, Shape shape) {
    const uint64_t nbytes = *storage_bytes(dt, *shape_numel(shape));
    auto& buf = buffers[name];
    buf.resize(nbytes);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>((i * 131 + name.size() * 7) & 0xff);
    if (dt == DType::BOOL)
      for (auto& b : buf) b &= 1;
    in.push_back({name, dt, shape, buf.data(), nbytes});
  };
  add("f32", DType::F32, {3, 5});
  add("f16", DType::F16, {7});
  add("bf16", DType::BF16, {2, 3});
  add("f64", DType::F64, {3});
  add("i64", DType::I64, {2, 1});
  add("i32", DType::I32, {5});
  add("i16", DType::I16, {1, 1, 3});
  add("i8", DType::I8, {9});  // odd sizes: later tensors start unaligned, as in the reference
  add("u8", DType::U8, {4});
  add("bool", DType::BOOL, {6});
  add("scalar", DType::F64, {});
  add("empty", DType::F32, {4, 0, 2});
  add("large", DType::F32, {512, 512});  // 1 MiB
  TempDir dir;
  const fs::path file = dir / "rt.safetensors";
  write_safetensors(file, in, {{"format", "pt"}, {"note", "round trip"}});

  const std::string bytes = peft_test::read_file(file);
  const uint64_t n = header_length(bytes);
  BOOST_TEST(n % 8 == 0u);
  const std::string header = bytes.substr(8, n);
  BOOST_TEST(header.front() == '{');
  BOOST_TEST(header.find_last_not_of(' ') == header.rfind('}'));  // only spaces pad
  const uint64_t total = std::accumulate(in.begin(), in.end(), uint64_t{0},
                                         [](uint64_t s, const TensorToWrite& t) { return s + t.nbytes; });
  BOOST_TEST(bytes.size() == 8 + n + total);

  SafetensorsCheckpoint ckpt(file);
  BOOST_REQUIRE_EQUAL(ckpt.tensors().size(), in.size());
  uint64_t offset = 8 + n;
  for (size_t i = 0; i < in.size(); ++i) {
    BOOST_TEST_CONTEXT("tensor " << in[i].name) {
      const auto& info = ckpt.tensors()[i];
      BOOST_TEST(info.name == in[i].name);  // the order given
      BOOST_TEST(dtype_name(info.dtype) == dtype_name(in[i].dtype));
      BOOST_TEST(info.shape == in[i].shape, boost::test_tools::per_element());
      TensorData t = ckpt.raw(info.name);
      BOOST_TEST(static_cast<uint64_t>(t.data - mapping_of(t)->data()) == offset);  // data in order
      if (in[i].nbytes > 0) BOOST_TEST(std::memcmp(t.data, in[i].data, in[i].nbytes) == 0);
      offset += in[i].nbytes;
    }
  }
  BOOST_TEST(ckpt.string_metadata().at("note") == "round trip");
  BOOST_TEST(ckpt.string_metadata().size() == 2u);

  // No metadata: no __metadata__ key at all, as the reference writes.
  write_safetensors(dir / "plain.safetensors", {in[0]});
  BOOST_TEST(peft_test::read_file(dir / "plain.safetensors").find("__metadata__") == std::string::npos);
  BOOST_TEST(SafetensorsCheckpoint(dir / "plain.safetensors").metadata().empty());
}

BOOST_AUTO_TEST_CASE(write_is_atomic) {
  const float values[2] = {1.0f, 2.0f};
  const TensorToWrite good{"w", DType::F32, {2}, values, sizeof values};
  TempDir dir;
  auto entries = [&]() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
    return names;
  };

  // Into a directory that does not exist: IoError, and nothing is created anywhere.
  PEFT_CHECK_THROW_MSG(write_safetensors(dir / "missing" / "x.safetensors", {good}), peft::IoError,
                       {"x.safetensors"});
  BOOST_TEST(entries().empty());

  // The rename fails (the target is a directory): the temporary file is removed.
  fs::create_directory(dir / "taken.safetensors");
  PEFT_CHECK_THROW_MSG(write_safetensors(dir / "taken.safetensors", {good}), peft::IoError,
                       {"taken.safetensors", "rename"});
  BOOST_TEST(entries() == std::vector<std::string>{"taken.safetensors"}, boost::test_tools::per_element());

  // Replacing an existing file swaps it whole.
  write_safetensors(dir / "a.safetensors", {good});
  const float other[3] = {5, 6, 7};
  write_safetensors(dir / "a.safetensors", {{"v", DType::F32, {3}, other, sizeof other}});
  SafetensorsCheckpoint a(dir / "a.safetensors");
  BOOST_TEST(a.contains("v"));
  BOOST_TEST(!a.contains("w"));
  BOOST_TEST(entries().size() == 2u);
}

BOOST_AUTO_TEST_CASE(write_rejects_inconsistent_tensors) {
  const float values[4] = {};
  TempDir dir;
  const fs::path file = dir / "bad.safetensors";
  using V = std::vector<TensorToWrite>;
  PEFT_CHECK_THROW_MSG(write_safetensors(file, V{{"w", DType::F32, {3}, values, 16}}), peft::ValueError,
                       {"bad.safetensors", "'w'", "16 bytes given", "needs 12"});
  PEFT_CHECK_THROW_MSG(
      write_safetensors(file, V{{"w", DType::F32, {4}, values, 16}, {"w", DType::F32, {4}, values, 16}}),
      peft::ValueError, {"'w'", "twice"});
  PEFT_CHECK_THROW_MSG(write_safetensors(file, V{{"", DType::F32, {4}, values, 16}}), peft::ValueError,
                       {"empty"});
  PEFT_CHECK_THROW_MSG(write_safetensors(file, V{{"__metadata__", DType::F32, {4}, values, 16}}),
                       peft::ValueError, {"reserved"});
  PEFT_CHECK_THROW_MSG(write_safetensors(file, V{{"w", DType::F32, {-4}, values, 16}}), peft::ValueError,
                       {"'w'", "shape"});
  PEFT_CHECK_THROW_MSG(write_safetensors(file, V{{"w", DType::F32, {4}, nullptr, 16}}), peft::ValueError,
                       {"'w'", "no data"});
  PEFT_CHECK_THROW_MSG(write_safetensors(file, V{{"q", DType::Q4_0, {32}, values, 18}}), peft::ValueError,
                       {"'q'", "Q4_0"});
  BOOST_TEST(fs::is_empty(dir.path()));
}

BOOST_AUTO_TEST_CASE(sharded_checkpoint_as_transformers_writes_it) {
  const auto want = expected_json()["sharded"];
  const fs::path dir = st_fixture("sharded");
  for (const fs::path& p : {dir, dir / "model.safetensors.index.json"}) {
    BOOST_TEST_CONTEXT("opened as " << p) {
      auto ckpt = open_checkpoint(p);
      BOOST_TEST(ckpt->format() == "safetensors");
      BOOST_TEST(ckpt->tensors().size() == want["tensors"].size());
      for (const auto& [name, t] : want["tensors"].items()) {
        check_tensor(*ckpt, name, t);
        // Zero-copy into the shard the index names.
        TensorData d = ckpt->raw(name);
        auto file = mapping_of(d);
        BOOST_TEST(fs::path(file->path()).filename() == t["shard"].get<std::string>());
        BOOST_TEST(d.data >= file->data());
        BOOST_TEST(d.data + d.info.nbytes <= file->data() + file->size());
      }
      // Index metadata (total_size) merged over the shards' {"format": "pt"}.
      BOOST_TEST(ckpt->metadata()["total_size"] == want["metadata"]["total_size"]);
      BOOST_TEST(ckpt->metadata()["format"] == "pt");
      const auto& st = dynamic_cast<const SafetensorsCheckpoint&>(*ckpt);
      BOOST_TEST(st.string_metadata().at("total_size") == want["metadata"]["total_size"].dump());
    }
  }
}
