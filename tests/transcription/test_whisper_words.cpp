// Word timestamps against faster-whisper 1.2.1 / CTranslate2 4.8.5 on the same model
// files (tests/fixtures/whisper/faster_whisper_words_tiny_en.json, made by
// tests/reference/make_word_timestamps_reference.py), and the alignment's building
// blocks (median filter, DTW, word splitting, punctuation merging) on small cases whose
// answers are worked out here independently.
#define BOOST_TEST_MODULE whisper_words
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/transcript_format.h"
#include "peft/transcription/whisper_decoding.h"
#include "peft/transcription/windowed_mel.h"
#include "peft/transcription/word_timestamps.h"
#include "test_support.h"
#include "transcription/tiny_en.h"
#include "transcription/whisper_reference.h"

using namespace peft;
using namespace peft::transcription;

namespace {

using peft_test::tiny_en;

const nlohmann::json& fixture() {
  static const nlohmann::json doc = nlohmann::json::parse(
      peft_test::read_file(peft_test::fixtures_dir() / "whisper" / "faster_whisper_words_tiny_en.json"));
  return doc;
}

std::vector<float> samples_for(const std::string& name) {
  return name == "long" ? whisper_ref::long_audio() : whisper_ref::read_samples(name);
}

// Transcribes every reference run of `beam_size` with word timestamps and compares
// segments and words; returns the number of runs whose tokens are faster-whisper's.
int matching_runs(int beam_size) {
  const peft_test::TinyEn& t = tiny_en();
  DecodingOptions options;
  options.beam_size = beam_size;
  options.word_timestamps = true;
  int matches = 0;
  size_t words = 0;
  double worst = 0;
  for (const auto& run : fixture().at("results")) {
    if (run.at("beam_size").get<int>() != beam_size) continue;
    const std::string file = run.at("file");
    const std::vector<Segment> segments = transcribe(*t.model, *t.tokenizer, samples_for(file), options);
    const auto& ref = run.at("segments");
    bool same_tokens = segments.size() == ref.size();
    for (size_t i = 0; same_tokens && i < segments.size(); ++i)
      same_tokens = segments[i].tokens == ref[i].at("tokens").get<std::vector<int64_t>>();
    BOOST_CHECK_MESSAGE(same_tokens,
                        "beam " << beam_size << " " << file << ": tokens differ from faster-whisper's");
    if (!same_tokens) continue;
    ++matches;
    for (size_t i = 0; i < segments.size(); ++i) {
      BOOST_TEST_CONTEXT("beam " << beam_size << " " << file << " segment " << i << segments[i].text) {
        const auto& rs = ref[i];
        BOOST_CHECK_EQUAL(segments[i].seek, rs.at("seek").get<int64_t>());
        BOOST_CHECK_SMALL(segments[i].start - rs.at("start").get<double>(), 1e-9);
        BOOST_CHECK_SMALL(segments[i].end - rs.at("end").get<double>(), 1e-9);
        const auto& rw = rs.at("words");
        BOOST_REQUIRE_EQUAL(segments[i].words.size(), rw.size());
        for (size_t k = 0; k < rw.size(); ++k) {
          const Word& w = segments[i].words[k];
          BOOST_CHECK_EQUAL(w.word, rw[k].at("word").get<std::string>());
          BOOST_CHECK_SMALL(w.start - rw[k].at("start").get<double>(), 0.02);
          BOOST_CHECK_SMALL(w.end - rw[k].at("end").get<double>(), 0.02);
          BOOST_CHECK_SMALL(w.probability - rw[k].at("probability").get<double>(), 1e-3);
          worst = std::max({worst, std::abs(w.start - rw[k].at("start").get<double>()),
                            std::abs(w.end - rw[k].at("end").get<double>())});
          ++words;
        }
      }
    }
  }
  BOOST_TEST_MESSAGE("beam " << beam_size << ": " << matches << " runs with faster-whisper's tokens, "
                             << words << " words compared, largest time difference " << worst << " s");
  return matches;
}

// Every monotone path from (0, 0) to (n-1, m-1) with steps down, right or diagonal.
void all_paths(int64_t n, int64_t m, std::vector<std::pair<int64_t, int64_t>>& path,
               const std::function<void(const std::vector<std::pair<int64_t, int64_t>>&)>& visit) {
  const auto [i, j] = path.back();
  if (i == n - 1 && j == m - 1) return visit(path);
  for (const auto& [di, dj] : {std::pair<int64_t, int64_t>{1, 0}, {0, 1}, {1, 1}}) {
    if (i + di >= n || j + dj >= m) continue;
    path.emplace_back(i + di, j + dj);
    all_paths(n, m, path, visit);
    path.pop_back();
  }
}

}  // namespace

