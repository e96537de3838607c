#include "peft/io/hf_config.h"

#include <algorithm>

#include "peft/error.h"
#include "peft/io/json_file.h"

namespace peft::io {

namespace {

using nlohmann::json;

json read_object(const std::filesystem::path& file) {
  json j = read_json_file(file);
  if (!j.is_object())
    throw FormatError(file.string(), "top level",
                      std::string("expected a JSON object, got ") + j.type_name());
  return j;
}

// The JSON at `key`, or null when absent; `what` must be an object when present.
const json& object_or_null(const json& obj, const std::string& key, const std::string& origin) {
  static const json kNull;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return kNull;
  if (!it->is_object())
    throw FormatError(origin, "key '" + key + "'", std::string("expected an object, got ") + it->type_name());
  return *it;
}

const json& array_at(const json& obj, const std::string& key, const std::string& where,
                     const std::string& origin) {
  auto it = obj.find(key);
  if (it == obj.end()) throw FormatError(origin, where, "missing (expected an array)");
  if (!it->is_array())
    throw FormatError(origin, where, std::string("expected an array, got ") + it->type_name());
  return *it;
}

// [[a, b], ...] as integer pairs (forced_decoder_ids, alignment_heads).
std::vector<std::pair<int64_t, int64_t>> int_pairs(const json& value, const std::string& key,
                                                   const std::string& origin) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (value.is_null()) return out;
  if (!value.is_array())
    throw FormatError(origin, "key '" + key + "'",
                      std::string("expected an array of [a, b] pairs, got ") + value.type_name());
  for (size_t i = 0; i < value.size(); ++i) {
    const json& p = value[i];
    const std::string where = "key '" + key + "'[" + std::to_string(i) + "]";
    if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() || !p[1].is_number_integer())
      throw FormatError(origin, where, "expected a pair of integers, got " + p.dump());
    out.emplace_back(p[0].get<int64_t>(), p[1].get<int64_t>());
  }
  return out;
}

std::map<std::string, int64_t> string_to_int_map(const json& obj, const std::string& key,
                                                 const std::string& origin) {
  std::map<std::string, int64_t> out;
  const json& m = object_or_null(obj, key, origin);
  for (const auto& [name, value] : m.items()) out[name] = json_get<int64_t>(m, name, origin + ": " + key);
  return out;
}

void read_bpe(const json& model, const std::string& origin, HfTokenizerFile& tok) {
  const json& merges = array_at(model, "merges", "model.merges", origin);
  tok.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    // tokenizers < 0.20 writes "left right"; newer versions write ["left", "right"]
    // so that pieces containing spaces survive.
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 >= s.size() ||
          s.find(' ', space + 1) != std::string::npos)
        throw FormatError(origin, where, "expected \"left right\", got \"" + s + "\"");
      tok.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      tok.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw FormatError(origin, where, "expected \"left right\" or [\"left\", \"right\"], got " + m.dump());
    }
  }
  tok.byte_fallback = json_get_or<bool>(model, "byte_fallback", false, origin);
}

void read_vocab_map(const json& model, const std::string& origin, HfTokenizerFile& tok) {
  auto it = model.find("vocab");
  if (it == model.end()) throw FormatError(origin, "model.vocab", "missing");
  if (!it->is_object())
    throw FormatError(origin, "model.vocab", std::string("expected an object, got ") + it->type_name());
  for (const auto& [piece, id] : it->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      throw FormatError(origin, "model.vocab['" + piece + "']",
                        "expected a non-negative id, got " + id.dump());
    tok.vocab.emplace(piece, id.get<int64_t>());
  }
}

void read_unigram(const json& model, const std::string& origin, HfTokenizerFile& tok) {
  const json& vocab = array_at(model, "vocab", "model.vocab", origin);
  tok.unigram_vocab.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    const json& e = vocab[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
      throw FormatError(origin, "model.vocab[" + std::to_string(i) + "]",
                        "expected [piece, score], got " + e.dump());
    tok.unigram_vocab.emplace_back(e[0].get<std::string>(), e[1].get<double>());
  }
  // Unigram names its unknown piece by index rather than by text.
  if (auto unk_id = json_get_optional<int64_t>(model, "unk_id", origin)) {
    if (*unk_id < 0 || static_cast<uint64_t>(*unk_id) >= tok.unigram_vocab.size())
      throw FormatError(origin, "model.unk_id",
                        std::to_string(*unk_id) + " is not an index into the " +
                            std::to_string(tok.unigram_vocab.size()) + "-entry vocab");
    tok.unk_token = tok.unigram_vocab[static_cast<size_t>(*unk_id)].first;
  }
  tok.byte_fallback = json_get_or<bool>(model, "byte_fallback", false, origin);
}

}  // namespace

HfConfig read_hf_config(const std::filesystem::path& file) {
  HfConfig c;
  c.path = file.string();
  c.raw = read_object(file);
  // transformers' AutoConfig cannot tell what a config is for without model_type.
  c.model_type = json_get<std::string>(c.raw, "model_type", c.path);
  c.architectures = json_get_or<std::vector<std::string>>(c.raw, "architectures", {}, c.path);
  c.vocab_size = json_get_optional<int64_t>(c.raw, "vocab_size", c.path);
  // transformers 5 renamed torch_dtype to dtype; accept either.
  c.torch_dtype = json_get_optional<std::string>(c.raw, "torch_dtype", c.path);
  if (!c.torch_dtype) c.torch_dtype = json_get_optional<std::string>(c.raw, "dtype", c.path);
  return c;
}

int64_t HfTokenizerFile::id_count() const {
  int64_t n = static_cast<int64_t>(unigram_vocab.size());
  for (const auto& [piece, id] : vocab) n = std::max(n, id + 1);
  for (const auto& t : added_tokens) n = std::max(n, t.id + 1);
  return n;
}

