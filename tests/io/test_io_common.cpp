// The pieces every checkpoint reader shares: dtypes and their sizes, f16/bf16
// conversion, the bounds-checked byte reader, file mapping, format detection.
#define BOOST_TEST_MODULE io_common
#include <cmath>
#include <cstring>
#include <limits>

#include "peft/error.h"
#include "peft/io/byte_reader.h"
#include "peft/io/checkpoint.h"
#include "peft/io/dtype.h"
#include "peft/io/half.h"
#include "peft/io/mapped_file.h"
#include "test_support.h"

using namespace peft::io;
using peft_test::TempDir;

BOOST_AUTO_TEST_CASE(dtype_names_round_trip) {
  for (int i = 0; i <= static_cast<int>(DType::Q8_K); ++i) {
    const auto t = static_cast<DType>(i);
    auto back = dtype_from_name(dtype_name(t));
    BOOST_REQUIRE(back.has_value());
    BOOST_CHECK(*back == t);
  }
  BOOST_CHECK(!dtype_from_name("F8_E4M3").has_value());
}

BOOST_AUTO_TEST_CASE(storage_sizes) {
  BOOST_CHECK_EQUAL(*storage_bytes(DType::F16, 10), 20u);
  BOOST_CHECK_EQUAL(*storage_bytes(DType::Q4_1, 64), 40u);
  BOOST_CHECK_EQUAL(*storage_bytes(DType::Q6_K, 512), 420u);
  BOOST_CHECK(!storage_bytes(DType::Q8_0, 33).has_value());  // not whole blocks
  BOOST_CHECK(!storage_bytes(DType::F64, uint64_t(1) << 62).has_value());  // overflows
}

BOOST_AUTO_TEST_CASE(numel_overflow_and_negative) {
  BOOST_CHECK_EQUAL(*shape_numel({384, 80, 3}), 92160u);
  BOOST_CHECK_EQUAL(*shape_numel({}), 1u);
  BOOST_CHECK_EQUAL(*shape_numel({5, 0, 7}), 0u);
  BOOST_CHECK(!shape_numel({-1, 4}).has_value());
  BOOST_CHECK(!shape_numel({int64_t(1) << 32, int64_t(1) << 32}).has_value());
  BOOST_CHECK_EQUAL(shape_to_string({384, 80, 3}), "[384, 80, 3]");
}

BOOST_AUTO_TEST_CASE(half_round_trips_every_value) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      BOOST_CHECK((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0);
      BOOST_CHECK(std::isnan(half_to_float(float_to_half(f))));
      continue;
    }
    BOOST_REQUIRE_EQUAL(float_to_half(f), h);
  }
}

