#!/usr/bin/python3
"""Writes tests/fixtures/vad/: reference speech probabilities and speech timestamps for
tests/audio/test_vad.cpp.

The reference is the silero-vad python package itself (PyPI wheel silero-vad 6.2.3): its
load_silero_vad(onnx=False), which loads the same silero_vad.jit as
models/default/silero-vad/silero_vad.jit (the script checks the bytes are identical), and its
get_speech_timestamps. Nothing of silero-vad is copied into this repository; the script
imports the package from the unpacked wheel at run time.

Run it with Debian's python (python3-torch 1.13.1, the libtorch the C++ code links against):

    apt-get install -y python3-torch python3-numpy python3-packaging pocketsphinx-testdata
    /usr/bin/python3 tests/reference/make_vad_fixture.py [--silero-src DIR]

--silero-src is an unpacked silero-vad wheel (the directory holding silero_vad/); without it
the script runs `pip download --no-deps silero-vad==6.2.3` into a temporary directory.

Audio: every WAV of Debian's pocketsphinx-testdata librivox/ and cards/ sets (16 kHz mono
16-bit, read as int16 / 32768 exactly like peft::audio::read_wav), plus one synthetic case:
1 s of low white noise (about -50 dBFS, stored as low_noise.wav because it cannot be
re-derived from Debian's files), librivox 0880, 3 s of digital silence, librivox 0930, then
2.5 s of digital silence (longer than faster-whisper's 2 s minimum silence, so its last
segment closes before the end of the audio).

Outputs:
  low_noise.wav  1 s of 16-bit white noise (seeded), part of the synthetic case
  vad.json       manifest: per case the parts it is made of, the sample count, every
                 512-sample chunk's speech probability (full, float32 printed with 9
                 significant digits), and get_speech_timestamps' result for each option set
"""

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import wave
import zipfile

import numpy as np
import torch

SILERO_VERSION = "6.2.3"
DEBIAN_DATA = "/usr/share/pocketsphinx/test/data"
SAMPLE_RATE = 16000
CHUNK = 512
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "vad")
MODEL = os.path.join(REPO, "models", "default", "silero-vad", "silero_vad.jit")

# Option sets, named as the C++ test names them. Keys are get_speech_timestamps' keyword
# arguments; anything absent takes silero's default.
OPTION_SETS = {
    # silero-vad's own defaults
    "silero_default": {},
    # faster-whisper's VadOptions defaults (its min_speech_duration_ms is 0)
    "faster_whisper": {"min_speech_duration_ms": 0, "min_silence_duration_ms": 2000, "speech_pad_ms": 400},
    # peft::audio::VadOptions{}: faster-whisper's silence and padding, silero's min speech
    "peft_default": {"min_speech_duration_ms": 250, "min_silence_duration_ms": 2000, "speech_pad_ms": 400},
    # exercises the max-speech split at the longest silence (silero 6.x)
    "max_speech": {"max_speech_duration_s": 1.0},
    # the same with the older split at the last silence (faster-whisper's algorithm)
    "max_speech_legacy": {"max_speech_duration_s": 1.0, "use_max_poss_sil_at_max_speech": False},
    # explicit thresholds
    "thresholds": {"threshold": 0.3, "neg_threshold": 0.2, "min_silence_duration_ms": 300, "speech_pad_ms": 100},
}


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != SAMPLE_RATE:
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def write_wav(path, samples_i16):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples_i16.astype("<i2").tobytes())


def silero_package(src):
    if src is None:
        tmp = tempfile.mkdtemp(prefix="silero-vad-")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"silero-vad=={SILERO_VERSION}",
                        "-d", tmp], check=True)
        wheel = [f for f in os.listdir(tmp) if f.endswith(".whl")][0]
        zipfile.ZipFile(os.path.join(tmp, wheel)).extractall(tmp)
        src = tmp
    sys.path.insert(0, src)
    import silero_vad  # noqa: E402
    return src, silero_vad


