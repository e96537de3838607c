// Text normalizers for WER, re-derived from openai-whisper's whisper/normalizers so that
// scores match those computed with Whisper's evaluation code.
//
// EnglishTextNormalizer: lowercase; drop [bracketed] / <angled> / (parenthesised) spans
// and the fillers hmm, mm, mhm, mmm, uh, um; expand contractions and titles ("won't" ->
// "will not", "mr" -> "mister"); drop commas between digits and periods not before a
// digit; NFKD and drop diacritics, symbols and punctuation (keeping . % $ ¢ € £);
// spelled-out numbers to digits ("twenty one" -> "21", "the first" -> "the 1st",
// "ten percent" -> "10%", "two dollars and seven cents" -> "$2.07"); British to
// American spellings; then drop currency/percent/period symbols not attached to a
// number and collapse whitespace. Outputs keep Whisper's quirks (a trailing space can
// remain; "1" is written "one").
//
// BasicTextNormalizer: lowercase, drop bracketed/parenthesised spans, symbols and
// punctuation to spaces (NFKC), optionally drop diacritics (NFKD), collapse whitespace.
//
// Input is UTF-8; invalid sequences are replaced with U+FFFD first (a symbol, so it
// becomes a space).
#pragma once

#include <string>

namespace peft::metrics {

std::string normalize_english(const std::string& text);

// Whisper's EnglishNumberNormalizer alone (expects lowercase text without symbols).
std::string normalize_english_numbers(const std::string& text);

// Whisper's BasicTextNormalizer(remove_diacritics, split_letters=False).
std::string normalize_basic(const std::string& text, bool remove_diacritics = false);

}  // namespace peft::metrics
