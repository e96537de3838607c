#include "peft/summarization/text_model.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "peft/adapters/bound_adapter.h"
#include "peft/error.h"
#include "peft/generation/token_scorer.h"
#include "peft/io/checkpoint.h"
#include "peft/io/hf_config.h"
#include "peft/models/bart.h"
#include "peft/models/llama.h"
#include "peft/models/t5.h"
#include "peft/text/bpe_tokenizer.h"
#include "peft/text/sentencepiece_text_tokenizer.h"

namespace peft::summarization {

namespace fs = std::filesystem;

const char* const kDefaultChatInstruction =
    "Summarize the following text in one or two sentences. Reply with the summary only.";

TextModel::TextModel() = default;
TextModel::~TextModel() = default;

namespace {

// The GGUF file a path names: the file itself, or the one *.gguf in a directory.
std::optional<fs::path> gguf_file(const fs::path& path) {
  if (fs::is_regular_file(path)) {
    if (path.extension() == ".gguf") return path;
    return std::nullopt;
  }
  if (!fs::is_directory(path) || fs::exists(path / "config.json")) return std::nullopt;
  std::optional<fs::path> found;
  for (const auto& e : fs::directory_iterator(path))
    if (e.path().extension() == ".gguf") {
      if (found) throw ValueError(path.string() + ": holds several .gguf files; name one");
      found = e.path();
    }
  return found;
}

}  // namespace

std::shared_ptr<const TextModel> TextModel::load(const fs::path& path, const quant::QuantOptions& quant) {
  if (!fs::exists(path)) throw NotFoundError(path.string() + ": no such model file or directory");
  auto m = std::shared_ptr<TextModel>(new TextModel());
  m->source_ = path.string();
  if (const auto gguf = gguf_file(path)) {
    m->kind_ = Kind::decoder_only;
    m->llama_ = models::LlamaModel::load(*gguf, quant);
    m->tokenizer_ = text::BpeTokenizer::from_gguf(*io::open_checkpoint(*gguf));
  } else {
    if (!fs::exists(path / "config.json"))
      throw NotFoundError(path.string() + ": neither a GGUF file nor a directory with config.json");
    const io::HfConfig config = io::read_hf_config(path / "config.json");
    const std::string& type = config.model_type;
    if (type == "llama" || type == "mistral" || type == "qwen2") {
      m->kind_ = Kind::decoder_only;
      m->llama_ = models::LlamaModel::load(path, quant);
      if (!fs::exists(path / "tokenizer.json"))
        throw NotFoundError(path.string() + ": no tokenizer.json (the model's tokenizer is needed)");
      m->tokenizer_ = text::BpeTokenizer::from_hf_dir(path);
      if (fs::exists(path / "generation_config.json"))
        m->eos_ids_ = io::read_hf_generation_config(path / "generation_config.json").eos_token_ids;
    } else if (type == "t5" || type == "bart") {
      m->kind_ = Kind::encoder_decoder;
      if (type == "t5") {
        m->seq2seq_ = models::T5Model::load(path, quant);
        if (!fs::exists(path / "spiece.model"))
          throw NotFoundError(path.string() + ": no spiece.model (T5's SentencePiece model)");
        m->tokenizer_ = text::SentencePieceTextTokenizer::load(path / "spiece.model");
        m->tokenizer_->add_eos = true;  // T5's tokenizer ends every input with </s>
      } else {
        m->seq2seq_ = models::BartModel::load(path, quant);
        if (!fs::exists(path / "tokenizer.json"))
          throw NotFoundError(path.string() + ": no tokenizer.json (BART's byte-level BPE)");
        m->tokenizer_ = text::BpeTokenizer::from_hf_dir(path);
        m->tokenizer_->add_bos = m->tokenizer_->add_eos = true;  // <s> text </s>, as its post-processor
      }
      const models::TextModelSpecials& sp = m->seq2seq_->specials();
      if (m->tokenizer_->vocab_size() > sp.vocab_size)
        throw ValueError(m->source_ + ": the tokenizer has " + std::to_string(m->tokenizer_->vocab_size()) +
                         " tokens, more than the model's " + std::to_string(sp.vocab_size));
      if (m->tokenizer_->add_eos && !m->tokenizer_->eos_id)
        throw ValueError(m->source_ + ": the tokenizer has no end-of-sequence token");
      if (m->tokenizer_->add_bos && !m->tokenizer_->bos_id)
        throw ValueError(m->source_ + ": the tokenizer has no beginning-of-sequence token");
      m->eos_ids_ = sp.eos_token_ids;
      return m;
    } else {
      throw ValueError(path.string() + "/config.json: model_type '" + type +
                       "' is not a supported summarizer (llama, mistral, qwen2, t5, bart; MBart's tokenizer "
                       "is not read yet)");
    }
  }
  if (m->tokenizer_->vocab_size() > m->llama_->config().vocab_size)
    throw ValueError(m->source_ + ": the tokenizer has " + std::to_string(m->tokenizer_->vocab_size()) +
                     " tokens, more than the model's " + std::to_string(m->llama_->config().vocab_size));
  if (m->tokenizer_->eos_id &&
      std::find(m->eos_ids_.begin(), m->eos_ids_.end(), *m->tokenizer_->eos_id) == m->eos_ids_.end())
    m->eos_ids_.insert(m->eos_ids_.begin(), *m->tokenizer_->eos_id);
  if (m->eos_ids_.empty()) throw ValueError(m->source_ + ": the tokenizer names no end-of-sequence token");
  if (m->tokenizer_->chat_template.empty())
    throw ValueError(m->source_ + ": has no chat template; an instruction-tuned model is needed");
  std::string bos;
  if (m->tokenizer_->add_bos && m->tokenizer_->bos_id)
    bos = m->tokenizer_->decode({*m->tokenizer_->bos_id}, false);
  m->chat_ = text::parse_chat_template(m->tokenizer_->chat_template, bos);
  return m;
}

std::string TextModel::architecture() const {
  return llama_ ? llama_->config().architecture : seq2seq_->architecture();
}

int64_t TextModel::weight_bytes() const { return llama_ ? llama_->weight_bytes() : seq2seq_->weight_bytes(); }

int64_t TextModel::input_budget(int64_t max_new_tokens) const {
  if (llama_) return llama_->config().max_position_embeddings - max_new_tokens;
  // T5's relative positions have no limit, but it was trained on 512-token inputs.
  return architecture() == "t5" ? 512 : seq2seq_->specials().max_source_positions;
}

Prompt TextModel::prompt(const std::string& given_instruction, const std::string& text) const {
  if (seq2seq_) {
    // T5 reads its task from a prefix ("summarize: "); BART summarizers take the text.
    std::string input = text;
    if (!given_instruction.empty())
      input = given_instruction + " " + text;
    else if (architecture() == "t5")
      input = "summarize: " + text;
    std::vector<int64_t> ids;
    if (tokenizer_->add_bos) ids.push_back(*tokenizer_->bos_id);
    const std::vector<int64_t> body = tokenizer_->encode(input, false);
    ids.insert(ids.end(), body.begin(), body.end());
    if (tokenizer_->add_eos) ids.push_back(*tokenizer_->eos_id);
    return {ids};
  }
  const std::string& instruction =
      given_instruction.empty() ? std::string(kDefaultChatInstruction) : given_instruction;
  const std::string user = instruction + "\n\n" + text;
  const std::string chat = text::render_chat(chat_, {{"user", user}});
  // The chat's markup is special tokens; the user's text must not be read as markup, so
  // it is tokenized on its own.
  const size_t at = chat.find(user);
  std::vector<int64_t> ids = tokenizer_->encode(chat.substr(0, at), true);
  const std::vector<int64_t> body = tokenizer_->encode(user, false);
  const std::vector<int64_t> tail = tokenizer_->encode(chat.substr(at + user.size()), true);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), tail.begin(), tail.end());
  return {ids};
}

