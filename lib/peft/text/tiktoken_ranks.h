// tiktoken's BPE files (openai-whisper's assets/*.tiktoken): one "<base64 token bytes>
// <rank>" line per token, ranks 0..N-1. tiktoken merges, within each pre-token, the
// adjacent pair whose concatenation has the lowest rank. The same tokenization comes out
// of a rank-ordered merge list in which each token of rank r is made from the two
// pieces that tiktoken's own procedure, allowed only ranks below r, leaves of its bytes
// (how Hugging Face converts these files). This file derives that list, so the ranks
// feed ByteLevelBpe like a tokenizer.json would.
//
//   TiktokenBpe t = read_tiktoken("models/default/whisper-tokenizers/multilingual.tiktoken");
//   ByteLevelBpe bpe(t.vocab, t.merges, t.path);
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace peft::text {

struct TiktokenBpe {
  std::string path;
  std::map<std::string, int64_t> vocab;                     // byte-level token (bytes_to_unicode) -> rank
  std::vector<std::pair<std::string, std::string>> merges;  // byte-level pairs, in rank order
  int64_t size = 0;                                         // number of ranks
};

// Throws IoError (unreadable) or FormatError naming the file and line (bad base64, ranks
// not 0..N-1 in order, a duplicate token, a multi-byte token that no two lower-ranked
// tokens make).
TiktokenBpe read_tiktoken(const std::filesystem::path& path);

}  // namespace peft::text
