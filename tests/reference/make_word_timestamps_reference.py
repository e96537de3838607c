#!/usr/bin/env python3
"""Writes tests/fixtures/whisper/faster_whisper_words_tiny_en.json, the reference for
tests/transcription/test_whisper_words.cpp: faster-whisper's word timestamps
(word_timestamps=True) on the five LibriVox utterances of Debian's pocketsphinx-testdata
and on the ~64 s concatenation of make_whisper_reference.py ("long": the ten utterances
with silences between them, three 30 s windows, so the seek after a window moves to the
last word), with models/default/whisper-tiny.en, beam_size 5 and 1, compute_type float32
on the CPU, every other option faster-whisper's default.

"align" also stores CTranslate2's Whisper.align itself for each LibriVox utterance's
first window (the text tokens faster-whisper's beam-5 run put in it): the DTW path and
the text token probabilities, so the alignment is checked before faster-whisper's word
heuristics.

WAVs are read with the wave module and scaled by 1/32768, as libpeft's read_wav does.

Usage: python3 tests/reference/make_word_timestamps_reference.py [model_dir] [output.json]
Needs: faster-whisper==1.2.1, ctranslate2==4.8.5, numpy.
"""

import json
import os
import sys

import ctranslate2
import faster_whisper
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_whisper_reference import FILES, GAPS_S, LEAD_S, long_audio, read_wav  # noqa: E402

LIBRIVOX = FILES[:5]


def transcribe(model, audio, beam_size):
    segments, _ = model.transcribe(audio, beam_size=beam_size, language="en", word_timestamps=True)
    return [
        {
            "seek": s.seek,
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "tokens": list(s.tokens),
            "words": [
                {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                for w in s.words
            ],
        }
        for s in segments
    ]


def align(model, audio, text_tokens):
    """CTranslate2's align on the first window, as faster-whisper's find_alignment calls it."""
    features = model.feature_extractor(audio)
    content_frames = features.shape[-1] - 1
    num_frames = min(model.feature_extractor.nb_max_frames, content_frames)
    encoder_output = model.encode(pad_or_trim(features[:, :num_frames]))
    tokenizer = faster_whisper.tokenizer.Tokenizer(model.hf_tokenizer, False, task="transcribe", language="en")
    result = model.model.align(encoder_output, tokenizer.sot_sequence, [text_tokens], num_frames,
                               median_filter_width=7)[0]
    return {
        "num_frames": num_frames,
        "text_tokens": text_tokens,
        "path_text": [int(p[0]) for p in result.alignments],
        "path_frame": [int(p[1]) for p in result.alignments],
        "text_token_probs": [float(p) for p in result.text_token_probs],
    }


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/default/whisper-tiny.en"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/whisper/faster_whisper_words_tiny_en.json"
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    eot = model.hf_tokenizer.token_to_id("<|endoftext|>")
    doc = {
        "generator": "tests/reference/make_word_timestamps_reference.py",
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "model": model_dir,
        "long": {"lead_s": LEAD_S, "files": FILES, "gaps_s": GAPS_S},
        "results": [],
        "align": [],
    }
    for beam_size in (5, 1):
        for name in LIBRIVOX + ["long"]:
            audio = long_audio() if name == "long" else read_wav(name)
            segments = transcribe(model, audio, beam_size)
            doc["results"].append({"file": name, "beam_size": beam_size, "segments": segments})
            print("beam %d %s: %d segments, %d words" % (beam_size, name, len(segments),
                                                        sum(len(s["words"]) for s in segments)))
            if beam_size == 5 and name != "long":
                text = [t for s in segments if s["seek"] == 0 for t in s["tokens"] if t < eot]
                entry = align(model, read_wav(name), text)
                entry["file"] = name
                doc["align"].append(entry)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
