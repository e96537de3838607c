// StreamingTranscriber on real speech with the default tiny.en: the five LibriVox
// utterances of Debian's pocketsphinx-testdata with pauses between them, fed in small
// chunks as a live source would. All decodes are greedy (beam_size 1) to keep the suite
// short: one stream of ~35 s runs ~35 decodes.
#define BOOST_TEST_MODULE streaming
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "peft/audio/wav.h"
#include "peft/error.h"
#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/streaming_transcriber.h"
#include "test_support.h"
#include "transcription/tiny_en.h"

using namespace peft;
using namespace peft::transcription;

namespace {

constexpr int kRate = 16000;
const std::string kLibrivox =
    "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-";

using peft_test::tiny_en;

std::vector<float> librivox(const std::string& id) {
  const auto wav = audio::read_wav(kLibrivox + id + ".wav");
  BOOST_REQUIRE_EQUAL(wav.sample_rate, kRate);
  return wav.samples;
}

void append_silence(std::vector<float>& out, double seconds) {
  out.resize(out.size() + static_cast<size_t>(seconds * kRate), 0.0f);
}

// 1 s of silence, then the five utterances with pauses of 2, 1, 3 and 1.5 s, then 2 s of
// silence: ~35 s, so the buffer is trimmed, refilled and several segments commit.
const std::vector<float>& speech() {
  static const std::vector<float> audio = [] {
    std::vector<float> out;
    append_silence(out, 1.0);
    const char* ids[] = {"0870", "0880", "0890", "0920", "0930"};
    const double pauses[] = {2.0, 1.0, 3.0, 1.5, 2.0};
    for (int i = 0; i < 5; ++i) {
      auto s = librivox(ids[i]);
      out.insert(out.end(), s.begin(), s.end());
      append_silence(out, pauses[i]);
    }
    return out;
  }();
  return audio;
}

StreamingOptions greedy_options() {
  StreamingOptions o;
  o.decoding.beam_size = 1;
  return o;
}

// What a stream produced, update by update.
struct Run {
  struct Step {
    double position = 0;  // stream time after the push
    StreamUpdate update;
  };
  std::vector<Step> steps;  // one per push, then finish()
  std::vector<Segment> committed;
  double seconds = 0;  // wall time
  int decodes = 0;
};

// Feeds `audio` in chunks of the given sizes (cycled), then finishes.
Run stream(StreamingTranscriber& st, const std::vector<float>& audio, const std::vector<size_t>& chunks) {
  Run run;
  const auto t0 = std::chrono::steady_clock::now();
  size_t done = 0;
  for (size_t k = 0; done < audio.size(); ++k) {
    const size_t n = std::min(chunks[k % chunks.size()], audio.size() - done);
    Run::Step step;
    step.update = st.push(audio.data() + done, n);
    done += n;
    step.position = st.position();
    run.steps.push_back(std::move(step));
  }
  Run::Step last;
  last.update = st.finish();
  last.position = st.position();
  run.steps.push_back(std::move(last));
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& s : run.steps) {
    run.committed.insert(run.committed.end(), s.update.committed.begin(), s.update.committed.end());
    run.decodes += s.update.decodes;
  }
  return run;
}

std::string text_of(const std::vector<Segment>& segments) {
  std::string t;
  for (const auto& s : segments) t += s.text;
  return t;
}

std::string describe(const std::vector<Segment>& segments) {
  std::ostringstream os;
  for (const auto& s : segments) os << "[" << s.start << "-" << s.end << "]" << s.text;
  return os.str();
}

std::vector<int64_t> tokens_of(const std::vector<Segment>& segments) {
  std::vector<int64_t> t;
  for (const auto& s : segments) t.insert(t.end(), s.tokens.begin(), s.tokens.end());
  return t;
}

// Checks what a consumer relies on: committed segments only append, in time order,
// inside the audio fed so far; partials follow the committed text; and every segment
// committed while streaming either was the start of the previous decode's partial
// (local agreement) or was forced by the latency bound (it started more than
// max_latency before the commit). Returns the largest commit latency (stream time at
// the commit minus the segment's start) and counts the commits of each kind.
struct Checked {
  double max_latency = 0;
  int agreed = 0, forced = 0, at_finish = 0;
};

