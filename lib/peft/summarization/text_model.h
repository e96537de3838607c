// A summarizer's model with its tokenizer and prompt format, whatever the family:
// instruction-tuned decoder-only models (Llama family: SmolLM2, Llama 3, Qwen2) get
// the instruction and the text as a chat, in the model's own template; encoder-decoder
// models (T5, BART, MBart) get the text as their input ("summarize: " first for T5;
// MBart's language code around it, and the summary's language code forced first).
// Tokenizers: T5 spiece.model or tokenizer.json, BART tokenizer.json, MBart
// sentencepiece.bpe.model or tokenizer.json (text::MBartTokenizer).
// Immutable after loading; one TextModel serves concurrent summaries.
//
//   auto model = TextModel::load("models/default/smollm2-135m-instruct");
//   auto r = model->generate(model->prompt("Summarize this in one sentence.", text), options);
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "peft/generation/generate.h"
#include "peft/quant/quant_type.h"
#include "peft/text/chat_prompt.h"

namespace peft::adapters {
class BoundAdapter;
class PeftAdapter;
}  // namespace peft::adapters
namespace peft::models {
class LlamaModel;
class Seq2SeqModel;
}  // namespace peft::models
namespace peft::text {
class Tokenizer;
}

namespace peft::summarization {

// The instruction chat models get when the caller gives none.
extern const char* const kDefaultChatInstruction;

// The token ids a model is given for one request.
struct Prompt {
  std::vector<int64_t> ids;  // decoder-only: the whole chat; encoder-decoder: the encoder input
};

// How to load a model.
struct TextModelOptions {
  quant::QuantOptions quant;
  // MBart / MBart-50 only, language codes such as "en_XX", "de_DE". source_language: the
  // text's, whose code goes into the encoder input (default: tokenizer_config.json's
  // src_lang, else the code tokenizer.json's template holds, else "en_XX");
  // target_language: the summary's, forced as the first generated token (default: the
  // checkpoint's forced_bos_token_id, else tokenizer_config.json's tgt_lang, else none).
  // load() throws ValueError naming a code the tokenizer does not know, or a language
  // given for a model that has none.
  std::string source_language, target_language;
};

class TextModel {
 public:
  enum class Kind { decoder_only, encoder_decoder };

  // A GGUF file (or a directory holding one), or a Hugging Face directory (config.json +
  // safetensors + tokenizer files). Throws peft::Error subclasses naming the file: an
  // architecture that is not supported, a missing tokenizer, ...
  static std::shared_ptr<const TextModel> load(const std::filesystem::path& path,
                                               const quant::QuantOptions& quant = {});
  static std::shared_ptr<const TextModel> load(const std::filesystem::path& path,
                                               const TextModelOptions& options);

  Kind kind() const { return kind_; }
  const std::string& source() const { return source_; }
  std::string architecture() const;
  const text::Tokenizer& tokenizer() const { return *tokenizer_; }
  // MBart: the language codes in use (see TextModelOptions); empty for other models and
  // for a target left to the checkpoint's forced_bos_token_id.
  const std::string& source_language() const { return source_language_; }
  const std::string& target_language() const { return target_language_; }
  int64_t weight_bytes() const;

  // Tokens a prompt may hold with room left for `max_new_tokens` (decoder-only: the
  // context minus the new tokens; encoder-decoder: the encoder's input length, 512 for
  // T5, whose relative positions have no limit but which was trained on 512).
  int64_t input_budget(int64_t max_new_tokens) const;
  // The prompt for `instruction` applied to `text` (decoder-only: a user message
  // "instruction\n\ntext" in the chat template, kDefaultChatInstruction when empty; T5:
  // "summarize: text" when empty, else "instruction text", then </s>; BART:
  // <s> [instruction] text </s>; MBart: [instruction] text </s> src_lang_code; MBart-50:
  // src_lang_code [instruction] text </s>).
  Prompt prompt(const std::string& instruction, const std::string& text) const;
  // Tokens of the prompt around an empty text: what each chunk costs besides itself.
  int64_t prompt_overhead(const std::string& instruction) const;

  // Generates from `prompt`; options' eos_token_ids (and for BART/MBart the forced first
  // and last tokens) default to the model's.
  generation::GenerationResult generate(const Prompt& prompt, generation::GenerationOptions options,
                                        const adapters::BoundAdapter* adapter = nullptr) const;

  // Adapters for the model (checked against it; see adapters::BoundAdapter).
  std::shared_ptr<const adapters::BoundAdapter> bind(const adapters::PeftAdapter& adapter) const;

  ~TextModel();

 private:
  TextModel();
  Kind kind_ = Kind::decoder_only;
  std::string source_;
  std::shared_ptr<const models::LlamaModel> llama_;
  std::shared_ptr<const models::Seq2SeqModel> seq2seq_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  text::ChatTemplate chat_;  // decoder-only
  std::vector<int64_t> eos_ids_;
  // Encoder-decoder: the special tokens around the input's text, and the first generated
  // token (MBart's target language) when the caller's options name none.
  std::vector<int64_t> input_before_, input_after_;
  std::optional<int64_t> forced_bos_;
  std::string source_language_, target_language_;
};

}  // namespace peft::summarization
