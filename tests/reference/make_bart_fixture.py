#!/usr/bin/env python3
"""Tiny random BART and MBart checkpoints with reference outputs, for tests/models/test_bart.cpp.

Versions: torch 1.13 (Debian python3-torch), transformers 4.46.3, safetensors 0.8.0, peft 0.13.2
(the /tmp/peft-ref venv; see make_peft_adapters.py for how it was made).

Writes under tests/fixtures/models/:

  bart_tiny/        BartForConditionalGeneration (post-LN), float32: d_model 32, encoder 2 layers x
                    4 heads (ffn 48), decoder 2 layers x 2 heads (ffn 32), vocabulary 96, 32
                    positions, gelu, lm_head tied to the shared embedding, final_logits_bias
                    non-zero, forced_bos_token_id 0 (bart-large-cnn style; transformers moves it to
                    generation_config.json).
                    lora/     LoRA r 4 on q,k,v,out_proj,fc1,fc2 (lora_B random, non-zero).
                    adalora/  AdaLoRA whose rank_pattern comes from peft's RankAllocator.
  bart_untied/      BART with relu, scale_embedding, an untied lm_head (tie_word_embeddings false),
                    no forced_bos_token_id, 1 + 1 layers, saved in float16 (the reference computes
                    in float32 from the float16 weights, as the C++ model does).
  mbart_tiny/       MBartForConditionalGeneration (pre-LN + final layer_norm), float32: d_model 32,
                    2 + 2 layers, 4 heads, ffn 32, vocabulary 100 of which the last 4 ids (96-99) are
                    "language codes", scale_embedding, gelu_new. Inputs end with </s> <source language code>;
                    the generate calls force a target language code (98) with forced_bos_token_id.
                    lora/     LoRA r 4 as above.

Each directory has reference.safetensors (input_ids_<i> [1, S], encoder_<i> [1, S, d],
decoder_input_ids_<i> [1, T], logits_<i> [1, T, V] teacher-forced, and lora_logits_<i> /
adalora_logits_<i> with the adapters loaded back by PeftModel.from_pretrained) and reference.json
(special ids, and for each input the kwargs of every model.generate call and the tokens it returned).

Weights are re-drawn with larger spreads than the default init (0.02) so that the logits of the
random model are well separated: the script prints the smallest gap between the top two logits
along every greedy path (greedy / beam results must not hinge on ties).

Usage (repository root):  /tmp/peft-ref/bin/python tests/reference/make_bart_fixture.py
"""
import json
import math
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

from peft import AdaLoraConfig, LoraConfig, PeftModel, get_peft_model

