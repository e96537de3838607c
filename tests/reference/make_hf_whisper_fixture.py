#!/usr/bin/env python3
"""Writes a small random-weight Whisper in the layouts real checkpoints come in, with
golden outputs, for tests/models/test_whisper_layouts.cpp:

  tests/fixtures/whisper/random_hf/      config.json, generation_config.json and
                                         model.safetensors as transformers'
                                         save_pretrained writes them (fp16)
  tests/fixtures/whisper/random_openai.pt
                                         the same weights as openai-whisper stores a
                                         checkpoint: torch.save({"dims": ..., 
                                         "model_state_dict": Whisper.state_dict()})
  tests/fixtures/whisper/random_golden.json
                                         encoder output slice and decoder logits that
                                         transformers computes in float32 from the fp16
                                         weights, for a mel given by a formula (mel_value
                                         below; the C++ test recomputes it)

The model has large-v3's front end (128 mel bins) and Whisper's real 1500 encoder and
448 decoder positions; it is narrow (d_model 16, 2 layers each, encoder 4 heads, decoder
2 heads, vocabulary 64) so that the fp16 files stay near 110 KB. The weights are
transformers' own init re-drawn from a seeded generator with larger spreads (so that the
outputs depend visibly on every tensor), the encoder positions are openai's sinusoids.

The .pt file is checked here with openai-whisper itself: whisper.load_model() reads it
and its logits must match transformers' (an assertion).

Usage (needs torch, transformers 4.x, openai-whisper; Debian's python3-torch 1.13 in a
venv made with --system-site-packages works: pip install transformers==4.46.3 and
openai-whisper==20250625 --no-deps, numba, tiktoken, more-itertools):
    python tests/reference/make_hf_whisper_fixture.py
"""
import json
import math
import os
import sys
from dataclasses import asdict

import numpy as np
import torch
import transformers
from transformers import WhisperConfig, WhisperForConditionalGeneration

import whisper
from whisper.model import ModelDimensions, Whisper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "whisper")

N_MELS, D, ENC_HEADS, DEC_HEADS, LAYERS, VOCAB = 128, 16, 4, 2, 2, 64
AUDIO_CTX, TEXT_CTX = 1500, 448
TOKENS = [60, 61, 5, 17, 42, 3, 33]  # the decoder prefix whose logits are stored
ENCODER_FRAMES = [0, 1, 2, 749, 1498, 1499]


def mel_value(c, t):
    """The test input: smooth in time and frequency, in the range of a normalised log-mel."""
    return 0.6 * math.sin(0.0123 * (t + 1) * (c + 1) + 0.1 * c) + 0.25 * math.cos(0.05 * t) - 0.2


def test_mel():
    m = np.empty((N_MELS, 2 * AUDIO_CTX), dtype=np.float64)
    for c in range(N_MELS):
        for t in range(2 * AUDIO_CTX):
            m[c, t] = mel_value(c, t)
    return torch.from_numpy(m.astype(np.float32)).unsqueeze(0)


def sinusoids(length, channels):
    # openai model.py's positions: [sin | cos] halves, timescales up to 10000.
    inc = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float64))
    t = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1).float()


