#!/usr/bin/env python3
"""Writes the safetensors golden fixtures with the reference implementation.

    pip install safetensors numpy huggingface_hub
    python3 tests/reference/make_safetensors_fixture.py            # (re)generate
    python3 tests/reference/make_safetensors_fixture.py --check    # verify our writer's file

Outputs in tests/fixtures/io/safetensors/:
  all_dtypes.safetensors   every plain dtype (seeded values), a 0-d scalar, a zero-size
                           tensor, __metadata__ {"format": "pt", "source": ...}
  reference_layout.safetensors  a few tensors with only {"format": "pt"} metadata: the
                           C++ test rewrites them with write_safetensors and expects the
                           very same bytes (metadata with one key has a fixed order; the
                           reference writer keeps several keys in hash order)
  sharded/                 a 2-shard checkpoint, model.safetensors.index.json written as
                           transformers' save_pretrained writes it (json.dumps(index,
                           indent=2, sort_keys=True) + "\\n"), shards split by
                           huggingface_hub's splitter with metadata {"format": "pt"}
  expected.json            names, dtypes, shapes, values and header order of the above

BF16: numpy has no bfloat16 and torch is not installed, so the BF16 tensor's bytes are
made here (float32 rounded to nearest even, top 16 bits) and handed to the reference
writer's low-level serialize_file with dtype "bfloat16"; the file itself is still
written by safetensors.

--check loads written_by_peft.safetensors (produced by our write_safetensors: run the
C++ test `safetensors` with PEFT_UPDATE_FIXTURES=1) with safetensors.safe_open and
checks its values against expected.json, proving the reference accepts our files.
"""
import json
import os
import struct
import sys

import numpy as np
from safetensors import TensorSpec, safe_open, serialize_file
from safetensors.numpy import save_file
from huggingface_hub.serialization import split_state_dict_into_shards_factory

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "io", "safetensors")


