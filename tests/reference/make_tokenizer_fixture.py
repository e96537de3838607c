#!/usr/bin/env python3
"""Writes the Whisper tokenizer fixtures with huggingface `tokenizers` (no torch).

    pip install tokenizers
    python3 tests/reference/make_tokenizer_fixture.py

Outputs in tests/fixtures/text/:
  whisper_tiny_en.json   what tokenizers does with models/default/whisper-tiny.en/
                         tokenizer.json: encode (no special tokens added) of English,
                         punctuation, contractions, whitespace runs, non-Latin scripts,
                         emoji and the LibriVox transcripts; the GPT-2 pre-tokenizer's
                         pieces; decode(skip_special_tokens=True) of id lists, some
                         splitting a multibyte character or holding timestamp ids;
                         decode_with_timestamps as faster-whisper builds it; the special
                         ids; non_speech_tokens.
  multilingual_mini/tokenizer.json
                         a hand-made byte-level BPE (256 byte tokens, a few merges) with
                         Whisper's multilingual special-token layout (ids as in
                         openai/whisper-tiny, only five languages), and
  multilingual_mini.json tokenizers' encodings of a few texts with it.

non_speech_tokens: openai-whisper's Tokenizer.non_speech_tokens needs tiktoken, which
downloads its BPE ranks from the network (unreachable here). The rule in openai's
whisper/tokenizer.py is re-applied instead, with tokenizers' encode of the same GPT-2
vocabulary (tiktoken's gpt2 ranks and this tokenizer.json are the same BPE): the first
token of " -" and " '", every listed symbol that encodes to one token alone or after a
space, and the first token of each music symbol U+2669..U+266F alone or after a space.
"""
import json
import os

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "text")
MODEL = os.path.join(ROOT, "models", "default", "whisper-tiny.en", "tokenizer.json")
LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox/transcription"

TEXTS = [
    "",
    "Hello, world!",
    " And so, my fellow Americans: ask not what your country can do for you.",
    "I don't know, I'll see; we've been there. They're sure he's fine, you'd think I'm right.",
    "DON'T SHOUT, IT'S LOUD. 'quoted' and ''double'' ' s",
    "Numbers: 3.14159, 2024-06-01, 1,000,000 and abc123def 42nd 7th.",
    "two  spaces,   three spaces,    four; trailing   ",
    "line one\nline two\n\nafter a blank line\r\nwindows\ttab\t\tdouble tab",
    "   leading spaces",
    "\n\n\n",
    " ",
    "  ",
    "a\u00a0b\u3000c\u2003d\u0085e",
    "Ça va? L'été à Noël, où êtes-vous? Déjà vu. e\u0301 combining",
    "Größe, Straße, Übermäßig schön!",
    "我们今天去公园散步。你好，世界！",
    "日本語のテキスト、カタカナとひらがな。",
    "Привет, как дела? Всё хорошо.",
    "한국어 텍스트입니다",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "ภาษาไทย",
    "Emoji: 😀 👍🏽 👨\u200d👩\u200d👧 🇫🇷 ❤️",
    "♪♪ la la la ♪♪",
    "♪ Never gonna give you up ♪ ♫♬",
    "[MUSIC] (applause) <<laughs>> -- --- ((whispers)) {{note}} 「quote」『title』",
    "Hyphen-ated, it's - a - test; 'tis the season. \"Quoted\" text.",
    "x²+y³=z½ Ⅻ ①②",
    "$100 at 5% #hashtag @user_name ~tilde `code` |pipe| \\backslash/ ^caret",
    "Mixed123Numbers456and789",
    "...!!!???,,,;;;",
    # Not "<|endoftext|>": tokenizers matches added tokens in the text, WhisperTokenizer
    # encodes them literally as openai's prompts do (checked in the C++ test instead).
]


def librivox_texts():
    texts = []
    with open(LIBRIVOX, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            # "<s> words ... </s> (utterance-id)"
            words = [w for w in words if w not in ("<s>", "</s>") and not w.startswith("(")]
            texts.append(" " + " ".join(words))
    return texts


def byte_decoder():
    # GPT-2's byte <-> unicode table, to turn ByteLevel pieces back into raw text.
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, n = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + n)] = b
            n += 1
    return table


