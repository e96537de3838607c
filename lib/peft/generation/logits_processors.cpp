#include "peft/generation/logits_processors.h"

#include <ATen/ATen.h>

#include <limits>
#include <map>
#include <set>

namespace peft::generation {

namespace {
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
}

void apply_repetition_penalty(at::Tensor& scores, const Sequences& rows, double penalty) {
  if (penalty == 1.0) return;
  auto s = scores.accessor<float, 2>();
  const int64_t vocab = scores.size(1);
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t tok : std::set<int64_t>(rows[r].begin(), rows[r].end())) {
      if (tok < 0 || tok >= vocab) continue;
      float& v = s[static_cast<int64_t>(r)][tok];
      v = v < 0 ? static_cast<float>(v * penalty) : static_cast<float>(v / penalty);
    }
}

void ban_repeated_ngrams(at::Tensor& scores, const Sequences& rows, int64_t n) {
  if (n <= 0) return;
  auto s = scores.accessor<float, 2>();
  const int64_t vocab = scores.size(1);
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::vector<int64_t>& seq = rows[r];
    const int64_t len = static_cast<int64_t>(seq.size());
    if (len + 1 < n) continue;
    // The n-1 tokens that end the row; any earlier n-gram starting with them bans its last token.
    for (int64_t i = 0; i + n <= len; ++i) {
      bool same = true;
      for (int64_t j = 0; j < n - 1 && same; ++j) same = seq[i + j] == seq[len - (n - 1) + j];
      if (same && seq[i + n - 1] >= 0 && seq[i + n - 1] < vocab)
        s[static_cast<int64_t>(r)][seq[i + n - 1]] = kMinusInf;
    }
  }
}

void process_logits(at::Tensor& scores, const Sequences& rows, int64_t prompt_length,
                    const GenerationOptions& o) {
  apply_repetition_penalty(scores, rows, o.repetition_penalty);
  ban_repeated_ngrams(scores, rows, o.no_repeat_ngram_size);
  const int64_t vocab = scores.size(1);
  if (o.min_new_tokens > 0 && !rows.empty() &&
      static_cast<int64_t>(rows.front().size()) - prompt_length < o.min_new_tokens)
    for (int64_t eos : o.eos_token_ids)
      if (eos >= 0 && eos < vocab) scores.select(1, eos).fill_(kMinusInf);
  if (o.forced_bos_token_id && !rows.empty() && rows.front().size() == 1) {
    const int64_t bos = *o.forced_bos_token_id;
    scores.fill_(kMinusInf);
    if (bos >= 0 && bos < vocab) scores.select(1, bos).fill_(0.0f);
  }
  if (o.forced_eos_token_id && !rows.empty() &&
      static_cast<int64_t>(rows.front().size()) == prompt_length + o.max_new_tokens - 1) {
    const int64_t eos = *o.forced_eos_token_id;
    scores.fill_(kMinusInf);
    if (eos >= 0 && eos < vocab) scores.select(1, eos).fill_(0.0f);
  }
}

void warp_for_sampling(at::Tensor& scores, const GenerationOptions& o) {
  if (o.temperature != 1.0) scores.div_(o.temperature);
  const int64_t vocab = scores.size(1);
  if (o.top_k > 0 && o.top_k < vocab) {
    // Keep scores >= the k-th largest (ties kept, as Hugging Face's TopKLogitsWarper).
    const at::Tensor kth = std::get<0>(at::topk(scores, o.top_k, -1)).narrow(1, o.top_k - 1, 1);
    scores.masked_fill_(scores < kth, kMinusInf);
  }
  if (o.top_p < 1.0) {
    // Sorted ascending, drop the tokens whose cumulative probability stays <= 1 - top_p;
    // the most likely token always stays.
    auto [sorted, order] = at::sort(scores, -1, false);
    at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
    at::Tensor remove = cumulative <= (1.0 - o.top_p);
    remove.select(1, vocab - 1).fill_(false);
    scores.masked_fill_(remove.scatter(1, order, remove), kMinusInf);
  }
}

}  // namespace peft::generation
