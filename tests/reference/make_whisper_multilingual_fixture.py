#!/usr/bin/env python3
"""Reference for multilingual Whisper: language detection, transcribe and translate as
faster-whisper 1.2.1 (CTranslate2) does them, on models whose weights are a formula.

No real multilingual Whisper weights can be had here, so this builds two with the real
multilingual layout (openai and CTranslate2 call a model multilingual only with a
vocabulary of >= 51865 tokens, so a small-vocabulary model cannot stand in):

  v2: 80 mel bins, vocabulary 51865, 99 languages (tiny ... large-v2), 2 + 2 layers
  v3: 128 mel bins, vocabulary 51866, 100 languages (large-v3, turbo), and like turbo
      fewer decoder than encoder layers: 3 + 1

both narrow (d_model 32, 4 heads) with Whisper's real 1500 / 448 positions. Every weight is weight_value(name, i) below: splitmix64 of the tensor's
FNV-1a name hash plus the element index, mapped to [-1, 1) and scaled by the tensor's
kind. tests/transcription/test_whisper_multilingual.cpp computes the same float32 values, so
no weights are committed. The tokenizer is openai-whisper's multilingual.tiktoken
(models/fetch-default puts it in models/default/whisper-tokenizers/), converted here to
a tokenizer.json for faster-whisper; the conversion is checked against tiktoken itself.

Each model is written by transformers (save_pretrained, float32) and converted by
CTranslate2's TransformersConverter; faster-whisper then runs, compute_type float32,
beam_size 1 and temperature [0] only (no sampling), all else at its defaults:
language detection (language=None), task transcribe and translate, and transcribe with
a given language, on Debian's pocketsphinx-testdata speech read as the C++ test reads it.

Also written: tests/fixtures/text/whisper_tiktoken.json, what openai-whisper's tokenizer
(tiktoken) makes of some multilingual texts, its special ids with 99 and 100 languages
and its non_speech_tokens, for tests/text/test_whisper_tokenizer.cpp.

Usage (a venv over Debian's python3-torch 1.13 with transformers 4.46.3, ctranslate2
4.8.5, faster-whisper 1.2.1, tiktoken and openai-whisper 20250625 works):
    python tests/reference/make_whisper_multilingual_fixture.py
"""
import base64
import json
import os
import shutil
import sys
import tempfile
import wave

import numpy as np
import torch
import ctranslate2
import faster_whisper
import tiktoken
import transformers
from faster_whisper import WhisperModel
from tokenizers import Tokenizer
from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

from whisper.tokenizer import LANGUAGES, get_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
TIKTOKEN = os.path.join(ROOT, "models", "default", "whisper-tokenizers", "multilingual.tiktoken")
OUT = os.path.join(ROOT, "tests", "fixtures", "whisper", "multilingual_random.json")
TOKENIZER_OUT = os.path.join(ROOT, "tests", "fixtures", "text", "whisper_tiktoken.json")

LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0%d.wav"
SHORT = LIBRIVOX % 880
LONG_FILES = [LIBRIVOX % n for n in (870, 880, 890, 920, 930)]
LONG_GAP_S = 3.0  # zeros between the LONG_FILES: about 40 s in all, two windows and more

D, HEADS = 32, 4
CONFIGS = {"v2": (80, 51865, 2, 2), "v3": (128, 51866, 3, 1)}  # mels, vocab, layers
M64 = (1 << 64) - 1

TEXTS = [
    "Hello, world! Ça va? L'été à Noël.",
    " Größe, Straße, Übermäßig schön!",
    "我们今天去公园散步。你好，世界！",
    "日本語のテキスト、カタカナとひらがな。",
    "Привет, как дела? Всё хорошо.",
    "한국어 텍스트입니다 مرحبا بالعالم नमस्ते दुनिया ภาษาไทย",
    "  spaces   and\ttabs\n\nnewlines 123 4567 3.14 don't they'll",
    "♪♪ la la ♪ [MUSIC] (applause) <<laughs>> -- 「quote」 😀 👍🏽",
]


# --- weights -------------------------------------------------------------------------

