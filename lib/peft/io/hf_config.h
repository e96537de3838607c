// Hugging Face model-directory files: config.json, tokenizer.json and
// generation_config.json. Parsed into plain structs; the whole JSON stays available
// for model-specific fields. Errors name the file and the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace peft::io {

// config.json: the fields every architecture shares; the rest via json_get on `raw`.
struct HfConfig {
  std::string path;
  std::string model_type;                  // "whisper", "llama", "t5", "bart", "mbart", ...
  std::vector<std::string> architectures;  // e.g. ["WhisperForConditionalGeneration"]
  std::optional<int64_t> vocab_size;
  std::optional<std::string> torch_dtype;
  nlohmann::json raw;
};
HfConfig read_hf_config(const std::filesystem::path& file);

// One entry of tokenizer.json's "added_tokens".
struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;
};

// tokenizer.json (huggingface/tokenizers): model (BPE: vocab + merges; Unigram:
// vocab with scores; WordPiece: vocab), added tokens, and the pre-tokenizer /
// normalizer / decoder / post_processor JSON for the tokenizer implementations.
struct HfTokenizerFile {
  std::string path;
  std::string model_type;                 // "BPE", "Unigram", "WordPiece", "WordLevel"
  std::map<std::string, int64_t> vocab;   // BPE / WordPiece / WordLevel
  std::vector<std::pair<std::string, std::string>> merges;  // BPE, in priority order
  std::vector<std::pair<std::string, double>> unigram_vocab;  // Unigram: piece, score (id = index)
  std::optional<std::string> unk_token;
  bool byte_fallback = false;
  std::vector<AddedToken> added_tokens;
  nlohmann::json normalizer, pre_tokenizer, decoder, post_processor;
  // Largest id in vocab or added tokens, plus one.
  int64_t id_count() const;
};
HfTokenizerFile read_hf_tokenizer(const std::filesystem::path& file);

// generation_config.json: ids and decoding defaults (Whisper adds its own fields).
struct HfGenerationConfig {
  std::string path;
  std::optional<int64_t> bos_token_id, pad_token_id, decoder_start_token_id;
  std::vector<int64_t> eos_token_ids;  // "eos_token_id" may be an int or a list
  std::optional<int64_t> max_length, max_new_tokens, num_beams, no_repeat_ngram_size;
  std::optional<double> length_penalty, repetition_penalty, temperature, top_p;
  std::optional<int64_t> top_k;
  std::optional<bool> do_sample, early_stopping;
  std::vector<std::pair<int64_t, int64_t>> forced_decoder_ids;  // (position, token)
  std::vector<int64_t> suppress_tokens, begin_suppress_tokens;
  // Whisper: lang_to_id ("<|en|>" -> id), task_to_id, no_timestamps_token_id,
  // is_multilingual, alignment_heads [(layer, head)].
  std::map<std::string, int64_t> lang_to_id, task_to_id;
  std::optional<int64_t> no_timestamps_token_id;
  std::optional<bool> is_multilingual;
  std::vector<std::pair<int64_t, int64_t>> alignment_heads;
  nlohmann::json raw;
};
HfGenerationConfig read_hf_generation_config(const std::filesystem::path& file);

}  // namespace peft::io
