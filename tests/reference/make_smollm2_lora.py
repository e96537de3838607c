#!/usr/bin/env python3
"""A small LoRA adapter for SmolLM2-135M-Instruct, for tests/gst/test_peftsummarize.cpp
(the `adapter` property swapped while PLAYING must change the summaries).

Versions: torch 1.13 (Debian python3-torch), transformers 4.46.3, peft 0.13.2,
safetensors 0.8.0 (the /tmp/peft-ref venv, see make_peft_adapters.py).

peft's get_peft_model on a Llama with SmolLM2-135M's widths (hidden 576, 9 heads, 3
key/value heads, MLP 1536, 30 layers) and a small vocabulary (not in the adapter), with
random weights: the real ones are not needed, adapters are model-independent files,
checked against the real model when bound. LoRA r 1, alpha 8 on q_proj and v_proj of
layers 26-29 (a regex target), peft's own lora_A initialisation, lora_B drawn from
N(0, 1) (peft starts it at zero, which would change nothing). Measured with
build/tools/peft-summarize --max-new-tokens 8: "The city council met on Tuesday" becomes
"A mixed-socarized meeting" (still text; lora_B on layers 0-3 or larger spreads gave
empty or garbled summaries). Seeded, so reruns write the same files. Written by peft's
save_pretrained (safetensors) to tests/fixtures/gst/smollm2_lora/ (32 KB).

Usage (repository root): /tmp/peft-ref/bin/python tests/reference/make_smollm2_lora.py
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # peft asks the Hub for the base config otherwise

import torch
import transformers
from peft import LoraConfig, get_peft_model

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gst", "smollm2_lora")


def main():
    torch.manual_seed(1234)
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        tie_word_embeddings=True)
    base = transformers.LlamaForCausalLM(config)
    base.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"  # peft writes it as base_model_name_or_path
    lora = LoraConfig(r=1, lora_alpha=8, lora_dropout=0.0,
                      target_modules=r"model\.layers\.(26|27|28|29)\.self_attn\.(q_proj|v_proj)")
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 1.0)
    model.save_pretrained(OUT)
    os.remove(os.path.join(OUT, "README.md"))  # peft's model card template
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
