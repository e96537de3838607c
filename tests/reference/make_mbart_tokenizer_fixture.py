#!/usr/bin/env python3
"""MBart and MBart-50 tokenization and T5 with only a tokenizer.json, end to end behind
summarization::TextModel (tests/summarization/test_mbart_tokenizer.cpp).

Versions: torch 1.13 (Debian), transformers 4.46.3, tokenizers 0.20.3, sentencepiece 0.2.x,
protobuf (for the slow -> fast conversion), in the /tmp/peft-ref venv.

No real MBart can be downloaded here, so two SentencePiece models are trained on Debian's
license texts (the corpus and the small normalization rule table of
make_sentencepiece_fixture.py) with sentencepiece's default special ids, the layout of
fairseq's sentencepiece.bpe.model (<unk> 0, <s> 1, </s> 2, no <pad>), and tiny random MBart
checkpoints are made whose vocabularies are what transformers' tokenizers build on them
(fairseq offset, language codes after the pieces, <mask> last).

Writes, under tests/fixtures/text/mbart/:
  cc25/       MBartTokenizer (mbart-large-cc25 layout: tokens </s> src_lang) on a BPE model,
              vocab 600, src_lang en_XX, tgt_lang ro_RO (save_pretrained: sentencepiece.bpe.model,
              tokenizer_config.json, special_tokens_map.json); MBart config with
              decoder_start_token_id 2 and forced_bos_token_id = ro_RO's id; float16 weights.
  m50/        MBart50Tokenizer (src_lang tokens </s>) on a unigram model, vocab 600, src_lang
              en_XX; no forced_bos_token_id in the config (the test sets the target language).
  m50_fast/   only tokenizer.json (MBart50TokenizerFast converted from m50's files with
              src_lang fr_XX, so its post_processor template holds fr_XX); the test puts it
              beside m50's config.json, generation_config.json and model.safetensors
  t5_fast/    a tiny T5 whose tokenizer is only tokenizer.json; the test copies in
              tests/fixtures/text/sentencepiece/t5_tokenizer/tokenizer.json (not duplicated here)
  reference.json  per directory: ids of test strings (with and without the special-token
              layout; strings holding special tokens are parsed as transformers does), the
              TextModel prompt ids for TEXT, and generate() ids (greedy; beam 2 with
              no_repeat_ngram_size 1; 10 new tokens) and their text (decode with and without
              skip_special_tokens, no clean-up).

Usage (repository root): /tmp/peft-ref/bin/python tests/reference/make_mbart_tokenizer_fixture.py
"""
import importlib.util
import json
import os
import shutil
import sys
import tempfile

import sentencepiece as spm
import torch
import transformers
import transformers.generation.utils
from transformers import (MBart50Tokenizer, MBart50TokenizerFast, MBartConfig, MBartForConditionalGeneration,
                          MBartTokenizer, T5Config, T5ForConditionalGeneration, T5TokenizerFast)

transformers.generation.utils.is_fsdp_managed_module = lambda module: False  # torch 1.13 + Python 3.11

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "text", "mbart")
T5_JSON = os.path.join(HERE, "..", "fixtures", "text", "sentencepiece", "t5_tokenizer", "tokenizer.json")
TEXT = ("2to3 is a Python program that reads Python 2.x source code and applies a series of fixers "
        "to transform it into valid Python 3.x code. Café naïve résumé — Ünïcödé ＡＢＣ ﬁne.")
STRINGS = [
    "Hello world",
    "This program is free software; you can redistribute it and/or modify it.",
    "  leading and   internal spaces  ",
    "café naïve résumé Ångström",
    "ＡＢＣ ﬁnance ①…",
    "日本語 Привет 😀",
    "",
]
# "ids": special tokens in the text parsed, as transformers' tokenizers do by default;
# "split_ids": read as text (split_special_tokens=True).
SPECIAL_STRINGS = [
    "a <mask> b",
    "x  <mask>y",
    "x\u2003\u3000<mask>\u2003y",  # whitespace that SentencePiece keeps, stripped before <mask>
    "en_XX ro_RO text de_DE</s>",
    "<s>start<unk> <pad>",
]
CALLS = [dict(num_beams=1, do_sample=False, max_new_tokens=10), dict(num_beams=2, do_sample=False, max_new_tokens=10, no_repeat_ngram_size=1)]


