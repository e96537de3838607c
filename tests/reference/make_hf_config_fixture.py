#!/usr/bin/env python3
"""Writes the Hugging Face JSON fixtures with the real libraries (no torch needed).

    pip install transformers tokenizers
    python3 tests/reference/make_hf_config_fixture.py

Outputs in tests/fixtures/io/hf/:
  config.json             transformers.WhisperConfig with openai/whisper-tiny.en's sizes
                          (d_model 384, 4+4 layers, 6 heads, vocab 51864), save_pretrained
  generation_config.json  transformers.GenerationConfig with Whisper's decoding fields
                          (lang_to_id, task_to_id, no_timestamps_token_id, alignment_heads,
                          forced_decoder_ids, suppress_tokens...) in the shape
                          openai/whisper-tiny's generation_config.json has; the id values
                          are the multilingual Whisper vocabulary's (<|en|> 50259,
                          <|transcribe|> 50359, <|notimestamps|> 50363), typed in here,
                          a few languages only
  tokenizer.json          a small tokenizers.Tokenizer with a Unigram model (scores,
                          unk_id, byte_fallback), Metaspace pre-tokenizer/decoder, an NFKC
                          normalizer and two added special tokens
  expected.json           the values the C++ test checks, read back from those objects
"""
import json
import os

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import Unigram
from transformers import GenerationConfig, WhisperConfig

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "io", "hf")


def main():
    os.makedirs(OUT, exist_ok=True)

    config = WhisperConfig(
        vocab_size=51864, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
        encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
        max_source_positions=1500, max_target_positions=448, bos_token_id=50257, eos_token_id=50256,
        pad_token_id=50256, decoder_start_token_id=50257, architectures=["WhisperForConditionalGeneration"])
    config.save_pretrained(OUT)

    langs = {"<|en|>": 50259, "<|zh|>": 50260, "<|de|>": 50261, "<|fr|>": 50265}
    gen = GenerationConfig(
        bos_token_id=50257, decoder_start_token_id=50258, eos_token_id=[50257, 50256], pad_token_id=50257,
        max_length=448, num_beams=1, begin_suppress_tokens=[220, 50257],
        suppress_tokens=[1, 2, 7, 8, 9, 10, 14, 25, 26, 27],
        forced_decoder_ids=[[1, 50259], [2, 50359], [3, 50363]],
        lang_to_id=langs, task_to_id={"transcribe": 50359, "translate": 50358},
        no_timestamps_token_id=50363, is_multilingual=True, return_timestamps=False,
        alignment_heads=[[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]])
    gen.save_pretrained(OUT)

    pieces = [("<unk>", 0.0), ("\u2581", -2.0), ("\u2581the", -3.1), ("\u2581a", -3.4), ("s", -4.0),
              ("ing", -4.5), ("\u2581cat", -6.25), ("\u2581sat", -6.5), ("t", -7.0), ("h", -7.5), ("e", -7.75)]
    tok = Tokenizer(Unigram(pieces, unk_id=0, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.add_special_tokens([AddedToken("<s>", special=True), AddedToken("</s>", special=True)])
    tok.save(os.path.join(OUT, "tokenizer.json"))

    saved = json.load(open(os.path.join(OUT, "tokenizer.json")))
    expected = {
        "config": {"model_type": config.model_type, "architectures": config.architectures,
                   "vocab_size": config.vocab_size, "d_model": config.d_model},
        "generation": {"eos_token_ids": gen.eos_token_id, "forced_decoder_ids": gen.forced_decoder_ids,
                       "lang_to_id": gen.lang_to_id, "task_to_id": gen.task_to_id,
                       "no_timestamps_token_id": gen.no_timestamps_token_id,
                       "alignment_heads": gen.alignment_heads, "max_length": gen.max_length,
                       "suppress_tokens": gen.suppress_tokens},
        "tokenizer": {"model_type": "Unigram", "pieces": [[p, s] for p, s in pieces],
                      "added_tokens": [[a["id"], a["content"], a["special"]] for a in saved["added_tokens"]],
                      "id_count": tok.get_vocab_size(with_added_tokens=True)},
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
