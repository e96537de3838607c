// WAV reading and writing: every supported encoding, mixdown, the tolerated truncated
// data chunk, and typed errors for damaged headers.
#define BOOST_TEST_MODULE wav
#include <cmath>
#include <cstdlib>
#include <limits>

#include "peft/audio/wav.h"
#include "peft/error.h"
#include "test_support.h"

using namespace peft::audio;
using peft_test::put;
using peft_test::TempDir;

namespace {

// --- byte-level WAV builders -------------------------------------------------------

std::string chunk(const std::string& id, const std::string& body, int64_t declared = -1) {
  std::string out = id;
  put<uint32_t>(out, static_cast<uint32_t>(declared >= 0 ? declared : int64_t(body.size())));
  out += body;
  if (declared < 0 && (body.size() & 1u)) out += '\0';
  return out;
}

std::string fmt_body(uint16_t tag, uint16_t channels, uint32_t rate, uint16_t bits, int block_align = -1) {
  std::string b;
  const uint16_t align = static_cast<uint16_t>(block_align >= 0 ? block_align : channels * bits / 8);
  put<uint16_t>(b, tag);
  put<uint16_t>(b, channels);
  put<uint32_t>(b, rate);
  put<uint32_t>(b, rate * align);
  put<uint16_t>(b, align);
  put<uint16_t>(b, bits);
  return b;
}

std::string extensible_body(uint16_t sub_tag, uint16_t channels, uint32_t rate, uint16_t bits,
                            bool good_guid = true) {
  std::string b = fmt_body(0xFFFE, channels, rate, bits);
  put<uint16_t>(b, 22);    // cbSize
  put<uint16_t>(b, bits);  // valid bits
  put<uint32_t>(b, 0);     // channel mask
  put<uint16_t>(b, sub_tag);
  const uint8_t tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                            0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
  b.append(reinterpret_cast<const char*>(tail), 14);
  if (!good_guid) b.back() = 0x72;
  return b;
}

std::string riff(const std::string& chunks) {
  std::string out = "RIFF";
  put<uint32_t>(out, static_cast<uint32_t>(4 + chunks.size()));
  return out + "WAVE" + chunks;
}

WavAudio parse(const std::string& bytes) {
  return parse_wav(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem.wav");
}

std::string pcm16(std::initializer_list<int16_t> values) {
  std::string d;
  for (int16_t v : values) put<int16_t>(d, v);
  return d;
}

bool have_sox() { return std::system("sox --version > /dev/null 2>&1") == 0; }

}  // namespace

// --- encodings ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(pcm16_mono) {
  const WavAudio a =
      parse(riff(chunk("fmt ", fmt_body(1, 1, 16000, 16)) + chunk("data", pcm16({0, 16384, -32768, 32767}))));
  BOOST_CHECK_EQUAL(a.sample_rate, 16000);
  BOOST_CHECK_EQUAL(a.channels, 1);
  BOOST_CHECK_EQUAL(a.bits_per_sample, 16);
  BOOST_CHECK(!a.is_float);
  BOOST_CHECK(!a.truncated);
  BOOST_REQUIRE_EQUAL(a.samples.size(), 4u);
  BOOST_CHECK_EQUAL(a.samples[0], 0.0f);
  BOOST_CHECK_EQUAL(a.samples[1], 0.5f);
  BOOST_CHECK_EQUAL(a.samples[2], -1.0f);
  BOOST_CHECK_EQUAL(a.samples[3], 32767.0f / 32768.0f);
}

BOOST_AUTO_TEST_CASE(pcm8_is_unsigned) {
  const std::string data = {'\x00', '\x80', '\xC0', '\xFF'};
  const WavAudio a = parse(riff(chunk("fmt ", fmt_body(1, 1, 8000, 8)) + chunk("data", data)));
  BOOST_REQUIRE_EQUAL(a.samples.size(), 4u);
  BOOST_CHECK_EQUAL(a.samples[0], -1.0f);
  BOOST_CHECK_EQUAL(a.samples[1], 0.0f);
  BOOST_CHECK_EQUAL(a.samples[2], 0.5f);
  BOOST_CHECK_EQUAL(a.samples[3], 127.0f / 128.0f);
}

