#include "peft/audio/wav.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include "peft/error.h"

namespace peft::audio {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "WAV is little-endian, and so is the host we assume");

namespace {

constexpr uint16_t kTagPcm = 1;
constexpr uint16_t kTagFloat = 3;
constexpr uint16_t kTagExtensible = 0xFFFE;

// Every KSDATAFORMAT_SUBTYPE_* GUID is the format tag followed by these 14 bytes.
constexpr uint8_t kGuidTail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                   0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Chunk ids come from the file; escape anything unprintable before it reaches a message.
std::string printable_id(const uint8_t* p) {
  std::string out;
  for (int i = 0; i < 4; ++i) {
    const uint8_t c = p[i];
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return "'" + out + "'";
}

std::string hex16(uint16_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04X", v);
  return buf;
}

std::string tag_name(uint16_t tag) {
  switch (tag) {
    case 2:
      return " (MS ADPCM)";
    case 6:
      return " (A-law)";
    case 7:
      return " (mu-law)";
    case 0x11:
      return " (IMA ADPCM)";
    case 0x55:
      return " (MP3)";
    default:
      return "";
  }
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw IoError(path + ": cannot open: " + std::strerror(errno));
  const std::streamoff end = f.tellg();
  if (end < 0) throw IoError(path + ": cannot determine the file size");
  std::vector<uint8_t> bytes(static_cast<size_t>(end));
  f.seekg(0);
  if (!bytes.empty() && !f.read(reinterpret_cast<char*>(bytes.data()), end))
    throw IoError(path + ": read failed: " + std::strerror(errno));
  return bytes;
}

struct Format {
  uint16_t tag = 0;  // PCM or float after resolving WAVE_FORMAT_EXTENSIBLE
  int channels = 0;
  int sample_rate = 0;
  int bits = 0;
  size_t block_align = 0;
};

Format parse_fmt(const uint8_t* p, uint32_t size, const std::string& name) {
  const auto fail = [&](const std::string& problem) -> FormatError {
    return FormatError(name, "fmt chunk", problem);
  };
  if (size < 16) throw fail("is " + std::to_string(size) + " bytes, needs at least 16");
  Format f;
  f.tag = load<uint16_t>(p);
  const uint16_t channels = load<uint16_t>(p + 2);
  const uint32_t rate = load<uint32_t>(p + 4);
  const uint16_t block_align = load<uint16_t>(p + 12);
  const uint16_t bits = load<uint16_t>(p + 14);

  if (f.tag == kTagExtensible) {
    // cbSize (2) + valid bits (2) + channel mask (4) + sub-format GUID (16) follow the basic 16.
    if (size < 40) throw fail("WAVE_FORMAT_EXTENSIBLE needs 40 bytes, chunk has " + std::to_string(size));
    const uint16_t cb_size = load<uint16_t>(p + 16);
    if (cb_size < 22)
      throw fail("WAVE_FORMAT_EXTENSIBLE cbSize is " + std::to_string(cb_size) + ", needs 22");
    const uint8_t* guid = p + 24;
    if (std::memcmp(guid + 2, kGuidTail, sizeof kGuidTail) != 0)
      throw fail("unsupported WAVE_FORMAT_EXTENSIBLE sub-format GUID");
    f.tag = load<uint16_t>(guid);
    // Valid bits may be fewer than the container (20 in 24): samples are left-justified,
    // so decoding by the container size is still exact.
  }
  if (f.tag != kTagPcm && f.tag != kTagFloat)
    throw fail("unsupported format tag " + hex16(f.tag) + tag_name(f.tag) +
               ": only PCM and IEEE float are read");
  if (channels == 0) throw fail("0 channels");
  if (rate == 0 || rate > static_cast<uint32_t>(std::numeric_limits<int>::max()))
    throw fail("sample rate " + std::to_string(rate) + " is out of range");
  const bool bits_ok =
      f.tag == kTagPcm ? (bits == 8 || bits == 16 || bits == 24 || bits == 32) : (bits == 32 || bits == 64);
  if (!bits_ok)
    throw fail("unsupported " + std::to_string(bits) + " bits per sample for " +
               (f.tag == kTagPcm ? "PCM" : "float"));
  const size_t expected_align = size_t{channels} * (bits / 8);
  if (block_align != expected_align)
    throw fail("block align " + std::to_string(block_align) + " does not match " + std::to_string(channels) +
               " channels x " + std::to_string(bits) + " bits");
  f.channels = channels;
  f.sample_rate = static_cast<int>(rate);
  f.bits = bits;
  f.block_align = expected_align;
  return f;
}

// One sample of the file as a double in [-1, 1) (PCM) or as stored (float).
double decode_sample(const uint8_t* p, const Format& f) {
  if (f.tag == kTagFloat) return f.bits == 32 ? double{load<float>(p)} : load<double>(p);
  switch (f.bits) {
    case 8:
      return (static_cast<int>(p[0]) - 128) / 128.0;  // 8-bit WAV is unsigned, offset 128
    case 16:
      return load<int16_t>(p) / 32768.0;
    case 24: {
      // Assemble the 3 bytes into the top of an int32 so the sign bit lands in place.
      const uint32_t u = (uint32_t{p[0]} << 8) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 24);
      return static_cast<int32_t>(u) / 2147483648.0;
    }
    default:
      return load<int32_t>(p) / 2147483648.0;
  }
}

}  // namespace

