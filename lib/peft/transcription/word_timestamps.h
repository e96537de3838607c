// Word-level timestamps, re-deriving faster-whisper 1.2.1 (add_word_timestamps,
// find_alignment, merge_punctuations, Tokenizer.split_to_word_tokens) over CTranslate2
// 4.8.5's Whisper::align. Whisper's segment timestamps are coarse (they mark where the
// model chose to cut its 30 s window, often a second or more off the speech); the
// decoder's alignment heads attend to the audio frames of the token they read, so a
// path through their cross-attention (dynamic time warping) says when each token, and
// each word, is spoken. transcribe() calls add_word_timestamps per window when
// DecodingOptions.word_timestamps is on; the steps are public so tests can check them.
//
// Per window, as CTranslate2's align: the sot sequence, <|notimestamps|>, the window's
// text tokens and <|endoftext|> go through the decoder in one pass (no previous-text
// prompt); each alignment head's cross-attention is softmaxed over the frames that hold
// audio (num_frames / 2 of the 1500), standardised over the tokens (mean and biased
// std, per frame), median-filtered along the frames (width 7) and averaged over heads;
// the rows from <|notimestamps|> (which predicts the first text token) to the last text
// token form the matrix the path goes through.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

// Declared only: whisper_decoding.h (and so transcript_format.h) includes this header
// for Word and stays free of torch headers; callers of the tensor functions include ATen.
namespace at {
class Tensor;
}
namespace peft::adapters {
class BoundAdapter;
}
namespace peft::models {
class WhisperModel;
}
namespace peft::text {
class WhisperTokenizer;
}

namespace peft::transcription {

struct Segment;

struct Word {
  double start = 0, end = 0;  // seconds on the transcribed audio's timeline
  std::string word;           // with its leading space and merged punctuation, as faster-whisper
  double probability = 0;     // mean probability of its tokens (punctuation merged in not counted)
};

// CTranslate2's MedianFilter: each value of the last axis becomes the median of the
// `width` (odd) values centred on it, the axis reflected at its ends (x[-1] = x[1],
// x[n] = x[n-2]). An axis of width / 2 values or fewer is returned as is. float32.
at::Tensor median_filter(const at::Tensor& x, int64_t width);

// CTranslate2's negative_dtw: the monotone path from (0, 0) to (n-1, m-1) through x
// float32 [n, m] (steps right, down, or diagonal) maximising the sum of x, costs summed
// in float32. Equal costs: the diagonal only when strictly cheapest, then down
// (next row) when strictly cheapest, else right (next column). Pairs (row, column).
std::vector<std::pair<int64_t, int64_t>> negative_dtw(const at::Tensor& x);

// CTranslate2's WhisperAlignmentResult for one text sequence.
struct TokenAlignment {
  // (text index, encoder frame) pairs; text index n (the last) is <|endoftext|>.
  std::vector<std::pair<int64_t, int64_t>> path;
  std::vector<double> text_token_probs;  // of each text token (softmax over the text tokens)
};

// CTranslate2's Whisper::align (see the top): `audio_features` [1, n_audio_ctx, d] of
// the window, `num_frames` the mel frames of it that hold audio; `adapter` as the
// window was decoded with (or none).
TokenAlignment align_text(const models::WhisperModel& model, const at::Tensor& audio_features,
                          const std::vector<int64_t>& start_sequence, int64_t no_timestamps, int64_t eot,
                          const std::vector<int64_t>& text_tokens, int64_t num_frames,
                          int64_t median_filter_width = 7, const adapters::BoundAdapter* adapter = nullptr);

// Tokenizer.split_to_word_tokens: words at spaces and punctuation; for zh, ja, th, lo,
// my and yue (no spaces between words) at every point where the tokens so far decode to
// whole characters.
std::pair<std::vector<std::string>, std::vector<std::vector<int64_t>>> split_to_word_tokens(
    const text::WhisperTokenizer& tokenizer, const std::vector<int64_t>& tokens, const std::string& language);

// One word of find_alignment, times relative to the window.
struct WordTiming {
  std::string word;
  std::vector<int64_t> tokens;
  double start = 0, end = 0, probability = 0;
};

// find_alignment: words of `text_tokens` (split_to_word_tokens) timed where the path
// first reaches their first token (start) and the token after their last (end), at 50
// encoder frames per second. Empty when there are no words.
std::vector<WordTiming> find_alignment(const text::WhisperTokenizer& tokenizer, const std::string& language,
                                       const std::vector<int64_t>& text_tokens,
                                       const TokenAlignment& alignment);

// merge_punctuations: a word that is a space and one of `prepended` joins the word after
// it, a word in `appended` the word before it (unless that one ends with a space); the
// emptied word stays, with no text and no tokens. Membership is Python's substring test.
void merge_punctuations(std::vector<WordTiming>& words, const std::string& prepended,
                        const std::string& appended);

// add_word_timestamps for the segments of one window (all from its seek): aligns their
// text tokens together, sets each segment's words (times rounded to 0.01 s, on the
// audio's timeline), clips implausibly long first and last words (median word
// duration heuristics), and moves segment start/end onto the first/last word.
// `last_speech_timestamp`: the end of the speech before this window; returns the value
// it has after these segments (unchanged when no segment got words).
double add_word_timestamps(std::vector<Segment>& segments, const models::WhisperModel& model,
                           const text::WhisperTokenizer& tokenizer, const at::Tensor& audio_features,
                           const std::vector<int64_t>& sot_sequence, const std::string& language,
                           int64_t num_frames, const std::string& prepend_punctuations,
                           const std::string& append_punctuations, double last_speech_timestamp,
                           const adapters::BoundAdapter* adapter = nullptr);

}  // namespace peft::transcription
