#!/usr/bin/env python3
"""Writes tests/fixtures/whisper/faster_whisper_batched_tiny_en.json, the reference for
the batched mode (tests/transcription/test_whisper_batched.cpp): faster-whisper 1.2.1's
BatchedInferencePipeline on the synthetic ~64 s "long" file of make_whisper_reference.py
(the same samples), models/default/whisper-tiny.en, compute_type float32, batch_size 4,
beam 5 and 1, with and without timestamps, all other options the pipeline's defaults
(VadOptions with min_silence_duration_ms 160).

The one substitution: faster-whisper's VAD runs its own ONNX export of Silero VAD, whose
speech probabilities differ slightly from the TorchScript silero_vad.jit libpeft runs
(enough to move a speech boundary by a 512-sample chunk, and a chunk boundary with it).
So the pipeline's VAD model is replaced by the probabilities of models/default's
silero_vad.jit, computed by Debian's python3-torch in a subprocess; faster-whisper's own
get_speech_timestamps, chunk joining, decoding and time mapping are what is tested.
(tests/audio/test_vad.cpp checks libpeft's VAD against the silero-vad package.)

Usage: python3 tests/reference/make_whisper_batched_reference.py [model_dir] [output.json]
Needs: pip install faster-whisper==1.2.1 (ctranslate2 4.x), numpy.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import ctranslate2
import faster_whisper
import faster_whisper.vad
from faster_whisper import BatchedInferencePipeline, WhisperModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_whisper_reference import FILES, GAPS_S, LEAD_S, long_audio  # noqa: E402


JIT_PROBS = r"""
import sys
import numpy as np
import torch
torch.set_num_threads(1)
model = torch.jit.load(sys.argv[1])
model.reset_states()
audio = torch.from_numpy(np.load(sys.argv[2]))
probs = [model(audio[i:i + 512].unsqueeze(0), 16000).item() for i in range(0, len(audio), 512)]
np.save(sys.argv[3], np.array(probs, dtype=np.float32))
"""


class JitVad:
    """Stands in for faster-whisper's SileroVADModel: probabilities of silero_vad.jit."""

    def __init__(self, jit_path):
        self.jit_path = jit_path

    def __call__(self, padded_audio):
        with tempfile.TemporaryDirectory() as d:
            np.save(os.path.join(d, "a.npy"), padded_audio.astype(np.float32))
            subprocess.run(["/usr/bin/python3", "-c", JIT_PROBS, self.jit_path, os.path.join(d, "a.npy"),
                            os.path.join(d, "p.npy")], check=True)
            return np.load(os.path.join(d, "p.npy"))


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/default/whisper-tiny.en"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/whisper/faster_whisper_batched_tiny_en.json"
    jit = os.path.join(os.path.dirname(os.path.abspath(model_dir)), "silero-vad", "silero_vad.jit")
    faster_whisper.vad.get_vad_model = lambda: JitVad(jit)
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    pipeline = BatchedInferencePipeline(model)
    audio = long_audio()
    results = []
    for without_timestamps in (True, False):
        for beam_size in (5, 1):
            segments, _ = pipeline.transcribe(audio, language="en", beam_size=beam_size, batch_size=4,
                                              without_timestamps=without_timestamps)
            segs = [
                {"start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
                 "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob}
                for s in segments
            ]
            results.append({"beam_size": beam_size, "without_timestamps": without_timestamps, "segments": segs})
            print(beam_size, without_timestamps, " | ".join("%.2f-%.2f %s" % (s["start"], s["end"], s["text"])
                                                          for s in segs), flush=True)
    doc = {
        "generator": "tests/reference/make_whisper_batched_reference.py",
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "model": "whisper-tiny.en (compute_type float32, cpu_threads 2), batch_size 4",
        "long": {"lead_s": LEAD_S, "gaps_s": GAPS_S, "files": FILES},
        "results": results,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
