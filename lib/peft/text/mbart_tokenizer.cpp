#include "peft/text/mbart_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "peft/error.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"
#include "peft/text/hf_unigram_text_tokenizer.h"
#include "peft/text/sentencepiece_tokenizer.h"
#include "peft/text/unicode.h"

namespace peft::text {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// fairseq's language codes in vocabulary order (transformers' FAIRSEQ_LANGUAGE_CODES):
// MBart's are the first 25, MBart-50's all 52.
const std::vector<std::string> kMBart50Codes = {
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN", "it_IT",
    "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK",
    "tr_TR", "vi_VN", "zh_CN", "af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL", "hr_HR", "id_ID", "ka_GE",
    "km_KH", "mk_MK", "ml_IN", "mn_MN", "mr_IN", "pl_PL", "ps_AF", "pt_XX", "sv_SE", "sw_KE", "ta_IN",
    "te_IN", "th_TH", "tl_XX", "uk_UA", "ur_PK", "xh_ZA", "gl_ES", "sl_SI"};
constexpr size_t kMBartCodeCount = 25;
constexpr int64_t kLang = -1;  // the language code's place in a template
const std::string kUnderline = "\xE2\x96\x81";

// "xx_YY": how fairseq's codes look (used to find them among tokenizer.json's specials).
bool looks_like_code(const std::string& s) {
  return s.size() == 5 && s[2] == '_' && std::islower(static_cast<unsigned char>(s[0])) &&
         std::islower(static_cast<unsigned char>(s[1])) && std::isupper(static_cast<unsigned char>(s[3])) &&
         std::isupper(static_cast<unsigned char>(s[4]));
}

// Python's str.isspace: White_Space plus the separators U+001C..U+001F.
bool python_space(int32_t cp) { return is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F); }

// The code point ending at `end` (-1 when not valid UTF-8), and where it starts.
int32_t last_code_point(const std::string& s, size_t end, size_t& begin) {
  begin = end - 1;
  while (begin > 0 && (static_cast<uint8_t>(s[begin]) & 0xC0) == 0x80) --begin;
  size_t len = 1;
  const int32_t cp = utf8_next(s, begin, len);
  return begin + len == end ? cp : -1;
}

std::string rstrip(const std::string& s) {
  size_t end = s.size();
  for (size_t b = 0; end > 0 && python_space(last_code_point(s, end, b));) end = b;
  return s.substr(0, end);
}

std::string strip(const std::string& s) {
  size_t begin = 0;
  for (size_t len = 1; begin < s.size() && python_space(utf8_next(s, begin, len));) begin += len;
  return rstrip(s.substr(begin));
}

std::optional<std::string> string_field(const json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return std::nullopt;
}

}  // namespace

struct MBartTokenizer::Impl {
  // sentencepiece.bpe.model
  std::optional<SentencePieceTokenizer> sp;
  int64_t pieces = 0;                                     // the .model's size, N
  std::vector<std::pair<std::string, int64_t>> specials;  // added tokens, longest first
  int64_t mask_id = 0;
  // tokenizer.json
  std::unique_ptr<HfUnigramTextTokenizer> fast;

  std::unordered_map<std::string, int64_t> code_ids;
  std::vector<int64_t> before, after;  // the input template; kLang marks the language code

  int64_t shifted(int64_t spm_id) const { return spm_id != 0 ? spm_id + 1 : 3; }
  std::vector<int64_t> encode_plain(const std::string& text) const {
    std::vector<int64_t> ids = sp->encode(text);
    for (auto& id : ids) id = shifted(id);
    return ids;
  }
};

MBartTokenizer::MBartTokenizer() : impl_(std::make_unique<Impl>()) {}
MBartTokenizer::~MBartTokenizer() = default;

