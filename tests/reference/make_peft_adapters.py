#!/usr/bin/env python3
"""PEFT interoperability fixtures for tests/adapters/test_peft_adapter.cpp.

Versions: torch 1.13 (Debian python3-torch), transformers 4.46.3, safetensors 0.8.0,
peft 0.13.2 and accelerate 1.0.1 (installed with `pip install --no-deps peft==0.13.2
accelerate==1.0.1` into a venv made with --system-site-packages).

Mode 1 (no argument) writes, under tests/fixtures/peft/:

  whisper_random/     a tiny random WhisperForConditionalGeneration saved by transformers
                      (config.json + model.safetensors in float16): d_model 32, 2 + 2
                      layers, 4 heads, 80 mel bins, 50 encoder / 24 decoder positions,
                      vocabulary 96. Weights re-drawn with spreads that make every tensor
                      matter.
  lora/               LoRA saved by peft's save_pretrained: q_proj, v_proj, fc1, r 4,
                      alpha 8, lora_B non-zero.
  lora_rslora_regex/  LoRA with target_modules a regex string (decoder k_proj/out_proj),
                      r 2, alpha 3, use_rslora.
  adalora/            AdaLoRA saved by peft: q,k,v,out_proj,fc1,fc2, init_r 6, target_r 3;
                      the rank pattern comes from peft's own RankAllocator (a few SGD steps
                      on a toy loss, then update_and_allocate at total_step - tfinal forces
                      the final mask), so save_pretrained drops masked ranks (k < 6).
  logits.safetensors  inputs (mel [2, 80, 100], tokens [2, 8]) and transformers' float32
                      logits [2, 8, 96]: base, and with each adapter loaded back from its
                      directory by PeftModel.from_pretrained (so the files are checked too).

Mode 2 (`--check DIR`) loads every adapter directory under DIR (written by our
PeftAdapter::save: the test writes them when PEFT_ADAPTER_EXPORT_DIR is set: the three
above re-saved, and ours_lora / ours_adalora, made by the test from configs built in
code) with PeftModel.from_pretrained on the fixture base, and writes
  tests/fixtures/peft/peft_loads_ours.json: per adapter the config peft parsed, the
      state dict keys and shapes peft loaded, and (for the three above) the largest
      relative difference between its logits and the reference logits;
  tests/fixtures/peft/peft_logits_of_ours.safetensors: peft's logits [2, 8, 96] with
      each adapter, which the test compares with its own.

Usage (repository root):
    /tmp/peft-ref/bin/python tests/reference/make_peft_adapters.py
    PEFT_ADAPTER_EXPORT_DIR=/tmp/ours build/tests/test_peft_adapter
    /tmp/peft-ref/bin/python tests/reference/make_peft_adapters.py --check /tmp/ours
"""
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file

import peft
from peft import AdaLoraConfig, LoraConfig, PeftModel, get_peft_model

OUT = os.path.join("tests", "fixtures", "peft")
BASE = os.path.join(OUT, "whisper_random")
ADAPTERS = ["lora", "lora_rslora_regex", "adalora"]

# save_pretrained also writes a model card README.md (through Jinja2); the fixtures are
# the two files the format consists of.
PeftModel.create_or_update_model_card = lambda self, output_dir: None


