#include "peft/text/bpe_tokenizer.h"

#include <algorithm>
#include <map>

#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"
#include "peft/text/special_tokens.h"
#include "peft/text/unicode.h"

namespace peft::text {

namespace {

// GGUF token types (llama.cpp's llama_token_type).
constexpr int kNormal = 1, kControl = 3, kUserDefined = 4;

bool is_ascii_digit_split(const nlohmann::json& pre) {
  // SmolLM's tokenizer.json: Sequence[Digits(individual_digits=true), ByteLevel(...)].
  if (!pre.is_object() || pre.value("type", "") != "Sequence" || !pre.contains("pretokenizers")) return false;
  const auto& list = pre["pretokenizers"];
  return list.is_array() && list.size() == 2 && list[0].value("type", "") == "Digits" &&
         list[0].value("individual_digits", false) && list[1].value("type", "") == "ByteLevel";
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_gguf(const io::Checkpoint& gguf) {
  const nlohmann::json& meta = gguf.metadata();
  const std::string& origin = gguf.path();
  const auto model = io::json_get<std::string>(meta, "tokenizer.ggml.model", origin);
  if (model != "gpt2")
    throw ValueError(
        origin + ": tokenizer.ggml.model '" + model +
        "' is not supported (gpt2: byte-level BPE; SentencePiece GGUF vocabularies are not read)");
  const std::string pre = io::json_get_or<std::string>(meta, "tokenizer.ggml.pre", "default", origin);
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  // llama.cpp's pre-types that are GPT-2's regex after isolating each digit.
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "codeshell")
    t->split_digits_ = true;
  else if (pre != "default" && pre != "gpt2")
    throw ValueError(origin + ": tokenizer.ggml.pre '" + pre +
                     "' is not supported (default, gpt2, smollm, starcoder, refact, codeshell)");

  const auto& tokens = meta.at("tokenizer.ggml.tokens");
  const auto& merges_json = meta.at("tokenizer.ggml.merges");
  nlohmann::json types = meta.contains("tokenizer.ggml.token_type") ? meta["tokenizer.ggml.token_type"]
                                                                    : nlohmann::json::array();
  std::map<std::string, int64_t> vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string tok = tokens[i].get<std::string>();
    const int type = i < types.size() ? types[i].get<int>() : kNormal;
    if (type == kControl || type == kUserDefined) {
      t->added_.emplace_back(tok, static_cast<int64_t>(i));
      if (type == kControl) t->special_text_[static_cast<int64_t>(i)] = tok;
    }
    vocab.emplace(tok, static_cast<int64_t>(i));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_json.size());
  for (size_t i = 0; i < merges_json.size(); ++i) {
    const std::string m = merges_json[i].get<std::string>();
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size())
      throw FormatError(origin, "tokenizer.ggml.merges[" + std::to_string(i) + "]",
                        "'" + m + "' is not 'left right'");
    merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  t->bpe_ = std::make_unique<ByteLevelBpe>(vocab, merges, origin);
  t->vocab_size_ = static_cast<int64_t>(tokens.size());
  auto id = [&](const char* key) -> std::optional<int64_t> {
    if (!meta.contains(key)) return std::nullopt;
    return meta[key].get<int64_t>();
  };
  t->bos_id = id("tokenizer.ggml.bos_token_id");
  t->eos_id = id("tokenizer.ggml.eos_token_id");
  t->pad_id = id("tokenizer.ggml.padding_token_id");
  t->unk_id = id("tokenizer.ggml.unknown_token_id");
  t->add_bos = io::json_get_or<bool>(meta, "tokenizer.ggml.add_bos_token", false, origin);
  t->chat_template = io::json_get_or<std::string>(meta, "tokenizer.chat_template", "", origin);
  sort_longest_first(t->added_);
  return t;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_hf_dir(const std::filesystem::path& dir) {
  const io::HfTokenizerFile file = io::read_hf_tokenizer(dir / "tokenizer.json");
  const std::string origin = file.path;
  if (file.model_type != "BPE")
    throw ValueError(origin + ": model type '" + file.model_type + "' is not byte-level BPE");
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  const nlohmann::json& pre = file.pre_tokenizer;
  if (is_ascii_digit_split(pre)) {
    t->split_digits_ = true;
  } else if (!(pre.is_object() && pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true) &&
               !pre.value("add_prefix_space", false))) {
    throw ValueError(origin + ": pre_tokenizer " + pre.dump().substr(0, 200) +
                     " is not supported (ByteLevel with GPT-2's regex, optionally after Digits)");
  }
  if (!file.normalizer.is_null())
    throw ValueError(origin + ": normalizer " + file.normalizer.dump().substr(0, 200) + " is not supported");
  t->bpe_ = std::make_unique<ByteLevelBpe>(file.vocab, file.merges, origin);
  t->vocab_size_ = file.id_count();
  for (const io::AddedToken& a : file.added_tokens) {
    t->added_.emplace_back(a.content, a.id);
    if (a.special) t->special_text_[a.id] = a.content;
  }
  sort_longest_first(t->added_);
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    const nlohmann::json config = io::read_json_file(config_path);
    auto special = [&](const char* key) -> std::optional<int64_t> {
      if (!config.contains(key) || config[key].is_null()) return std::nullopt;
      const nlohmann::json& v = config[key];
      const std::string text = v.is_object() ? v.value("content", "") : v.get<std::string>();
      const auto id = t->token_id(text);
      if (!id) throw ValueError(config_path.string() + ": " + key + " '" + text + "' is not a token");
      return id;
    };
    t->bos_id = special("bos_token");
    t->eos_id = special("eos_token");
    t->pad_id = special("pad_token");
    t->unk_id = special("unk_token");
    t->add_bos = io::json_get_or<bool>(config, "add_bos_token", false, config_path.string());
    if (config.contains("chat_template") && config["chat_template"].is_string())
      t->chat_template = config["chat_template"].get<std::string>();
  }
  return t;
}