std::unique_ptr<MBartTokenizer> MBartTokenizer::load(const fs::path& dir, int64_t model_vocab_size) {
  std::unique_ptr<MBartTokenizer> tok(new MBartTokenizer());
  Impl& m = *tok->impl_;
  json config;  // tokenizer_config.json
  if (fs::exists(dir / "tokenizer_config.json")) config = io::read_json_file(dir / "tokenizer_config.json");
  std::optional<std::string> cls = string_field(config, "tokenizer_class");
  if (!cls && fs::exists(dir / "config.json"))
    cls = string_field(io::read_json_file(dir / "config.json"), "tokenizer_class");
  const auto src = string_field(config, "src_lang");
  tok->default_tgt_ = string_field(config, "tgt_lang");

  if (fs::exists(dir / "sentencepiece.bpe.model")) {
    m.sp = SentencePieceTokenizer::load(dir / "sentencepiece.bpe.model");
    tok->source_ = (dir / "sentencepiece.bpe.model").string();
    m.pieces = m.sp->vocab_size();
    const bool is50 = cls ? cls->rfind("MBart50", 0) == 0
                          : model_vocab_size == m.pieces + static_cast<int64_t>(kMBart50Codes.size()) + 2;
    tok->layout_ = is50 ? Layout::mbart50 : Layout::mbart;
    tok->codes_.assign(kMBart50Codes.begin(),
                       is50 ? kMBart50Codes.end() : kMBart50Codes.begin() + kMBartCodeCount);
    m.specials = {{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}};
    for (size_t i = 0; i < tok->codes_.size(); ++i) {
      m.code_ids[tok->codes_[i]] = m.pieces + static_cast<int64_t>(i) + 1;
      m.specials.emplace_back(tok->codes_[i], m.pieces + static_cast<int64_t>(i) + 1);
    }
    m.mask_id = m.pieces + static_cast<int64_t>(tok->codes_.size()) + 1;
    m.specials.emplace_back("<mask>", m.mask_id);
    std::stable_sort(m.specials.begin(), m.specials.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    tok->bos_id = 0;
    tok->pad_id = 1;
    tok->eos_id = 2;
    tok->unk_id = 3;
    if (is50) {
      m.before = {kLang};
      m.after = {2};
    } else {
      m.after = {2, kLang};
    }
    tok->default_src_ = src.value_or("en_XX");
  } else if (fs::exists(dir / "tokenizer.json")) {
    m.fast = HfUnigramTextTokenizer::load(dir / "tokenizer.json");
    const std::string& origin = m.fast->source();
    tok->source_ = origin;
    const io::HfTokenizerFile file = io::read_hf_tokenizer(dir / "tokenizer.json");
    std::vector<std::pair<int64_t, std::string>> found;
    for (const auto& t : file.added_tokens)
      if (t.special && looks_like_code(t.content)) found.emplace_back(t.id, t.content);
    std::sort(found.begin(), found.end());
    for (const auto& [id, code] : found) {
      tok->codes_.push_back(code);
      m.code_ids[code] = id;
    }
    if (tok->codes_.empty())
      throw FormatError(origin, "added_tokens", "no language codes (special tokens such as \"en_XX\")");
    tok->bos_id = m.fast->bos_id;
    tok->eos_id = m.fast->eos_id;
    tok->pad_id = m.fast->pad_id;
    tok->unk_id = m.fast->unk_id;
    const InputTemplate& t = m.fast->input_template();
    std::optional<std::string> template_code;
    if (t.present) {
      auto convert = [&](const std::vector<std::pair<std::string, int64_t>>& in, std::vector<int64_t>& out) {
        for (const auto& [name, id] : in) {
          if (m.code_ids.count(name)) {
            if (template_code)
              throw FormatError(origin, "post_processor.single", "holds more than one language code");
            template_code = name;
            out.push_back(kLang);
          } else {
            out.push_back(id);
          }
        }
      };
      convert(t.before, m.before);
      convert(t.after, m.after);
      if (!template_code)
        throw FormatError(origin, "post_processor.single", "holds no language code (\"en_XX\"...)");
      tok->layout_ = std::find(m.before.begin(), m.before.end(), kLang) != m.before.end() ? Layout::mbart50
                                                                                          : Layout::mbart;
    } else {
      if (!tok->eos_id) throw FormatError(origin, "model.vocab", "has no \"</s>\"");
      tok->layout_ = cls && cls->rfind("MBart50", 0) == 0 ? Layout::mbart50 : Layout::mbart;
      if (tok->layout_ == Layout::mbart50) {
        m.before = {kLang};
        m.after = {*tok->eos_id};
      } else {
        m.after = {*tok->eos_id, kLang};
      }
    }
    tok->default_src_ = src ? *src : template_code.value_or("en_XX");
  } else {
    throw NotFoundError(dir.string() +
                        ": no sentencepiece.bpe.model (MBart's SentencePiece model) and no tokenizer.json");
  }
  return tok;
}

std::vector<int64_t> MBartTokenizer::encode(const std::string& text, bool parse_special) const {
  const Impl& m = *impl_;
  if (m.fast) return m.fast->encode(text, parse_special);
  if (!parse_special) return m.encode_plain(text);
  // As transformers' slow tokenizers: cut at the added tokens (leftmost, longest),
  // <mask> (lstrip) strips the whitespace ending the text before it, then every piece
  // of text goes through SentencePiece on its own.
  std::vector<std::pair<std::string, int64_t>> parts;  // (text, -1) or (token, id)
  size_t start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const std::pair<std::string, int64_t>* hit = nullptr;
    for (const auto& s : m.specials)
      if (text.compare(pos, s.first.size(), s.first) == 0) {
        hit = &s;
        break;
      }
    if (!hit) {
      ++pos;
      continue;
    }
    if (pos > start) parts.emplace_back(text.substr(start, pos - start), -1);
    if (hit->second == m.mask_id && !parts.empty() && parts.back().second < 0)
      parts.back().first = rstrip(parts.back().first);
    parts.push_back(*hit);
    pos += hit->first.size();
    start = pos;
  }
  if (start < text.size()) parts.emplace_back(text.substr(start), -1);
  std::vector<int64_t> ids;
  for (const auto& [part, id] : parts) {
    if (id >= 0) {
      ids.push_back(id);
    } else if (!part.empty()) {
      const auto piece_ids = m.encode_plain(part);
      ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    }
  }
  return ids;
}