BOOST_AUTO_TEST_CASE(pcm24_sign_extends) {
  // 0x400000 = +0.5, 0x800000 = -1, 0xFFFFFF = -1/2^23
  const std::string data = {'\x00', '\x00', '\x40', '\x00', '\x00', '\x80', '\xFF', '\xFF', '\xFF'};
  const WavAudio a = parse(riff(chunk("fmt ", fmt_body(1, 1, 16000, 24)) + chunk("data", data)));
  BOOST_REQUIRE_EQUAL(a.samples.size(), 3u);
  BOOST_CHECK_EQUAL(a.samples[0], 0.5f);
  BOOST_CHECK_EQUAL(a.samples[1], -1.0f);
  BOOST_CHECK_EQUAL(a.samples[2], -1.0f / 8388608.0f);
}

BOOST_AUTO_TEST_CASE(pcm32_and_float64) {
  std::string d32;
  put<int32_t>(d32, std::numeric_limits<int32_t>::min());
  put<int32_t>(d32, 1 << 29);
  const WavAudio a = parse(riff(chunk("fmt ", fmt_body(1, 1, 16000, 32)) + chunk("data", d32)));
  BOOST_REQUIRE_EQUAL(a.samples.size(), 2u);
  BOOST_CHECK_EQUAL(a.samples[0], -1.0f);
  BOOST_CHECK_EQUAL(a.samples[1], 0.25f);

  std::string d64;
  put<double>(d64, -0.125);
  put<double>(d64, 1.5);  // float data is not clamped
  const WavAudio b = parse(riff(chunk("fmt ", fmt_body(3, 1, 22050, 64)) + chunk("data", d64)));
  BOOST_CHECK(b.is_float);
  BOOST_REQUIRE_EQUAL(b.samples.size(), 2u);
  BOOST_CHECK_EQUAL(b.samples[0], -0.125f);
  BOOST_CHECK_EQUAL(b.samples[1], 1.5f);
}

BOOST_AUTO_TEST_CASE(extensible_float_and_pcm) {
  std::string d;
  put<float>(d, 0.25f);
  put<float>(d, -0.75f);
  const WavAudio a = parse(riff(chunk("fmt ", extensible_body(3, 2, 48000, 32)) + chunk("data", d)));
  BOOST_CHECK(a.is_float);
  BOOST_CHECK_EQUAL(a.channels, 2);
  BOOST_REQUIRE_EQUAL(a.samples.size(), 1u);
  BOOST_CHECK_EQUAL(a.samples[0], -0.25f);  // (0.25 - 0.75) / 2

  const WavAudio b =
      parse(riff(chunk("fmt ", extensible_body(1, 1, 16000, 16)) + chunk("data", pcm16({8192, -8192}))));
  BOOST_CHECK(!b.is_float);
  BOOST_REQUIRE_EQUAL(b.samples.size(), 2u);
  BOOST_CHECK_EQUAL(b.samples[1], -0.25f);
}

BOOST_AUTO_TEST_CASE(many_channels_are_averaged) {
  // 3 channels, 2 frames: (0.5, 0.25, -0.75) and (1/2^15 x 3).
  const WavAudio a = parse(
      riff(chunk("fmt ", fmt_body(1, 3, 16000, 16)) + chunk("data", pcm16({16384, 8192, -24576, 1, 1, 1}))));
  BOOST_REQUIRE_EQUAL(a.samples.size(), 2u);
  BOOST_CHECK_EQUAL(a.samples[0], 0.0f);
  BOOST_CHECK_CLOSE(a.samples[1], 1.0f / 32768.0f, 1e-4);
}