def probabilities(model, audio):
    """One probability per 512-sample chunk, the way get_speech_timestamps computes them."""
    model.reset_states()
    out = []
    x = torch.from_numpy(audio)
    for start in range(0, len(audio), CHUNK):
        chunk = x[start:start + CHUNK]
        if len(chunk) < CHUNK:
            chunk = torch.nn.functional.pad(chunk, (0, CHUNK - len(chunk)))
        out.append(model(chunk, SAMPLE_RATE).item())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--silero-src")
    args = ap.parse_args()
    src, silero_vad = silero_package(args.silero_src)
    packaged = os.path.join(src, "silero_vad", "data", "silero_vad.jit")
    if not filecmp.cmp(packaged, MODEL, shallow=False):
        raise SystemExit(f"{MODEL} differs from silero-vad {SILERO_VERSION}'s {packaged}")
    model = silero_vad.load_silero_vad(onnx=False)
    torch.set_num_threads(1)

    os.makedirs(OUT_DIR, exist_ok=True)
    rng = np.random.default_rng(20240607)
    noise = np.clip(np.round(rng.normal(0.0, 100.0, SAMPLE_RATE)), -32768, 32767).astype(np.int16)
    write_wav(os.path.join(OUT_DIR, "low_noise.wav"), noise)

    cases = []
    for sub in ("librivox", "cards"):
        for name in sorted(os.listdir(os.path.join(DEBIAN_DATA, sub))):
            if name.endswith(".wav"):
                cases.append((f"{sub}/{name}", [{"debian": f"{sub}/{name}"}]))
    cases.append(("synthetic", [
        {"fixture": "low_noise.wav"},
        {"debian": "librivox/sense_and_sensibility_01_austen_64kb-0880.wav"},
        {"zeros": 3 * SAMPLE_RATE},
        {"debian": "librivox/sense_and_sensibility_01_austen_64kb-0930.wav"},
        {"zeros": 5 * SAMPLE_RATE // 2},
    ]))

    manifest = {
        "reference": f"silero-vad {SILERO_VERSION} (PyPI wheel): load_silero_vad(onnx=False) and "
                     "get_speech_timestamps, run by tests/reference/make_vad_fixture.py",
        "torch": torch.__version__,
        "sample_rate": SAMPLE_RATE,
        "chunk": CHUNK,
        "option_sets": OPTION_SETS,
        "cases": [],
    }
    for name, parts in cases:
        pieces = []
        for p in parts:
            if "debian" in p:
                pieces.append(read_wav(os.path.join(DEBIAN_DATA, p["debian"])))
            elif "zeros" in p:
                pieces.append(np.zeros(p["zeros"], dtype=np.float32))
            else:
                pieces.append(read_wav(os.path.join(OUT_DIR, p["fixture"])))
        audio = np.concatenate(pieces).astype(np.float32)
        probs = probabilities(model, audio)
        timestamps = {}
        for set_name, kwargs in OPTION_SETS.items():
            ts = silero_vad.get_speech_timestamps(torch.from_numpy(audio), model, sampling_rate=SAMPLE_RATE,
                                                  **kwargs)
            again = silero_vad.get_speech_timestamps_from_probs(probs, sampling_rate=SAMPLE_RATE,
                                                                audio_length_samples=len(audio), **kwargs)
            if ts != again:
                raise SystemExit(f"{name}/{set_name}: timestamps from the probabilities differ")
            timestamps[set_name] = [[t["start"], t["end"]] for t in ts]
        manifest["cases"].append({
            "name": name,
            "parts": parts,
            "samples": len(audio),
            "probabilities": [float(f"{p:.9g}") for p in probs],
            "timestamps": timestamps,
        })
        print(f"{name}: {len(audio)} samples, {len(probs)} chunks, faster_whisper {timestamps['faster_whisper']}")

    with open(os.path.join(OUT_DIR, "vad.json"), "w") as f:
        json.dump(manifest, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
