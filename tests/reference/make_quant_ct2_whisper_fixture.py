#!/usr/bin/env python3
"""Writes a tiny CTranslate2 Whisper model twice, int8 and float32, with the real
ctranslate2 writer (WhisperSpec + optimize(quantization=...) + save), for
tests/quant/test_quant_whisper.cpp: the int8 file's weights must load here, kept int8,
as CTranslate2 stores them (codes + "<name>_scale" = 127 / row max, value = code /
scale), and give the float32 file's weights within half a quantization step.

Dimensions: d_model 32, 2 heads, FFN 64, 1 encoder + 1 decoder layer, 80 mel bins, 10
audio positions (20 mel frames), 16 text positions, vocabulary 64: a few tens of KB.
Weights: numpy default_rng(7), uniform(-0.5, 0.5) for matrices, around 1 for norm
gains. Output: tests/fixtures/quant/ct2-whisper-{int8,float32}/ (model.bin, config.json,
vocabulary.json); the float32 file is the reference for the int8 one.

Usage (system python3 with ctranslate2 4.8.5 and numpy):
    python3 tests/reference/make_quant_ct2_whisper_fixture.py
"""
import os
import shutil
import sys

import numpy as np
import ctranslate2
from ctranslate2.specs import whisper_spec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_ct2_fixture import set_variable  # noqa: E402  (same writer helper)

D, HEADS, FFN, MELS, AUDIO_CTX, TEXT_CTX, VOCAB = 32, 2, 64, 80, 10, 16, 64


def weights(rng):
    w = {}
    m = lambda *shape: rng.uniform(-0.5, 0.5, size=shape).astype(np.float32)
    g = lambda n: (1.0 + rng.uniform(-0.1, 0.1, size=(n,))).astype(np.float32)
    w["encoder/conv1/weight"] = m(D, MELS, 3)
    w["encoder/conv1/bias"] = m(D)
    w["encoder/conv2/weight"] = m(D, D, 3)
    w["encoder/conv2/bias"] = m(D)
    w["encoder/position_encodings/encodings"] = m(AUDIO_CTX, D)
    w["decoder/position_encodings/encodings"] = m(TEXT_CTX, D)
    w["decoder/embeddings/weight"] = m(VOCAB, D)
    for side in ("encoder", "decoder"):
        p = side + "/layer_0/"
        blocks = ["self_attention"] + (["attention"] if side == "decoder" else [])
        for b in blocks:
            w[p + b + "/layer_norm/gamma"] = g(D)
            w[p + b + "/layer_norm/beta"] = m(D)
        w[p + "self_attention/linear_0/weight"] = m(3 * D, D)
        w[p + "self_attention/linear_0/bias"] = m(3 * D)
        w[p + "self_attention/linear_1/weight"] = m(D, D)
        w[p + "self_attention/linear_1/bias"] = m(D)
        if side == "decoder":
            w[p + "attention/linear_0/weight"] = m(D, D)
            w[p + "attention/linear_0/bias"] = m(D)
            w[p + "attention/linear_1/weight"] = m(2 * D, D)
            w[p + "attention/linear_1/bias"] = m(2 * D)
            w[p + "attention/linear_2/weight"] = m(D, D)
            w[p + "attention/linear_2/bias"] = m(D)
        w[p + "ffn/layer_norm/gamma"] = g(D)
        w[p + "ffn/layer_norm/beta"] = m(D)
        w[p + "ffn/linear_0/weight"] = m(FFN, D)
        w[p + "ffn/linear_0/bias"] = m(FFN)
        w[p + "ffn/linear_1/weight"] = m(D, FFN)
        w[p + "ffn/linear_1/bias"] = m(D)
        w[side + "/layer_norm/gamma"] = g(D)
        w[side + "/layer_norm/beta"] = m(D)
    return w


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "quant")
    for quantization in ("int8", "float32"):
        spec = whisper_spec.WhisperSpec(1, HEADS, 1, HEADS)
        for name, array in weights(np.random.default_rng(7)).items():
            set_variable(spec, name, array)
        # Tied output projection, as the converter writes it.
        set_variable(spec, "decoder/projection/weight", spec.decoder.embeddings.weight)
        spec.register_vocabulary(["tok%d" % i for i in range(VOCAB)])
        spec.validate()
        spec.optimize(quantization=quantization)
        directory = os.path.join(out, "ct2-whisper-" + quantization)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        spec.save(directory)
        print(directory, sorted(os.listdir(directory)), os.path.getsize(os.path.join(directory, "model.bin")))
    print("ctranslate2", ctranslate2.__version__)


if __name__ == "__main__":
    sys.exit(main())