// CTranslate2's align on the same window and tokens: the same DTW path and token
// probabilities, before any of faster-whisper's word rules.
BOOST_AUTO_TEST_CASE(alignment_is_ctranslate2s) {
  const peft_test::TinyEn& t = tiny_en();
  const auto& align = fixture().at("align");
  BOOST_REQUIRE_EQUAL(align.size(), 5u);
  for (const auto& a : align) {
    BOOST_TEST_CONTEXT(a.at("file").get<std::string>()) {
      const std::vector<float> samples = whisper_ref::read_samples(a.at("file"));
      const WindowedLogMel mel(samples.data(), samples.size());
      const int64_t num_frames = a.at("num_frames");
      BOOST_CHECK_EQUAL(num_frames, std::min<int64_t>(3000, mel.content_frames()));
      const at::Tensor features = t.model->encode(mel.window(0).unsqueeze(0));
      const auto text = a.at("text_tokens").get<std::vector<int64_t>>();
      const TokenAlignment got =
          align_text(*t.model, features, t.tokenizer->sot_sequence("", "transcribe"),
                     t.tokenizer->no_timestamps(), t.tokenizer->eot(), text, num_frames);
      const auto rows = a.at("path_text").get<std::vector<int64_t>>();
      const auto cols = a.at("path_frame").get<std::vector<int64_t>>();
      std::vector<std::pair<int64_t, int64_t>> expected;
      for (size_t k = 0; k < rows.size(); ++k) expected.emplace_back(rows[k], cols[k]);
      BOOST_CHECK_MESSAGE(got.path == expected, "the DTW path differs from CTranslate2's");
      const auto probs = a.at("text_token_probs").get<std::vector<double>>();
      BOOST_REQUIRE_EQUAL(got.text_token_probs.size(), probs.size());
      for (size_t k = 0; k < probs.size(); ++k) BOOST_CHECK_SMALL(got.text_token_probs[k] - probs[k], 1e-4);
    }
  }
}

BOOST_AUTO_TEST_CASE(beam5_words_are_faster_whispers) { BOOST_CHECK_EQUAL(matching_runs(5), 6); }

BOOST_AUTO_TEST_CASE(greedy_words_are_faster_whispers) { BOOST_CHECK_EQUAL(matching_runs(1), 6); }

BOOST_AUTO_TEST_CASE(alignment_heads_come_from_the_config) {
  const peft_test::TinyEn& t = tiny_en();
  const auto cfg = nlohmann::json::parse(
      peft_test::read_file(peft_test::require_model_file("whisper-tiny.en/config.json")));
  std::vector<std::pair<int64_t, int64_t>> expected;
  for (const auto& p : cfg.at("alignment_heads"))
    expected.emplace_back(p[0].get<int64_t>(), p[1].get<int64_t>());
  BOOST_CHECK(t.model->alignment_heads() == expected);
  BOOST_CHECK_EQUAL(expected.size(), 8u);  // tiny.en: openai's _ALIGNMENT_HEADS, as converted
}

// Without a list: every head of the last half of the decoder layers (CTranslate2's
// converter and openai-whisper); a Hugging Face generation_config.json's list is taken,
// and one that names a head the model lacks is refused.
BOOST_AUTO_TEST_CASE(alignment_heads_of_other_layouts) {
  const auto dir = peft_test::fixtures_dir() / "whisper";
  auto hf = models::WhisperModel::load(dir / "random_hf");
  std::vector<std::pair<int64_t, int64_t>> last_half;
  for (int64_t l = hf->dims().n_text_layer / 2; l < hf->dims().n_text_layer; ++l)
    for (int64_t h = 0; h < hf->dims().n_text_head; ++h) last_half.emplace_back(l, h);
  BOOST_CHECK(!last_half.empty());
  BOOST_CHECK(hf->alignment_heads() == last_half);
  BOOST_CHECK(models::WhisperModel::load(dir / "random_openai.pt")->alignment_heads() == last_half);

  peft_test::TempDir tmp;
  for (const char* f : {"config.json", "model.safetensors"})
    peft_test::fs::copy_file(dir / "random_hf" / f, tmp / f);
  auto gen = nlohmann::json::parse(peft_test::read_file(dir / "random_hf" / "generation_config.json"));
  gen["alignment_heads"] = {{0, 1}, {1, 0}};
  peft_test::write_file(tmp / "generation_config.json", gen.dump());
  const std::vector<std::pair<int64_t, int64_t>> listed = {{0, 1}, {1, 0}};
  BOOST_CHECK(models::WhisperModel::load(tmp.path())->alignment_heads() == listed);
  gen["alignment_heads"] = {{0, 1}, {hf->dims().n_text_layer, 0}};
  peft_test::write_file(tmp / "generation_config.json", gen.dump());
  PEFT_CHECK_THROW_MSG(models::WhisperModel::load(tmp.path()), FormatError,
                       {"generation_config.json", "alignment_heads", "out of range"});
}