def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def splitmix64(x):
    """Vectorised over uint64 arrays (numpy wraps on overflow, as C++ does)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def weight_value(name, shape):
    """uniform[-1, 1) from splitmix64(fnv1a64(name) + i), scaled by the tensor's kind:
    layer norm gains 1 + 0.2u, biases 0.2u, token embeddings u, positions 0.5u, and
    linear / conv weights u * sqrt(3 / fan_in) (unit gain)."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        idx = np.arange(n, dtype=np.uint64) + np.uint64(fnv1a64(name))
    u = (splitmix64(idx) >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2.0 - 1.0
    if "layer_norm" in name and name.endswith(".weight"):
        v = 1.0 + 0.2 * u
    elif name.endswith(".bias"):
        v = 0.2 * u
    elif name.endswith("embed_tokens.weight"):
        v = u
    elif name.endswith("embed_positions.weight"):
        v = 0.5 * u
    else:
        fan_in = int(np.prod(shape[1:]))
        v = u * np.sqrt(3.0 / fan_in)
    return v.astype(np.float32).reshape(shape)


# --- tokenizer -----------------------------------------------------------------------

def byte_to_unicode():
    # GPT-2's printable stand-ins for bytes (what tokenizers' ByteLevel uses).
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, n = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


def read_ranks(path):
    ranks = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


def lowest_rank_split(ranks, token, limit):
    """tiktoken's merging of one token's bytes, allowed only ranks below `limit`."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < limit and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]


def special_tokens(n_ranks, languages):
    names = ["<|endoftext|>", "<|startoftranscript|>"] + ["<|%s|>" % c for c in list(LANGUAGES)[:languages]]
    names += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    return [(n_ranks + i, name) for i, name in enumerate(names)]


def write_tokenizer_json(path, ranks, languages):
    b2u = byte_to_unicode()
    enc = lambda bs: "".join(b2u[b] for b in bs)
    vocab, merges = {}, []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        vocab[enc(token)] = rank
        if len(token) > 1:
            parts = lowest_rank_split(ranks, token, rank)
            assert len(parts) == 2, (token, parts)
            merges.append(enc(parts[0]) + " " + enc(parts[1]))
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in special_tokens(len(ranks), languages)]
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": merges},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)


def tokenizer_fixture(ranks):
    """openai-whisper's own tokenizer (tiktoken) on TEXTS, and its special ids."""
    out = {"generator": "tests/reference/make_whisper_multilingual_fixture.py", "tiktoken": tiktoken.__version__}
    for languages in (99, 100):
        tok = get_tokenizer(multilingual=True, num_languages=languages)
        # openai's all_language_tokens follows a set's iteration order: sort by id.
        langs = sorted(zip(tok.all_language_tokens, tok.all_language_codes))
        out["languages_%d" % languages] = {
            "model_vocab_size": len(ranks) + 8 + languages + 1501,
            "eot": tok.eot, "sot": tok.sot, "translate": tok.translate, "transcribe": tok.transcribe,
            "sot_lm": tok.sot_lm, "sot_prev": tok.sot_prev, "no_speech": tok.no_speech,
            "no_timestamps": tok.no_timestamps, "timestamp_begin": tok.timestamp_begin,
            "language_codes": [c for _, c in langs],
            "language_tokens": [i for i, _ in langs],
            "non_speech_tokens": list(tok.non_speech_tokens),
            "sot_sequence_fr_translate": list(get_tokenizer(True, num_languages=languages, language="fr",
                                                            task="translate").sot_sequence),
        }
    tok = get_tokenizer(multilingual=True)
    out["encode"] = [{"text": t, "ids": tok.encode(t)} for t in TEXTS]
    gpt2 = get_tokenizer(multilingual=False)
    out["gpt2"] = {"model_vocab_size": 51864, "eot": gpt2.eot, "no_timestamps": gpt2.no_timestamps,
                   "encode": [{"text": t, "ids": gpt2.encode(t)} for t in TEXTS]}
    return out


# --- models --------------------------------------------------------------------------

class Converter(ctranslate2.converters.TransformersConverter):
    """ctranslate2 4.8 names the dtype argument as transformers 5 does; 4.x calls it torch_dtype."""

    def load_model(self, model_class, model_name_or_path, **kwargs):
        if "dtype" in kwargs:
            kwargs["torch_dtype"] = kwargs.pop("dtype")
        return model_class.from_pretrained(model_name_or_path, **kwargs)


def build_model(n_mels, vocab, enc_layers, dec_layers, tmp, tokenizer_json):
    languages = vocab - 50257 - 8 - 1501
    ranks_n = 50257
    specials = dict((name, i) for i, name in special_tokens(ranks_n, languages))
    config = WhisperConfig(
        vocab_size=vocab, num_mel_bins=n_mels, d_model=D, encoder_layers=enc_layers, decoder_layers=dec_layers,
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=4 * D,
        decoder_ffn_dim=4 * D, max_source_positions=1500, max_target_positions=448,
        pad_token_id=specials["<|endoftext|>"], bos_token_id=specials["<|endoftext|>"],
        eos_token_id=specials["<|endoftext|>"], decoder_start_token_id=specials["<|startoftranscript|>"])
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "proj_out.weight":
                continue  # tied to the token embedding
            p.copy_(torch.from_numpy(weight_value(name, tuple(p.shape))))
    assert torch.equal(model.proj_out.weight, model.model.decoder.embed_tokens.weight)
    openai_tok = get_tokenizer(multilingual=True, num_languages=languages)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=specials["<|startoftranscript|>"], eos_token_id=specials["<|endoftext|>"],
        pad_token_id=specials["<|endoftext|>"], no_timestamps_token_id=specials["<|notimestamps|>"],
        suppress_tokens=list(openai_tok.non_speech_tokens), begin_suppress_tokens=[220, specials["<|endoftext|>"]],
        lang_to_id={"<|%s|>" % c: specials["<|%s|>" % c] for c in list(LANGUAGES)[:languages]},
        task_to_id={"translate": specials["<|translate|>"], "transcribe": specials["<|transcribe|>"]},
        is_multilingual=True, max_length=448)
    hf_dir = os.path.join(tmp, "hf")
    model.save_pretrained(hf_dir, safe_serialization=True)
    shutil.copy(tokenizer_json, os.path.join(hf_dir, "tokenizer.json"))
    with open(os.path.join(hf_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "WhisperTokenizer", "model_max_length": 1024,
                   "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                   "pad_token": "<|endoftext|>"}, f)
    ct2_dir = os.path.join(tmp, "ct2")
    Converter(hf_dir).convert(ct2_dir, force=True)
    shutil.copy(tokenizer_json, os.path.join(ct2_dir, "tokenizer.json"))
    with open(os.path.join(ct2_dir, "preprocessor_config.json"), "w") as f:
        json.dump({"feature_size": n_mels}, f)
    return ct2_dir


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def long_audio():
    parts = []
    for i, path in enumerate(LONG_FILES):
        if i:
            parts.append(np.zeros(int(LONG_GAP_S * 16000), np.float32))
        parts.append(read_wav(path))
    return np.concatenate(parts)


def run(model, audio, **kw):
    segments, info = model.transcribe(audio, beam_size=1, temperature=[0.0], **kw)
    segments = list(segments)
    return {
        "options": kw,
        "language": info.language,
        "language_probability": info.language_probability,
        "all_language_probs": [[c, p] for c, p in info.all_language_probs] if info.all_language_probs else None,
        "segments": [{"seek": s.seek, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
                      "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob} for s in segments],
    }


def main():
    torch.set_num_threads(2)
    ranks = read_ranks(TIKTOKEN)
    tok_fx = tokenizer_fixture(ranks)
    with open(TOKENIZER_OUT, "w", encoding="utf-8") as f:
        json.dump(tok_fx, f, ensure_ascii=False, indent=1)
        f.write("\n")

    audios = {"short": read_wav(SHORT), "long": long_audio()}
    doc = {
        "generator": "tests/reference/make_whisper_multilingual_fixture.py",
        "faster_whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__,
        "transformers": transformers.__version__,
        "tiktoken_sha256_of": "models/default/whisper-tokenizers/multilingual.tiktoken",
        "dims": {"d_model": D, "heads": HEADS, "n_audio_ctx": 1500, "n_text_ctx": 448},
        "audio": {"short": SHORT, "long": {"files": LONG_FILES, "gap_s": LONG_GAP_S}},
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for key, (n_mels, vocab, enc_layers, dec_layers) in CONFIGS.items():
            languages = vocab - 50257 - 8 - 1501
            tok_json = os.path.join(tmp, "tokenizer-%s.json" % key)
            write_tokenizer_json(tok_json, ranks, languages)
            # The converted file must tokenize as tiktoken does.
            hf = Tokenizer.from_file(tok_json)
            for case in tok_fx["encode"]:
                assert hf.encode(case["text"], add_special_tokens=False).ids == case["ids"], case["text"]
            ct2_dir = build_model(n_mels, vocab, enc_layers, dec_layers, os.path.join(tmp, key), tok_json)
            model = WhisperModel(ct2_dir, device="cpu", compute_type="float32", cpu_threads=2)
            assert model.model.is_multilingual and model.model.n_mels == n_mels
            runs = []
            for name, audio in audios.items():
                for kw in ({"task": "transcribe"}, {"task": "translate"}):
                    r = run(model, audio, **kw)
                    r["audio"] = name
                    runs.append(r)
                    print(key, name, kw, r["language"], "%.4f" % r["language_probability"],
                          len(r["segments"]), "segments", flush=True)
            r = run(model, audios["short"], language="de", task="transcribe")
            r["audio"] = "short"
            runs.append(r)
            # Two windows and a threshold no window reaches: the majority vote. The
            # features are the whole file's, as transcribe() passes them.
            features = model.feature_extractor(audios["long"])
            lang, prob, all_probs = model.detect_language(
                features=features, language_detection_segments=2, language_detection_threshold=0.95)
            vote = {"audio": "long", "segments": 2, "threshold": 0.95, "language": lang,
                    "language_probability": prob, "all_language_probs": [[c, p] for c, p in all_probs]}
            print(key, "vote", lang, prob, flush=True)
            doc["models"][key] = {"n_mels": n_mels, "n_vocab": vocab, "languages": languages, "encoder_layers": enc_layers,
                                  "decoder_layers": dec_layers, "runs": runs,
                                  "detect_language": vote}
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(OUT, os.path.getsize(OUT), "bytes;", TOKENIZER_OUT, os.path.getsize(TOKENIZER_OUT), "bytes")


if __name__ == "__main__":
    sys.exit(main())