def build_hf():
    config = WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=N_MELS, d_model=D,
        encoder_layers=LAYERS, decoder_layers=LAYERS,
        encoder_attention_heads=ENC_HEADS, decoder_attention_heads=DEC_HEADS,
        encoder_ffn_dim=4 * D, decoder_ffn_dim=4 * D,
        max_source_positions=AUDIO_CTX, max_target_positions=TEXT_CTX,
        pad_token_id=VOCAB - 1, bos_token_id=VOCAB - 2, eos_token_id=VOCAB - 3,
        decoder_start_token_id=VOCAB - 4)
    model = WhisperForConditionalGeneration(config).eval()
    g = torch.Generator().manual_seed(20250625)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "model.encoder.embed_positions.weight":
                p.copy_(sinusoids(AUDIO_CTX, D))
            elif "layer_norm" in name and name.endswith(".weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("embed_positions.weight"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:  # linear and conv weights: unit gain
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
    return model


def hf_to_openai(sd):
    """Hugging Face names -> openai-whisper names (model.py), the inverse of what
    transformers' convert_openai_to_hf does."""
    out = {}
    for k, v in sd.items():
        if k == "proj_out.weight":
            continue  # tied to the token embedding
        n = k.replace("model.", "", 1)
        n = n.replace(".layers.", ".blocks.")
        n = n.replace("encoder.embed_positions.weight", "encoder.positional_embedding")
        n = n.replace("decoder.embed_positions.weight", "decoder.positional_embedding")
        n = n.replace("embed_tokens", "token_embedding")
        n = n.replace("encoder.layer_norm.", "encoder.ln_post.")
        n = n.replace("decoder.layer_norm.", "decoder.ln.")
        n = n.replace("self_attn_layer_norm", "attn_ln").replace("encoder_attn_layer_norm", "cross_attn_ln")
        n = n.replace("final_layer_norm", "mlp_ln")
        n = n.replace("self_attn.", "attn.").replace("encoder_attn.", "cross_attn.")
        n = n.replace("q_proj", "query").replace("k_proj", "key").replace("v_proj", "value")
        n = n.replace("out_proj", "out").replace("fc1", "mlp.0").replace("fc2", "mlp.2")
        out[n] = v
    return out


def main():
    torch.set_num_threads(1)
    hf_dir = os.path.join(OUT, "random_hf")
    model = build_hf()
    model.half().save_pretrained(hf_dir, safe_serialization=True)

    # Golden outputs: transformers in float32 on the fp16 weights as saved.
    ref = WhisperForConditionalGeneration.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    mel = test_mel()
    tokens = torch.tensor([TOKENS])
    with torch.no_grad():
        enc = ref.model.encoder(mel).last_hidden_state
        logits = ref(encoder_outputs=(enc,), decoder_input_ids=tokens).logits

    # The same weights as an openai-whisper checkpoint, checked by openai-whisper.
    dims = ModelDimensions(n_mels=N_MELS, n_audio_ctx=AUDIO_CTX, n_audio_state=D, n_audio_head=ENC_HEADS,
                           n_audio_layer=LAYERS, n_vocab=VOCAB, n_text_ctx=TEXT_CTX, n_text_state=D,
                           n_text_head=DEC_HEADS, n_text_layer=LAYERS)
    openai_model = Whisper(dims)
    openai_model.load_state_dict(hf_to_openai(ref.state_dict()))  # strict: every name must map
    pt_path = os.path.join(OUT, "random_openai.pt")
    torch.save({"dims": asdict(dims), "model_state_dict": openai_model.half().state_dict()}, pt_path)
    check = whisper.load_model(pt_path, device="cpu").float().eval()
    with torch.no_grad():
        openai_enc = check.encoder(mel)
        openai_logits = check.decoder(tokens, openai_enc)
    enc_diff = (openai_enc - enc).abs().max().item()
    logit_diff = (openai_logits - logits).abs().max().item()
    print("openai-whisper vs transformers: encoder max |diff| %.3g, logits %.3g" % (enc_diff, logit_diff))
    assert enc_diff < 1e-4 and logit_diff < 1e-4 * logits.abs().max().item(), "the .pt is not the same model"

    golden = {
        "generator": "tests/reference/make_hf_whisper_fixture.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "openai_whisper": whisper.__version__,
        "dims": asdict(dims),
        "mel": "mel_value(c, t) = 0.6 sin(0.0123 (t+1)(c+1) + 0.1 c) + 0.25 cos(0.05 t) - 0.2, float32",
        "encoder_frames": ENCODER_FRAMES,
        "encoder_output": enc[0, ENCODER_FRAMES].tolist(),
        "encoder_abs_sum": enc.abs().sum().item(),
        "tokens": TOKENS,
        "logits": logits[0].tolist(),
        "openai_vs_transformers_max_abs_diff": {"encoder": enc_diff, "logits": logit_diff},
    }
    with open(os.path.join(OUT, "random_golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    for name in ("random_hf/model.safetensors", "random_openai.pt", "random_golden.json"):
        print(name, os.path.getsize(os.path.join(OUT, name)), "bytes")


if __name__ == "__main__":
    sys.exit(main())
