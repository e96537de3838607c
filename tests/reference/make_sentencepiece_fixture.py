#!/usr/bin/env python3
"""Trains small real SentencePiece models and records what sentencepiece does with them.

Made with sentencepiece 0.2.3 (pip, in the /tmp/peft-ref venv: Python 3.11); the optional
tokenizer.json part with transformers 4.46.3 and tokenizers 0.20.3.

    /tmp/peft-ref/bin/python tests/reference/make_sentencepiece_fixture.py

No real T5 / MBart model can be downloaded here, so the models are trained on English
text that every Debian system has: /usr/share/common-licenses/* and the first
/usr/share/doc/*/copyright files (sorted by path, about 1.5 MB in all). Another
system's files give other models; the committed ones are the reference.

Outputs in tests/fixtures/text/sentencepiece/:
  unigram_nmt.model   unigram, vocab 1000, the default nmt_nfkc normalizer (precompiled
                      charsmap, ~240 KB) and T5's special ids (pad 0, eos 1, unk 2, no
                      bos), byte_fallback off: the layout of T5's spiece.model
  bpe.model           BPE, vocab 1000 (MBart's sentencepiece.bpe.model is BPE with
                      <s> 0, <pad> 1, </s> 2, <unk> 3); normalized with a small custom
                      rule table (BPE_RULES below, compiled by the trainer's
                      normalization_rule_tsv: full-width letters, ligatures, tab/newline, a two-code-point
                      rule and a longer rule overlapping a shorter one, deletion of
                      U+200B), so that the charsmap path runs on a second, different
                      trie without a second 240 KB blob
  unigram_bytes.model unigram, vocab 600, byte_fallback, user_defined_symbols
                      (<sep>, [MASK], http, "ab c" is not allowed so none with spaces),
                      a control symbol <ctrl>, identity normalizer (no charsmap) and
                      remove_extra_whitespaces off
  bpe_suffix.model    BPE, vocab 400, identity normalizer, treat_whitespace_as_suffix,
                      and a denormalizer (decode rewrites "Q" as ", ")
  reference.json      for every model: the vocabulary (pieces, types, the first 50 scores), the
                      special ids, and for every test string the normalized text, ids,
                      pieces and decode(ids); then decode() of hand-made id lists
                      (control and unknown ids, byte pieces making invalid UTF-8,
                      leading whitespace pieces)
  unigram_rules.model unigram, vocab 800, T5's special ids, the BPE model's small rule
                      table as charsmap
  t5_tokenizer/tokenizer.json
                      transformers' T5TokenizerFast(vocab_file=unigram_rules.model)
                      .save_pretrained (extra_ids=0): a Unigram model with a Precompiled
                      normalizer and a Metaspace pre-tokenizer, what T5's tokenizer.json
                      holds (converting unigram_nmt.model would make a 385 KB file, the
                      nmt_nfkc charsmap in base64); reference.json's "hf_t5" lists
                      what tokenizers' Tokenizer does with it: ids and tokens (no </s>
                      added) and decode (with and without skip_special_tokens) for the
                      test strings, and decode of id lists holding special ids
"""
import glob
import json
import os
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "text", "sentencepiece")