BOOST_AUTO_TEST_CASE(unknown_and_odd_sized_chunks_are_skipped) {
  // An odd-sized LIST chunk carries a pad byte that is not part of its size.
  const std::string bytes =
      riff(chunk("LIST", "abc") + chunk("fmt ", fmt_body(1, 1, 16000, 16)) + chunk("fact", "1234") +
           chunk("data", pcm16({100, 200})) + chunk("id3 ", "x"));
  const WavAudio a = parse(bytes);
  BOOST_REQUIRE_EQUAL(a.samples.size(), 2u);
  BOOST_CHECK_EQUAL(a.samples[1], 200.0f / 32768.0f);
}

// --- the tolerated truncation --------------------------------------------------------

BOOST_AUTO_TEST_CASE(data_past_end_is_clamped_to_whole_frames) {
  // Declares 1000 bytes, holds 5: two whole stereo-less 16-bit frames and a half one.
  std::string bytes =
      riff(chunk("fmt ", fmt_body(1, 1, 16000, 16)) + chunk("data", pcm16({1, 2}) + "x", 1000));
  const WavAudio a = parse(bytes);
  BOOST_CHECK(a.truncated);
  BOOST_CHECK_EQUAL(a.samples.size(), 2u);

  // A streaming writer's placeholder size.
  const WavAudio b =
      parse(riff(chunk("fmt ", fmt_body(1, 2, 16000, 16)) + chunk("data", pcm16({1, 3, 5, 7}), 0xFFFFFFFF)));
  BOOST_CHECK(b.truncated);
  BOOST_REQUIRE_EQUAL(b.samples.size(), 2u);
  BOOST_CHECK_EQUAL(b.samples[1], 6.0f / 32768.0f);
}

BOOST_AUTO_TEST_CASE(partial_last_frame_is_dropped) {
  const WavAudio a = parse(riff(chunk("fmt ", fmt_body(1, 2, 16000, 16)) + chunk("data", pcm16({1, 2, 3}))));
  BOOST_CHECK(a.truncated);
  BOOST_CHECK_EQUAL(a.samples.size(), 1u);
}

BOOST_AUTO_TEST_CASE(empty_data_chunk) {
  const WavAudio a = parse(riff(chunk("fmt ", fmt_body(1, 1, 16000, 16)) + chunk("data", "")));
  BOOST_CHECK(a.samples.empty());
  BOOST_CHECK(!a.truncated);
}

// --- damaged input: typed errors naming the file and problem ---------------------------

BOOST_AUTO_TEST_CASE(bad_headers) {
  const std::string fmt = chunk("fmt ", fmt_body(1, 1, 16000, 16));
  const std::string data = chunk("data", pcm16({1}));
  PEFT_CHECK_THROW_MSG(parse("RIFF"), peft::FormatError, {"mem.wav", "shorter than the 12-byte header"});
  PEFT_CHECK_THROW_MSG(parse(""), peft::FormatError, {"mem.wav", "0 bytes"});
  PEFT_CHECK_THROW_MSG(parse("OggS0000WAVE"), peft::FormatError, {"mem.wav", "'OggS'", "not 'RIFF'"});
  PEFT_CHECK_THROW_MSG(parse("RIFF0000AVI "), peft::FormatError, {"mem.wav", "not 'WAVE'"});
  PEFT_CHECK_THROW_MSG(parse("RF640000WAVE"), peft::FormatError, {"RF64"});
  PEFT_CHECK_THROW_MSG(parse(riff(data)), peft::FormatError,
                       {"mem.wav", "data chunk comes before the fmt chunk"});
  PEFT_CHECK_THROW_MSG(parse(riff(data + fmt)), peft::FormatError, {"before the fmt chunk"});
  PEFT_CHECK_THROW_MSG(parse(riff(fmt)), peft::FormatError, {"mem.wav", "no data chunk"});
  PEFT_CHECK_THROW_MSG(parse(riff(chunk("LIST", "ab"))), peft::FormatError, {"no fmt chunk"});
  PEFT_CHECK_THROW_MSG(parse(riff(fmt + fmt + data)), peft::FormatError, {"second fmt chunk"});
  // Header cut in the middle of a chunk header: the walk stops, data is missing.
  PEFT_CHECK_THROW_MSG(parse(riff(fmt + "dat")), peft::FormatError, {"no data chunk"});
}

