#!/usr/bin/env python3
"""Writes the tiny CTranslate2 reference models used by tests/io/test_ct2.cpp.

The model.bin files are produced by the real ctranslate2 package (pip install
ctranslate2 numpy), so the C++ reader is checked against the writer it must agree with,
not against our own understanding of the format. Output, under
tests/fixtures/io/ct2/:
  tiny-int8/   model.bin (int8 weights + "<name>_scale"), config.json, vocabulary.json
  tiny-f16/    the same weights saved as float16
  expected.json  per model: the variables (name, shape, dtype) and aliases in file
                 order, plus the float32 values of every weight BEFORE quantization so
                 the test can check q / scale against them within the quantization error.

Usage: python3 tests/reference/make_ct2_fixture.py [output_dir]
"""

import json
import os
import re
import shutil
import sys

import numpy as np
import ctranslate2
from ctranslate2.specs import TransformerDecoderModelSpec

D_MODEL = 8
FFN = 16
# Tokens with a space, non-ASCII text and an empty-looking marker, so the vocabulary
# reader's handling of them is exercised too.
VOCABULARY = ["<unk>", "<s>", "</s>", "hello", "hello world", "wörld", "▁a", "b c", "!", "?", "x", "y"]


def weight_shape(name):
    """Shapes of a one-layer pre-norm decoder with the dims above."""
    if name.endswith("layer_norm/gamma") or name.endswith("layer_norm/beta"):
        return (D_MODEL,)
    if name == "decoder/embeddings/weight" or name == "decoder/projection/weight":
        return (len(VOCABULARY), D_MODEL)
    if name.endswith("self_attention/linear_0/weight"):
        return (3 * D_MODEL, D_MODEL)
    if name.endswith("self_attention/linear_1/weight"):
        return (D_MODEL, D_MODEL)
    if name.endswith("ffn/linear_0/weight"):
        return (FFN, D_MODEL)
    if name.endswith("ffn/linear_1/weight"):
        return (D_MODEL, FFN)
    raise ValueError("no shape rule for " + name)


def build_spec(rng):
    spec = TransformerDecoderModelSpec.from_config(num_layers=1, num_heads=2)
    originals = {}
    for name, value in spec.variables(ordered=True):
        if value is not None or name == "decoder/projection/weight":
            continue
        array = rng.uniform(-1.0, 1.0, size=weight_shape(name)).astype(np.float32)
        # A copy: the int8 quantizer scales the array it is given in place.
        originals[name] = array.copy()
        set_variable(spec, name, array)
    # Tied embeddings: the converter stores the projection as an alias of the embeddings.
    originals["decoder/projection/weight"] = originals["decoder/embeddings/weight"]
    set_variable(spec, "decoder/projection/weight", originals["decoder/embeddings/weight"].copy())
    spec.register_vocabulary(VOCABULARY)
    return spec, originals


def set_variable(spec, name, array):
    *scopes, attr = name.split("/")
    layer = spec
    for scope in scopes:
        # The spec names item i of a list attribute "x" as "x_<i>" (layer_0, linear_1).
        match = re.fullmatch(r"(\w+?)_(\d+)", scope)
        if not hasattr(layer, scope) and match:
            layer = getattr(layer, match.group(1))[int(match.group(2))]
        else:
            layer = getattr(layer, scope)
    setattr(layer, attr, array)


def read_layout(path):
    """Variable names/shapes/dtypes and aliases as saved, from the spec's own serializer
    order: we re-read the file with struct so the expectations come from bytes on disk."""
    import struct

    dtypes = ["float32", "int8", "int16", "int32", "float16", "bfloat16"]
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string():
        nonlocal pos
        (n,) = take("H")
        s = data[pos : pos + n - 1].decode("utf-8")
        pos += n
        return s

    (version,) = take("I")
    spec_name = string()
    (revision,) = take("I")
    (count,) = take("I")
    variables = []
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        shape = list(take("I" * rank)) if rank else []
        (dtype,) = take("B")
        (nbytes,) = take("I")
        entry = {"name": name, "shape": shape, "dtype": dtypes[dtype], "offset": pos, "nbytes": nbytes}
        if rank == 0:
            entry["value"] = np.frombuffer(data[pos : pos + nbytes], dtype=dtypes[dtype]).item()
        variables.append(entry)
        pos += nbytes
    (alias_count,) = take("I")
    aliases = {}
    for _ in range(alias_count):
        alias = string()
        aliases[alias] = string()
    assert pos == len(data), "trailing bytes"
    return {"binary_version": version, "spec": spec_name, "revision": revision,
            "variables": variables, "aliases": aliases}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "io", "ct2")
    expected = {"ctranslate2_version": ctranslate2.__version__, "vocabulary": VOCABULARY}
    for label, quantization in (("tiny-int8", "int8"), ("tiny-f16", "float16")):
        spec, originals = build_spec(np.random.default_rng(1234))
        spec.validate()
        spec.optimize(quantization=quantization)
        directory = os.path.join(out, label)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        spec.save(directory)
        layout = read_layout(os.path.join(directory, "model.bin"))
        layout["quantization"] = quantization
        layout["originals"] = {k: {"shape": list(v.shape), "values": [float(x) for x in v.ravel()]}
                               for k, v in originals.items()}
        expected[label] = layout
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
