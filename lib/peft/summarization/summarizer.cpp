#include "peft/summarization/summarizer.h"

#include <algorithm>

#include "peft/error.h"
#include "peft/summarization/text_model.h"
#include "peft/text/tokenizer.h"
#include "peft/text/unicode.h"

namespace peft::summarization {

namespace {

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) words.push_back(text.substr(i, j - i));
    i = j;
  }
  return words;
}

std::string join(const std::vector<std::string>& words, size_t begin, size_t end) {
  std::string s;
  for (size_t i = begin; i < end; ++i) {
    if (i > begin) s += ' ';
    s += words[i];
  }
  return s;
}

int64_t chunk_budget(const TextModel& model, const SummaryOptions& o) {
  const int64_t room = model.input_budget(o.generation.max_new_tokens) - model.prompt_overhead(o.instruction);
  return o.chunk_tokens > 0 ? std::min(o.chunk_tokens, room) : std::min<int64_t>(room, 2048);
}

}  // namespace

std::vector<std::string> chunk_text(const TextModel& model, const std::string& text, int64_t chunk_tokens,
                                    int64_t overlap_tokens) {
  const std::vector<std::string> words = split_words(text);
  if (words.empty()) return {};
  // Byte-level BPE and SentencePiece both start a token at a space, so a chunk's
  // tokens are the sum of its words' (each counted with its leading space).
  std::vector<int64_t> cost(words.size());
  for (size_t i = 0; i < words.size(); ++i)
    cost[i] = static_cast<int64_t>(model.tokenizer().encode(" " + words[i]).size());
  std::vector<std::string> chunks;
  size_t begin = 0;
  while (begin < words.size()) {
    size_t end = begin;
    int64_t used = 0;
    while (end < words.size() && (end == begin || used + cost[end] <= chunk_tokens)) used += cost[end++];
    if (used > chunk_tokens) {
      // One word longer than a chunk (a URL, a base64 blob...): cut it by characters.
      const std::string& w = words[begin];
      const size_t piece =
          std::max<size_t>(1, w.size() * static_cast<size_t>(chunk_tokens) / static_cast<size_t>(used) / 2);
      for (size_t at = 0; at < w.size(); at += piece) chunks.push_back(w.substr(at, piece));
      begin = end;
      continue;
    }
    chunks.push_back(join(words, begin, end));
    if (end == words.size()) break;
    // The next chunk starts overlap_tokens back, but always moves forward.
    size_t next = end;
    int64_t back = 0;
    while (next > begin + 1 && back + cost[next - 1] <= overlap_tokens) back += cost[--next];
    begin = next;
  }
  return chunks;
}

Summary summarize(const TextModel& model, const std::string& raw, const SummaryOptions& o,
                  const adapters::BoundAdapter* adapter) {
  o.generation.validate();
  Summary s;
  std::string text = text::utf8_lossy(raw);
  if (text != raw) s.warnings.push_back("the text held invalid UTF-8; those bytes were replaced with U+FFFD");
  if (split_words(text).empty()) return s;  // nothing to summarize: the model is not run

  const int64_t budget = chunk_budget(model, o);
  if (budget < 2 * o.generation.max_new_tokens)
    throw ValueError("summarize: chunks of " + std::to_string(budget) + " tokens cannot hold twice the " +
                     std::to_string(o.generation.max_new_tokens) +
                     " new tokens of a summary; lower max_new_tokens");
  if (o.overlap_tokens < 0 || o.overlap_tokens * 2 > budget)
    throw ValueError("summarize: overlap_tokens must be in [0, half of a " + std::to_string(budget) +
                     "-token chunk]");
  for (int level = 1;; ++level) {
    const std::vector<std::string> chunks =
        chunk_text(model, text, budget, level == 1 ? o.overlap_tokens : 0);
    if (level == 1) s.chunks = static_cast<int64_t>(chunks.size());
    if (chunks.empty()) return s;  // the partial summaries were all empty
    std::vector<std::string> summaries;
    generation::GenerationOptions g = o.generation;
    if (chunks.size() > 1) g.on_token = nullptr;  // streaming callers see the final pass only
    for (const std::string& chunk : chunks) {
      const auto r = model.generate(model.prompt(o.instruction, chunk), g, adapter);
      std::string out = r.text;
      out.erase(0, out.find_first_not_of(" \n\t"));
      out.erase(out.find_last_not_of(" \n\t") + 1);
      summaries.push_back(out);
    }
    s.levels = level;
    if (summaries.size() == 1) {
      s.text = summaries.front();
      return s;
    }
    if (level >= o.max_levels)
      throw ValueError("summarize: " + std::to_string(summaries.size()) + " partial summaries left after " +
                       std::to_string(level) + " rounds; raise max_levels or lower max_new_tokens");
    std::string joined;
    for (const auto& part : summaries) joined += (joined.empty() ? "" : "\n") + part;
    text = joined;
  }
}

}  // namespace peft::summarization