// Median of the `width` values around each, the row mirrored at its ends, worked out
// by sorting windows here.
BOOST_AUTO_TEST_CASE(median_filter_reflects_at_the_edges) {
  // Row 0 by hand, width 3: padded 5 | 1 5 2 8 3 9 4 | 9 -> medians 5 2 5 3 8 4 9.
  const std::vector<float> row0 = {1, 5, 2, 8, 3, 9, 4};
  const at::Tensor x = at::tensor(std::vector<float>{1, 5, 2, 8, 3, 9, 4, 7, 7, 0, 1, 6, 2, 2}).view({2, 7});
  at::Tensor got = median_filter(x, 3);
  const std::vector<float> hand = {5, 2, 5, 3, 8, 4, 9};
  for (size_t j = 0; j < hand.size(); ++j)
    BOOST_CHECK_EQUAL(got[0][static_cast<int64_t>(j)].item<float>(), hand[j]);
  // Width 5 on random rows, against sorting the mirrored window.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> values(3 * 9);
  for (float& v : values) v = u(rng);
  const at::Tensor r = at::tensor(values).view({3, 9});
  got = median_filter(r, 5);
  for (int64_t row = 0; row < 3; ++row)
    for (int64_t j = 0; j < 9; ++j) {
      std::vector<float> window;
      for (int64_t k = j - 2; k <= j + 2; ++k) {
        const int64_t mirrored = k < 0 ? -k : (k > 8 ? 16 - k : k);  // x[-k] = x[k], x[8 + k] = x[8 - k]
        window.push_back(values[static_cast<size_t>(row * 9 + mirrored)]);
      }
      std::sort(window.begin(), window.end());
      BOOST_CHECK_EQUAL(got[row][j].item<float>(), window[2]);
    }
  // Too short to filter: returned as is.
  const at::Tensor short_row = at::tensor(std::vector<float>{3, 1, 2});
  BOOST_CHECK(at::equal(median_filter(short_row, 7), short_row));
  PEFT_CHECK_THROW_MSG(median_filter(x, 4), ValueError, {"width"});
}

// The path with the largest sum, found by trying every path.
BOOST_AUTO_TEST_CASE(dtw_finds_the_best_path) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0, 1);
  for (const auto& [n, m] : {std::pair<int64_t, int64_t>{1, 1}, {1, 4}, {4, 1}, {3, 4}, {4, 6}, {5, 5}}) {
    std::vector<float> values(static_cast<size_t>(n * m));
    for (float& v : values) v = u(rng);
    double best = -1e30;
    std::vector<std::pair<int64_t, int64_t>> best_path, path = {{0, 0}};
    all_paths(n, m, path, [&](const std::vector<std::pair<int64_t, int64_t>>& p) {
      double sum = 0;
      for (const auto& [i, j] : p) sum += values[static_cast<size_t>(i * m + j)];
      if (sum > best) best = sum, best_path = p;
    });
    BOOST_TEST_CONTEXT(n << "x" << m) {
      const auto got = negative_dtw(at::tensor(values).view({n, m}));
      BOOST_CHECK(got == best_path);
    }
  }
  // A bright band on a dark background is followed, diagonal steps between its rows.
  at::Tensor band = at::full({3, 6}, -1.0f);
  for (int64_t i = 0; i < 3; ++i) band[i][2 * i] = 1, band[i][2 * i + 1] = 1;
  const std::vector<std::pair<int64_t, int64_t>> along = {{0, 0}, {0, 1}, {1, 2}, {1, 3}, {2, 4}, {2, 5}};
  BOOST_CHECK(negative_dtw(band) == along);
  // Ties: the diagonal only when strictly cheaper, then down, else right. On zeros the
  // last step into (1, 1) ties three ways and comes from the left, (1, 0), which itself
  // came from above.
  const std::vector<std::pair<int64_t, int64_t>> tie = {{0, 0}, {1, 0}, {1, 1}};
  BOOST_CHECK(negative_dtw(at::zeros({2, 2})) == tie);
}

