// The utterances of Debian's pocketsphinx-testdata with their transcripts: the five
// LibriVox ("librivox") and the five "cards" recordings. The transcription files' lines
// read "<s> words </s> (file-id)". Shared by the WER tests and the benchmarks; no
// Boost.Test here, so benchmarks can use it too.
#pragma once

#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace peft_test {

inline const std::string kPocketsphinxData = "/usr/share/pocketsphinx/test/data/";

struct TestUtterance {
  std::string id;         // file id, e.g. "sense_and_sensibility_01_austen_64kb-0870"
  std::string reference;  // the transcript as written in the file
  std::string wav;        // path of the recording
};

// `set`: "librivox" or "cards". Empty when pocketsphinx-testdata is not installed.
inline std::vector<TestUtterance> pocketsphinx_utterances(const std::string& set) {
  const std::string dir = kPocketsphinxData + set + "/";
  std::ifstream list(dir + (set == "cards" ? "cards.transcription" : "transcription"));
  const std::regex line_re(R"(<s>\s*(.*?)\s*</s>\s*\((.+)\))");
  std::vector<TestUtterance> out;
  for (std::string line; std::getline(list, line);) {
    std::smatch m;
    if (std::regex_search(line, m, line_re))
      out.push_back({m[2].str(), m[1].str(), dir + m[2].str() + ".wav"});
  }
  return out;
}

}  // namespace peft_test
