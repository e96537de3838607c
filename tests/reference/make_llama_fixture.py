#!/usr/bin/env python3
"""Llama-family fixtures for tests/models/test_llama.cpp.

Versions: torch 1.13 (Debian python3-torch), transformers 4.46.3, safetensors, gguf
(gguf-py 0.10+), in the /tmp/peft-ref venv (--system-site-packages).

Writes, under tests/fixtures/models/:
  llama_random/      a tiny random LlamaForCausalLM (hidden 32, 2 layers, 4 query heads,
                     2 key/value heads, SwiGLU 64, vocabulary 160, untied output, Llama
                     3.1 rope scaling), config.json + model.safetensors (float32).
  qwen2_random/      a tiny random Qwen2ForCausalLM (q/k/v biases, tied output).
  llama_random/lora/, llama_random/adalora/  PEFT 0.13.2 adapters on it (LoRA r 4 on every
                     projection with random A and B; AdaLoRA with a rank pattern from peft's
                     RankAllocator) and, in llama_reference.json, transformers' logits with
                     each loaded back by PeftModel.from_pretrained.
  llama_random.gguf  llama_random written as llama.cpp's converter writes a llama GGUF:
                     names blk.N.attn_q ..., query/key rows permuted for its rotary layout,
                     float32 (the block types are exercised by SmolLM2 below).
  llama_reference.json  for each model (and for the GGUF, logits of the same weights
                     without rope scaling, which the GGUF does not carry): a fixed prompt, transformers' logits at every
                     prompt position (teacher forcing), and generate() outputs (greedy,
                     beam 4 with length_penalty 1/2 and early_stopping True/False,
                     no_repeat_ngram_size 2, repetition_penalty 1.3 + min_new_tokens 5)
                     with the kwargs that made them. eos is a token the greedy run meets,
                     so that finished hypotheses are exercised.
  smollm2_reference.json  SmolLM2-135M-Instruct from models/default (the Q4_1 GGUF, loaded by
                     transformers, which dequantizes it and un-permutes query/key): prompt
                     ids and greedy continuations (32 new tokens) of three prompts, the logits
                     at the last prompt position of the first (a sample of the vocabulary), and
                     token ids of a dozen strings.

Usage (repository root): /tmp/peft-ref/bin/python tests/reference/make_llama_fixture.py
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
import transformers.generation.utils

# Debian's torch 1.13 cannot import torch.distributed.fsdp under Python 3.11, which
# generate() probes for; nothing here is distributed.
transformers.generation.utils.is_fsdp_managed_module = lambda module: False

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "models")
VOCAB = 160


def spread(model, seed, std):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def runs(model, prompt, eos):
    ids = torch.tensor([prompt])
    out = {}
    with torch.no_grad():
        out["logits"] = model(ids).logits[0].tolist()
    cases = [
        dict(num_beams=1, do_sample=False, max_new_tokens=20),
        dict(num_beams=4, do_sample=False, max_new_tokens=20, length_penalty=1.0, early_stopping=True),
        dict(num_beams=4, do_sample=False, max_new_tokens=20, length_penalty=1.0, early_stopping=False),
        dict(num_beams=4, do_sample=False, max_new_tokens=20, length_penalty=2.0, early_stopping=False),
        dict(num_beams=3, do_sample=False, max_new_tokens=12, length_penalty=0.5, early_stopping=True),
        dict(num_beams=1, do_sample=False, max_new_tokens=20, no_repeat_ngram_size=2),
        dict(num_beams=4, do_sample=False, max_new_tokens=20, no_repeat_ngram_size=2),
        dict(num_beams=1, do_sample=False, max_new_tokens=20, repetition_penalty=1.3, min_new_tokens=5),
        dict(num_beams=4, do_sample=False, max_new_tokens=20, repetition_penalty=1.3, min_new_tokens=5),
    ]
    out["generate"] = []
    for kw in cases:
        seq = model.generate(ids, attention_mask=torch.ones_like(ids), eos_token_id=eos, pad_token_id=eos, **kw)
        out["generate"].append({"kwargs": kw, "eos_token_id": eos, "tokens": seq[0, len(prompt):].tolist()})
    return out


PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapters(base_dir, prompt):
    from peft import AdaLoraConfig, LoraConfig, PeftModel, get_peft_model
    load = lambda: LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32).eval()
    model = get_peft_model(load(), LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                              target_modules=PROJECTIONS))
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    model.save_pretrained(os.path.join(base_dir, "lora"))

    config = AdaLoraConfig(init_r=6, target_r=3, lora_alpha=12, tinit=0, tfinal=1, deltaT=1, total_step=4,
                           target_modules=PROJECTIONS)
    model = get_peft_model(load(), config)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "lora_E" in n:
                p.copy_(torch.randn(p.shape, generator=g))
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = torch.tensor([prompt])
    for step in range(config.total_step):
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        model.base_model.update_and_allocate(step)
        opt.zero_grad()
    pattern = model.peft_config["default"].rank_pattern
    assert pattern and any(not all(v) for v in pattern.values()), "no rank was masked"
    model.eval()
    model.save_pretrained(os.path.join(base_dir, "adalora"))

    for name in ("lora", "adalora"):  # peft's generated model cards are not fixtures
        os.remove(os.path.join(base_dir, name, "README.md"))
    logits = {}
    for name in ("lora", "adalora"):
        m = PeftModel.from_pretrained(load(), os.path.join(base_dir, name)).eval()
        with torch.no_grad():
            logits[name] = m(torch.tensor([prompt])).logits[0].tolist()
    return logits


def top2_gap(logits):
    t = torch.tensor(logits).topk(2, -1).values
    return float((t[:, 0] - t[:, 1]).min())


def make_random(kind):
    if kind == "llama":
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                          bos_token_id=1, eos_token_id=2)
        model = LlamaForCausalLM(cfg)
    else:
        cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                          bos_token_id=1, eos_token_id=2)
        model = Qwen2ForCausalLM(cfg)
    spread(model, 7 if kind == "llama" else 8, 0.15)
    model.eval()
    return model


def permute_for_gguf(w, heads):
    # llama.cpp convert_hf_to_gguf.py LlamaModel.permute: rows of each head from
    # [first halves; second halves] to interleaved pairs.
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model, path):
    import gguf
    c = model.config
    wr = gguf.GGUFWriter(path, "llama")
    wr.add_block_count(c.num_hidden_layers)
    wr.add_context_length(c.max_position_embeddings)
    wr.add_embedding_length(c.hidden_size)
    wr.add_feed_forward_length(c.intermediate_size)
    wr.add_head_count(c.num_attention_heads)
    wr.add_head_count_kv(c.num_key_value_heads)
    wr.add_rope_freq_base(c.rope_theta)
    wr.add_layer_norm_rms_eps(c.rms_norm_eps)
    wr.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    wr.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        wr.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        wr.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        wr.add_tensor(f"blk.{i}.attn_q.weight", permute_for_gguf(sd[p + "self_attn.q_proj.weight"], c.num_attention_heads))
        wr.add_tensor(f"blk.{i}.attn_k.weight", permute_for_gguf(sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads))
        wr.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        wr.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        wr.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        wr.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        wr.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    wr.add_tensor("output_norm.weight", sd["model.norm.weight"])
    wr.add_tensor("output.weight", sd["lm_head.weight"])
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def smollm2_tokenizer(path):
    # SmolLM2's own tokenizer.json, rebuilt from the GGUF's vocabulary and merges:
    # Digits(individual_digits) then ByteLevel (GPT-2's regex), no normalizer, ByteLevel
    # decoder, control tokens special. (transformers' GGUF tokenizer conversion gives a
    # Llama-style tokenizer without the digit split.)
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    r = gguf.GGUFReader(path)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ")) for m in r.fields["tokenizer.ggml.merges"].contents()]
    tk = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(tokens, types) if ty == 3])
    return PreTrainedTokenizerFast(tokenizer_object=tk)


def main():
    torch.manual_seed(0)
    reference = {"transformers": transformers.__version__, "torch": torch.__version__, "models": {}}
    prompt = [1, 17, 93, 5, 150, 42, 42, 7, 159, 64, 3, 120]
    for kind in ("llama", "qwen2"):
        model = make_random(kind)
        d = os.path.join(OUT, f"{kind}_random")
        model.save_pretrained(d, safe_serialization=True)
        with torch.no_grad():
            free = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                                  eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
        # eos: the first token greedy decoding meets only from its 6th step on, so that
        # generation runs a while and then finds finished hypotheses.
        eos = next(t for i, t in enumerate(free) if i >= 5 and t not in free[:i])
        r = runs(model, prompt, eos)
        r["prompt"] = prompt
        r["min_top2_gap"] = top2_gap(r["logits"])
        print(kind, "greedy without eos:", free, "eos:", eos, "min top-2 gap:", r["min_top2_gap"])
        for g in r["generate"]:
            print("  ", g["kwargs"], g["tokens"])
        reference["models"][kind] = r
        if kind == "llama":
            r["adapter_logits"] = make_adapters(d, prompt)
            write_gguf(model, os.path.join(OUT, "llama_random.gguf"))
            # The GGUF carries no rope scaling (llama.cpp puts Llama 3.1's in a
            # rope_freqs tensor, not written here): its reference is the same weights
            # without scaling.
            plain_cfg = LlamaConfig(**{**model.config.to_dict(), "rope_scaling": None})
            plain = LlamaForCausalLM(plain_cfg).eval()
            plain.load_state_dict(model.state_dict())
            with torch.no_grad():
                r["gguf_logits"] = plain(torch.tensor([prompt])).logits[0].tolist()
    with open(os.path.join(OUT, "llama_reference.json"), "w") as f:
        json.dump(reference, f)

    smol_dir = os.path.join(os.path.dirname(__file__), "..", "..", "models", "default", "smollm2-135m-instruct")
    gguf_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(smol_dir, gguf_file=gguf_name, torch_dtype=torch.float32).eval()
    # transformers 4.46's GGUF loader leaves lm_head untied (newly initialised); SmolLM2
    # ties it to the token embedding (the GGUF has no output.weight).
    with torch.no_grad():
        model.lm_head.weight.copy_(model.model.embed_tokens.weight)
    tok = smollm2_tokenizer(os.path.join(smol_dir, gguf_name))
    prompts = [
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nSummarize in one sentence: The committee met on Tuesday to discuss the new budget. "
        "After three hours of debate, they agreed to raise funding for public libraries by 12 percent "
        "and to postpone the vote on road repairs until March.<|im_end|>\n<|im_start|>assistant\n",
        "The capital of France is",
        "def fibonacci(n):\n    ",
    ]
    smol = {"transformers": transformers.__version__, "gguf": gguf_name, "cases": []}
    for i, text in enumerate(prompts):
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits[0, -1]
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, do_sample=False,
                                 eos_token_id=2, pad_token_id=2)
        case = {"text": text, "prompt": ids[0].tolist(), "greedy": out[0, ids.shape[1]:].tolist(),
                "greedy_text": tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)}
        top = logits.topk(2).values
        case["top2_gap"] = float(top[0] - top[1])
        if i == 0:  # every 7th vocabulary entry and the 50 largest (the whole row is 49152)
            sample = sorted(set(range(0, logits.shape[0], 7)) | set(logits.topk(50).indices.tolist()))
            case["last_logits_ids"] = sample
            case["last_logits"] = [round(float(logits[j]), 5) for j in sample]
        print(repr(case["greedy_text"]), case["top2_gap"])
        smol["cases"].append(case)
    texts = ["Hello world", "In 2024, 1,234.56 apples cost $7.", "  leading and trailing spaces  ",
             "tabs\tand\nnew lines\n\n", "caf\u00e9 na\u00efve \u00fcber", "\u65e5\u672c\u8a9e\u306e\u6587",
             "emoji \U0001F600 ok", "<|im_start|>user\nhi<|im_end|>", "don't we'll they're I'm",
             "\u0663\u0664 arabic digits \u00bd", "x" * 50, ""]
    smol["tokenizer"] = [{"text": t, "ids": tok(t).input_ids,
                          "decoded": tok.decode(tok(t).input_ids, skip_special_tokens=False)} for t in texts]
    with open(os.path.join(OUT, "smollm2_reference.json"), "w") as f:
        json.dump(smol, f)


if __name__ == "__main__":
    sys.exit(main())
