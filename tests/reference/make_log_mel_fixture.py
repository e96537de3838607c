#!/usr/bin/python3
"""Writes tests/fixtures/audio/: reference log-mel spectrograms for tests/audio/test_log_mel.cpp.

The reference is openai-whisper's own whisper/audio.py log_mel_spectrogram (with its
assets/mel_filters.npz), run on the first seconds of real speech from Debian's
pocketsphinx-testdata package. Nothing of whisper is copied into this repository; the
script loads audio.py from the published sdist at run time.

Run it with Debian's python (it has python3-torch 1.13.1, the same libtorch the C++ code
links against):

    apt-get install -y python3-torch python3-numpy pocketsphinx-testdata
    /usr/bin/python3 tests/reference/make_log_mel_fixture.py [--whisper-src DIR]

--whisper-src is an unpacked openai-whisper sdist or wheel (the directory holding
whisper/audio.py); without it the script runs `pip download --no-deps
openai-whisper==20250625` into a temporary directory.

It also runs faster-whisper's numpy FeatureExtractor on the same samples, when some
interpreter has it (this one, or --faster-whisper-python, default the `python3` on PATH),
and records the largest difference to the openai reference in the manifest; that number is
informational only, the C++ test compares against openai's output.

Outputs (all little-endian):
  <case>.wav     the 16-bit mono excerpt the reference saw (copied sample for sample)
  <case>.f32     float32 [n_mels, frames] row-major: the reference's log-mel output
  log_mel.json   manifest: cases, shapes, provenance, and whisper's mel filterbanks
                 (80 and 128) as sparse [row, column, value] lists
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import types
import wave
import zipfile

import numpy as np
import torch

WHISPER_VERSION = "20250625"
DEBIAN_DATA = "/usr/share/pocketsphinx/test/data"

# name, source file, first sample, sample count, n_mels, zero padding appended
CASES = [
    ("librivox-0870-80", "librivox/sense_and_sensibility_01_austen_64kb-0870.wav", 0, 24000, 80, 0),
    ("cards-001-128", "cards/001.wav", 0, 17520, 128, 0),
    # whisper's transcribe pads zeros after the audio; a short excerpt with padding covers it.
    ("librivox-0880-80-pad", "librivox/sense_and_sensibility_01_austen_64kb-0880.wav", 8000, 8000, 80, 4000),
]


def find_whisper_src(arg, tmp):
    if arg:
        return arg
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp,
                    f"openai-whisper=={WHISPER_VERSION}"], check=True)
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name)
        if name.endswith(".tar.gz"):
            with tarfile.open(path) as t:
                t.extractall(tmp)
            return os.path.join(tmp, name[: -len(".tar.gz")])
        if name.endswith(".whl"):
            with zipfile.ZipFile(path) as z:
                z.extractall(os.path.join(tmp, "wheel"))
            return os.path.join(tmp, "wheel")
    raise SystemExit("pip download produced no openai-whisper archive")


def load_whisper_audio(src):
    """Imports whisper/audio.py by path. The package __init__ pulls in the model, tiktoken,
    numba...; a bare package module lets audio.py's `from .utils import exact_div` resolve
    without running it."""
    pkg_dir = os.path.join(src, "whisper")
    pkg = types.ModuleType("whisper")
    pkg.__path__ = [pkg_dir]
    sys.modules["whisper"] = pkg
    spec = importlib.util.spec_from_file_location("whisper.audio", os.path.join(pkg_dir, "audio.py"))
    audio = importlib.util.module_from_spec(spec)
    sys.modules["whisper.audio"] = audio
    spec.loader.exec_module(audio)
    return audio


def read_s16_excerpt(path, start, count):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000, path
        w.setpos(start)
        raw = w.readframes(count)
    pcm = np.frombuffer(raw, dtype="<i2")
    assert pcm.size == count, f"{path}: wanted {count} samples from {start}, got {pcm.size}"
    return pcm


def write_s16(path, pcm):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.astype("<i2").tobytes())


FASTER_WHISPER_CODE = r"""
import sys, numpy as np
from faster_whisper.feature_extractor import FeatureExtractor
audio = np.load(sys.argv[1]); n_mels = int(sys.argv[2]); pad = int(sys.argv[3])
out = FeatureExtractor(feature_size=n_mels)(audio, padding=pad)
np.save(sys.argv[4], out.astype(np.float32))
"""


def faster_whisper_features(python, audio, n_mels, pad, tmp):
    src, dst = os.path.join(tmp, "in.npy"), os.path.join(tmp, "out.npy")
    np.save(src, audio)
    r = subprocess.run([python, "-c", FASTER_WHISPER_CODE, src, str(n_mels), str(pad), dst],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"faster-whisper comparison skipped ({python}): {r.stderr.strip().splitlines()[-1:]}")
        return None
    return np.load(dst)


def sparse_filters(audio_mod, n_mels):
    f = audio_mod.mel_filters("cpu", n_mels).numpy()
    rows, cols = np.nonzero(f)
    return {"shape": list(f.shape),
            "nonzero": [[int(r), int(c), float(f[r, c])] for r, c in zip(rows, cols)]}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--whisper-src")
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "audio"))
    ap.add_argument("--faster-whisper-python", default="python3")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        audio_mod = load_whisper_audio(find_whisper_src(args.whisper_src, tmp))
        manifest = {
            "reference": f"openai-whisper {WHISPER_VERSION} whisper/audio.py log_mel_spectrogram, "
                         f"torch {torch.__version__}, numpy {np.__version__}",
            "generator": "tests/reference/make_log_mel_fixture.py",
            "cases": [],
            "mel_filters": {str(n): sparse_filters(audio_mod, n) for n in (80, 128)},
        }
        for name, rel, start, count, n_mels, pad in CASES:
            source = os.path.join(DEBIAN_DATA, rel)
            pcm = read_s16_excerpt(source, start, count)
            write_s16(os.path.join(args.out, name + ".wav"), pcm)
            # Exactly what whisper.audio.load_audio returns for 16 kHz mono s16 input.
            samples = pcm.astype(np.float32) / 32768.0
            ref = audio_mod.log_mel_spectrogram(torch.from_numpy(samples), n_mels, padding=pad).numpy()
            ref = np.ascontiguousarray(ref, dtype="<f4")
            ref.tofile(os.path.join(args.out, name + ".f32"))
            case = {"name": name, "source": source, "first_sample": start, "samples": count,
                    "n_mels": n_mels, "pad_samples": pad, "frames": int(ref.shape[1]),
                    "wav": name + ".wav", "log_mel": name + ".f32"}
            fw = faster_whisper_features(args.faster_whisper_python, samples, n_mels, pad, tmp)
            if fw is not None:
                case["faster_whisper_max_abs_diff"] = float(np.abs(fw - ref).max()) if fw.shape == ref.shape \
                    else f"shape {list(fw.shape)} vs {list(ref.shape)}"
            manifest["cases"].append(case)
            print(name, ref.shape, "faster-whisper max abs diff:", case.get("faster_whisper_max_abs_diff"))
        with open(os.path.join(args.out, "log_mel.json"), "w") as f:
            # One line per case; the filterbanks' long lists stay compact.
            f.write(json.dumps(manifest, separators=(",", ":")).replace('{"name"', '\n{"name"') + "\n")


if __name__ == "__main__":
    main()