OUT = os.path.join("tests", "fixtures", "models")
# Added to </s>'s final_logits_bias so that some beams finish before max_new_tokens.
BART_EOS_BOOST = float(os.environ.get("BART_EOS_BOOST", "4.5"))
EOS_BOOST = 3.0
PeftModel.create_or_update_model_card = lambda self, output_dir: None
# generate() asks whether the model is FSDP-managed; importing torch.distributed.fsdp fails on
# torch 1.13 under Python 3.11 (a dataclass with a mutable default). Nothing here is distributed.
transformers.generation.utils.is_fsdp_managed_module = lambda module: False


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm_embedding.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "embed_positions" in name:
                p.copy_(1.0 * torch.randn(p.shape, generator=g))
            elif "shared" in name or "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[1]
                p.copy_(1.3 * torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        model.final_logits_bias.copy_(0.5 * torch.randn(model.final_logits_bias.shape, generator=g))


def bart_config(**kw):
    base = dict(
        vocab_size=96,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=2,
        encoder_ffn_dim=48,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
        activation_function="gelu",
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_bos_token_id=0,
        forced_eos_token_id=2,
        scale_embedding=False,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    base.update(kw)
    return transformers.BartConfig(**base)


def save(model, directory, half=False):
    if os.path.exists(directory):
        shutil.rmtree(directory)
    m = model.half() if half else model
    m.save_pretrained(directory, safe_serialization=True)
    if half:
        model.float()


def inputs_for(kind):
    g = torch.Generator().manual_seed(21)
    seqs = []
    for n in (9, 14, 6):
        ids = torch.randint(3, 90, (n,), generator=g).tolist()
        if kind == "mbart":  # tokens </s> <src lang code>
            seqs.append(ids + [2, 96])
        else:  # <s> tokens </s>
            seqs.append([0] + ids + [2])
    return seqs


def decoder_inputs(start, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [start] + torch.randint(3, 90, (n - 1,), generator=g).tolist()


def generate_calls(kind):
    common = dict(max_new_tokens=20)
    if kind == "mbart":
        common["forced_bos_token_id"] = 98  # the target "language code"
    calls = [dict(num_beams=1, do_sample=False)]
    for lp in (1.0, 2.0):
        for es in (True, False):
            calls.append(dict(num_beams=4, do_sample=False, length_penalty=lp, early_stopping=es))
    calls.append(dict(num_beams=4, do_sample=False, no_repeat_ngram_size=2))
    calls.append(dict(num_beams=1, do_sample=False, repetition_penalty=1.3, min_new_tokens=5))
    calls.append(dict(num_beams=4, do_sample=False, repetition_penalty=1.3, min_new_tokens=5))
    return [dict(common, **c) for c in calls]


def min_top2_gap(model, ids, kwargs):
    # Gap between the two best processed scores along the greedy path (num_beams 1 only).
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), output_scores=True, return_dict_in_generate=True, **kwargs
        )
    gaps = []
    for s in out.scores:
        top = torch.topk(s[0], 2).values
        if torch.isfinite(top).all():
            gaps.append((top[0] - top[1]).item())
    return min(gaps) if gaps else float("inf")


def reference(model_dir, kind, seed, adapters=()):
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    cfg = model.config
    gen = model.generation_config
    tensors, entries = {}, []
    gap = float("inf")
    for i, ids in enumerate(inputs_for(kind)):
        x = torch.tensor([ids])
        dec = torch.tensor([decoder_inputs(gen.decoder_start_token_id, 7, seed + i)])
        with torch.no_grad():
            enc = model.get_encoder()(input_ids=x).last_hidden_state
            logits = model(input_ids=x, decoder_input_ids=dec).logits
        tensors[f"input_ids_{i}"] = x
        tensors[f"encoder_{i}"] = enc.contiguous()
        tensors[f"decoder_input_ids_{i}"] = dec
        tensors[f"logits_{i}"] = logits.contiguous()
        gens = []
        for kw in generate_calls(kind):
            with torch.no_grad():
                out = model.generate(x, **kw)[0].tolist()
            gens.append({"kwargs": kw, "output": out})
            if kw["num_beams"] == 1:
                gap = min(gap, min_top2_gap(model, ids, kw))
        entries.append({"input_ids": ids, "decoder_input_ids": dec[0].tolist(), "generate": gens})
    for name in adapters:
        peft_model = PeftModel.from_pretrained(
            transformers.AutoModelForSeq2SeqLM.from_pretrained(model_dir, torch_dtype=torch.float32),
            os.path.join(model_dir, name),
        ).eval()
        for i in range(len(entries)):
            with torch.no_grad():
                la = peft_model(
                    input_ids=tensors[f"input_ids_{i}"], decoder_input_ids=tensors[f"decoder_input_ids_{i}"]
                ).logits
            tensors[f"{name}_logits_{i}"] = la.contiguous()
            rel = ((la - tensors[f"logits_{i}"]).abs().max() / tensors[f"logits_{i}"].abs().max()).item()
            print(f"  {name} input {i}: max |adapter - base| / max |base| = {rel:.3f}")
    specials = {
        "decoder_start_token_id": gen.decoder_start_token_id,
        "eos_token_id": gen.eos_token_id,
        "pad_token_id": gen.pad_token_id,
        "bos_token_id": gen.bos_token_id,
        "forced_bos_token_id": gen.forced_bos_token_id,
        "forced_eos_token_id": gen.forced_eos_token_id,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
    }
    doc = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "specials": specials,
        "inputs": entries,
    }
    save_file(tensors, os.path.join(model_dir, "reference.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(model_dir, "reference.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{model_dir}: min top-2 logit gap on greedy paths {gap:.4f}")
    for e in entries:
        for g in e["generate"]:
            print("  ", {k: v for k, v in g["kwargs"].items() if k != "max_new_tokens"}, g["output"])


def make_lora(base_dir, seed):
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    config = LoraConfig(
        r=4, lora_alpha=8, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    )
    model = get_peft_model(model, config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or "lora_A" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    model.save_pretrained(os.path.join(base_dir, "lora"))


def make_adalora(base_dir, kind):
    config = AdaLoraConfig(
        init_r=6, target_r=3, lora_alpha=12, tinit=0, tfinal=1, deltaT=1, total_step=4,
        target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    )
    model = get_peft_model(
        transformers.AutoModelForSeq2SeqLM.from_pretrained(base_dir, torch_dtype=torch.float32), config
    )
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "lora_E" in n:
                p.copy_(torch.randn(p.shape, generator=g))
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = torch.tensor([inputs_for(kind)[0]])
    labels = torch.tensor([decoder_inputs(3, 8, 99)])
    for step in range(config.total_step):
        loss = model(input_ids=x, labels=labels).loss
        loss.backward()
        opt.step()
        model.base_model.update_and_allocate(step)
        opt.zero_grad()
    model.eval()
    pattern = model.peft_config["default"].rank_pattern
    assert pattern and any(not all(v) for v in pattern.values()), "no rank was masked"
    model.save_pretrained(os.path.join(base_dir, "adalora"))


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)

    bart = transformers.BartForConditionalGeneration(bart_config()).eval()
    randomize(bart, 1)
    with torch.no_grad():
        bart.final_logits_bias[0, 2] += BART_EOS_BOOST  # </s> reachable, so beams finish
    bart_dir = os.path.join(OUT, "bart_tiny")
    save(bart, bart_dir)
    make_lora(bart_dir, 11)
    make_adalora(bart_dir, "bart")
    reference(bart_dir, "bart", 100, adapters=("lora", "adalora"))

    untied = transformers.BartForConditionalGeneration(
        bart_config(
            activation_function="relu", scale_embedding=True, tie_word_embeddings=False,
            encoder_layers=1, decoder_layers=1, forced_bos_token_id=None,
        )
    ).eval()
    randomize(untied, 2)
    untied_dir = os.path.join(OUT, "bart_untied")
    save(untied, untied_dir, half=True)
    reference(untied_dir, "bart", 200)

    mcfg = transformers.MBartConfig(
        vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_position_embeddings=32, activation_function="gelu_new", scale_embedding=True,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
    )
    mbart = transformers.MBartForConditionalGeneration(mcfg).eval()
    randomize(mbart, 3)
    with torch.no_grad():
        mbart.final_logits_bias[0, 2] += EOS_BOOST
    mbart_dir = os.path.join(OUT, "mbart_tiny")
    save(mbart, mbart_dir)
    make_lora(mbart_dir, 12)
    reference(mbart_dir, "mbart", 300, adapters=("lora",))
    for d in (bart_dir, untied_dir, mbart_dir):
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
        print(f"{d}: {size} bytes")


if __name__ == "__main__":
    # peft writes target_modules (a set) in set order: a fixed string hash makes the
    # adapter configs reproducible.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    main()