std::vector<int64_t> BpeTokenizer::encode_ordinary(const std::string& text) const {
  if (!split_digits_) return bpe_->encode(text);
  // SmolLM's Digits(individual_digits) isolates every numeric character (Rust's
  // char::is_numeric: \p{N}); the pieces between go through the ByteLevel regex.
  std::vector<int64_t> ids;
  size_t start = 0, pos = 0;
  auto flush = [&](size_t end) {
    if (end > start) {
      const auto part = bpe_->encode(text.substr(start, end - start));
      ids.insert(ids.end(), part.begin(), part.end());
    }
  };
  while (pos < text.size()) {
    size_t len = 1;
    const int32_t cp = utf8_next(text, pos, len);
    if (cp >= 0 && is_number(cp)) {
      flush(pos);
      const auto digit = bpe_->encode(text.substr(pos, len));
      ids.insert(ids.end(), digit.begin(), digit.end());
      start = pos + len;
    }
    pos += len;
  }
  flush(text.size());
  return ids;
}

std::vector<int64_t> BpeTokenizer::encode(const std::string& raw, bool parse_special) const {
  const std::string text = utf8_lossy(raw);
  if (!parse_special || added_.empty()) return encode_ordinary(text);
  return encode_with_specials(text, added_,
                              [this](const std::string& part) { return encode_ordinary(part); });
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (const auto it = special_text_.find(id); it != special_text_.end()) {
      if (!skip_special) bytes += it->second;
      continue;
    }
    if (auto b = bpe_->token_bytes(id)) {
      bytes += *b;
    } else {
      // An added, non-special token (its text as written) or an id out of range.
      for (const auto& a : added_)
        if (a.second == id) bytes += a.first;
    }
  }
  return utf8_lossy(bytes);
}

std::optional<int64_t> BpeTokenizer::token_id(const std::string& token) const {
  for (const auto& a : added_)
    if (a.first == token) return a.second;
  return bpe_->id_of(token);
}

bool BpeTokenizer::is_special(int64_t id) const { return special_text_.count(id) != 0; }

}  // namespace peft::text