BOOST_AUTO_TEST_CASE(bad_fmt_chunks) {
  const std::string data = chunk("data", pcm16({1, 2}));
  const auto with_fmt = [&](const std::string& body) { return riff(chunk("fmt ", body) + data); };
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(1, 1, 16000, 16).substr(0, 14))), peft::FormatError,
                       {"mem.wav", "fmt chunk", "14 bytes, needs at least 16"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(1, 0, 16000, 16))), peft::FormatError,
                       {"fmt chunk", "0 channels"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(1, 1, 0, 16))), peft::FormatError, {"sample rate 0"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(1, 1, 0xFFFFFFFF, 16))), peft::FormatError, {"out of range"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(7, 1, 8000, 8))), peft::FormatError,
                       {"unsupported format tag 0x0007", "mu-law"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(0x55, 1, 8000, 0))), peft::FormatError, {"0x0055", "MP3"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(1, 1, 16000, 12))), peft::FormatError, {"12 bits", "PCM"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(3, 1, 16000, 16))), peft::FormatError, {"16 bits", "float"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(1, 2, 16000, 16, 3))), peft::FormatError,
                       {"block align 3", "2 channels"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(fmt_body(0xFFFE, 1, 16000, 16))), peft::FormatError,
                       {"WAVE_FORMAT_EXTENSIBLE needs 40 bytes"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(extensible_body(1, 1, 16000, 16, false))), peft::FormatError,
                       {"sub-format GUID"});
  PEFT_CHECK_THROW_MSG(parse(with_fmt(extensible_body(2, 1, 16000, 16))), peft::FormatError,
                       {"format tag 0x0002"});
}

BOOST_AUTO_TEST_CASE(huge_chunk_sizes) {
  const std::string fmt = chunk("fmt ", fmt_body(1, 1, 16000, 16));
  // A chunk before data claiming more than the file holds: what should follow is missing.
  PEFT_CHECK_THROW_MSG(parse(riff(fmt + chunk("LIST", "abcd", 0xFFFFFFF0) + chunk("data", pcm16({1})))),
                       peft::FormatError, {"mem.wav", "'LIST'", "4294967280 runs past the end"});
  PEFT_CHECK_THROW_MSG(parse(riff(chunk("fmt ", fmt_body(1, 1, 16000, 16), 0x7FFFFFFF))), peft::FormatError,
                       {"'fmt '", "runs past the end"});
  // Unprintable chunk ids are escaped in the message.
  PEFT_CHECK_THROW_MSG(parse(riff(std::string("\x01\x02zz", 4) + std::string("\xFF\xFF\xFF\xFF", 4))),
                       peft::FormatError, {"'\\x01\\x02zz'"});
}

BOOST_AUTO_TEST_CASE(every_truncation_of_a_valid_file_is_handled) {
  // Cutting a good file at every length gives either a (possibly shorter) result or a
  // FormatError, never anything else (the ASan build checks for overruns).
  std::string d;
  for (int i = 0; i < 20; ++i) put<int16_t>(d, static_cast<int16_t>(i * 1000));
  const std::string full =
      riff(chunk("LIST", "xyz") + chunk("fmt ", extensible_body(1, 2, 16000, 16)) + chunk("data", d));
  for (size_t n = 0; n <= full.size(); ++n) {
    try {
      const WavAudio a = parse(full.substr(0, n));
      BOOST_CHECK_LE(a.samples.size(), 10u);
      BOOST_CHECK_EQUAL(a.truncated, n < full.size());
    } catch (const peft::FormatError&) {
    }
  }
}

