#!/usr/bin/env python3
"""Reference for tests/transcription/test_whisper_long_audio.cpp: rebuilds the same
~10-minute signal (same LCG, shuffle, silences and energy rule as the C++ test),
transcribes it with faster-whisper on models/default/whisper-tiny.en, and prints, per
utterance, the segments matched to it and their timing errors, so a timing miss of
libpeft can be told apart from one of Whisper itself. With --write, also stores the
segments (times, tokens, text) as the fixture the C++ test compares with
(tests/fixtures/whisper/long_audio_faster_whisper.json, made with --beam 1; with
--word-timestamps, long_audio_faster_whisper_words.json, the one the test now uses).

WAVs are read with the wave module and scaled by 1/32768, as libpeft's read_wav does.
compute_type float32 on the CPU, cpu_threads=2.

Usage: python3 tests/reference/long_audio_faster_whisper.py [--beam N] [--word-timestamps] [--vad]
       [--write FILE] [model_dir]
Needs: pip install faster-whisper==1.2.1 (ctranslate2 4.x), numpy.
"""

import argparse
import json
import time
import wave

import ctranslate2
import faster_whisper
import numpy as np
from faster_whisper import WhisperModel

DATA = "/usr/share/pocketsphinx/test/data/"
FILES = [DATA + "librivox/sense_and_sensibility_01_austen_64kb-%s.wav" % i
         for i in ("0870", "0880", "0890", "0920", "0930")] + [
    DATA + "cards/%s.wav" % i for i in ("001", "002", "003", "004", "005")]
RATE = 16000
MASK64 = (1 << 64) - 1


class Lcg:
    """64-bit LCG with Knuth's MMIX constants; next() is bits 33..63 of the state."""

    def __init__(self, seed):
        self.x = seed

    def next(self):
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) & MASK64
        return self.x >> 33


def read(path):
    with wave.open(path) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def speech_span(x):
    """[first, last) sample of the speech: frames of 160 samples, level 10 log10(mean
    power + 1e-20), threshold = 10th-percentile level (sorted[n // 10]) + 15 dB, from
    the first to the last run of 3 frames above it."""
    frames = len(x) // 160
    f = x[: frames * 160].astype(np.float64).reshape(frames, 160)
    level = 10 * np.log10((f * f).sum(1) / 160 + 1e-20)
    threshold = np.sort(level)[frames // 10] + 15.0
    above = level > threshold
    runs = [i for i in range(frames - 2) if above[i] and above[i + 1] and above[i + 2]]
    return runs[0] * 160, (runs[-1] + 3) * 160


def build(min_seconds=600.0, seed=20261127):
    audio = [read(f) for f in FILES]
    spans = [speech_span(a) for a in audio]
    rng = Lcg(seed)
    out = [np.zeros(RATE, np.float32)]
    size = RATE
    placed = []
    while size < min_seconds * RATE:
        order = list(range(len(FILES)))
        for i in range(len(order) - 1, 0, -1):
            j = rng.next() % (i + 1)
            order[i], order[j] = order[j], order[i]
        for i in order:
            placed.append((i, (size + spans[i][0]) / RATE, (size + spans[i][1]) / RATE))
            out.append(audio[i])
            size += len(audio[i])
            gap = 1.0 + (rng.next() % 29) * 0.25
            out.append(np.zeros(int(gap * RATE), np.float32))
            size += int(gap * RATE)
    return np.concatenate(out), placed


def segment_json(s):
    d = {"start": s.start, "end": s.end, "tokens": list(s.tokens), "text": s.text}
    if s.words is not None:
        d["words"] = [{"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                      for w in s.words]
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--write", help="fixture JSON to write")
    ap.add_argument("--vad", action="store_true", help="vad_filter=True (Silero VAD, default parameters)")
    ap.add_argument("--word-timestamps", action="store_true",
                    help="word_timestamps=True (segment times then come from the first/last word)")
    ap.add_argument("model_dir", nargs="?", default="models/default/whisper-tiny.en")
    args = ap.parse_args()
    samples, placed = build()
    print("%d utterances in %.2f s" % (len(placed), len(samples) / RATE))
    model = WhisperModel(args.model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    t0 = time.time()
    segments, _ = model.transcribe(samples, beam_size=args.beam, language="en",
                                   word_timestamps=args.word_timestamps, vad_filter=args.vad)
    segments = list(segments)
    print("beam %d%s%s: %d segments in %.1f s" % (args.beam, ", word timestamps" if args.word_timestamps else "",
                                                  ", VAD" if args.vad else "", len(segments), time.time() - t0))
    owned = [[] for _ in placed]
    for s in segments:
        mid = (s.start + s.end) / 2
        i = 0
        while i + 1 < len(placed) and mid >= (placed[i][2] + placed[i + 1][1]) / 2:
            i += 1
        owned[i].append(s)
    worst, off = 0.0, 0
    for i, (f, start, end) in enumerate(placed):
        if not owned[i]:
            print("utterance %d file %d: speech %.2f-%.2f, NO SEGMENT" % (i, f, start, end))
            off += 1
            continue
        es = owned[i][0].start - start
        ee = owned[i][-1].end - end
        err = max(abs(es), abs(ee))
        worst = max(worst, err)
        off += err > 0.5
        print("utterance %d file %d: speech %.2f-%.2f, segments %.2f-%.2f (%d), errors %+.2f / %+.2f%s:%s"
              % (i, f, start, end, owned[i][0].start, owned[i][-1].end, len(owned[i]), es, ee,
                 "  OFF" if err > 0.5 else "", "".join(s.text for s in owned[i])))
    print("largest timing error %.2f s; %d of %d utterances off by more than 0.5 s (%d within)"
          % (worst, off, len(placed), len(placed) - off))
    if args.write:
        doc = {
            "generator": "tests/reference/long_audio_faster_whisper.py",
            "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__,
            "beam_size": args.beam,
            "word_timestamps": args.word_timestamps,
            "vad_filter": args.vad,
            "seconds": len(samples) / RATE,
            "utterances": [{"file": FILES[f], "start": a, "end": b} for f, a, b in placed],
            "segments": [segment_json(s) for s in segments],
        }
        with open(args.write, "w") as out:
            json.dump(doc, out, indent=1)
            out.write("\n")


if __name__ == "__main__":
    main()