int64_t TextModel::prompt_overhead(const std::string& instruction) const {
  return static_cast<int64_t>(prompt(instruction, "").ids.size());
}

generation::GenerationResult TextModel::generate(const Prompt& prompt, generation::GenerationOptions options,
                                                 const adapters::BoundAdapter* adapter) const {
  if (options.eos_token_ids.empty()) options.eos_token_ids = eos_ids_;
  if (llama_) {
    auto scorer = generation::causal_lm_scorer(llama_, adapter);
    return generation::generate(*scorer, prompt.ids, options, tokenizer_.get());
  }
  const models::TextModelSpecials& sp = seq2seq_->specials();
  if (!options.forced_bos_token_id) options.forced_bos_token_id = sp.forced_bos_token_id;
  if (!options.forced_eos_token_id) options.forced_eos_token_id = sp.forced_eos_token_id;
  const int64_t n = static_cast<int64_t>(prompt.ids.size());
  if (n > input_budget(0))
    throw ValueError(source_ + ": an input of " + std::to_string(n) + " tokens is longer than the model's " +
                     std::to_string(input_budget(0)));
  auto scorer = generation::seq2seq_scorer(seq2seq_, at::tensor(prompt.ids, at::kLong).view({1, n}), adapter);
  return generation::generate(*scorer, {sp.decoder_start_token_id}, options, tokenizer_.get());
}

std::shared_ptr<const adapters::BoundAdapter> TextModel::bind(const adapters::PeftAdapter& adapter) const {
  return llama_ ? llama_->bind(adapter) : seq2seq_->bind(adapter);
}

}  // namespace peft::summarization