WavAudio parse_wav(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 12)
    throw FormatError(name, "RIFF header",
                      "file is " + std::to_string(size) + " bytes, shorter than the 12-byte header");
  if (std::memcmp(data, "RF64", 4) == 0)
    throw FormatError(name, "RIFF header", "RF64 files are not supported");
  if (std::memcmp(data, "RIFF", 4) != 0)
    throw FormatError(name, "RIFF header", "starts with " + printable_id(data) + ", not 'RIFF'");
  if (std::memcmp(data + 8, "WAVE", 4) != 0)
    throw FormatError(name, "RIFF header", "form type is " + printable_id(data + 8) + ", not 'WAVE'");
  // The RIFF size field is ignored: writers get it wrong as often as the data size, and the
  // chunk walk below is bounded by the real file size anyway.

  bool have_fmt = false;
  Format fmt;
  WavAudio out;
  const uint8_t* samples = nullptr;
  size_t data_bytes = 0;
  bool have_data = false;

  uint64_t pos = 12;
  while (pos + 8 <= size) {
    const uint8_t* id = data + pos;
    const uint32_t chunk_size = load<uint32_t>(data + pos + 4);
    const uint64_t body = pos + 8;
    const uint64_t available = size - body;
    const std::string where = "chunk " + printable_id(id) + " at offset " + std::to_string(pos);

    if (std::memcmp(id, "data", 4) == 0) {
      if (!have_fmt) throw FormatError(name, where, "data chunk comes before the fmt chunk");
      // The tolerated truncation (see wav.h): keep what is there.
      out.truncated = chunk_size > available;
      const uint64_t bytes = std::min<uint64_t>(chunk_size, available);
      const uint64_t whole = bytes - bytes % fmt.block_align;
      if (whole != chunk_size) out.truncated = true;
      samples = data + body;
      data_bytes = static_cast<size_t>(whole);
      have_data = true;
      break;  // whatever follows the samples (LIST, id3 ...) is of no use here
    }
    if (chunk_size > available)
      throw FormatError(name, where,
                        "size " + std::to_string(chunk_size) + " runs past the end of the file (" +
                            std::to_string(available) + " bytes left)");
    if (std::memcmp(id, "fmt ", 4) == 0) {
      if (have_fmt) throw FormatError(name, where, "second fmt chunk");
      fmt = parse_fmt(data + body, chunk_size, name);
      have_fmt = true;
    }
    // RIFF pads every chunk to an even size; the pad byte is not counted in its size.
    pos = body + chunk_size + (chunk_size & 1u);
  }
  if (!have_fmt) throw FormatError(name, "chunk list", "no fmt chunk");
  if (!have_data) throw FormatError(name, "chunk list", "no data chunk");

  out.sample_rate = fmt.sample_rate;
  out.channels = fmt.channels;
  out.bits_per_sample = fmt.bits;
  out.is_float = fmt.tag == kTagFloat;

  const size_t frames = data_bytes / fmt.block_align;
  const size_t sample_bytes = static_cast<size_t>(fmt.bits / 8);
  out.samples.resize(frames);
  const double inv_channels = 1.0 / fmt.channels;
  for (size_t i = 0; i < frames; ++i) {
    const uint8_t* frame = samples + i * fmt.block_align;
    double sum = 0.0;
    for (int c = 0; c < fmt.channels; ++c) sum += decode_sample(frame + c * sample_bytes, fmt);
    out.samples[i] = static_cast<float>(fmt.channels == 1 ? sum : sum * inv_channels);
  }
  return out;
}