Checked check_run(const Run& run, double audio_seconds, double offset, const StreamingOptions& options) {
  Checked c;
  double last_end = offset;
  std::vector<int64_t> shown;  // tokens of the partial of the last decode
  for (size_t k = 0; k < run.steps.size(); ++k) {
    const auto& step = run.steps[k];
    const bool final = k + 1 == run.steps.size();
    size_t at = 0;  // how far the commits of this step have matched `shown`
    bool forced = false;
    for (const auto& s : step.update.committed) {
      BOOST_CHECK_LE(last_end, s.start + 1e-9);
      BOOST_CHECK_LE(s.start, s.end);
      BOOST_CHECK_LE(s.end, step.position + 1e-9);
      BOOST_CHECK_GE(s.start, offset - 1e-9);
      BOOST_CHECK_LE(s.end, offset + audio_seconds + 1e-9);
      BOOST_CHECK(!s.tokens.empty());
      last_end = s.end;
      c.max_latency = std::max(c.max_latency, step.position - s.start);
      if (final) {
        ++c.at_finish;
        continue;
      }
      const bool previewed = !forced && at + s.tokens.size() <= shown.size() &&
                             std::equal(s.tokens.begin(), s.tokens.end(), shown.begin() + at);
      if (previewed) {
        at += s.tokens.size();
        ++c.agreed;
      } else {
        forced = true;
        ++c.forced;
        BOOST_CHECK_MESSAGE(s.start < step.position - options.max_latency_seconds + 1e-9,
                            "segment [" << s.start << ", " << s.end << "]" << s.text << " committed at "
                                        << step.position << " s was neither agreed nor forced");
      }
    }
    for (size_t i = 0; i < step.update.partial.size(); ++i) {
      const auto& p = step.update.partial[i];
      BOOST_CHECK_LE(last_end, p.start + 1e-9);
      BOOST_CHECK_LE(p.start, p.end);
      BOOST_CHECK_LE(p.end, step.position + 1e-9);
      if (i > 0) BOOST_CHECK_LE(step.update.partial[i - 1].end, p.start + 1e-9);
    }
    if (step.update.decodes > 0) shown = tokens_of(step.update.partial);
  }
  BOOST_CHECK(run.steps.back().update.partial.empty());
  return c;
}

double wer_between(const std::string& reference, const std::string& hypothesis) {
  return metrics::wer(metrics::normalize_english(reference), metrics::normalize_english(hypothesis));
}

// Uneven chunks (0.25, 0.5, 0.37, 0.13, 0.1876, 0.0624 s): 1.5 s per cycle, so the
// stream passes 6.0 s at a chunk boundary (see chunking_does_not_change_the_result).
const std::vector<size_t> kUneven = {4000, 8000, 5920, 2080, 3001, 999};

const Run& uneven_run() {
  static const Run run = [] {
    StreamingTranscriber st(tiny_en().model, tiny_en().tokenizer, greedy_options());
    return stream(st, speech(), kUneven);
  }();
  return run;
}

}  // namespace

BOOST_AUTO_TEST_CASE(speech_in_uneven_chunks) {
  const peft_test::TinyEn& t = tiny_en();
  const StreamingOptions options = greedy_options();
  const auto& audio = speech();
  const double seconds = static_cast<double>(audio.size()) / kRate;
  const Run& run = uneven_run();
  for (const auto& step : run.steps)
    if (!step.update.committed.empty() || step.update.decodes)
      BOOST_TEST_MESSAGE(step.position << " s: committed " << describe(step.update.committed) << " | partial "
                                       << describe(step.update.partial));

  const Checked c = check_run(run, seconds, 0.0, options);
  // The documented bound, plus what the push that ran the committing decode fed after it.
  const double largest_chunk = 0.5;
  BOOST_CHECK_LE(c.max_latency, options.max_latency_seconds + options.step_seconds + largest_chunk);
  // Partial hypotheses come first: commits by agreement, shown as partial beforehand.
  BOOST_CHECK_GE(c.agreed, 3);

  const auto offline = transcribe(*t.model, *t.tokenizer, audio, options.decoding);
  const double wer = wer_between(text_of(offline), text_of(run.committed));
  BOOST_TEST_MESSAGE("offline:   " << describe(offline));
  BOOST_TEST_MESSAGE("streaming: " << describe(run.committed));
  BOOST_TEST_MESSAGE("streamed " << seconds << " s in " << run.seconds << " s, " << run.decodes
                                 << " decodes; " << c.agreed << " segments committed by agreement, "
                                 << c.forced << " forced, " << c.at_finish
                                 << " at finish; largest commit latency " << c.max_latency
                                 << " s; WER against offline " << wer * 100 << "%");
  // tiny.en's WER on these utterances is 4% offline (test_whisper_wer); streaming decodes
  // see less context, so a word or two per utterance may differ: 15% is ~5 of 35 words.
  BOOST_CHECK_LE(wer, 0.15);
}

