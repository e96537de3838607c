#!/usr/bin/env python3
"""Reference values from bitsandbytes for lib/peft/quant/group4_weight.cpp's NF4 table and
double quantization, checked by tests/quant/test_quant_linear.cpp.

Writes tests/fixtures/quant/bnb_double_quant.json:
  nf4:          get_4bit_type("nf4") (the 16 NF4 levels, float32)
  dynamic_map:  create_dynamic_map(signed=True) (256 values, float32): the 8-bit code the
                absmax values are quantized with when compress_statistics=True
  absmax:       600 group maxima (float32, from torch.manual_seed(0)), the input
  offset, codes, block_absmax, dequantized: quantize_4bit(compress_statistics=True)'s
                treatment of them: offset = absmax.mean(); quantize_blockwise(absmax -
                offset, blocksize=256) -> uint8 codes and per-block maxima;
                dequantize_blockwise(...) + offset.
quantize_4bit itself needs CUDA; its double quantization is the CPU quantize_blockwise
call reproduced here (bitsandbytes/functional.py, quantize_4bit).

Usage: a venv over Debian's python3-torch 1.13 with bitsandbytes==0.42.0 (pip install
--no-deps bitsandbytes==0.42.0; its CPU library has quantize_blockwise):
    python tests/reference/make_bnb_quant_fixture.py
"""
import json
import os

import torch
import bitsandbytes
import bitsandbytes.functional as F


def main():
    torch.manual_seed(0)
    absmax = (torch.rand(600) * 0.08 + 0.01).float()
    offset = absmax.mean()
    codes, state = F.quantize_blockwise(absmax - offset, blocksize=256)
    dequantized = F.dequantize_blockwise(codes, state) + offset
    out = {
        "bitsandbytes": bitsandbytes.__version__,
        "torch": torch.__version__,
        "nf4": F.get_4bit_type("nf4", device="cpu").tolist(),
        "dynamic_map": F.create_dynamic_map(signed=True).tolist(),
        "absmax": absmax.tolist(),
        "offset": offset.item(),
        "codes": codes.tolist(),
        "block_absmax": state.absmax.tolist(),
        "dequantized": dequantized.tolist(),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "quant", "bnb_double_quant.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
