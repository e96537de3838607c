#include "peft/text/sentencepiece_text_tokenizer.h"

#include "peft/text/special_tokens.h"

namespace peft::text {

std::unique_ptr<SentencePieceTextTokenizer> SentencePieceTextTokenizer::load(
    const std::filesystem::path& file) {
  return std::unique_ptr<SentencePieceTextTokenizer>(
      new SentencePieceTextTokenizer(SentencePieceTokenizer::load(file)));
}

SentencePieceTextTokenizer::SentencePieceTextTokenizer(SentencePieceTokenizer sp) : sp_(std::move(sp)) {
  auto id = [](int64_t v) -> std::optional<int64_t> {
    return v >= 0 ? std::optional<int64_t>(v) : std::nullopt;
  };
  bos_id = id(sp_.bos_id());
  eos_id = id(sp_.eos_id());
  pad_id = id(sp_.pad_id());
  unk_id = id(sp_.unk_id());
  for (int64_t i = 0; i < sp_.vocab_size(); ++i)
    if (sp_.type(i) == SentencePieceType::kControl && !sp_.piece(i).empty())
      controls_.emplace_back(sp_.piece(i), i);
  sort_longest_first(controls_);
}

std::vector<int64_t> SentencePieceTextTokenizer::encode(const std::string& text, bool parse_special) const {
  if (!parse_special || controls_.empty()) return sp_.encode(text);
  return encode_with_specials(text, controls_, [this](const std::string& part) { return sp_.encode(part); });
}

std::string SentencePieceTextTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  if (skip_special) return sp_.decode(ids);
  std::string out;
  std::vector<int64_t> run;
  for (int64_t id : ids) {
    if (is_special(id)) {
      out += sp_.decode(run) + sp_.piece(id);
      run.clear();
    } else {
      run.push_back(id);
    }
  }
  return out + sp_.decode(run);
}

bool SentencePieceTextTokenizer::is_special(int64_t id) const {
  return id >= 0 && id < sp_.vocab_size() && sp_.type(id) == SentencePieceType::kControl;
}

}  // namespace peft::text