def sentencepiece_fixture():
    spec = importlib.util.spec_from_file_location("spf", os.path.join(HERE, "make_sentencepiece_fixture.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def train(workdir, name, **kw):
    spm.SentencePieceTrainer.train(input="corpus.txt", model_prefix=name, input_sentence_size=0,
                                   shuffle_input_sentence=False, num_threads=1, minloglevel=2,
                                   normalization_rule_tsv="rules.tsv", **kw)
    return os.path.join(workdir, name + ".model")


def spread(model, seed, std=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_((1.0 + 0.2 * torch.randn(p.shape, generator=g)) if "norm" in name
                    else std * torch.randn(p.shape, generator=g))


def save_half(model, d):
    model.half().save_pretrained(d, safe_serialization=True)
    return type(model).from_pretrained(d, torch_dtype=torch.float32).eval()


def generate(model, ids, decode, **extra):
    out = []
    for kw in CALLS:
        with torch.no_grad():
            r = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                               output_scores=True, return_dict_in_generate=True, **kw, **extra)
        seq = r.sequences[0].tolist()
        gap = min(float((s[0].topk(2).values[0] - s[0].topk(2).values[1])) for s in r.scores)
        print("  ", kw, seq, "smallest top-2 gap %.4f" % gap)
        out.append({"kwargs": {**kw, **extra}, "decoder_start_token_id": seq[0], "tokens": seq[1:],
                    "text": decode(seq),
                    "text_with_specials": decode(seq, False)})
    return out


def strings(tok):
    plain = [{"text": s, "ids": tok(s, add_special_tokens=False).input_ids, "with_specials": tok(s).input_ids}
             for s in STRINGS]
    special = [{"text": s, "ids": tok(s, add_special_tokens=False).input_ids,
                "split_ids": tok(s, add_special_tokens=False, split_special_tokens=True).input_ids}
               for s in SPECIAL_STRINGS]
    return plain, special


def mbart(vocab, seed, **cfg):
    model = MBartForConditionalGeneration(MBartConfig(
        vocab_size=vocab, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=128,
        scale_embedding=True, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, **cfg))
    spread(model, seed, std=1.0)
    return model


def tokenizer_entry(tok, d, decode_tok=None):
    plain, special = strings(tok)
    dec = decode_tok or tok
    ids = tok(TEXT).input_ids
    return {"dir": os.path.basename(d), "vocab_size": len(tok), "strings": plain, "special_strings": special,
            "text": TEXT, "input_ids": ids,
            "decode": lambda s, skip=True: dec.decode(s, skip_special_tokens=skip, clean_up_tokenization_spaces=False)}


def main():
    spf = sentencepiece_fixture()
    ref = {"transformers": transformers.__version__, "tokenizers": __import__("tokenizers").__version__,
           "sentencepiece": spm.__version__}
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        with open("corpus.txt", "w", encoding="utf-8") as f:
            f.write("\n".join(spf.corpus_lines()) + "\n")
        with open("rules.tsv", "w") as f:
            for src, dst in spf.BPE_RULES:
                f.write("%s\t%s\n" % (src, dst))
        bpe = train(work, "bpe", model_type="bpe", vocab_size=600)
        uni = train(work, "unigram", model_type="unigram", vocab_size=600)
        os.chdir(cwd)

        # MBart (cc25 layout) on the BPE model.
        d = os.path.join(OUT, "cc25")
        tok = MBartTokenizer(vocab_file=bpe, src_lang="en_XX", tgt_lang="ro_RO")
        tok.save_pretrained(d)
        e = tokenizer_entry(tok, d)
        ro = tok.lang_code_to_id["ro_RO"]
        model = save_half(mbart(len(tok), 11, forced_bos_token_id=ro), d)
        print("cc25", e["input_ids"])
        e["generate"] = generate(model, e["input_ids"], e.pop("decode"))
        e["forced_bos_token_id"] = ro
        ref["cc25"] = e

        # MBart-50 on the unigram model; the target language is the caller's.
        d = os.path.join(OUT, "m50")
        tok = MBart50Tokenizer(vocab_file=uni, src_lang="en_XX")
        tok.save_pretrained(d)
        e = tokenizer_entry(tok, d)
        de = tok.lang_code_to_id["de_DE"]
        model = save_half(mbart(len(tok), 12), d)
        print("m50", e["input_ids"])
        e["generate"] = generate(model, e["input_ids"], e.pop("decode"), forced_bos_token_id=de)
        # Another source language: its code leads the input.
        tok.src_lang = "ja_XX"
        e["input_ids_ja_XX"] = tok(TEXT).input_ids
        e["target_lang"] = "de_DE"
        ref["m50"] = e

        # The same with only tokenizer.json (converted, src_lang fr_XX in its template).
        d = os.path.join(OUT, "m50_fast")
        os.makedirs(d)
        fast = MBart50TokenizerFast.from_pretrained(os.path.join(OUT, "m50"), src_lang="fr_XX", from_slow=True)
        with tempfile.TemporaryDirectory() as t:
            fast.save_pretrained(t)
            shutil.copy(os.path.join(t, "tokenizer.json"), d)
        fast = MBart50TokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), src_lang="fr_XX")
        e = tokenizer_entry(fast, d)
        print("m50_fast", e["input_ids"])
        e["generate"] = generate(model, e["input_ids"], e.pop("decode"), forced_bos_token_id=de)
        e["target_lang"] = "de_DE"
        fast.src_lang = "ja_XX"
        e["input_ids_ja_XX"] = fast(TEXT).input_ids
        ref["m50_fast"] = e

    # T5 with only tokenizer.json.
    d = os.path.join(OUT, "t5_fast")
    tok = T5TokenizerFast(tokenizer_file=T5_JSON, extra_ids=0)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32, num_layers=2,
                                             num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                             decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    spread(t5, 13, std=0.3)
    t5 = save_half(t5, d)
    e = tokenizer_entry(tok, d)
    e["input_ids"] = tok("summarize: " + TEXT).input_ids
    print("t5_fast", e["input_ids"])
    e["generate"] = generate(t5, e["input_ids"], e.pop("decode"))
    ref["t5_fast"] = e

    with open(os.path.join(OUT, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    sys.exit(main())