// Decodes happen at fixed stream times, so how the audio is cut does not matter: fed
// in 0.5 s chunks, the stream is in exactly the state the uneven chunks led to.
BOOST_AUTO_TEST_CASE(chunking_does_not_change_the_result) {
  const peft_test::TinyEn& t = tiny_en();
  const auto& audio = speech();
  const double until_s = 6.0;
  const size_t until = static_cast<size_t>(until_s) * kRate;
  StreamingTranscriber st(t.model, t.tokenizer, greedy_options());
  std::vector<Segment> committed, partial;
  for (size_t done = 0; done < until; done += kRate / 2) {
    StreamUpdate u = st.push(audio.data() + done, kRate / 2);
    committed.insert(committed.end(), u.committed.begin(), u.committed.end());
    partial = u.partial;
  }
  std::vector<Segment> ref_committed, ref_partial;
  for (const auto& step : uneven_run().steps) {
    if (step.position > until_s + 1e-9) break;
    ref_committed.insert(ref_committed.end(), step.update.committed.begin(), step.update.committed.end());
    ref_partial = step.update.partial;
    if (std::abs(step.position - until_s) < 1e-9) break;
  }
  BOOST_TEST_MESSAGE("at " << until_s << " s: " << describe(committed) << " | " << describe(partial));
  BOOST_CHECK_EQUAL(describe(committed), describe(ref_committed));
  BOOST_CHECK_EQUAL(describe(partial), describe(ref_partial));
  BOOST_CHECK(tokens_of(committed) == tokens_of(ref_committed));
}

// A small latency bound forces commits from single decodes: the bound still holds, and
// the buffer never holds more than max_latency + step.
BOOST_AUTO_TEST_CASE(latency_bound_forces_commits) {
  const peft_test::TinyEn& t = tiny_en();
  StreamingOptions options = greedy_options();
  options.max_latency_seconds = 2.0;
  std::vector<float> audio = librivox("0870");
  append_silence(audio, 1.0);
  const double seconds = static_cast<double>(audio.size()) / kRate;
  StreamingTranscriber st(t.model, t.tokenizer, options);
  const size_t chunk = kRate / 4;
  Run run;
  for (size_t done = 0; done < audio.size(); done += chunk) {
    Run::Step step;
    step.update = st.push(audio.data() + done, std::min(chunk, audio.size() - done));
    step.position = st.position();
    BOOST_CHECK_LE(st.uncommitted_seconds(), options.max_latency_seconds + options.step_seconds + 1e-9);
    run.steps.push_back(std::move(step));
  }
  run.steps.push_back({st.position(), st.finish()});
  for (const auto& s : run.steps)
    run.committed.insert(run.committed.end(), s.update.committed.begin(), s.update.committed.end());
  const Checked c = check_run(run, seconds, 0.0, options);
  BOOST_TEST_MESSAGE(describe(run.committed)
                     << "; " << c.agreed << " agreed, " << c.forced << " forced, " << c.at_finish
                     << " at finish; largest commit latency " << c.max_latency << " s");
  BOOST_CHECK_LE(c.max_latency, options.max_latency_seconds + options.step_seconds + 0.25);
  BOOST_CHECK_GE(c.forced, 1);
  BOOST_CHECK_LE(wer_between("and mister john dashwood had then leisure to consider how much there might be "
                             "prudently in his power to do for them",
                             text_of(run.committed)),
                 0.5);
}

// Silence (digital zeros, then white noise at -50 dBFS) commits no text, and the buffer
// is trimmed to the last 0.5 s after two empty decodes instead of growing to the
// latency bound.
BOOST_AUTO_TEST_CASE(silence_gives_no_text) {
  const peft_test::TinyEn& t = tiny_en();
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 0.00316f);
  for (const bool zeros : {true, false}) {
    StreamingTranscriber st(t.model, t.tokenizer, greedy_options());
    std::vector<float> chunk(kRate / 2);
    std::vector<Segment> committed;
    for (int k = 0; k < 12; ++k) {
      for (float& x : chunk) x = zeros ? 0.0f : noise(rng);
      StreamUpdate u = st.push(chunk);
      committed.insert(committed.end(), u.committed.begin(), u.committed.end());
      BOOST_CHECK(u.partial.empty());
      if (st.position() > 2.0) BOOST_CHECK_LE(st.uncommitted_seconds(), 0.5 + 1.0 + 1e-9);
    }
    StreamUpdate u = st.finish();
    committed.insert(committed.end(), u.committed.begin(), u.committed.end());
    BOOST_CHECK_MESSAGE(committed.empty(), (zeros ? "zeros" : "noise") << " gave " << describe(committed));
  }
}

