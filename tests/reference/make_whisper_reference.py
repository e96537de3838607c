#!/usr/bin/env python3
"""Writes tests/fixtures/whisper/faster_whisper_tiny_en.json, the reference for
tests/transcription/test_whisper_transcribe.cpp: what faster-whisper (CTranslate2) makes of
the Debian pocketsphinx test utterances with models/default/whisper-tiny.en.

Each WAV is read with the wave module and scaled by 1/32768, as libpeft's read_wav does,
so both sides decode the very same samples (faster-whisper's own PyAV path would too,
but this keeps the comparison free of decoder differences). Every file is transcribed
with beam_size 5 and with beam_size 1 (greedy), all other options faster-whisper's
defaults, compute_type float32 on the CPU.

"long" is a synthetic ~64 s file: 1 s of silence, then the ten utterances in the order
of FILES separated by the silences in GAPS_S (exact zeros). Only its transcription is
stored; the C++ test rebuilds the same samples from the Debian WAVs.

Also stored per run: faster-whisper's wall time (cpu_threads=2) so the C++ test can print
its own time next to it.

Usage: python3 tests/reference/make_whisper_reference.py [model_dir] [output.json]
Needs: pip install faster-whisper==1.2.1 (ctranslate2 4.x), numpy.
"""

import json
import sys
import time
import wave

import numpy as np
import ctranslate2
import faster_whisper
from faster_whisper import WhisperModel

LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0%d.wav"
FILES = [LIBRIVOX % n for n in (870, 880, 890, 920, 930)] + [
    "/usr/share/pocketsphinx/test/data/cards/00%d.wav" % n for n in range(1, 6)
]
LEAD_S = 1.0
GAPS_S = [2.0, 3.5, 5.0, 2.5, 4.0, 3.0, 4.5, 2.0, 3.0]  # between consecutive FILES
SAMPLE_RATE = 16000


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def long_audio():
    parts = [np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)]
    for i, path in enumerate(FILES):
        parts.append(read_wav(path))
        if i < len(GAPS_S):
            parts.append(np.zeros(int(GAPS_S[i] * SAMPLE_RATE), np.float32))
    return np.concatenate(parts)


def transcribe(model, audio, beam_size):
    start = time.perf_counter()
    segments, _ = model.transcribe(audio, beam_size=beam_size, language="en")
    segments = list(segments)
    elapsed = time.perf_counter() - start
    return elapsed, [
        {
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "tokens": list(s.tokens),
            "avg_logprob": s.avg_logprob,
            "no_speech_prob": s.no_speech_prob,
            "temperature": s.temperature,
            "compression_ratio": s.compression_ratio,
        }
        for s in segments
    ]


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/default/whisper-tiny.en"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/whisper/faster_whisper_tiny_en.json"
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    inputs = [(path, read_wav(path)) for path in FILES] + [("long", long_audio())]
    results = []
    for name, audio in inputs:
        for beam_size in (5, 1):
            elapsed, segments = transcribe(model, audio, beam_size)
            results.append({"file": name, "beam_size": beam_size, "seconds": elapsed, "segments": segments})
            print(name, beam_size, "%.2fs" % elapsed, " | ".join(s["text"] for s in segments), flush=True)
    doc = {
        "generator": "tests/reference/make_whisper_reference.py",
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "model": "whisper-tiny.en (compute_type float32, cpu_threads 2)",
        "long": {"lead_s": LEAD_S, "gaps_s": GAPS_S, "files": FILES},
        "results": results,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