def make_base():
    torch.manual_seed(1234)
    config = transformers.WhisperConfig(
        vocab_size=96,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=50,
        max_target_positions=24,
        pad_token_id=95,
        bos_token_id=94,
        eos_token_id=94,
        decoder_start_token_id=93,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    model = transformers.WhisperForConditionalGeneration(config)
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name and "encoder" in name:
                continue  # sinusoids
            if name.endswith("layer_norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
    model = model.half()
    model.save_pretrained(BASE, safe_serialization=True)
    os.remove(os.path.join(BASE, "generation_config.json"))


def load_base():
    # The fp16 weights, computed in float32 (as the C++ model does).
    return transformers.WhisperForConditionalGeneration.from_pretrained(BASE, torch_dtype=torch.float32).eval()


def inputs():
    g = torch.Generator().manual_seed(7)
    mel = torch.randn((2, 80, 100), generator=g)
    tokens = torch.randint(0, 93, (2, 8), generator=g)
    tokens[:, 0] = 93
    return mel, tokens


def logits_of(model, mel, tokens):
    with torch.no_grad():
        return model(input_features=mel, decoder_input_ids=tokens).logits.float().contiguous()


def make_lora(name, config, seed):
    model = get_peft_model(load_base(), config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    model.save_pretrained(os.path.join(OUT, name))


def make_adalora(mel, tokens):
    config = AdaLoraConfig(
        init_r=6,
        target_r=3,
        lora_alpha=12,
        tinit=0,
        tfinal=1,
        deltaT=1,
        total_step=4,
        target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    )
    model = get_peft_model(load_base(), config)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # larger than peft's init so that the adapter visibly matters
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "lora_E" in n:
                p.copy_(torch.randn(p.shape, generator=g))
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    labels = torch.roll(tokens, -1, dims=1)
    for step in range(config.total_step):
        loss = model(input_features=mel, decoder_input_ids=tokens, labels=labels).loss
        loss.backward()
        opt.step()
        model.base_model.update_and_allocate(step)
        opt.zero_grad()
    model.eval()
    pattern = model.peft_config["default"].rank_pattern
    assert pattern and any(not all(v) for v in pattern.values()), "no rank was masked"
    model.save_pretrained(os.path.join(OUT, "adalora"))


def load_adapter(directory):
    return PeftModel.from_pretrained(load_base(), directory).eval()


def generate():
    os.makedirs(OUT, exist_ok=True)
    make_base()
    mel, tokens = inputs()
    make_lora("lora", LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"]), 11)
    make_lora(
        "lora_rslora_regex",
        LoraConfig(r=2, lora_alpha=3, use_rslora=True, target_modules=r".*decoder\.layers\.\d+\..*(k_proj|out_proj)"),
        12,
    )
    make_adalora(mel, tokens)
    tensors = {"mel": mel.contiguous(), "tokens": tokens.contiguous(), "base": logits_of(load_base(), mel, tokens)}
    for name in ADAPTERS:
        tensors[name] = logits_of(load_adapter(os.path.join(OUT, name)), mel, tokens)
        rel = ((tensors[name] - tensors["base"]).abs().max() / tensors["base"].abs().max()).item()
        print(f"{name}: max |logits - base| / max |base| = {rel:.3f}")
    save_file(tensors, os.path.join(OUT, "logits.safetensors"), metadata={"format": "pt"})


def check(ours):
    ref = load_file(os.path.join(OUT, "logits.safetensors"))
    report = {"peft": peft.__version__, "transformers": transformers.__version__, "adapters": {}}
    all_logits = {}
    for name in sorted(os.listdir(ours)):
        directory = os.path.join(ours, name)
        model = load_adapter(directory)
        config = model.peft_config["default"].to_dict()
        config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
        config["peft_type"] = str(config["peft_type"].value)
        config.pop("base_model_name_or_path", None)
        state = peft.get_peft_model_state_dict(model)
        logits = logits_of(model, ref["mel"], ref["tokens"])
        all_logits[name] = logits
        reference = ref[name] if name in ref else None
        entry = {
            "config": config,
            "tensors": {k: list(v.shape) for k, v in sorted(state.items())},
        }
        if reference is not None:
            entry["max_relative_difference"] = ((logits - reference).abs().max() / reference.abs().max()).item()
        report["adapters"][name] = entry
        print(name, entry.get("max_relative_difference"))
    save_file(all_logits, os.path.join(OUT, "peft_logits_of_ours.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "peft_loads_ours.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True, default=str)
        f.write("\n")


if __name__ == "__main__":
    # peft keeps target_modules as a set and writes it in set order: a fixed string hash
    # makes the written configs reproducible.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    elif len(sys.argv) == 1:
        generate()
    else:
        sys.exit(__doc__)
