#!/usr/bin/env python3
"""Writes the golden GGUF fixture for tests/io/test_gguf.cpp with gguf-py (pip install gguf).

Outputs, in tests/fixtures/io/gguf/ (or the directory given as the first argument):
  golden.gguf      metadata of every GGUF value type (nested and string arrays too) and
                   one small tensor per supported ggml type, from seeded random data;
  golden.expected  what gguf-py's own dequantizer makes of each tensor, so the C++
                   reader is checked against an independent implementation. Layout,
                   little-endian, one record per tensor in file order:
                     u64 name length, name bytes, u64 element count, f32[count].

The metadata values here are repeated in test_gguf.cpp; change both together.
gguf-py can only *quantize* the legacy 32-element formats, so the k-quant tensors
are random block bytes (with sane f16 scales) that gguf-py then dequantizes.
"""

import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "fixtures" / "io" / "gguf"
ALIGNMENT = 64  # not the default 32, so the reader must honour general.alignment

rng = np.random.default_rng(20240611)


def metadata(w: gguf.GGUFWriter) -> None:
    w.add_custom_alignment(ALIGNMENT)
    w.add_uint8("test.u8", 255)
    w.add_int8("test.i8", -128)
    w.add_uint16("test.u16", 65535)
    w.add_int16("test.i16", -32768)
    w.add_uint32("test.u32", 4294967295)
    w.add_int32("test.i32", -2147483648)
    w.add_float32("test.f32", -2.5)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo gguf")
    w.add_uint64("test.u64", 18446744073709551615)
    w.add_int64("test.i64", -9223372036854775808)
    w.add_float64("test.f64", 3.141592653589793)
    w.add_array("test.int_array", [1, -2, 3])
    w.add_array("test.float_array", [0.5, -1.25])
    w.add_array("test.string_array", ["a", "", "ccc"])
    w.add_key_value("test.u64_array", [1, 2**63], V.ARRAY, sub_type=V.UINT64)
    # Arrays of arrays: the inner ones are INT32 / STRING arrays of their own length.
    w.add_key_value("test.nested_array", [[1, 2], [3, 4, 5]], V.ARRAY, sub_type=V.ARRAY)
    w.add_key_value("test.nested_strings", [["x"], ["y", "z"]], V.ARRAY, sub_type=V.ARRAY)
    w.add_key_value("test.deep_array", [[[7]]], V.ARRAY, sub_type=V.ARRAY)


# Offsets of the f16 scale fields inside each k-quant block (ggml-common.h layouts);
# they are overwritten with small finite values so the random blocks dequantize to
# ordinary numbers rather than inf/NaN.
KQUANT_F16_FIELDS = {
    Q.Q2_K: (84, [80, 82]),
    Q.Q3_K: (110, [108]),
    Q.Q4_K: (144, [0, 2]),
    Q.Q5_K: (176, [0, 2]),
    Q.Q6_K: (210, [208]),
}


def random_kquant_blocks(qtype: Q, rows: int, cols: int) -> np.ndarray:
    block_bytes, f16_offsets = KQUANT_F16_FIELDS[qtype]
    nblocks = rows * cols // 256
    blocks = rng.integers(0, 256, size=(nblocks, block_bytes), dtype=np.uint8)
    for off in f16_offsets:
        scales = rng.uniform(0.001, 0.05, size=nblocks).astype(np.float16)
        blocks[:, off:off + 2] = scales.view(np.uint8).reshape(nblocks, 2)
    return blocks.reshape(rows, cols // 256 * block_bytes)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    gguf_path = OUT / "golden.gguf"
    w = gguf.GGUFWriter(str(gguf_path), arch="testarch")
    metadata(w)

    expected: list[tuple[str, np.ndarray]] = []

    def add(name: str, stored: np.ndarray, qtype: Q, reference: np.ndarray) -> None:
        if qtype in (Q.F32, Q.F16):
            w.add_tensor(name, stored)
        else:
            w.add_tensor(name, stored, raw_dtype=qtype)
        expected.append((name, np.ascontiguousarray(reference, dtype=np.float32).reshape(-1)))

    x = rng.standard_normal((4, 64)).astype(np.float32)
    add("f32", x, Q.F32, x)
    x16 = x.astype(np.float16)
    add("f16", x16, Q.F16, x16.astype(np.float32))
    bf = gguf.quants.quantize(x, Q.BF16)
    add("bf16", bf, Q.BF16, gguf.quants.dequantize(bf, Q.BF16))

    for qtype in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1):
        data = (rng.standard_normal((4, 64)) * rng.uniform(0.1, 4.0)).astype(np.float32)
        qd = gguf.quants.quantize(data, qtype)
        add(qtype.name.lower(), qd, qtype, gguf.quants.dequantize(qd, qtype))

    for qtype in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K):
        qd = random_kquant_blocks(qtype, 2, 512)
        add(qtype.name.lower(), qd, qtype, gguf.quants.dequantize(qd, qtype))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    with open(OUT / "golden.expected", "wb") as f:
        for name, values in expected:
            raw = name.encode()
            f.write(struct.pack("<Q", len(raw)) + raw + struct.pack("<Q", values.size))
            f.write(values.astype("<f4").tobytes())
    print(f"wrote {gguf_path} ({gguf_path.stat().st_size} bytes) and golden.expected")


if __name__ == "__main__":
    main()