// The repetition-loop guard: with a compression-ratio threshold every decode exceeds
// (0.1: any text compresses to less than 10 times its size), each decode is redone
// without the prompt and then gives no text, so nothing is committed; with the default
// threshold the same utterance is.
BOOST_AUTO_TEST_CASE(decodes_that_loop_give_no_text) {
  const peft_test::TinyEn& t = tiny_en();
  std::vector<float> audio = librivox("0880");
  append_silence(audio, 2.0);
  for (const float threshold : {0.1f, 2.4f}) {
    StreamingOptions o = greedy_options();
    o.decoding.compression_ratio_threshold = threshold;
    o.decoding.initial_prompt = "He was not an ill-disposed young man.";
    o.decoding.temperatures = {0.0f};
    StreamingTranscriber st(t.model, t.tokenizer, o);
    std::vector<Segment> committed = st.push(audio).committed;
    const StreamUpdate last = st.finish();
    committed.insert(committed.end(), last.committed.begin(), last.committed.end());
    BOOST_TEST_MESSAGE("threshold " << threshold << ": " << describe(committed));
    if (threshold < 1)
      BOOST_CHECK(committed.empty());
    else
      BOOST_CHECK(!committed.empty());
  }
}

BOOST_AUTO_TEST_CASE(bad_input) {
  const peft_test::TinyEn& t = tiny_en();
  StreamingTranscriber st(t.model, t.tokenizer, greedy_options());
  std::vector<float> samples(1000, 0.0f);
  BOOST_CHECK(st.push(samples).committed.empty());
  BOOST_CHECK(st.push(nullptr, 0).committed.empty());  // empty pushes are fine
  samples[5] = std::numeric_limits<float>::quiet_NaN();
  PEFT_CHECK_THROW_MSG(st.push(samples), ValueError, {"sample 1005", "NaN", "index 5 of this push"});
  BOOST_CHECK_EQUAL(st.position(), 1000.0 / kRate);  // nothing of the bad push consumed
  samples[5] = -std::numeric_limits<float>::infinity();
  PEFT_CHECK_THROW_MSG(st.push(samples), ValueError, {"sample 1005", "infinite"});
  samples[5] = 0;
  st.push(samples);
  BOOST_CHECK_EQUAL(st.position(), 2000.0 / kRate);
  st.finish();
  PEFT_CHECK_THROW_MSG(st.push(samples), Error, {"after finish", "reset"});
  BOOST_CHECK(st.finish().committed.empty());
  st.reset(5.0);
  st.push(samples);
  BOOST_CHECK_EQUAL(st.position(), 5.0 + 1000.0 / kRate);

  StreamingOptions bad = greedy_options();
  bad.step_seconds = 0;
  PEFT_CHECK_THROW_MSG(StreamingTranscriber(t.model, t.tokenizer, bad), ValueError, {"step_seconds"});
  bad = greedy_options();
  bad.max_latency_seconds = 29.5;
  PEFT_CHECK_THROW_MSG(StreamingTranscriber(t.model, t.tokenizer, bad), ValueError,
                       {"max_latency_seconds", "30 s"});
  bad = greedy_options();
  bad.decoding.beam_size = 0;
  PEFT_CHECK_THROW_MSG(StreamingTranscriber(t.model, t.tokenizer, bad), ValueError, {"beam_size"});
  PEFT_CHECK_THROW_MSG(StreamingTranscriber(nullptr, t.tokenizer, greedy_options()), ValueError, {"null"});
  PEFT_CHECK_THROW_MSG(st.reset(std::numeric_limits<double>::infinity()), ValueError, {"offset"});
}

// reset() drops what is uncommitted and moves the timeline: after a flush, the next
// utterance comes out at the caller's offset; reset(position()) after finish() continues
// the same timeline.
BOOST_AUTO_TEST_CASE(reset_moves_the_timeline) {
  const peft_test::TinyEn& t = tiny_en();
  StreamingTranscriber st(t.model, t.tokenizer, greedy_options());
  const std::vector<float> first = librivox("0890");
  st.push(first.data(), 2 * kRate);  // "unless to be rather": decoded, not committed yet
  BOOST_CHECK(!st.partial().empty());
  st.reset(100.0);
  BOOST_CHECK(st.partial().empty());
  BOOST_CHECK_EQUAL(st.uncommitted_seconds(), 0.0);
  BOOST_CHECK_EQUAL(st.position(), 100.0);

  std::vector<float> audio = librivox("0880");
  append_silence(audio, 1.0);
  Run run = stream(st, audio, {kRate / 2});
  const double seconds = static_cast<double>(audio.size()) / kRate;
  check_run(run, seconds, 100.0, greedy_options());
  BOOST_TEST_MESSAGE(describe(run.committed));
  BOOST_REQUIRE(!run.committed.empty());
  BOOST_CHECK_LE(wer_between("he was not an ill disposed young man", text_of(run.committed)), 0.3);
  BOOST_CHECK_CLOSE(st.position(), 100.0 + seconds, 1e-9);

  st.reset(st.position());
  StreamUpdate u = st.push(audio.data(), kRate / 2);
  BOOST_CHECK(u.committed.empty());
  BOOST_CHECK_CLOSE(st.position(), 100.0 + seconds + 0.5, 1e-9);
}

