"""A LoRA adapter with whisper-tiny.en's module names and shapes, made by peft, for the
whisperasr element's live adapter-swap test: it must change the transcript, so lora_B is
random (peft initialises it to zero): with standard deviation 0.05, greedy decoding of
LibriVox 0880 gives "He was not." instead of "He was not an old-sposed young man.".

Run with the reference venv (transformers 4.46.3, peft 0.13.2, torch 1.13):
  /tmp/peft-ref/bin/python tests/reference/make_tiny_en_lora.py
Writes tests/fixtures/gst/tiny_en_lora/ (adapter_config.json, adapter_model.safetensors;
the README.md peft writes is deleted by hand).
"""
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import WhisperConfig, WhisperForConditionalGeneration

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "gst" / "tiny_en_lora"

# whisper-tiny.en's dimensions (models/default/whisper-tiny.en): the base weights are
# random here, only the adapter is kept, and its shapes follow these.
config = WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=384, encoder_layers=4,
                       decoder_layers=4, encoder_attention_heads=6, decoder_attention_heads=6,
                       encoder_ffn_dim=1536, decoder_ffn_dim=1536, max_source_positions=1500,
                       max_target_positions=448)
torch.manual_seed(0)
model = WhisperForConditionalGeneration(config)
lora = LoraConfig(r=2, lora_alpha=16, target_modules=r".*decoder\.layers\.[0-3]\.self_attn\.(q_proj|v_proj)")
model = get_peft_model(model, lora)
with torch.no_grad():
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.normal_(0.0, 0.05)
model.save_pretrained(str(OUT))
print("wrote", OUT)
