// The peft-transcribe command line as users run it: --help documents every option the
// issue names, a LibriVox utterance transcribes in each format (JSON parsed, words and
// times checked, snapped to speech), and bad input gives the documented exit status with
// a message naming the file, the other files still transcribed.
#define BOOST_TEST_MODULE peft_transcribe
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "test_support.h"
#include "tools/run_tool.h"

namespace {

const std::string kUtterance =
    "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0930.wav";

using Run = peft_test::ToolRun;

// Runs peft-transcribe from the build tree with `args` (shell words, already quoted).
Run transcribe(const std::string& args) {
  return peft_test::run_tool("peft-transcribe", "--threads 2 " + args);
}

}  // namespace

BOOST_AUTO_TEST_CASE(help_documents_every_option) {
  const Run r = transcribe("--help");
  BOOST_CHECK_EQUAL(r.status, 0);
  for (const char* option : {"--model", "--quant", "--beam", "--language", "--task", "--vad", "--threads",
                             "--format", "--adapter", "--word-timestamps", "--snap-to-speech", "--batch",
                             "--raw-rate", "--initial-prompt", "--temperature", "--stream-latency"})
    BOOST_CHECK_MESSAGE(r.out.find(std::string("\n  ") + option + " ") != std::string::npos ||
                            r.out.find(std::string("\n  ") + option + "\n") != std::string::npos,
                        option << " is not documented by --help");
  for (const char* value : {"text | srt | vtt | json", "none | int8 | int4 | nf4", "transcribe | translate"})
    BOOST_CHECK_MESSAGE(r.out.find(value) != std::string::npos, "--help does not list " << value);
}

BOOST_AUTO_TEST_CASE(json_with_words_snapped_to_speech) {
  peft_test::require_model_file("whisper-tiny.en");
  peft_test::require_model_file("silero-vad/silero_vad.jit");
  const Run r = transcribe("--beam 1 --format json --snap-to-speech '" + kUtterance + "'");
  BOOST_REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  BOOST_CHECK_EQUAL(j.at("source").get<std::string>(), kUtterance);
  BOOST_CHECK_EQUAL(j.at("text").get<std::string>(), "He might even have been made amiable himself.");
  BOOST_REQUIRE(!j.at("segments").empty());
  double last = 0;
  for (const auto& s : j.at("segments")) {
    BOOST_REQUIRE(!s.at("words").empty());
    BOOST_CHECK_EQUAL(s.at("start").get<double>(), s.at("words").front().at("start").get<double>());
    BOOST_CHECK_EQUAL(s.at("end").get<double>(), s.at("words").back().at("end").get<double>());
    for (const auto& w : s.at("words")) {
      BOOST_CHECK_LE(last, w.at("start").get<double>());
      BOOST_CHECK_LE(w.at("start").get<double>(), w.at("end").get<double>());
      last = w.at("end").get<double>();
    }
  }
  BOOST_CHECK_LE(last, 3.5);  // the file is 3.3 s long and ends on speech
}

BOOST_AUTO_TEST_CASE(srt_and_vtt) {
  peft_test::require_model_file("whisper-tiny.en");
  const Run srt = transcribe("--beam 1 --format srt '" + kUtterance + "'");
  BOOST_REQUIRE_MESSAGE(srt.status == 0, srt.err);
  BOOST_CHECK_EQUAL(srt.out.rfind("1\n00:00:00,000 --> ", 0), 0u);
  BOOST_CHECK(srt.out.find("He might even have been made amiable himself.") != std::string::npos);
  const Run vtt = transcribe("--beam 1 --format vtt '" + kUtterance + "'");
  BOOST_REQUIRE_MESSAGE(vtt.status == 0, vtt.err);
  BOOST_CHECK_EQUAL(vtt.out.rfind("WEBVTT\n\n00:00:00.000 --> ", 0), 0u);
}

// The whisperasr element's streaming decoding without GStreamer: with a 4 s latency the
// first 4 s of the 7.1 s utterance must be decided before its end, so the sentence comes
// out as two cues (the forced commit cuts it: what a short latency costs), whose times
// stay inside the audio.
BOOST_AUTO_TEST_CASE(stream_latency_transcribes_as_the_element) {
  peft_test::require_model_file("whisper-tiny.en");
  const std::string utterance =
      "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav";
  const Run r = transcribe("--stream-latency 4000 --beam 1 --temperature 0 --format srt '" + utterance + "'");
  BOOST_REQUIRE_MESSAGE(r.status == 0, r.err);
  BOOST_CHECK_MESSAGE(r.out.find("John Dashwood had then leisure to consider") != std::string::npos, r.out);
  BOOST_CHECK_MESSAGE(r.out.find("prudently in his power to do for them.") != std::string::npos, r.out);
  BOOST_CHECK_MESSAGE(r.out.find("\n2\n00:00:0") != std::string::npos, r.out);
  BOOST_CHECK_EQUAL(r.out.rfind("1\n00:00:0", 0), 0u);
  BOOST_CHECK(r.out.find("00:00:08,") == std::string::npos);  // the file is 7.0 s long
}

BOOST_AUTO_TEST_CASE(bad_options_exit_2_and_bad_files_exit_1_naming_the_file) {
  for (const char* bad :
       {"--beam 0 x.wav", "--quant int3 x.wav", "--format doc x.wav", "--no-such-option x.wav", "",
        "--snap-to-speech --batch 4 x.wav", "--vad-threshold 2 --vad x.wav", "--stream-latency 0 x.wav",
        "--stream-latency 31000 x.wav", "--stream-latency 5000 --vad x.wav"}) {
    const Run r = transcribe(bad);
    BOOST_TEST_CONTEXT("peft-transcribe " << bad << ": " << r.err) {
      BOOST_CHECK_EQUAL(r.status, 2);
      BOOST_CHECK(r.out.empty());
      BOOST_CHECK(!r.err.empty());
    }
  }
  peft_test::require_model_file("whisper-tiny.en");
  peft_test::TempDir dir;
  peft_test::write_file(dir / "broken.wav", std::string("RIFF\x10\0\0\0WAVEjunk", 16));
  const std::string missing = (dir / "missing.wav").string(), broken = (dir / "broken.wav").string();
  const Run r = transcribe("--beam 1 '" + missing + "' '" + broken + "' '" + kUtterance + "'");
  BOOST_CHECK_EQUAL(r.status, 1);
  BOOST_CHECK_MESSAGE(r.err.find(missing) != std::string::npos, r.err);
  BOOST_CHECK_MESSAGE(r.err.find(broken) != std::string::npos, r.err);
  BOOST_CHECK(r.out.find("==> " + kUtterance + " <==\nHe might even have been made amiable himself.") !=
              std::string::npos);
}