TEST_STRINGS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "This program is free software; you can redistribute it and/or modify it.",
    "Permission is hereby granted, free of charge, to any person obtaining a copy",
    "  leading spaces",
    "trailing spaces   ",
    "   both   ends   ",
    "multiple    internal     spaces",
    " ",
    "     ",
    "tab\tseparated\tvalues",
    "line one\nline two\r\nline three",
    "\t\n mixed \t whitespace \n\t",
    "ＡＢＣ ｄｅｆ １２３",
    "ﬁnance ﬂow ﬀ",
    "① ② ⑩ ㍿ ㌔ ™ ½",
    "café naïve résumé",
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301",
    "Ångström Ω K",
    "日本語のテキスト",
    "中文测试，标点。",
    "한국어 텍스트",
    "Привет, мир!",
    "Γειά σου Κόσμε",
    "emoji 😀 🎉 👍🏽 done",
    "☃ ❄ ♞ ⌘",
    "\u200bzero\u200bwidth\u200b",
    "non\u00a0breaking\u3000ideographic",
    "1234567890 3.14159 1,000,000 2024-01-31",
    "GPL-3.0-or-later (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>",
    "e-mail: someone@example.org, URL: http://www.gnu.org/licenses/",
    "Supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "x" * 300,
    "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND",
    "don't won't it's they're",
    "<s> </s> <unk> <pad> <sep> [MASK] <ctrl>",
    "a<sep>b [MASK]c http://x <sep><sep>",
    "https and http and httpd",
    "▁already▁escaped ▁",
    "\u2581",
    "...... …",
    "a...b..c.d",
    "\x00\x01\x7f control",
    "Ⅻ ⅻ ¼ ² ₃ ㎏ ㏄",
    "ｶﾀｶﾅ ﾊﾟ",
    "Ǆ ǅ ǆ Ĳ ĳ ŉ",
    "fi",
    "\ufeffBOM at start",
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗͉ͨ",
    "𝐁𝐨𝐥𝐝 𝔉𝔯𝔞𝔨𝔱𝔲𝔯",
    "mixed ＡＢＣ and ABC and ａｂｃ",
    "Copyright © 1989, 1991 Free Software Foundation, Inc.",
    "Q QQ Quiet",
    "the the the the the the the the",
    "A",
    "a b c d e f g",
    "\ufffd replacement",
    "end with newline\n",
]

# Invalid UTF-8 (bytes only): sentencepiece replaces each bad byte by U+FFFD.
INVALID_UTF8 = [
    b"abc\xffdef",
    b"\xe6\x88 cut",
    b"caf\xc3",
    b"\xed\xa0\x80 surrogate",
    b"\xc0\xaf overlong",
    b"ok \xf0\x9f\x98",
]

BPE_RULES = [
    # source code points (hex, space separated) <tab> target code points
    *[("%X" % (0xFF21 + i), "%X" % (0x41 + i)) for i in range(26)],  # Ａ-Ｚ -> A-Z
    *[("%X" % (0xFF41 + i), "%X" % (0x61 + i)) for i in range(26)],  # ａ-ｚ -> a-z
    *[("%X" % (0xFF10 + i), "%X" % (0x30 + i)) for i in range(10)],  # ０-９ -> 0-9
    ("FB01", "66 69"),  # ﬁ -> fi
    ("FB02", "66 6C"),  # ﬂ -> fl
    ("9", "20"),  # tab -> space
    ("A", "20"),  # newline -> space
    ("D A", "20"),  # CR LF -> one space (two code points)
    ("3000", "20"),  # ideographic space
    ("A0", "20"),  # no-break space
    ("65 301", "E9"),  # e + combining acute -> é
    ("2E 2E 2E", "2026"),  # ... -> …
    ("2E 2E 2E 2E 2E 2E", "2026 2026"),  # longer rule overlapping the shorter one
    ("2460", "31"),  # ① -> 1
    ("200B", ""),  # zero-width space deleted
]


