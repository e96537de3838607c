// Real speech for the pipelines' tests: LibriVox recordings of Debian's
// pocketsphinx-testdata joined into one WAV with GStreamer (concat), encoded to the
// formats users bring (FLAC, MP3, Ogg/Vorbis, MKV with a video track, MP4/AAC) with
// gst-launch-1.0, and the WER of a transcript against the known text.
#pragma once

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "pipelines/run_program.h"
#include "pocketsphinx_testdata.h"

namespace peft_test {

struct Speech {
  std::filesystem::path wav;
  std::string reference;  // the utterances' transcripts, space-separated
  double seconds = 0;
};

// The LibriVox utterances whose ids end with `suffixes` (e.g. "0870"), in that order,
// joined into `wav` (16 kHz mono S16).
inline Speech joined_librivox(const std::filesystem::path& wav, const std::vector<std::string>& suffixes) {
  const auto all = pocketsphinx_utterances("librivox");
  BOOST_REQUIRE_MESSAGE(!all.empty(), "pocketsphinx-testdata is not installed (./setup installs it)");
  std::vector<std::string> args = {"gst-launch-1.0",
                                   "-q",
                                   "concat",
                                   "name=c",
                                   "!",
                                   "audioconvert",
                                   "!",
                                   "wavenc",
                                   "!",
                                   "filesink",
                                   "location=" + wav.string()};
  Speech s;
  s.wav = wav;
  for (const auto& suffix : suffixes)
    for (const auto& u : all)
      if (u.id.size() >= suffix.size() &&
          u.id.compare(u.id.size() - suffix.size(), suffix.size(), suffix) == 0) {
        args.insert(args.end(), {"filesrc", "location=" + u.wav, "!", "wavparse", "!", "c."});
        s.reference += (s.reference.empty() ? "" : " ") + u.reference;
        // 16 kHz S16 mono with a 44-byte header.
        s.seconds += static_cast<double>(std::filesystem::file_size(u.wav) - 44) / 32000.0;
      }
  const ProgramResult r = run_program(args);
  BOOST_REQUIRE_MESSAGE(r.status == 0 && std::filesystem::exists(wav), "joining the WAVs failed: " << r.err);
  return s;
}

// `wav` encoded as `format` (flac, mp3, ogg, mkv, mp4) next to it, e.g. speech.flac.
inline std::filesystem::path encode(const std::filesystem::path& wav, const std::string& format) {
  std::filesystem::path out = wav;
  out.replace_extension(format);
  const std::string in = "filesrc location=" + wav.string() + " ! wavparse ! audioconvert ! ";
  const std::string sink = "filesink location=" + out.string();
  std::string desc;
  if (format == "flac") desc = in + "flacenc ! " + sink;
  if (format == "mp3") desc = in + "lamemp3enc ! " + sink;
  if (format == "ogg") desc = in + "vorbisenc ! oggmux ! " + sink;
  if (format == "mp4") desc = in + "avenc_aac ! mp4mux ! " + sink;
  // A video track as well: the program must pick the audio one.
  if (format == "mkv")
    desc = in + "vorbisenc ! queue ! matroskamux name=m ! " + sink +
           " videotestsrc num-buffers=30 ! video/x-raw,width=160,height=120,framerate=3/1 ! "
           "x264enc speed-preset=ultrafast ! queue ! m.";
  BOOST_REQUIRE_MESSAGE(!desc.empty(), "no encoder for " << format);
  std::vector<std::string> args = {"sh", "-c", "gst-launch-1.0 -q " + desc};
  const ProgramResult r = run_program(args);
  BOOST_REQUIRE_MESSAGE(r.status == 0 && std::filesystem::exists(out),
                        "encoding " << format << " failed: " << r.err);
  return out;
}

// jiwer's WER after Whisper's English normalizer on both sides.
inline double normalized_wer(const std::string& reference, const std::string& hypothesis) {
  return peft::metrics::wer(peft::metrics::normalize_english(reference),
                            peft::metrics::normalize_english(hypothesis));
}

}  // namespace peft_test