def main():
    tok = Tokenizer.from_file(MODEL)
    texts = TEXTS + librivox_texts()
    dec = byte_decoder()

    encode = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]
    pre = []
    for t in texts[:20]:
        pieces = tok.pre_tokenizer.pre_tokenize_str(t)
        pre.append({"text": t, "pieces": [bytes(dec[c] for c in p).decode("utf-8") for p, _ in pieces]})

    vocab = tok.get_vocab()
    eot = vocab["<|endoftext|>"]
    sot = vocab["<|startoftranscript|>"]
    no_ts = vocab["<|notimestamps|>"]
    ts_begin = no_ts + 1

    def ts(i):
        return ts_begin + i

    byte_to_char = {b: c for c, b in dec.items()}

    def byte_ids(bs):
        return [tok.token_to_id(byte_to_char[b]) for b in bs]

    def enc(s):
        return tok.encode(s, add_special_tokens=False).ids

    hello = tok.encode(" Hello world. 我们", add_special_tokens=False).ids
    chinese = tok.encode("我们今天", add_special_tokens=False).ids
    # A multibyte character split over byte tokens: keep only the first byte token(s).
    e_acute = tok.encode("é", add_special_tokens=False).ids
    emoji = tok.encode("😀", add_special_tokens=False).ids
    id_lists = [
        [],
        hello,
        [sot, no_ts] + hello + [eot],
        [sot, ts(0)] + hello + [ts(54), ts(60)] + chinese + [ts(1500), eot],
        chinese[:1],
        chinese[:-1],
        emoji[:1] if len(emoji) > 1 else emoji,
        emoji[:-1] + tok.encode(" ok", add_special_tokens=False).ids,
        e_acute,
        # Single-byte tokens making invalid or incomplete UTF-8: one U+FFFD per maximal
        # invalid subpart.
        byte_ids(b"\xc3\xc3\xa9"),
        byte_ids(b"\xf0\x9f\x98"),
        byte_ids(b"\xe6\x88 x\xff\xed\xa0\x80\xf4\x90\xc0\xaf"),
        byte_ids(b"\xe6") + enc(" a") + byte_ids(b"\x88\x91"),
    ] + [e["ids"] for e in encode[1:8]]

    def decode_with_timestamps(ids):
        # faster-whisper's Tokenizer.decode_with_timestamps: decode the runs between
        # timestamps with skip_special_tokens, write timestamps as <|s.cc|>.
        out, run = "", []
        for i in ids:
            if i >= ts_begin:
                out += tok.decode(run) + f"<|{(i - ts_begin) * 0.02:.2f}|>"
                run = []
            else:
                run.append(i)
        return out + tok.decode(run)

    decode = [
        {"ids": ids, "text": tok.decode(ids, skip_special_tokens=True), "with_timestamps": decode_with_timestamps(ids)}
        for ids in id_lists
    ]

    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
    misc = set("♩♪♫♬♭♮♯")
    ns = {enc(" -")[0], enc(" '")[0]}
    for s in symbols + list(misc):
        for ids in (enc(s), enc(" " + s)):
            if len(ids) == 1 or s in misc:
                ns.add(ids[0])

    out = {
        "source": "models/default/whisper-tiny.en/tokenizer.json via tokenizers " + __import__("tokenizers").__version__,
        "model_vocab_size": 51864,
        "special": {
            "eot": eot,
            "sot": sot,
            "sot_lm": vocab["<|startoflm|>"],
            "sot_prev": vocab["<|startofprev|>"],
            "no_speech": vocab["<|nocaptions|>"],
            "no_timestamps": no_ts,
            "timestamp_begin": ts_begin,
            "translate": vocab["<|translate|>"],
            "transcribe": vocab["<|transcribe|>"],
            "en": vocab["<|en|>"],
            "haw": vocab["<|haw|>"],
            "su": vocab["<|su|>"],
        },
        "encode": encode,
        "pre_tokenize": pre,
        "decode": decode,
        "non_speech_tokens": sorted(ns),
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "whisper_tiny_en.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")

    write_multilingual_mini(dec)


def write_multilingual_mini(dec):
    byte_chars = sorted(dec, key=lambda c: dec[c])  # id = byte value
    vocab = {c: i for i, c in enumerate(byte_chars)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("o", "n"), ("Ġ", "b"), ("Ġb", "on"), ("j", "o"),
              ("jo", "u"), ("jou", "r"), ("Ġ", "m"), ("Ġm", "on"), ("Ġmon", "d"), ("Ġmond", "e"), ("e", "r")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    specials = [(50257, "<|endoftext|>"), (50258, "<|startoftranscript|>"), (50259, "<|en|>"),
                (50260, "<|zh|>"), (50261, "<|de|>"), (50265, "<|fr|>"), (50352, "<|haw|>"),
                (50358, "<|translate|>"), (50359, "<|transcribe|>"), (50360, "<|startoflm|>"),
                (50361, "<|startofprev|>"), (50362, "<|nospeech|>"), (50363, "<|notimestamps|>")]
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in specials]
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "vocab": vocab,
                  "merges": [a + " " + b for a, b in merges]},
    }
    d = os.path.join(OUT, "multilingual_mini")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    tok = Tokenizer.from_file(path)
    texts = ["bonjour the monde", " the jour, the monder!", "über the"]
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]
    with open(os.path.join(OUT, "multilingual_mini.json"), "w", encoding="utf-8") as f:
        json.dump({"model_vocab_size": 50364 + 1501, "encode": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