BOOST_AUTO_TEST_CASE(files_and_io_errors) {
  TempDir dir;
  PEFT_CHECK_THROW_MSG(read_wav((dir / "missing.wav").string()), peft::IoError,
                       {"missing.wav", "cannot open"});
  peft_test::write_file(dir / "bad.wav", "RIFF1234WAVEfmt ");
  PEFT_CHECK_THROW_MSG(read_wav((dir / "bad.wav").string()), peft::FormatError, {"bad.wav", "no fmt chunk"});
  PEFT_CHECK_THROW_MSG(write_wav((dir / "x.wav").string(), {0.0f}, 0), peft::ValueError, {"sample rate 0"});
  PEFT_CHECK_THROW_MSG(write_wav((dir / "no" / "such" / "dir.wav").string(), {0.0f}, 16000), peft::IoError,
                       {"dir.wav"});
}

// --- writer and raw float ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(write_read_round_trip) {
  TempDir dir;
  std::vector<float> x;
  for (int i = 0; i < 1001; ++i) x.push_back(std::sin(0.01f * i) * 0.9f);
  x.push_back(1.0f);  // clamps to 32767 in 16-bit
  x.push_back(-2.0f);
  x.push_back(std::numeric_limits<float>::quiet_NaN());  // written as 0 in 16-bit

  write_wav((dir / "f.wav").string(), x, 44100, WavEncoding::kFloat32);
  const WavAudio f = read_wav((dir / "f.wav").string());
  BOOST_CHECK(f.is_float);
  BOOST_CHECK_EQUAL(f.sample_rate, 44100);
  BOOST_REQUIRE_EQUAL(f.samples.size(), x.size());
  for (size_t i = 0; i + 1 < x.size(); ++i) BOOST_REQUIRE_EQUAL(f.samples[i], x[i]);
  BOOST_CHECK(std::isnan(f.samples.back()));

  write_wav((dir / "i.wav").string(), x, 8000);
  const WavAudio p = read_wav((dir / "i.wav").string());
  BOOST_CHECK_EQUAL(p.bits_per_sample, 16);
  BOOST_REQUIRE_EQUAL(p.samples.size(), x.size());
  for (size_t i = 0; i < 1001; ++i) BOOST_REQUIRE_SMALL(p.samples[i] - x[i], 0.5f / 32768.0f + 1e-7f);
  BOOST_CHECK_EQUAL(p.samples[1001], 32767.0f / 32768.0f);
  BOOST_CHECK_EQUAL(p.samples[1002], -1.0f);
  BOOST_CHECK_EQUAL(p.samples[1003], 0.0f);
  // Canonical header: 44 bytes + 2 per sample.
  BOOST_CHECK_EQUAL(peft_test::read_file(dir / "i.wav").size(), 44u + 2 * x.size());

  write_wav((dir / "empty.wav").string(), {}, 16000);
  BOOST_CHECK(read_wav((dir / "empty.wav").string()).samples.empty());
}

BOOST_AUTO_TEST_CASE(raw_float32) {
  TempDir dir;
  std::string bytes;
  put<float>(bytes, 0.5f);
  put<float>(bytes, -0.25f);
  peft_test::write_file(dir / "a.f32", bytes);
  const std::vector<float> x = read_raw_f32((dir / "a.f32").string());
  BOOST_REQUIRE_EQUAL(x.size(), 2u);
  BOOST_CHECK_EQUAL(x[1], -0.25f);
  peft_test::write_file(dir / "b.f32", bytes + "x");
  PEFT_CHECK_THROW_MSG(read_raw_f32((dir / "b.f32").string()), peft::FormatError,
                       {"b.f32", "not a multiple of 4"});
  PEFT_CHECK_THROW_MSG(read_raw_f32((dir / "none.f32").string()), peft::IoError, {"none.f32"});
}

// --- files written by another tool (sox) -------------------------------------------------