def bf16_bits(values):
    """float32 -> bfloat16 bit patterns, round to nearest even (as torch does)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_to_float(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def make_arrays():
    rng = np.random.default_rng(20240607)
    arrays = {
        "f32": rng.standard_normal((2, 3)).astype(np.float32),
        "f16": rng.standard_normal((4,)).astype(np.float16),
        "f64": rng.standard_normal((2, 2)).astype(np.float64),
        "i64": rng.integers(-2**62, 2**62, size=(3,), dtype=np.int64),
        "i32": rng.integers(-2**31, 2**31 - 1, size=(2, 2), dtype=np.int32),
        "i16": rng.integers(-2**15, 2**15 - 1, size=(3,), dtype=np.int16),
        "i8": rng.integers(-128, 127, size=(5,), dtype=np.int8),
        "u8": rng.integers(0, 255, size=(2, 2), dtype=np.uint8),
        "bool": rng.integers(0, 2, size=(3,)).astype(np.bool_),
        "scalar": np.array(rng.standard_normal(), dtype=np.float32),  # 0-d
        "empty": np.zeros((0, 4), dtype=np.float32),                  # zero-size
    }
    bf16 = bf16_bits(rng.standard_normal((3, 2)))
    return arrays, bf16


NP_TO_ST = {"float32": "F32", "float16": "F16", "float64": "F64", "int64": "I64", "int32": "I32",
            "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def header_order(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


def describe(arr, dtype):
    vals = arr.reshape(-1)
    if dtype == "BOOL":
        values = [bool(v) for v in vals]
    elif dtype.startswith("F") or dtype == "BF16":
        values = [float(v) for v in vals]  # f16/bf16 widen exactly to float
    else:
        values = [int(v) for v in vals]
    return {"dtype": dtype, "shape": list(arr.shape), "values": values}


def generate():
    os.makedirs(os.path.join(OUT, "sharded"), exist_ok=True)
    arrays, bf16 = make_arrays()
    expected = {"all_dtypes": {"tensors": {}}, "reference_layout": {"tensors": {}}, "sharded": {"tensors": {}}}

    # all_dtypes.safetensors through the reference's low-level writer (what
    # safetensors.numpy.save_file calls), so BF16 can be included.
    specs = {}
    for name, arr in arrays.items():
        specs[name] = TensorSpec(dtype=arr.dtype.name, shape=arr.shape, data_ptr=arr.ctypes.data,
                                 data_len=arr.nbytes)
        expected["all_dtypes"]["tensors"][name] = describe(arr, NP_TO_ST[arr.dtype.name])
    specs["bf16"] = TensorSpec(dtype="bfloat16", shape=bf16.shape, data_ptr=bf16.ctypes.data, data_len=bf16.nbytes)
    expected["all_dtypes"]["tensors"]["bf16"] = describe(bf16_to_float(bf16), "BF16")
    meta = {"format": "pt", "source": "make_safetensors_fixture.py"}
    path = os.path.join(OUT, "all_dtypes.safetensors")
    serialize_file(specs, path, metadata=meta)
    expected["all_dtypes"]["metadata"] = meta
    expected["all_dtypes"]["header_order"] = header_order(path)

    layout = {"weight": arrays["f32"], "bias": arrays["f16"], "steps": arrays["i64"], "mask": arrays["bool"]}
    path = os.path.join(OUT, "reference_layout.safetensors")
    save_file(layout, path, metadata={"format": "pt"})
    for name, arr in layout.items():
        expected["reference_layout"]["tensors"][name] = describe(arr, NP_TO_ST[arr.dtype.name])
    expected["reference_layout"]["metadata"] = {"format": "pt"}
    expected["reference_layout"]["header_order"] = header_order(path)

    # A tiny "model" split in two shards by huggingface_hub's splitter (the one
    # transformers uses), each shard saved with {"format": "pt"} as transformers does.
    rng = np.random.default_rng(7)
    state = {
        "model.embed.weight": rng.standard_normal((4, 8)).astype(np.float32),
        "model.layers.0.attn.q.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "model.layers.0.attn.q.bias": rng.standard_normal((8,)).astype(np.float32),
        "model.layers.1.attn.q.weight": rng.standard_normal((8, 8)).astype(np.float16),
        "lm_head.weight": rng.standard_normal((4, 8)).astype(np.float32),
    }
    split = split_state_dict_into_shards_factory(
        state, get_storage_size=lambda t: t.nbytes, filename_pattern="model{suffix}.safetensors",
        max_shard_size=400)
    assert split.is_sharded and len(split.filename_to_tensors) == 2, split.filename_to_tensors
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state[n] for n in names}, os.path.join(OUT, "sharded", filename), metadata={"format": "pt"})
    index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
    with open(os.path.join(OUT, "sharded", "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    for name, arr in state.items():
        entry = describe(arr, NP_TO_ST[arr.dtype.name])
        entry["shard"] = split.tensor_to_filename[name]
        expected["sharded"]["tensors"][name] = entry
    expected["sharded"]["metadata"] = split.metadata

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


def check():
    with open(os.path.join(OUT, "expected.json")) as f:
        expected = json.load(f)["all_dtypes"]
    path = os.path.join(OUT, "written_by_peft.safetensors")
    with safe_open(path, framework="numpy") as f:
        assert f.metadata() == expected["metadata"], f.metadata()
        names = set(f.keys())
        assert names == set(expected["tensors"]), names
        for name in names - {"bf16"}:  # numpy has no bfloat16: checked below from the bytes
            want = expected["tensors"][name]
            got = f.get_tensor(name)
            assert list(got.shape) == want["shape"], (name, got.shape)
            assert NP_TO_ST[got.dtype.name] == want["dtype"], (name, got.dtype)
            assert [v.item() for v in got.reshape(-1)] == want["values"], name
    # BF16 is still parsed by the reference: its header entry and bytes.
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    b = header["bf16"]
    assert b["dtype"] == "BF16" and b["shape"] == expected["tensors"]["bf16"]["shape"]
    begin, end = b["data_offsets"]
    got = bf16_to_float(np.frombuffer(data[begin:end], dtype=np.uint16))
    assert [float(v) for v in got] == expected["tensors"]["bf16"]["values"]
    print("ok: reference safetensors loads", path)


if __name__ == "__main__":
    check() if "--check" in sys.argv[1:] else generate()