BOOST_AUTO_TEST_CASE(half_known_values_and_rounding) {
  BOOST_CHECK_EQUAL(half_to_float(0x3c00), 1.0f);
  BOOST_CHECK_EQUAL(half_to_float(0xc000), -2.0f);
  BOOST_CHECK_EQUAL(half_to_float(0x7bff), 65504.0f);
  BOOST_CHECK_EQUAL(half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  BOOST_CHECK(std::isinf(half_to_float(0x7c00)));
  BOOST_CHECK_EQUAL(float_to_half(65520.0f), 0x7c00);            // rounds up to inf
  BOOST_CHECK_EQUAL(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  BOOST_CHECK_EQUAL(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  BOOST_CHECK_EQUAL(float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0 -> even
  BOOST_CHECK_EQUAL(float_to_half(std::ldexp(1.5f, -25)), 0x0001);
}

BOOST_AUTO_TEST_CASE(bf16_conversion) {
  BOOST_CHECK_EQUAL(bf16_to_float(0x3f80), 1.0f);
  BOOST_CHECK_EQUAL(float_to_bf16(1.0f), 0x3f80);
  BOOST_CHECK_EQUAL(float_to_bf16(-3.140625f), 0xc049);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even -> 1.
  BOOST_CHECK_EQUAL(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  BOOST_CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

BOOST_AUTO_TEST_CASE(byte_reader_reads_and_refuses_past_the_end) {
  std::string bytes;
  peft_test::put<uint32_t>(bytes, 0xdeadbeef);
  peft_test::put<uint16_t>(bytes, 7);
  bytes += "abc";
  ByteReader r(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x.bin");
  BOOST_CHECK_EQUAL(r.read<uint32_t>("magic"), 0xdeadbeefu);
  BOOST_CHECK_EQUAL(r.read<uint16_t>("length"), 7u);
  BOOST_CHECK_EQUAL(r.remaining(), 3u);
  PEFT_CHECK_THROW_MSG(r.read_string(7, "name"), peft::FormatError,
                       {"x.bin", "name at offset 6", "truncated", "needs 7 bytes, 3 left"});
  PEFT_CHECK_THROW_MSG(r.take(uint64_t(1) << 63, "blob"), peft::FormatError, {"blob", "truncated"});
  PEFT_CHECK_THROW_MSG(r.seek(100, "data"), peft::FormatError, {"data", "past the end"});
  BOOST_CHECK_EQUAL(r.read_string(3, "tail"), "abc");
}

BOOST_AUTO_TEST_CASE(mapped_file_maps_and_reports_errors) {
  TempDir dir;
  peft_test::write_file(dir / "a.bin", "hello");
  auto f = MappedFile::open(dir / "a.bin");
  BOOST_REQUIRE_EQUAL(f->size(), 5u);
  BOOST_CHECK_EQUAL(std::string(reinterpret_cast<const char*>(f->data()), 5), "hello");
  BOOST_CHECK(f->contains(0, 5));
  BOOST_CHECK(!f->contains(1, 5));
  BOOST_CHECK(!f->contains(uint64_t(1) << 63, uint64_t(1) << 63));  // no wrap-around

  peft_test::write_file(dir / "empty.bin", "");
  auto e = MappedFile::open(dir / "empty.bin");
  BOOST_CHECK_EQUAL(e->size(), 0u);
  BOOST_CHECK(e->contains(0, 0));

  PEFT_CHECK_THROW_MSG(MappedFile::open(dir / "missing.bin"), peft::IoError, {"missing.bin", "cannot open"});
  PEFT_CHECK_THROW_MSG(MappedFile::open(dir.path()), peft::IoError, {"not a regular file"});
}

BOOST_AUTO_TEST_CASE(decode_plain_types_to_float) {
  const int16_t i16[3] = {-5, 0, 32767};
  float out[3];
  decode_to_float(DType::I16, reinterpret_cast<const uint8_t*>(i16), 3, out);
  BOOST_CHECK_EQUAL(out[0], -5.0f);
  BOOST_CHECK_EQUAL(out[2], 32767.0f);
  const uint16_t f16[2] = {0x3c00, 0xc000};
  decode_to_float(DType::F16, reinterpret_cast<const uint8_t*>(f16), 2, out);
  BOOST_CHECK_EQUAL(out[0], 1.0f);
  BOOST_CHECK_EQUAL(out[1], -2.0f);
  const uint8_t b[2] = {0, 3};
  decode_to_float(DType::BOOL, b, 2, out);
  BOOST_CHECK_EQUAL(out[0], 0.0f);
  BOOST_CHECK_EQUAL(out[1], 1.0f);
}

BOOST_AUTO_TEST_CASE(open_checkpoint_detection_errors) {
  TempDir dir;
  PEFT_CHECK_THROW_MSG(open_checkpoint(dir / "nope"), peft::NotFoundError, {"nope", "no such file"});
  PEFT_CHECK_THROW_MSG(open_checkpoint(dir.path()), peft::NotFoundError, {"no checkpoint in this directory"});
  peft_test::write_file(dir / "notes.txt", "hello");
  PEFT_CHECK_THROW_MSG(open_checkpoint(dir / "notes.txt"), peft::FormatError,
                       {"notes.txt", "not a recognised checkpoint"});
  peft_test::write_file(dir / "a.gguf", "");
  peft_test::write_file(dir / "b.gguf", "");
  PEFT_CHECK_THROW_MSG(open_checkpoint(dir.path()), peft::FormatError, {"several checkpoint files"});
}
