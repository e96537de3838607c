// Summaries of texts of any length: a text that fits the model's input is summarized
// in one pass; a longer one is cut into overlapping chunks at word boundaries, each
// chunk summarized, and the summaries summarized again (map-reduce) until one pass
// takes them all. Nothing is dropped: every word is in some chunk.
//
//   SummaryOptions o;  o.generation.max_new_tokens = 96;
//   Summary s = summarize(*model, transcript, o);
#pragma once

#include <string>
#include <vector>

#include "peft/generation/generation_options.h"

namespace peft::adapters {
class BoundAdapter;
}

namespace peft::summarization {

class TextModel;

struct SummaryOptions {
  // What the model is asked to do; empty: the model family's default (see
  // TextModel::prompt).
  std::string instruction;
  // generation.on_token (streaming) is called during the final pass only, the one that
  // writes the summary returned.
  generation::GenerationOptions generation;
  // Largest chunk, in tokens of text (0: as much as the model's input allows, at most
  // 2048, a cap chosen because attention cost grows with the square of the length; SmolLM2
  // takes 8192 positions).
  int64_t chunk_tokens = 0;
  int64_t overlap_tokens = 64;  // words shared by neighbouring chunks, in tokens
  int max_levels = 6;           // map-reduce rounds before giving up (with an error)
};

struct Summary {
  std::string text;
  int64_t chunks = 0;                 // first-level chunks (1: the text fitted; 0: empty text)
  int levels = 0;                     // summarization rounds
  std::vector<std::string> warnings;  // invalid UTF-8 replaced, ...
};

// Throws ValueError when a chunk cannot hold at least twice max_new_tokens (the
// reduction would not shrink), or when max_levels rounds did not bring the summaries
// under one chunk.
Summary summarize(const TextModel& model, const std::string& text, const SummaryOptions& options,
                  const adapters::BoundAdapter* adapter = nullptr);

// The chunks summarize() would make of `text` (each at most chunk_tokens tokens,
// neighbours sharing about overlap_tokens); for tests and tools.
std::vector<std::string> chunk_text(const TextModel& model, const std::string& text, int64_t chunk_tokens,
                                    int64_t overlap_tokens);

}  // namespace peft::summarization
