#include "peft/text/whisper_tokenizer.h"

#include <algorithm>
#include <iterator>
#include <set>

#include "peft/error.h"
#include "peft/io/hf_config.h"
#include "peft/text/byte_level_bpe.h"
#include "peft/text/tiktoken_ranks.h"
#include "peft/text/unicode.h"

namespace peft::text {

namespace {

// Whisper's timestamp tokens: <|0.00|> .. <|30.00|> in 0.02 s steps.
constexpr int64_t kTimestampCount = 1501;
// openai's model.py: a checkpoint is multilingual iff its vocabulary has at least this
// many entries. English-only tokenizer files list the language and task tokens too
// (tiny.en's has <|en|> .. <|su|>, <|translate|>), so their presence alone says nothing.
constexpr int64_t kMultilingualMinVocab = 51865;
// <|endoftext|>, <|startoftranscript|>, the two tasks, startoflm, startofprev, nospeech,
// notimestamps: the special tokens besides languages and timestamps.
constexpr int64_t kControlTokens = 8;
// openai tokenizer.py's LANGUAGES, in token order (large-v3 added "yue", the 100th).
constexpr const char* kLanguageCodes[] = {
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt",  "tr", "pl", "ca", "nl", "ar", "sv", "it", "id",
    "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro",  "da", "hu", "ta", "no", "th", "ur", "hr", "bg",
    "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv",  "bn", "sr", "az", "sl", "kn", "et", "mk", "br",
    "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",  "gl", "mr", "pa", "si", "km", "sn", "yo", "so",
    "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi",  "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt",
    "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue"};

// "<|xx|>" with 2 or 3 lowercase ASCII letters: the shape of every Whisper language
// token (en, haw, yue, ...). Task and control tokens are longer.
bool is_language_token(const std::string& content, std::string& code) {
  if (content.size() < 6 || content.size() > 7) return false;
  if (content.compare(0, 2, "<|") != 0 || content.compare(content.size() - 2, 2, "|>") != 0) return false;
  const std::string inner = content.substr(2, content.size() - 4);
  for (char c : inner)
    if (c < 'a' || c > 'z') return false;
  code = inner;
  return true;
}

}  // namespace

WhisperTokenizer::~WhisperTokenizer() = default;
WhisperTokenizer::WhisperTokenizer(WhisperTokenizer&&) noexcept = default;
WhisperTokenizer& WhisperTokenizer::operator=(WhisperTokenizer&&) noexcept = default;

WhisperTokenizer::WhisperTokenizer(const std::filesystem::path& file, int64_t model_vocab_size) {
  std::vector<io::AddedToken> added;
  int64_t id_count = 0;  // largest id the file itself lists, + 1
  if (file.extension() == ".tiktoken") {
    // openai's layout (tokenizer.py get_encoding): after the N ranks come <|endoftext|>,
    // <|startoftranscript|>, one token per language, the task and control tokens, then
    // the timestamps. The file does not say how many languages the model has; the
    // model's vocabulary does (openai's num_languages = n_vocab - 51765 - multilingual).
    const TiktokenBpe t = read_tiktoken(file);
    origin_ = t.path;
    bpe_ = std::make_unique<ByteLevelBpe>(t.vocab, t.merges, origin_);
    const int64_t languages = model_vocab_size - t.size - kControlTokens - kTimestampCount;
    if (languages < 1 || languages > static_cast<int64_t>(std::size(kLanguageCodes)))
      throw ValueError(origin_ + ": the model's vocabulary of " + std::to_string(model_vocab_size) +
                       " tokens does not fit these " + std::to_string(t.size) +
                       " BPE ranks plus Whisper's special "
                       "tokens (it would leave " +
                       std::to_string(languages) + " language tokens, expected 1 to " +
                       std::to_string(std::size(kLanguageCodes)) + ")");
    std::vector<std::string> names = {"<|endoftext|>", "<|startoftranscript|>"};
    for (int64_t i = 0; i < languages; ++i) names.push_back(std::string("<|") + kLanguageCodes[i] + "|>");
    for (const char* n : {"<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                          "<|nospeech|>", "<|notimestamps|>"})
      names.push_back(n);
    for (const auto& n : names) added.push_back({t.size + static_cast<int64_t>(added.size()), n, true});
    id_count = t.size + static_cast<int64_t>(added.size());
  } else {
    const io::HfTokenizerFile f = io::read_hf_tokenizer(file);
    origin_ = f.path;
    if (f.model_type != "BPE")
      throw FormatError(origin_, "model.type", "expected BPE for Whisper, got " + f.model_type);
    bpe_ = std::make_unique<ByteLevelBpe>(f.vocab, f.merges, origin_);
    added = f.added_tokens;
    id_count = f.id_count();
  }

  for (const auto& t : added) added_.emplace_back(t.id, t.content);
  std::sort(added_.begin(), added_.end());
  added_special_.resize(added_.size());
  for (const auto& t : added) {
    const auto it = std::lower_bound(added_.begin(), added_.end(), std::make_pair(t.id, t.content));
    added_special_[static_cast<size_t>(it - added_.begin())] = t.special;
  }

  const auto require = [&](std::initializer_list<const char*> names) {
    for (const char* name : names)
      if (auto id = added_id(name)) return *id;
    throw FormatError(origin_, "added_tokens", std::string("missing special token ") + *names.begin());
  };
  eot_ = require({"<|endoftext|>"});
  sot_ = require({"<|startoftranscript|>"});
  sot_lm_ = require({"<|startoflm|>"});
  sot_prev_ = require({"<|startofprev|>"});
  // Older files (tiny.en's among them) call it <|nocaptions|>.
  no_speech_ = require({"<|nospeech|>", "<|nocaptions|>"});
  no_timestamps_ = require({"<|notimestamps|>"});
  translate_ = added_id("<|translate|>");
  transcribe_ = added_id("<|transcribe|>");
  timestamp_begin_ = no_timestamps_ + 1;

  if (model_vocab_size != timestamp_begin_ + kTimestampCount)
    throw ValueError(origin_ + ": the model's vocabulary has " + std::to_string(model_vocab_size) +
                     " tokens, but this tokenizer needs " +
                     std::to_string(timestamp_begin_ + kTimestampCount) +
                     " (<|notimestamps|> = " + std::to_string(no_timestamps_) + ", then " +
                     std::to_string(kTimestampCount) + " timestamp tokens)");
  if (id_count > model_vocab_size)
    throw ValueError(origin_ + ": token ids reach " + std::to_string(id_count - 1) +
                     ", beyond the model's vocabulary of " + std::to_string(model_vocab_size));
  vocab_size_ = model_vocab_size;

  // Languages sit between <|startoftranscript|> and the task tokens.
  const int64_t lang_end =
      translate_ ? *translate_ : std::min({sot_lm_, sot_prev_, no_speech_, no_timestamps_});
  for (const auto& [id, content] : added_) {
    std::string code;
    if (id > sot_ && id < lang_end && is_language_token(content, code)) {
      language_codes_.push_back(code);
      language_tokens_.push_back(id);
    }
  }
  multilingual_ =
      !language_codes_.empty() && translate_ && transcribe_ && vocab_size_ >= kMultilingualMinVocab;

  // openai tokenizer.py's non_speech_tokens, re-derived: speaker tags, sound-effect
  // brackets and music notes are suppressed when they form a token by themselves (alone
  // or after a space); for the music symbols, which may span several tokens, the first
  // token is suppressed since these share their leading UTF-8 bytes. " -" and " '" are
  // suppressed so that hyphens and apostrophes appear only inside words.
  std::set<int64_t> ns;
  for (const char* lead : {" -", " '"}) {
    const auto ids = encode(lead);
    if (!ids.empty()) ns.insert(ids.front());
  }
  static const char* const kSymbols[] = {
      "\"",  "#",  "(",  ")",  "*",   "+",  "/",  ":",   ";",   "<",  "=",  ">",  "@",  "[",   "\\",  "]",
      "^",   "_",  "`",  "{",  "|",   "}",  "~",  "「",  "」",  "『", "』", "<<", ">>", "<<<", ">>>", "--",
      "---", "-(", "-[", "('", "(\"", "((", "))", "(((", ")))", "[[", "]]", "{{", "}}", "♪♪",  "♪♪♪"};
  static const char* const kMusic[] = {"♩", "♪", "♫", "♬", "♭", "♮", "♯"};
  for (const char* sym : kSymbols)
    for (const std::string& text : {std::string(sym), " " + std::string(sym)}) {
      const auto ids = encode(text);
      if (ids.size() == 1) ns.insert(ids.front());
    }
  for (const char* sym : kMusic)
    for (const std::string& text : {std::string(sym), " " + std::string(sym)}) {
      const auto ids = encode(text);
      if (!ids.empty()) ns.insert(ids.front());
    }
  non_speech_.assign(ns.begin(), ns.end());
}

const std::string* WhisperTokenizer::added_content(int64_t id, bool* special) const {
  const auto it = std::lower_bound(added_.begin(), added_.end(), id,
                                   [](const auto& entry, int64_t v) { return entry.first < v; });
  if (it == added_.end() || it->first != id) return nullptr;
  if (special) *special = added_special_[static_cast<size_t>(it - added_.begin())];
  return &it->second;
}

std::optional<int64_t> WhisperTokenizer::added_id(const std::string& content) const {
  for (const auto& [id, c] : added_)
    if (c == content) return id;
  return std::nullopt;
}

std::vector<int64_t> WhisperTokenizer::encode(const std::string& text) const { return bpe_->encode(text); }

void WhisperTokenizer::append_token_bytes(int64_t id, std::string& out) const {
  if (id < 0 || id >= vocab_size_)
    throw ValueError(origin_ + ": token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                     std::to_string(vocab_size_) + ")");
  bool special = false;
  if (const std::string* content = added_content(id, &special)) {
    // Like tokenizers' decode(skip_special_tokens=True): special tokens vanish,
    // other added tokens go through the byte-level decoder like any token.
    if (special) return;
    auto bytes = unicode_to_bytes(*content);
    out += bytes ? *bytes : *content;
    return;
  }
  if (id >= eot_) return;  // unlisted control ids are special by position
  auto bytes = bpe_->token_bytes(id);
  if (!bytes) throw ValueError(origin_ + ": token id " + std::to_string(id) + " is not in the vocabulary");
  out += *bytes;
}

std::string WhisperTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (id >= timestamp_begin_ && id < vocab_size_) continue;
    append_token_bytes(id, bytes);
  }
  // The bytes of all tokens are joined first, so a character split across tokens
  // survives; only what stays incomplete becomes U+FFFD.
  return utf8_lossy(bytes);
}

std::string WhisperTokenizer::decode_with_timestamps(const std::vector<int64_t>& ids) const {
  // As faster-whisper does: the text between timestamps is decoded piece by piece
  // (other special tokens skipped) and each timestamp is written as <|s.cc|>.
  std::string out, bytes;
  for (int64_t id : ids) {
    if (id >= timestamp_begin_ && id < vocab_size_) {
      out += utf8_lossy(bytes);
      bytes.clear();
      // Integer centiseconds: exact, and equal to Python's f"{i * 0.02:.2f}".
      const int64_t cs = (id - timestamp_begin_) * 2;
      const std::string frac = std::to_string(cs % 100);
      out += "<|" + std::to_string(cs / 100) + "." + (frac.size() == 1 ? "0" + frac : frac) + "|>";
      continue;
    }
    append_token_bytes(id, bytes);
  }
  return out + utf8_lossy(bytes);
}

std::optional<int64_t> WhisperTokenizer::language_token(const std::string& code) const {
  for (size_t i = 0; i < language_codes_.size(); ++i)
    if (language_codes_[i] == code) return language_tokens_[i];
  return std::nullopt;
}

std::vector<int64_t> WhisperTokenizer::sot_sequence(const std::string& language,
                                                    const std::string& task) const {
  if (!task.empty() && task != "transcribe" && task != "translate")
    throw ValueError("unknown task '" + task + "' (expected transcribe or translate)");
  if (!multilingual_) {
    // English-only models take no language or task tokens (openai drops them).
    if (task == "translate")
      throw ValueError(origin_ + ": an English-only model cannot translate (task 'translate')");
    if (!language.empty() && language != "en")
      throw ValueError(origin_ + ": an English-only model cannot transcribe language '" + language + "'");
    return {sot_};
  }
  std::vector<int64_t> seq{sot_};
  if (!language.empty()) {
    const auto lang = language_token(language);
    if (!lang) throw ValueError(origin_ + ": unknown language code '" + language + "'");
    seq.push_back(*lang);
  }
  seq.push_back(task == "translate" ? *translate_ : *transcribe_);
  return seq;
}

std::vector<int64_t> WhisperTokenizer::non_speech_tokens() const { return non_speech_; }

std::optional<int64_t> WhisperTokenizer::token_id(const std::string& token_text) const {
  if (auto id = added_id(token_text)) return id;
  return bpe_->id_of(bytes_to_unicode(token_text));
}

}  // namespace peft::text
