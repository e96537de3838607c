#!/usr/bin/env python3
"""Golden fixtures for lib/peft/models/t5.cpp (tests/models/test_t5.cpp).

Versions: torch 1.13 (Debian python3-torch), transformers 4.46.3, safetensors 0.8.0,
peft 0.13.2, accelerate 1.0.1 (the /tmp/peft-ref venv: a venv with
--system-site-packages, then `pip install transformers==4.46.3 safetensors==0.8.0` and
`pip install --no-deps peft==0.13.2 accelerate==1.0.1`).

Writes, under tests/fixtures/models/:

  t5_v1_0/       a tiny random T5ForConditionalGeneration in the original T5's layout:
                 feed_forward_proj "relu" (DenseReluDense.wi / wo), tied word embeddings
                 (lm_head = shared, decoder output scaled by d_model ** -0.5), 32/128
                 relative-position buckets / max distance (T5's own values).
  t5_v1_1/       the T5 v1.1 / flan-t5 layout: feed_forward_proj "gated-gelu" (wi_0, wi_1,
                 wo; gelu_new), an untied lm_head, d_kv * num_heads (16) != d_model, 16 buckets
                 and max distance 32 (so that short inputs reach the logarithmic buckets).
  t5_v1_0_fp16/  t5_v1_0's weights saved in float16 (reference computed in float32 from
                 those float16 values, as the C++ model computes; logits only, no
                 generate outputs or buckets).

Each model directory holds what save_pretrained writes (config.json, generation_config.json,
model.safetensors) and:
  reference.json         special ids, the input ids (lengths 6, 11, 18 and 150), the
                         teacher-forced decoder input, the model.generate outputs with
                         the exact kwargs of each call (greedy, beam with length_penalty
                         1.0 / 2.0 and early_stopping True / False, no_repeat_ngram_size
                         2, repetition_penalty 1.3 + min_new_tokens 5),
                         the first encoder output values, the smallest top-2 logit gap
                         along the greedy paths, whether each output survives two random
                         1e-5 relative perturbations of every weight (near-ties would
                         not), and transformers' relative position buckets
                         (T5Attention._relative_position_bucket) for relative positions
                         -300 .. 300 in both directions.
  reference.safetensors  per input i: input_ids_i [1, S], encoder_i [1, S, d_model],
                         logits_i [1, T, vocab] (teacher forcing with decoder_input_ids),
                         with each adapter: <adapter>_logits_i, and (not for fp16)
                         int8_logits_i: every projection rounded to int8 as
                         quant::Int8Weight does (per row, max |w| / 127, half-even).
  lora/, adalora/        PEFT adapters saved by save_pretrained (t5_v1_0 and t5_v1_1 only):
                         LoRA r 4 on every attention and feed-forward projection with random
                         (non-zero) lora_B; AdaLoRA on the same modules whose rank_pattern
                         comes from peft's RankAllocator (a few SGD steps, then
                         update_and_allocate forces the final budget, so ranks are masked).

Usage (repository root):
    /tmp/peft-ref/bin/python tests/reference/make_t5_fixture.py
"""
import json
import math
import os
import re
import sys

import torch
import transformers
from safetensors.torch import save_file

import peft
import transformers.generation.utils
from peft import AdaLoraConfig, LoraConfig, PeftModel, get_peft_model

OUT = os.path.join("tests", "fixtures", "models")

# save_pretrained also writes a model card README.md (through Jinja2); the fixtures are
# the two files the format consists of.
PeftModel.create_or_update_model_card = lambda self, output_dir: None
# generate() asks whether the model is FSDP-managed by importing torch.distributed.fsdp,
# which fails under Python 3.11 with Debian's torch 1.13 (a dataclass with a mutable
# default). Nothing here is distributed: the answer is no.
transformers.generation.utils.is_fsdp_managed_module = lambda module: False