BOOST_AUTO_TEST_CASE(words_split_at_spaces_and_punctuation_then_merge) {
  const peft_test::TinyEn& t = tiny_en();
  const auto& tok = *t.tokenizer;
  DecodingOptions defaults;
  const auto split_and_merge = [&](const std::string& text, const std::vector<std::string>& split,
                                   const std::vector<std::string>& merged) {
    BOOST_TEST_CONTEXT(text) {
      std::vector<int64_t> ids = tok.encode(text);
      ids.push_back(tok.eot());
      auto [words, word_tokens] = split_to_word_tokens(tok, ids, "en");
      BOOST_CHECK_EQUAL_COLLECTIONS(words.begin(), words.end(), split.begin(), split.end());
      size_t n = 0;
      for (const auto& w : word_tokens) n += w.size();
      BOOST_CHECK_EQUAL(n, ids.size());
      BOOST_CHECK(word_tokens.back() == std::vector<int64_t>{tok.eot()});
      std::vector<WordTiming> timings;  // find_alignment leaves <|endoftext|> out
      for (size_t i = 0; i + 1 < words.size(); ++i)
        timings.push_back({words[i], word_tokens[i], double(i), i + 1.0, 0.5});
      merge_punctuations(timings, defaults.prepend_punctuations, defaults.append_punctuations);
      BOOST_REQUIRE_EQUAL(timings.size(), merged.size());
      for (size_t i = 0; i < merged.size(); ++i) {
        BOOST_CHECK_EQUAL(timings[i].word, merged[i]);
        BOOST_CHECK_EQUAL(timings[i].tokens.empty(), merged[i].empty());
      }
    }
  };
  // Pieces without a leading space join the word before ("'s"), punctuation is a word of
  // its own, <|endoftext|> is the last. Then "," and "." join the word before them.
  split_and_merge(" Hello, world. It's fine", {" Hello", ",", " world", ".", " It's", " fine", ""},
                  {" Hello,", "", " world.", "", " It's", " fine"});
  // " -" and " (" are spaced prepend marks: both join " yes" (the scan runs backwards,
  // so " -" meets " ( yes"). " )" and " ," carry a space, so they are not in the append
  // set and stay; "." joins " fine".
  split_and_merge(" She said - ( yes ) , fine.",
                  {" She", " said", " -", " (", " yes", " )", " ,", " fine", ".", ""},
                  {" She", " said", "", "", " - ( yes", " )", " ,", " fine.", ""});
  // '."' is one token that is not a substring of string.punctuation: it joins " world".
  split_and_merge(" \"Hello, world.\"", {" \"Hello", ",", " world.\"", ""}, {" \"Hello,", "", " world.\""});
}

BOOST_AUTO_TEST_CASE(json_lists_the_words) {
  Segment s;
  s.start = 0.5;
  s.end = 1.2;
  s.text = " Hi there";
  s.words = {{0.5, 0.8, " Hi", 0.9}, {0.8, 1.2, " there", 0.75}};
  const auto j = nlohmann::json::parse(format_transcript({s}, TranscriptFormat::kJson));
  const auto& w = j.at("segments").at(0).at("words");
  BOOST_REQUIRE_EQUAL(w.size(), 2u);
  BOOST_CHECK_EQUAL(w[1].at("word").get<std::string>(), " there");
  BOOST_CHECK_EQUAL(w[1].at("start").get<double>(), 0.8);
  BOOST_CHECK_EQUAL(w[1].at("probability").get<double>(), 0.75);
  s.words.clear();  // no word timestamps: no "words" key
  BOOST_CHECK(!nlohmann::json::parse(format_transcript({s}, TranscriptFormat::kJson))
                   .at("segments")
                   .at(0)
                   .contains("words"));
}

BOOST_AUTO_TEST_CASE(options_are_checked) {
  DecodingOptions o;
  o.word_timestamps = true;
  o.validate();
  o.append_punctuations = std::string("\xff");
  PEFT_CHECK_THROW_MSG(o.validate(), ValueError, {"append_punctuations", "UTF-8"});
}
