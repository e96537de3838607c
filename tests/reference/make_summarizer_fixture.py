#!/usr/bin/env python3
"""End-to-end fixtures for the encoder-decoder summarizers behind summarization::TextModel
(tests/summarization/test_seq2seq_summarizer.cpp): a tiny random T5 and a tiny random BART
whose vocabularies are real tokenizers', so that text -> ids -> generate() -> ids -> text
is checked against transformers as a whole.

Versions: torch 1.13 (Debian), transformers 4.46.3, tokenizers 0.20.3, sentencepiece 0.2.x,
in the /tmp/peft-ref venv.

Writes, under tests/fixtures/models/summarizers/:
  t5/        T5 v1.1-style (gated-gelu, untied), vocabulary 1000 = the SentencePiece model
             tests/fixtures/text/sentencepiece/unigram_nmt.model (T5's ids: pad 0, eos 1,
             unk 2), which the test copies in as spiece.model (not duplicated here);
             float16 weights.
  bart/      BART (post-LN), vocabulary 400 = a byte-level BPE trained here with tokenizers
             on Debian's license texts (tokenizer.json with <s> <pad> </s> <unk> first and
             RobertaProcessing, tokenizer_config.json); float16 weights.
  reference.json  for each: the input text, the ids transformers' tokenizer gives
             (T5Tokenizer on the .model with "summarize: "; BART's fast tokenizer), and
             generate() (greedy, beam 2, beam 2 with no_repeat_ngram_size 1; 12 new tokens) output ids and their text
             decoded by sentencepiece / tokenizers without clean-up.

Usage (repository root): /tmp/peft-ref/bin/python tests/reference/make_summarizer_fixture.py
"""
import glob
import json
import os
import shutil
import sys

import torch
import transformers
import transformers.generation.utils
from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

transformers.generation.utils.is_fsdp_managed_module = lambda module: False  # torch 1.13 + Python 3.11

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "models", "summarizers")
SPM = os.path.join(HERE, "..", "fixtures", "text", "sentencepiece", "unigram_nmt.model")
TEXT = ("2to3 is a Python program that reads Python 2.x source code and applies a series of fixers "
        "to transform it into valid Python 3.x code. The standard library contains a rich set of fixers.")
CALLS = [dict(num_beams=1, do_sample=False, max_new_tokens=12), dict(num_beams=2, do_sample=False, max_new_tokens=12),
         dict(num_beams=2, do_sample=False, max_new_tokens=12, no_repeat_ngram_size=1)]


def spread(model, seed, std=0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_((1.0 + 0.2 * torch.randn(p.shape, generator=g)) if "norm" in name
                    else std * torch.randn(p.shape, generator=g))


def save_half(model, d):
    shutil.rmtree(d, ignore_errors=True)
    model.half().save_pretrained(d, safe_serialization=True)
    return type(model).from_pretrained(d, torch_dtype=torch.float32).eval()


def run(model, ids, decode, extra):
    out = []
    for kw in CALLS:
        with torch.no_grad():
            seq = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 **kw)[0].tolist()
        out.append({"kwargs": kw, "tokens": seq[1:], "text": decode(seq)})
    return {"text": TEXT, "input_ids": ids, "generate": out, **extra}


def main():
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Tokenizer

    ref = {"transformers": transformers.__version__}
    # T5
    sp = spm.SentencePieceProcessor(model_file=SPM)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=sp.vocab_size(), d_model=16, d_kv=4, d_ff=32, num_layers=2,
                                             num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                             decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    spread(t5, 3)
    t5 = save_half(t5, os.path.join(OUT, "t5"))
    tok = T5Tokenizer(vocab_file=SPM, legacy=True, extra_ids=0)
    ids = tok("summarize: " + TEXT).input_ids
    ref["t5"] = run(t5, ids, lambda s: sp.decode([i for i in s if i not in (0, 1)]), {"spm_ids": sp.encode(TEXT)})

    # BART with a byte-level BPE trained on license texts.
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    files = sorted(glob.glob("/usr/share/common-licenses/*"))
    bpe.train(files, trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    d = os.path.join(OUT, "bart")
    bart = BartForConditionalGeneration(BartConfig(vocab_size=bpe.get_vocab_size(), d_model=16, encoder_layers=2,
                                                   decoder_layers=2, encoder_attention_heads=4,
                                                   decoder_attention_heads=4, encoder_ffn_dim=32, decoder_ffn_dim=32,
                                                   max_position_embeddings=256))
    spread(bart, 4, std=0.5)
    bart = save_half(bart, d)
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(d)
    for extra in ("special_tokens_map.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    ids = fast(TEXT).input_ids
    ref["bart"] = run(bart, ids, lambda s: bpe.decode(s, skip_special_tokens=True), {})
    for k in ("t5", "bart"):
        print(k, ref[k]["input_ids"][:12], [g["tokens"] for g in ref[k]["generate"]])
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