WavAudio read_wav(const std::string& path) {
  const std::vector<uint8_t> bytes = read_all(path);
  return parse_wav(bytes.data(), bytes.size(), path);
}

std::vector<float> read_raw_f32(const std::string& path) {
  const std::vector<uint8_t> bytes = read_all(path);
  if (bytes.size() % sizeof(float) != 0)
    throw FormatError(path, "raw float32 samples",
                      "size " + std::to_string(bytes.size()) + " is not a multiple of 4 bytes");
  std::vector<float> out(bytes.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

void write_wav(const std::string& path, const std::vector<float>& samples, int sample_rate,
               WavEncoding encoding) {
  if (sample_rate <= 0)
    throw ValueError(path + ": sample rate " + std::to_string(sample_rate) + " must be > 0");
  const bool is_float = encoding == WavEncoding::kFloat32;
  const uint16_t bits = is_float ? 32 : 16;
  const uint64_t data_bytes = uint64_t{samples.size()} * (bits / 8);
  // Float fmt chunks carry cbSize (= 0), as WAVEFORMATEX requires for non-PCM tags.
  const uint32_t fmt_size = is_float ? 18 : 16;
  const uint64_t riff_size = 4 + (8 + fmt_size) + 8 + data_bytes + (data_bytes & 1u);
  if (riff_size > std::numeric_limits<uint32_t>::max())
    throw ValueError(path + ": " + std::to_string(samples.size()) + " samples do not fit a WAV file (4 GiB)");

  std::string header;
  const auto put_bytes = [&](const void* p, size_t n) { header.append(static_cast<const char*>(p), n); };
  const auto put16 = [&](uint16_t v) { put_bytes(&v, 2); };
  const auto put32 = [&](uint32_t v) { put_bytes(&v, 4); };
  header += "RIFF";
  put32(static_cast<uint32_t>(riff_size));
  header += "WAVEfmt ";
  put32(fmt_size);
  put16(is_float ? kTagFloat : kTagPcm);
  put16(1);
  put32(static_cast<uint32_t>(sample_rate));
  put32(static_cast<uint32_t>(sample_rate) * (bits / 8));
  put16(bits / 8);
  put16(bits);
  if (is_float) put16(0);
  header += "data";
  put32(static_cast<uint32_t>(data_bytes));

  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw IoError(path + ": cannot create: " + std::strerror(errno));
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  if (is_float) {
    f.write(reinterpret_cast<const char*>(samples.data()), static_cast<std::streamsize>(data_bytes));
  } else {
    std::vector<int16_t> pcm(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
      // NaN maps to 0 rather than to undefined behaviour in the integer conversion.
      const float s = std::isnan(samples[i]) ? 0.0f : samples[i];
      const double scaled = std::nearbyint(double{s} * 32768.0);
      pcm[i] = static_cast<int16_t>(std::clamp(scaled, -32768.0, 32767.0));
    }
    f.write(reinterpret_cast<const char*>(pcm.data()), static_cast<std::streamsize>(data_bytes));
  }
  if (data_bytes & 1u) f.put('\0');  // unreachable with 2- or 4-byte samples; kept for the RIFF rule
  f.flush();
  if (!f) throw IoError(path + ": write failed: " + std::strerror(errno));
}

}  // namespace peft::audio
