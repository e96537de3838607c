// transcription::snap_to_speech on hand-made segments and speech spans: each rule of the
// header (clip to the speech a word overlaps, words in a silence to its edge, times never
// backwards, segments without words), and the refusal of bad spans.
#define BOOST_TEST_MODULE speech_snapping
#include <boost/test/unit_test.hpp>

#include "peft/error.h"
#include "peft/transcription/speech_snapping.h"

using namespace peft;
using transcription::Segment;
using transcription::snap_to_speech;
using transcription::Word;

namespace {

// Speech spans in seconds, at 100 "samples" per second so times are exact.
std::vector<audio::SpeechTimestamp> spans(std::initializer_list<std::pair<double, double>> s) {
  std::vector<audio::SpeechTimestamp> out;
  for (auto [a, b] : s)
    out.push_back({static_cast<int64_t>(a * 100 + 0.5), static_cast<int64_t>(b * 100 + 0.5)});
  return out;
}

Segment segment(std::initializer_list<std::pair<double, double>> words) {
  Segment s;
  for (auto [a, b] : words) {
    Word w;
    w.start = a;
    w.end = b;
    w.word = " w";
    s.words.push_back(w);
  }
  s.start = s.words.empty() ? 0 : s.words.front().start;
  s.end = s.words.empty() ? 0 : s.words.back().end;
  return s;
}

void check_words(const Segment& s, std::initializer_list<std::pair<double, double>> expected) {
  BOOST_REQUIRE_EQUAL(s.words.size(), expected.size());
  size_t k = 0;
  for (auto [a, b] : expected) {
    BOOST_TEST_CONTEXT("word " << k) {
      BOOST_CHECK_CLOSE(s.words[k].start + 1, a + 1, 1e-9);
      BOOST_CHECK_CLOSE(s.words[k].end + 1, b + 1, 1e-9);
    }
    ++k;
  }
  BOOST_CHECK_EQUAL(s.start, s.words.front().start);
  BOOST_CHECK_EQUAL(s.end, s.words.back().end);
}

}  // namespace

BOOST_AUTO_TEST_CASE(words_are_clipped_to_the_speech_they_overlap) {
  // Speech 1-3 s and 4-6 s. A word running into the silence after its speech ends with
  // it; one starting early starts with it; one across the silence spans both.
  std::vector<Segment> segs = {segment({{0.5, 1.5}, {1.5, 2.5}, {2.5, 3.9}}),
                               segment({{3.8, 5.0}, {5.0, 6.0}}), segment({{5.9, 9.0}})};
  snap_to_speech(segs, spans({{1, 3}, {4, 6}}), 100);
  check_words(segs[0], {{1.0, 1.5}, {1.5, 2.5}, {2.5, 3.0}});
  check_words(segs[1], {{4.0, 5.0}, {5.0, 6.0}});
  check_words(segs[2], {{6.0, 6.0}});  // clipped to [5.9, 6], then not before the word before it

  std::vector<Segment> across = {segment({{2.0, 5.0}})};
  snap_to_speech(across, spans({{1, 3}, {4, 6}}), 100);
  check_words(across[0], {{2.0, 5.0}});
}

BOOST_AUTO_TEST_CASE(words_in_a_silence_move_to_its_edge) {
  // "Five, five": the second word placed, with zero length, in the silence after the
  // speech: back to where the speech before it ends. A segment's first word in a
  // silence moves forward to where its speech starts.
  std::vector<Segment> segs = {segment({{0.2, 0.4}, {1.2, 2.0}, {4.5, 4.5}}),
                               segment({{7.0, 7.5}, {8.2, 8.8}})};
  snap_to_speech(segs, spans({{1, 3}, {8, 9}}), 100);
  check_words(segs[0], {{1.0, 1.0}, {1.2, 2.0}, {3.0, 3.0}});
  check_words(segs[1], {{8.0, 8.0}, {8.2, 8.8}});

  // Before the first span there is no speech to go back to: every word goes forward.
  std::vector<Segment> early = {segment({{0.1, 0.2}, {0.3, 0.4}, {1.5, 2.0}})};
  snap_to_speech(early, spans({{1, 3}}), 100);
  check_words(early[0], {{1.0, 1.0}, {1.0, 1.0}, {1.5, 2.0}});
}

BOOST_AUTO_TEST_CASE(segments_without_words_and_no_speech) {
  Segment a;  // across a silence: clipped; wholly in a silence: left
  a.start = 0.0;
  a.end = 3.5;
  Segment b;
  b.start = 3.5;
  b.end = 3.8;
  std::vector<Segment> segs = {a, b};
  snap_to_speech(segs, spans({{1, 3}, {4, 6}}), 100);
  BOOST_CHECK_CLOSE(segs[0].start, 1.0, 1e-9);
  BOOST_CHECK_CLOSE(segs[0].end, 3.0, 1e-9);
  BOOST_CHECK_CLOSE(segs[1].start, 3.5, 1e-9);
  BOOST_CHECK_CLOSE(segs[1].end, 3.8, 1e-9);

  std::vector<Segment> untouched = {segment({{0.5, 1.5}})};
  snap_to_speech(untouched, {}, 100);
  check_words(untouched[0], {{0.5, 1.5}});
}

BOOST_AUTO_TEST_CASE(refuses_unsorted_overlapping_or_empty_spans) {
  std::vector<Segment> segs = {segment({{0.5, 1.5}})};
  const Segment before = segs[0];
  BOOST_CHECK_THROW(snap_to_speech(segs, spans({{4, 6}, {1, 3}}), 100), ValueError);
  BOOST_CHECK_THROW(snap_to_speech(segs, spans({{1, 3}, {2, 4}}), 100), ValueError);
  BOOST_CHECK_THROW(snap_to_speech(segs, spans({{1, 1}}), 100), ValueError);
  BOOST_CHECK_THROW(snap_to_speech(segs, spans({{1, 2}}), 0), ValueError);
  BOOST_CHECK_EQUAL(segs[0].words[0].start, before.words[0].start);  // nothing changed
}