VARIANTS = {
    "t5_v1_0": dict(
        config=dict(
            vocab_size=96,
            d_model=32,
            d_kv=8,
            d_ff=32,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            relative_attention_num_buckets=32,
            relative_attention_max_distance=128,
            feed_forward_proj="relu",
            tie_word_embeddings=True,
        ),
        seed=101,
        ffn=["wi", "wo"],
        # With tied embeddings each token's own embedding, still in the residual stream,
        # votes for that token again: small embeddings, strong layers and a larger final
        # norm keep the greedy and beam outputs from repeating one token.
        init=dict(embedding_std=0.2, projection_gain=2.0, final_norm=5.0, eos_gain=2.5),
    ),
    "t5_v1_1": dict(
        config=dict(
            vocab_size=96,
            d_model=32,
            d_kv=4,
            d_ff=32,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            relative_attention_num_buckets=16,
            relative_attention_max_distance=32,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
        ),
        seed=202,
        ffn=["wi_0", "wi_1", "wo"],
        init=dict(embedding_std=1.0, projection_gain=1.0, final_norm=1.0, eos_gain=1.6),
    ),
}
COMMON = dict(dropout_rate=0.0, layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)

# generate() calls: name -> kwargs (input_ids added per input). Every call is
# deterministic (no sampling); the lead's generation tests replay these.
GENERATE = {
    "greedy": dict(num_beams=1, do_sample=False, max_new_tokens=20),
    "beam4_lp1_early": dict(num_beams=4, do_sample=False, max_new_tokens=20, length_penalty=1.0, early_stopping=True),
    "beam4_lp1_noearly": dict(
        num_beams=4, do_sample=False, max_new_tokens=20, length_penalty=1.0, early_stopping=False
    ),
    "beam4_lp2_early": dict(num_beams=4, do_sample=False, max_new_tokens=20, length_penalty=2.0, early_stopping=True),
    "beam4_lp2_noearly": dict(
        num_beams=4, do_sample=False, max_new_tokens=20, length_penalty=2.0, early_stopping=False
    ),
    "beam4_no_repeat_ngram2": dict(num_beams=4, do_sample=False, max_new_tokens=20, no_repeat_ngram_size=2),
    "beam4_repetition_penalty": dict(
        num_beams=4, do_sample=False, max_new_tokens=20, repetition_penalty=1.3, min_new_tokens=5
    ),
    "greedy_repetition_penalty": dict(
        num_beams=1, do_sample=False, max_new_tokens=20, repetition_penalty=1.3, min_new_tokens=5
    ),
}


