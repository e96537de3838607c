#include "peft/text/hf_unigram_text_tokenizer.h"

#include "peft/error.h"
#include "peft/io/hf_config.h"
#include "peft/io/json_file.h"

namespace peft::text {

namespace {

using nlohmann::json;

// TemplateProcessing's "single": SpecialToken entries around one Sequence entry; each
// special token's ids come from the processor's "special_tokens" table.
InputTemplate read_template(const json& pp, const std::string& origin) {
  InputTemplate t;
  if (pp.is_null()) return t;
  const std::string type = pp.is_object() ? pp.value("type", "") : "";
  if (type != "TemplateProcessing")
    throw FormatError(origin, "post_processor.type",
                      "\"" + type + "\" is not supported (TemplateProcessing, or none)");
  const json& single = pp.value("single", json::array());
  const json& table = pp.value("special_tokens", json::object());
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string where = "post_processor.single[" + std::to_string(i) + "]";
    const json& item = single[i];
    if (item.contains("Sequence")) {
      if (seen_sequence || io::json_get<std::string>(item["Sequence"], "id", origin + ": " + where) != "A")
        throw FormatError(origin, where, "only one sequence, $A, is supported");
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken"))
      throw FormatError(origin, where, "neither a SpecialToken nor a Sequence");
    const auto name = io::json_get<std::string>(item["SpecialToken"], "id", origin + ": " + where);
    if (!table.contains(name))
      throw FormatError(origin, "post_processor.special_tokens", "no entry for \"" + name + "\"");
    const auto ids = io::json_get<std::vector<int64_t>>(table[name], "ids",
                                                        origin + ": post_processor.special_tokens." + name);
    for (const int64_t id : ids) (seen_sequence ? t.after : t.before).emplace_back(name, id);
  }
  if (!seen_sequence) throw FormatError(origin, "post_processor.single", "has no $A");
  t.present = true;
  return t;
}

}  // namespace

std::unique_ptr<HfUnigramTextTokenizer> HfUnigramTextTokenizer::load(const std::filesystem::path& path) {
  std::unique_ptr<HfUnigramTextTokenizer> tok(new HfUnigramTextTokenizer());
  tok->unigram_ = HfUnigramTokenizer::load(path);
  const io::HfTokenizerFile file = io::read_hf_tokenizer(path);
  tok->source_ = file.path;
  tok->vocab_size_ = file.id_count();
  tok->template_ = read_template(file.post_processor, file.path);
  for (const auto& [id, name] :
       {std::pair{&tok->bos_id, "<s>"}, {&tok->eos_id, "</s>"}, {&tok->pad_id, "<pad>"}})
    *id = tok->unigram_.id_of(name);
  tok->unk_id = tok->unigram_.unk_id();
  for (const auto& [name, id] : tok->template_.before)
    if (id < 0 || id >= tok->vocab_size_)
      throw FormatError(file.path, "post_processor.special_tokens." + name, "id outside the vocabulary");
  for (const auto& [name, id] : tok->template_.after)
    if (id < 0 || id >= tok->vocab_size_)
      throw FormatError(file.path, "post_processor.special_tokens." + name, "id outside the vocabulary");
  return tok;
}

}  // namespace peft::text
