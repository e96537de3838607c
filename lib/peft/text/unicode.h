// UTF-8 code point iteration and the Unicode character classes the GPT-2 pre-tokenizer
// regex uses. Categories come from ICU so that they follow the same Unicode data as the
// regex engines (Oniguruma in tokenizers, `regex` in openai's tiktoken) that define the
// reference tokenization: \s is the White_Space property, \p{L} and \p{N} the general
// categories L* and N*.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace peft::text {

// Decodes the code point starting at `pos`; on success stores its byte length in `len`
// and returns it. Returns -1 (and len = 1) for a byte that does not start a valid,
// complete, shortest-form sequence.
int32_t utf8_next(const std::string& s, size_t pos, size_t& len);

// Appends the UTF-8 encoding of `cp` (a valid scalar value).
void utf8_append(std::string& out, int32_t cp);

// Replaces every invalid or incomplete UTF-8 sequence with U+FFFD, one replacement per
// maximal invalid subpart (Unicode's recommended practice, which Rust's
// String::from_utf8_lossy and Python's errors="replace" both follow).
std::string utf8_lossy(const std::string& bytes);

bool is_letter(int32_t cp);      // \p{L}
bool is_number(int32_t cp);      // \p{N}
bool is_whitespace(int32_t cp);  // \s (White_Space)

}  // namespace peft::text