std::string MBartTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  const Impl& m = *impl_;
  if (m.fast) return m.fast->decode(ids, skip_special);
  auto special_text = [&](int64_t id) -> std::string {
    if (id < 4) return std::vector<std::string>{"<s>", "<pad>", "</s>", "<unk>"}[static_cast<size_t>(id)];
    if (id == m.mask_id) return "<mask>";
    return codes_[static_cast<size_t>(id - m.pieces - 1)];
  };
  for (const int64_t id : ids)
    if (id < 0 || id >= vocab_size())
      throw ValueError(source_ + ": id " + std::to_string(id) + " is outside the vocabulary");
  std::string out;
  if (layout_ == Layout::mbart) {
    // MBartTokenizer.convert_tokens_to_string: "".join(tokens).replace("▁", " ").strip()
    for (const int64_t id : ids) {
      if (is_special(id)) {
        if (!skip_special) out += special_text(id);
        continue;
      }
      const std::string& piece = m.sp->piece(id - 1);
      for (size_t pos = 0; pos < piece.size();)
        if (piece.compare(pos, kUnderline.size(), kUnderline) == 0) {
          out += ' ';
          pos += kUnderline.size();
        } else {
          out += piece[pos++];
        }
    }
    return strip(out);
  }
  // MBart50Tokenizer.convert_tokens_to_string: runs of pieces through SentencePiece's
  // decode, special tokens written as themselves (after a space unless one precedes).
  std::vector<int64_t> run;
  bool previous_special = false;
  for (const int64_t id : ids) {
    if (!is_special(id)) {
      run.push_back(id - 1);
      previous_special = false;
    } else if (!skip_special) {
      if (!previous_special) out += ' ';
      out += m.sp->decode(run) + special_text(id);
      run.clear();
      previous_special = true;
    }
  }
  return strip(out + m.sp->decode(run));
}

std::optional<int64_t> MBartTokenizer::token_id(const std::string& token) const {
  const Impl& m = *impl_;
  if (m.fast) return m.fast->token_id(token);
  for (const auto& [text, id] : m.specials)
    if (text == token) return id;
  const auto id = m.sp->id_of(token);
  if (!id || *id == 0) return std::nullopt;
  return *id + 1;
}

bool MBartTokenizer::is_special(int64_t id) const {
  const Impl& m = *impl_;
  if (m.fast) return m.fast->is_special(id);
  return (id >= 0 && id < 4) || (id > m.pieces && id <= m.mask_id);
}

int64_t MBartTokenizer::vocab_size() const {
  const Impl& m = *impl_;
  return m.fast ? m.fast->vocab_size() : m.mask_id + 1;
}

int64_t MBartTokenizer::language_id(const std::string& code) const {
  const auto it = impl_->code_ids.find(code);
  if (it != impl_->code_ids.end()) return it->second;
  std::string known;
  for (const auto& c : codes_) known += (known.empty() ? "" : " ") + c;
  throw ValueError(source_ + ": unknown language code '" + code + "' (this tokenizer knows: " + known + ")");
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> MBartTokenizer::around(const std::string& lang) const {
  const int64_t lang_id = language_id(lang);
  std::pair<std::vector<int64_t>, std::vector<int64_t>> out;
  for (const int64_t id : impl_->before) out.first.push_back(id == kLang ? lang_id : id);
  for (const int64_t id : impl_->after) out.second.push_back(id == kLang ? lang_id : id);
  return out;
}

std::vector<int64_t> MBartTokenizer::wrap(const std::vector<int64_t>& body, const std::string& lang) const {
  auto [ids, after] = around(lang);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), after.begin(), after.end());
  return ids;
}

}  // namespace peft::text