def corpus_lines():
    files = sorted(glob.glob("/usr/share/common-licenses/*"))
    files += sorted(glob.glob("/usr/share/doc/*/copyright"))[:400]
    lines = []
    total = 0
    for path in files:
        if os.path.isdir(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        for line in text.splitlines():
            line = line.strip()
            if line:
                lines.append(line)
                total += len(line.encode())
        if total > 1_500_000:
            break
    return lines


def train(workdir, name, **kwargs):
    # Relative paths (run inside workdir): the trainer_spec stored in the model records
    # them, and a random temporary directory name would make every run's files differ.
    prefix = os.path.join(workdir, name)
    spm.SentencePieceTrainer.train(
        input="corpus.txt",
        model_prefix=name,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=1,
        minloglevel=2,
        **kwargs,
    )
    with open(prefix + ".model", "rb") as f:
        data = f.read()
    with open(os.path.join(OUT, name + ".model"), "wb") as f:
        f.write(data)
    return spm.SentencePieceProcessor(model_file=os.path.join(OUT, name + ".model"))


def describe(sp):
    types = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i):
            types.append("control")
        elif sp.is_unknown(i):
            types.append("unknown")
        elif sp.is_byte(i):
            types.append("byte")
        elif sp.is_unused(i):
            types.append("unused")
        else:
            types.append("normal")  # normal or user-defined: the Python API cannot tell
    return {
        "vocab_size": sp.get_piece_size(),
        "unk_id": sp.unk_id(),
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "pad_id": sp.pad_id(),
        "pieces": [sp.id_to_piece(i) for i in range(sp.get_piece_size())],
        "scores_head": [sp.get_score(i) for i in range(min(50, sp.get_piece_size()))],
        # one letter per id: N normal or user-defined, U unknown, C control, B byte, X unused
        "types": "".join(t[0].upper() if t != "unused" else "X" for t in types),
    }


def encodings(sp):
    cases = []
    for text in TEST_STRINGS:
        ids = sp.encode(text)
        cases.append({
            "text": text,
            "normalized": sp.normalize(text),
            "ids": ids,
            "pieces": sp.encode(text, out_type=str),
            "decoded": sp.decode(ids),
        })
    for raw in INVALID_UTF8:
        ids = sp.encode(raw)
        cases.append({
            "bytes_hex": raw.hex(),
            "ids": ids,
            "pieces": sp.encode(raw, out_type=str),
            "decoded": sp.decode(ids),
        })
    return cases


def decode_cases(sp, extra):
    n = sp.get_piece_size()
    lists = [
        [],
        [sp.unk_id()],
        [sp.unk_id(), sp.unk_id()],
        [sp.piece_to_id("\u2581"), sp.piece_to_id("\u2581")],
        [sp.piece_to_id("\u2581"), sp.piece_to_id("\u2581the")],
        list(range(min(n, 40))),
        list(range(n - 30, n)),
    ]
    for special in (sp.bos_id(), sp.eos_id(), sp.pad_id()):
        if special >= 0:
            lists.append([special] + sp.encode("Hello world") + [special])
    lists += extra
    out = []
    for ids in lists:
        out.append({"ids": ids, "decoded": sp.decode(ids)})
    return out