def make_model(name, spec):
    torch.manual_seed(spec["seed"])
    config = transformers.T5Config(**spec["config"], **COMMON)
    model = transformers.T5ForConditionalGeneration(config).eval()
    init = spec["init"]
    g = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n == "decoder.final_layer_norm.weight":
                p.copy_(init["final_norm"] * (1 + 0.2 * torch.randn(p.shape, generator=g)))
            elif n.endswith("layer_norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif "relative_attention_bias" in n:
                p.copy_(torch.randn(p.shape, generator=g))
            elif n in ("shared.weight", "lm_head.weight"):  # rows of equal norm: no token dominates
                e = torch.randn(p.shape, generator=g)
                p.copy_(init["embedding_std"] * math.sqrt(p.shape[1]) * e / e.norm(dim=1, keepdim=True))
            else:  # projections
                p.copy_(init["projection_gain"] * torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
        # An end-of-sequence token that some hypotheses reach within 20 tokens, so that
        # the length penalty and early stopping change beam results.
        head = model.lm_head.weight if not config.tie_word_embeddings else model.shared.weight
        head[COMMON["eos_token_id"]] *= init["eos_gain"]
    directory = os.path.join(OUT, name)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def load(directory):
    return transformers.T5ForConditionalGeneration.from_pretrained(directory, torch_dtype=torch.float32).eval()


def inputs(vocab):
    g = torch.Generator().manual_seed(7)
    out = []
    for length in (6, 11, 18):
        ids = torch.randint(2, vocab, (1, length), generator=g)  # no pad (0) inside: generate would mask it
        ids[0, -1] = COMMON["eos_token_id"]
        out.append(ids)
    decoder = torch.randint(2, vocab, (1, 9), generator=g)
    decoder[0, 0] = COMMON["decoder_start_token_id"]
    # A long input (drawn last, so the others stay as they were): encoder distances past
    # relative_attention_max_distance, where the buckets saturate.
    ids = torch.randint(2, vocab, (1, 150), generator=g)
    ids[0, -1] = COMMON["eos_token_id"]
    out.append(ids)
    return out, decoder


def logits_of(model, ids, decoder):
    with torch.no_grad():
        return model(input_ids=ids, decoder_input_ids=decoder).logits.float().contiguous()


PROJECTIONS = (".q.weight", ".k.weight", ".v.weight", ".o.weight", ".wi.weight", ".wi_0.weight", ".wi_1.weight", ".wo.weight")


def int8_weights(model):
    """The model with every projection as quant::Int8Weight stores it (per output row,
    scale = max |row| / 127, codes rounded half-even); embeddings and norms as they were."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(PROJECTIONS):
                scale = p.abs().amax(dim=1, keepdim=True) / 127.0
                p.copy_(torch.round(p / scale).clamp(-127, 127) * scale)
    return model


def perturbed(directory, relative, seed):
    """The model with every weight multiplied by (1 + relative * N(0, 1)): generate()
    outputs that change under it hinge on near-ties that float32 rounding could flip."""
    model = load(directory)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + relative * torch.randn(p.shape, generator=g))
    return model


def greedy_gap(model, ids):
    """Smallest top-2 logit gap over the steps of the greedy path."""
    with torch.no_grad():
        out = model.generate(ids, output_scores=True, return_dict_in_generate=True, **GENERATE["greedy"])
    gaps = [float((s[0].topk(2).values[0] - s[0].topk(2).values[1])) for s in out.scores]
    return min(gaps)


def buckets(num_buckets, max_distance):
    rel = torch.arange(-300, 301)
    f = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket
    return {
        "relative_positions": [-300, 300],
        "num_buckets": num_buckets,
        "max_distance": max_distance,
        "bidirectional": f(rel, True, num_buckets, max_distance).tolist(),
        "unidirectional": f(rel, False, num_buckets, max_distance).tolist(),
    }


def make_lora(base_dir, ffn, seed):
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q", "k", "v", "o"] + ffn, init_lora_weights=True)
    model = get_peft_model(load(base_dir), config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    model.save_pretrained(os.path.join(base_dir, "lora"))


def make_adalora(base_dir, ffn, ids, decoder):
    config = AdaLoraConfig(
        init_r=6,
        target_r=3,
        lora_alpha=12,
        tinit=0,
        tfinal=1,
        deltaT=1,
        total_step=4,
        target_modules=["q", "k", "v", "o"] + ffn,
    )
    model = get_peft_model(load(base_dir), config)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # larger than peft's init so that the adapter visibly matters
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "lora_E" in n:
                p.copy_(torch.randn(p.shape, generator=g))
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    labels = torch.roll(decoder, -1, dims=1)
    for step in range(config.total_step):
        loss = model(input_ids=ids, decoder_input_ids=decoder, labels=labels).loss
        loss.backward()
        opt.step()
        model.base_model.update_and_allocate(step)
        opt.zero_grad()
    model.eval()
    pattern = model.peft_config["default"].rank_pattern
    assert pattern and any(not all(v) for v in pattern.values()), "no rank was masked"
    model.save_pretrained(os.path.join(base_dir, "adalora"))


def compact_json(value):
    """Indented JSON with lists of numbers on one line each."""
    text = json.dumps(value, indent=1)
    return re.sub(r"\[[-0-9.e,\s]*\]", lambda m: re.sub(r"\s+", " ", m.group(0)).replace("[ ", "[").replace(" ]", "]"), text)


def reference(directory, adapters, generation=True):
    model = load(directory)
    config = model.config
    ids_list, decoder = inputs(config.vocab_size)
    tensors = {"decoder_input_ids": decoder.contiguous()}
    ref = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "peft": peft.__version__,
        "specials": {
            "decoder_start_token_id": model.generation_config.decoder_start_token_id,
            "eos_token_id": model.generation_config.eos_token_id,
            "pad_token_id": model.generation_config.pad_token_id,
            "bos_token_id": model.generation_config.bos_token_id,
            "forced_bos_token_id": model.generation_config.forced_bos_token_id,
            "vocab_size": config.vocab_size,
        },
        "decoder_input_ids": decoder[0].tolist(),
        "inputs": [],
    }
    if generation:
        ref["buckets"] = buckets(config.relative_attention_num_buckets, config.relative_attention_max_distance)
    gaps = []
    shaken = [perturbed(directory, 1e-5, seed) for seed in (1, 2)] if generation else []
    for i, ids in enumerate(ids_list):
        with torch.no_grad():
            enc = model.get_encoder()(input_ids=ids).last_hidden_state.contiguous()
        tensors[f"input_ids_{i}"] = ids.contiguous()
        tensors[f"encoder_{i}"] = enc
        tensors[f"logits_{i}"] = logits_of(model, ids, decoder)
        if generation:
            tensors[f"int8_logits_{i}"] = logits_of(int8_weights(load(directory)), ids, decoder)
            rel = (tensors[f"int8_logits_{i}"] - tensors[f"logits_{i}"]).abs().max() / tensors[f"logits_{i}"].abs().max()
            print(f"{directory} input {i} int8 weights: max |logits - float| / max |float| = {rel.item():.4f}")
        entry = {"input_ids": ids[0].tolist(), "encoder_first_values": enc[0, 0, :8].tolist(), "generate": {}}
        ref["inputs"].append(entry)
        for a in adapters:
            am = PeftModel.from_pretrained(load(directory), os.path.join(directory, a)).eval()
            tensors[f"{a}_logits_{i}"] = logits_of(am, ids, decoder)
            rel = (tensors[f"{a}_logits_{i}"] - tensors[f"logits_{i}"]).abs().max() / tensors[f"logits_{i}"].abs().max()
            print(f"{directory} input {i} {a}: max |logits - base| / max |base| = {rel.item():.3f}")
        if not generation:
            del entry["generate"]
            continue
        for name, kwargs in GENERATE.items():
            with torch.no_grad():
                out = model.generate(ids, **kwargs)
            entry["generate"][name] = {"kwargs": kwargs, "sequence": out[0].tolist()}
            for other in shaken:
                with torch.no_grad():
                    same = other.generate(ids, **kwargs)[0].tolist() == out[0].tolist()
                if not same:
                    print(f"{directory} input {i} {name}: changes when the weights move by 1e-5 (near-tie)")
                entry["generate"][name].setdefault("stable_under_1e-5_weight_noise", True)
                entry["generate"][name]["stable_under_1e-5_weight_noise"] &= same
        gap = greedy_gap(model, ids)
        entry["greedy_min_top2_gap"] = gap
        gaps.append(gap)
    save_file(tensors, os.path.join(directory, "reference.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "reference.json"), "w") as f:
        f.write(compact_json(ref) + "\n")
    if not generation:
        return
    print(f"{directory}: smallest greedy top-2 logit gap {min(gaps):.4f}")
    for i, e in enumerate(ref["inputs"]):
        for name, g in e["generate"].items():
            print(f"  input {i} {name}: {g['sequence']}")


def main():
    for name, spec in VARIANTS.items():
        directory = make_model(name, spec)
        ids_list, decoder = inputs(spec["config"]["vocab_size"])
        make_lora(directory, spec["ffn"], spec["seed"] + 1)
        make_adalora(directory, spec["ffn"], ids_list[1], decoder)
        reference(directory, ["lora", "adalora"])
    # float16 copy of v1.0 (no adapters): the reference runs the float16 values in float32.
    half_dir = os.path.join(OUT, "t5_v1_0_fp16")
    load(os.path.join(OUT, "t5_v1_0")).half().save_pretrained(half_dir, safe_serialization=True)
    reference(half_dir, [], generation=False)


if __name__ == "__main__":
    # peft keeps target_modules as a set and writes it in set order: a fixed string hash
    # makes the written configs reproducible.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    main()