// A caller that fell behind pushes its backlog in catch_up mode: one decode for many
// steps of audio, the buffer never beyond one window, and the text still right.
BOOST_AUTO_TEST_CASE(catch_up_decodes_once_per_backlog) {
  const peft_test::TinyEn& t = tiny_en();
  StreamingTranscriber st(t.model, t.tokenizer, greedy_options());
  std::vector<float> audio = librivox("0880");  // ~3 s
  append_silence(audio, 1.0);
  const auto second = librivox("0890");
  audio.insert(audio.end(), second.begin(), second.end());
  append_silence(audio, 1.0);
  const size_t steps = audio.size() / kRate;  // step is 1 s
  StreamUpdate u = st.push(audio, StreamingTranscriber::PushMode::catch_up);
  BOOST_TEST_MESSAGE(steps << " steps of audio, " << u.decodes << " decode(s)");
  BOOST_CHECK_EQUAL(u.decodes, 1);
  StreamUpdate more = st.push(audio, StreamingTranscriber::PushMode::catch_up);
  BOOST_CHECK_EQUAL(more.decodes, 1);
  BOOST_CHECK_LE(st.uncommitted_seconds(),
                 greedy_options().max_latency_seconds + greedy_options().step_seconds + 1e-9);
  // 40 s in one push: the 30 s window forces an earlier decode.
  std::vector<float> long_audio;
  for (int i = 0; i < 4; ++i) long_audio.insert(long_audio.end(), audio.begin(), audio.end());
  StreamUpdate big = st.push(long_audio, StreamingTranscriber::PushMode::catch_up);
  BOOST_CHECK_GE(big.decodes, 2);
  BOOST_CHECK_LT(static_cast<size_t>(big.decodes), long_audio.size() / kRate);
  StreamUpdate end = st.finish();
  std::vector<Segment> all = u.committed;
  for (const auto* x : {&more, &big, &end}) all.insert(all.end(), x->committed.begin(), x->committed.end());
  BOOST_TEST_MESSAGE(describe(all));
  for (size_t i = 1; i < all.size(); ++i) BOOST_CHECK_LE(all[i - 1].end, all[i].start + 1e-9);
  const std::string once =
      "he was not an ill disposed young man unless to be rather cold hearted and rather selfish is to be ill "
      "disposed";
  std::string reference;
  for (int i = 0; i < 6; ++i) reference += once + " ";
  BOOST_CHECK_LE(wer_between(reference, text_of(all)), 0.25);
}

// With word timestamps the words are on the stream timeline too, inside their segment.
BOOST_AUTO_TEST_CASE(words_on_the_stream_timeline) {
  const peft_test::TinyEn& t = tiny_en();
  StreamingOptions o = greedy_options();
  o.decoding.word_timestamps = true;
  StreamingTranscriber st(t.model, t.tokenizer, o);
  st.reset(50.0);
  std::vector<float> audio(kRate * 3 / 2, 0.0f);  // the speech starts at 51.5 s
  const auto speech_part = librivox("0880");
  audio.insert(audio.end(), speech_part.begin(), speech_part.end());
  append_silence(audio, 1.0);
  Run run = stream(st, audio, {kRate / 2});
  BOOST_REQUIRE(!run.committed.empty());
  size_t words = 0;
  for (const Segment& s : run.committed) {
    for (const Word& w : s.words) {
      ++words;
      BOOST_CHECK_LE(s.start, w.start + 1e-9);
      BOOST_CHECK_LE(w.start, w.end);
      BOOST_CHECK_LE(w.end, s.end + 1e-9);
    }
  }
  BOOST_CHECK_GE(words, 6u);
  BOOST_TEST_MESSAGE("first word at " << run.committed.front().words.front().start);
  // Word times are DTW estimates (this one ~0.4 s early); what matters here is the offset.
  BOOST_CHECK_GT(run.committed.front().words.front().start, 50.8);
  BOOST_CHECK_LT(run.committed.front().words.front().start, 52.0);
}