HfTokenizerFile read_hf_tokenizer(const std::filesystem::path& file) {
  HfTokenizerFile tok;
  tok.path = file.string();
  const json j = read_object(file);
  const std::string& origin = tok.path;

  auto model_it = j.find("model");
  if (model_it == j.end()) throw FormatError(origin, "key 'model'", "missing");
  if (!model_it->is_object())
    throw FormatError(origin, "key 'model'", std::string("expected an object, got ") + model_it->type_name());
  const json& model = *model_it;

  // Files written by tokenizers before "type" was serialized only have the fields;
  // BPE is the one with merges.
  if (auto type = json_get_optional<std::string>(model, "type", origin + ": model")) {
    tok.model_type = *type;
  } else if (model.contains("merges")) {
    tok.model_type = "BPE";
  } else {
    throw FormatError(origin, "model.type", "missing, and the model has no merges to tell it is BPE");
  }

  if (tok.model_type == "BPE") {
    read_vocab_map(model, origin, tok);
    read_bpe(model, origin, tok);
  } else if (tok.model_type == "Unigram") {
    read_unigram(model, origin, tok);
  } else if (tok.model_type == "WordPiece" || tok.model_type == "WordLevel") {
    read_vocab_map(model, origin, tok);
  } else {
    throw FormatError(origin, "model.type", "unsupported tokenizer model '" + tok.model_type + "'");
  }
  if (tok.model_type != "Unigram")
    tok.unk_token = json_get_optional<std::string>(model, "unk_token", origin + ": model");

  auto added = j.find("added_tokens");
  if (added != j.end() && !added->is_null()) {
    if (!added->is_array())
      throw FormatError(origin, "key 'added_tokens'",
                        std::string("expected an array, got ") + added->type_name());
    for (size_t i = 0; i < added->size(); ++i) {
      const json& a = (*added)[i];
      const std::string where = origin + ": added_tokens[" + std::to_string(i) + "]";
      AddedToken t;
      t.id = json_get<int64_t>(a, "id", where);
      t.content = json_get<std::string>(a, "content", where);
      t.special = json_get_or<bool>(a, "special", false, where);
      if (t.id < 0) throw FormatError(where, "key 'id'", "negative id " + std::to_string(t.id));
      tok.added_tokens.push_back(std::move(t));
    }
  }

  // Kept as JSON: the tokenizer implementations interpret these component trees.
  for (auto [key, dst] : {std::pair<const char*, json*>{"normalizer", &tok.normalizer},
                          {"pre_tokenizer", &tok.pre_tokenizer},
                          {"decoder", &tok.decoder},
                          {"post_processor", &tok.post_processor}})
    *dst = object_or_null(j, key, origin);
  return tok;
}

HfGenerationConfig read_hf_generation_config(const std::filesystem::path& file) {
  HfGenerationConfig g;
  g.path = file.string();
  g.raw = read_object(file);
  const json& j = g.raw;
  const std::string& o = g.path;

  g.bos_token_id = json_get_optional<int64_t>(j, "bos_token_id", o);
  g.pad_token_id = json_get_optional<int64_t>(j, "pad_token_id", o);
  g.decoder_start_token_id = json_get_optional<int64_t>(j, "decoder_start_token_id", o);
  // eos_token_id is an int in most configs and a list where several tokens end a turn.
  auto eos = j.find("eos_token_id");
  if (eos != j.end() && !eos->is_null()) {
    if (eos->is_array())
      g.eos_token_ids = json_get<std::vector<int64_t>>(j, "eos_token_id", o);
    else
      g.eos_token_ids = {json_get<int64_t>(j, "eos_token_id", o)};
  }
  g.max_length = json_get_optional<int64_t>(j, "max_length", o);
  g.max_new_tokens = json_get_optional<int64_t>(j, "max_new_tokens", o);
  g.num_beams = json_get_optional<int64_t>(j, "num_beams", o);
  g.no_repeat_ngram_size = json_get_optional<int64_t>(j, "no_repeat_ngram_size", o);
  g.length_penalty = json_get_optional<double>(j, "length_penalty", o);
  g.repetition_penalty = json_get_optional<double>(j, "repetition_penalty", o);
  g.temperature = json_get_optional<double>(j, "temperature", o);
  g.top_p = json_get_optional<double>(j, "top_p", o);
  g.top_k = json_get_optional<int64_t>(j, "top_k", o);
  g.do_sample = json_get_optional<bool>(j, "do_sample", o);
  // early_stopping is true/false, or the string "never" (beam search option).
  if (auto it = j.find("early_stopping"); it != j.end() && !it->is_string())
    g.early_stopping = json_get_optional<bool>(j, "early_stopping", o);

  auto pairs_at = [&](const char* key) {
    auto it = j.find(key);
    return it == j.end() ? std::vector<std::pair<int64_t, int64_t>>{} : int_pairs(*it, key, o);
  };
  g.forced_decoder_ids = pairs_at("forced_decoder_ids");
  g.alignment_heads = pairs_at("alignment_heads");
  g.suppress_tokens = json_get_or<std::vector<int64_t>>(j, "suppress_tokens", {}, o);
  g.begin_suppress_tokens = json_get_or<std::vector<int64_t>>(j, "begin_suppress_tokens", {}, o);

  g.lang_to_id = string_to_int_map(j, "lang_to_id", o);
  g.task_to_id = string_to_int_map(j, "task_to_id", o);
  g.no_timestamps_token_id = json_get_optional<int64_t>(j, "no_timestamps_token_id", o);
  g.is_multilingual = json_get_optional<bool>(j, "is_multilingual", o);
  return g;
}

}  // namespace peft::io
