#include "peft/summarization/text_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <tuple>

#include "peft/adapters/bound_adapter.h"
#include "peft/error.h"
#include "peft/generation/token_scorer.h"
#include "peft/io/checkpoint.h"
#include "peft/io/hf_config.h"
#include "peft/models/bart.h"
#include "peft/models/llama.h"
#include "peft/models/t5.h"
#include "peft/text/bpe_tokenizer.h"
#include "peft/text/hf_unigram_text_tokenizer.h"
#include "peft/text/mbart_tokenizer.h"
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
  TextModelOptions options;
  options.quant = quant;
  return load(path, options);
}

std::shared_ptr<const TextModel> TextModel::load(const fs::path& path, const TextModelOptions& options) {
  const quant::QuantOptions& quant = options.quant;
  if (!fs::exists(path)) throw NotFoundError(path.string() + ": no such model file or directory");
  const bool languages = !options.source_language.empty() || !options.target_language.empty();
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
    } else if (type == "t5" || type == "bart" || type == "mbart") {
      m->kind_ = Kind::encoder_decoder;
      if (type == "t5") {
        m->seq2seq_ = models::T5Model::load(path, quant);
        if (fs::exists(path / "spiece.model")) {
          m->tokenizer_ = text::SentencePieceTextTokenizer::load(path / "spiece.model");
          m->tokenizer_->add_eos = true;  // T5's tokenizer ends every input with </s>
        } else if (fs::exists(path / "tokenizer.json")) {
          auto tok = text::HfUnigramTextTokenizer::load(path / "tokenizer.json");
          // The fast tokenizer's post-processor ("$A </s>"); without one, T5's </s>.
          tok->add_eos = !tok->input_template().present;
          for (const auto& [name, id] : tok->input_template().before) m->input_before_.push_back(id);
          for (const auto& [name, id] : tok->input_template().after) m->input_after_.push_back(id);
          m->tokenizer_ = std::move(tok);
        } else {
          throw NotFoundError(path.string() +
                              ": no spiece.model (T5's SentencePiece model) and no tokenizer.json");
        }
      } else if (type == "bart") {
        m->seq2seq_ = models::BartModel::load(path, quant);
        if (!fs::exists(path / "tokenizer.json"))
          throw NotFoundError(path.string() + ": no tokenizer.json (BART's byte-level BPE)");
        m->tokenizer_ = text::BpeTokenizer::from_hf_dir(path);
        m->tokenizer_->add_bos = m->tokenizer_->add_eos = true;  // <s> text </s>, as its post-processor
      } else {
        m->seq2seq_ = models::BartModel::load(path, quant);
        auto tok = text::MBartTokenizer::load(path, m->seq2seq_->specials().vocab_size);
        m->source_language_ =
            options.source_language.empty() ? tok->default_source_language() : options.source_language;
        std::tie(m->input_before_, m->input_after_) = tok->around(m->source_language_);
        if (!options.target_language.empty()) {
          m->target_language_ = options.target_language;
        } else if (!m->seq2seq_->specials().forced_bos_token_id && tok->default_target_language()) {
          m->target_language_ = *tok->default_target_language();
        }
        if (!m->target_language_.empty()) m->forced_bos_ = tok->language_id(m->target_language_);
        m->tokenizer_ = std::move(tok);
      }
      if (type != "mbart" && languages)
        throw ValueError(path.string() + ": source and target languages are for MBart models; this is " +
                         type);
      const models::TextModelSpecials& sp = m->seq2seq_->specials();
      if (m->tokenizer_->vocab_size() > sp.vocab_size)
        throw ValueError(m->source_ + ": the tokenizer has " + std::to_string(m->tokenizer_->vocab_size()) +
                         " tokens, more than the model's " + std::to_string(sp.vocab_size));
      if (m->tokenizer_->add_eos && !m->tokenizer_->eos_id)
        throw ValueError(m->source_ + ": the tokenizer has no end-of-sequence token");
      if (m->tokenizer_->add_bos && !m->tokenizer_->bos_id)
        throw ValueError(m->source_ + ": the tokenizer has no beginning-of-sequence token");
      if (m->tokenizer_->add_bos) m->input_before_.insert(m->input_before_.begin(), *m->tokenizer_->bos_id);
      if (m->tokenizer_->add_eos) m->input_after_.push_back(*m->tokenizer_->eos_id);
      m->eos_ids_ = sp.eos_token_ids;
      return m;
    } else {
      throw ValueError(path.string() + "/config.json: model_type '" + type +
                       "' is not a supported summarizer (llama, mistral, qwen2, t5, bart, mbart)");
    }
  }
  if (languages)
    throw ValueError(path.string() + ": source and target languages are for MBart models; this is " +
                     m->llama_->config().architecture);
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
    std::vector<int64_t> ids = input_before_;
    const std::vector<int64_t> body = tokenizer_->encode(input, false);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.insert(ids.end(), input_after_.begin(), input_after_.end());
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
  if (!options.forced_bos_token_id)
    options.forced_bos_token_id = forced_bos_ ? forced_bos_ : sp.forced_bos_token_id;
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