BOOST_AUTO_TEST_CASE(sox_written_encodings) {
  BOOST_REQUIRE_MESSAGE(have_sox(), "sox is not installed (./setup installs it)");
  TempDir dir;
  std::vector<float> x;
  for (int i = 0; i < 4000; ++i) x.push_back(0.6f * std::sin(0.05f * i));
  const std::string src = (dir / "src.wav").string();
  write_wav(src, x, 16000, WavEncoding::kFloat32);

  struct Case {
    const char* args;
    int bits;
    bool is_float;
    float tolerance;
  };
  // -D: no dither, so the only difference is the quantisation step.
  const Case cases[] = {
      {"-b 8 -e unsigned-integer", 8, false, 1.0f / 128},
      {"-b 16 -e signed-integer", 16, false, 1.0f / 32768},
      {"-b 24 -e signed-integer", 24, false, 1.0f / 8388608},  // sox writes EXTENSIBLE here
      {"-b 32 -e signed-integer", 32, false, 1e-7f},
      {"-b 64 -e floating-point", 64, true, 1e-9f},  // sox works in 32-bit integers inside
  };
  for (const Case& c : cases) {
    const std::string out = (dir / "out.wav").string();
    const std::string cmd = "sox -D " + src + " " + c.args + " " + out;
    BOOST_REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
    const WavAudio a = read_wav(out);
    BOOST_TEST_CONTEXT(c.args) {
      BOOST_CHECK_EQUAL(a.bits_per_sample, c.bits);
      BOOST_CHECK_EQUAL(a.is_float, c.is_float);
      BOOST_REQUIRE_EQUAL(a.samples.size(), x.size());
      float worst = 0;
      for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(a.samples[i] - x[i]));
      BOOST_CHECK_LE(worst, c.tolerance);
    }
  }

  // Stereo and 6 channels (EXTENSIBLE): the right channel is the negated left plus 0.2,
  // so the mixdown is exactly 0.1 per frame.
  std::vector<float> y;
  for (float v : x) y.push_back(0.2f - v);
  const std::string right = (dir / "right.wav").string();
  write_wav(right, y, 16000, WavEncoding::kFloat32);
  const std::string stereo = (dir / "stereo.wav").string();
  const std::string cmd = "sox -M " + src + " " + right + " " + stereo;
  BOOST_REQUIRE(std::system(cmd.c_str()) == 0);
  const WavAudio s = read_wav(stereo);
  BOOST_CHECK_EQUAL(s.channels, 2);
  BOOST_REQUIRE_EQUAL(s.samples.size(), x.size());
  for (float v : s.samples) BOOST_REQUIRE_SMALL(v - 0.1f, 1e-6f);

  const std::string six = (dir / "six.wav").string();
  const std::string cmd6 = "sox -M " + src + " " + right + " " + src + " " + right + " " + src + " " + right +
                           " -b 16 -e signed-integer -D " + six;
  BOOST_REQUIRE(std::system(cmd6.c_str()) == 0);
  const WavAudio s6 = read_wav(six);
  BOOST_CHECK_EQUAL(s6.channels, 6);
  for (float v : s6.samples) BOOST_REQUIRE_SMALL(v - 0.1f, 2e-4f);
}

BOOST_AUTO_TEST_CASE(real_speech_files) {
  const std::string path =
      "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav";
  BOOST_REQUIRE_MESSAGE(std::filesystem::exists(path),
                        path << " missing: install pocketsphinx-testdata (./setup)");
  const WavAudio a = read_wav(path);
  BOOST_CHECK_EQUAL(a.sample_rate, 16000);
  BOOST_CHECK_EQUAL(a.channels, 1);
  BOOST_CHECK_EQUAL(a.bits_per_sample, 16);
  BOOST_CHECK(!a.truncated);
  BOOST_CHECK_GT(a.samples.size(), 16000u * 2);
  float peak = 0;
  for (float v : a.samples) peak = std::max(peak, std::abs(v));
  BOOST_CHECK_GT(peak, 0.05f);
  BOOST_CHECK_LE(peak, 1.0f);
}