def compact_json(value, indent=0):
    """JSON with objects and lists of objects broken over lines, everything else inline."""
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [pad + json.dumps(k, ensure_ascii=False) + ": " + compact_json(v, indent + 1)
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = [pad + json.dumps(v, ensure_ascii=False) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(value, ensure_ascii=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    ref = {"sentencepiece_version": spm.__version__, "models": {}}
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        lines = corpus_lines()
        with open(os.path.join(workdir, "corpus.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        rules_path = os.path.join(workdir, "rules.tsv")
        with open(rules_path, "w") as f:
            for src, dst in BPE_RULES:
                f.write(src + "\t" + dst + "\n")
        ref["corpus_bytes"] = sum(len(l.encode()) + 1 for l in lines)

        models = {}
        models["unigram_nmt"] = train(
            workdir, "unigram_nmt", model_type="unigram", vocab_size=1000,
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
        models["bpe"] = train(
            workdir, "bpe", model_type="bpe", vocab_size=1000,
            bos_id=0, pad_id=1, eos_id=2, unk_id=3,
            normalization_rule_tsv="rules.tsv")
        models["unigram_bytes"] = train(
            workdir, "unigram_bytes", model_type="unigram", vocab_size=600,
            byte_fallback=True, user_defined_symbols=["<sep>", "[MASK]", "http"],
            control_symbols=["<ctrl>"], normalization_rule_name="identity",
            remove_extra_whitespaces=False, character_coverage=0.98)
        models["unigram_rules"] = train(
            workdir, "unigram_rules", model_type="unigram", vocab_size=800,
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1, normalization_rule_tsv="rules.tsv")
        with open("denorm.tsv", "w") as f:
            f.write("51\t2C 20\n")  # decode writes every "Q" as ", "
        models["bpe_suffix"] = train(
            workdir, "bpe_suffix", model_type="bpe", vocab_size=400,
            normalization_rule_name="identity", treat_whitespace_as_suffix=True,
            denormalization_rule_tsv="denorm.tsv")

        os.chdir(cwd)

    for name, sp in models.items():
        extra = []
        if name == "unigram_bytes":
            b = lambda x: sp.piece_to_id("<0x%02X>" % x)
            extra = [
                [b(0xE6), b(0x97), b(0xA5)],  # 日 from three byte pieces
                [b(0xE6), b(0x97)],  # truncated: two U+FFFD
                [b(0xFF), sp.piece_to_id("\u2581the"), b(0x41)],
                [b(0xC3), b(0xA9), b(0xC3)],
                [sp.piece_to_id("<ctrl>"), sp.piece_to_id("<sep>"), sp.piece_to_id("\u2581the")],
                [b(0x20), sp.piece_to_id("\u2581the")],
                [sp.piece_to_id("\u2581"), b(0x41), sp.piece_to_id("\u2581the")],
            ]
        if name == "bpe_suffix":
            extra = [[sp.piece_to_id("\u2581"), sp.piece_to_id("the\u2581")]]
        entry = describe(sp)
        entry["file"] = name + ".model"
        entry["file_bytes"] = os.path.getsize(os.path.join(OUT, name + ".model"))
        entry["encode"] = encodings(sp)
        entry["decode"] = decode_cases(sp, extra)
        ref["models"][name] = entry

    # Hugging Face's conversion of the T5-like model (what T5's tokenizer.json holds).
    try:
        import transformers
        from transformers import T5TokenizerFast

        tok = T5TokenizerFast(vocab_file=os.path.join(OUT, "unigram_rules.model"), extra_ids=0)
        tok_dir = os.path.join(OUT, "t5_tokenizer")
        tok.save_pretrained(tok_dir)
        for extra_file in ("special_tokens_map.json", "tokenizer_config.json", "spiece.model"):
            p = os.path.join(tok_dir, extra_file)
            if os.path.exists(p):
                os.remove(p)
        backend = tok.backend_tokenizer
        hf_cases = []
        for t in TEST_STRINGS:
            enc = backend.encode(t, add_special_tokens=False)
            hf_cases.append({"text": t, "ids": enc.ids, "tokens": enc.tokens,
                             "decoded": backend.decode(enc.ids, skip_special_tokens=True),
                             "decoded_special": backend.decode(enc.ids, skip_special_tokens=False)})
        hello = backend.encode("Hello world", add_special_tokens=False).ids
        hf_decode = []
        for ids in ([0] + hello + [1], [2, 2] + hello, hello + [3, 3], [3, 3] + hello):
            hf_decode.append({"ids": ids, "decoded": backend.decode(ids, skip_special_tokens=True),
                              "decoded_special": backend.decode(ids, skip_special_tokens=False)})
        ref["hf_t5"] = {
            "transformers_version": transformers.__version__,
            "tokenizers_version": __import__("tokenizers").__version__,
            "encode": hf_cases,
            "decode": hf_decode,
        }
    except ImportError:
        pass

    with open(os.path.join(OUT, "reference.json"), "w", encoding="utf-8") as f:
        f.write(compact_json(ref) + "\n")
    for name in sorted(os.listdir(OUT)):
        p = os.path.join(OUT, name)
        if os.path.isfile(p):
            print(name, os.path.getsize(p))


if __name__ == "__main__":
    main()
