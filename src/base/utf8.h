/* UTF-8 primitives shared by the tokenizer, templates, JSON and streaming:
 * validation, decoding one code point, and finding how much of a byte string
 * is complete (so streamed text never splits a character). */
#ifndef HL_BASE_UTF8_H
#define HL_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 sequence at s, or 0 if s[0..n) does not
 * start with one (overlongs, surrogates and > U+10FFFF are invalid). */
int hl_utf8_valid_prefix(const char *s, size_t n);
/* Decodes one code point; returns its byte length, or 0 if invalid. */
int hl_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Encodes cp into out (4 bytes room); returns the length, 0 if cp is invalid. */
int hl_utf8_encode(uint32_t cp, char *out);
/* Length of the longest prefix of s that does not end inside an incomplete
 * (but so far valid) multi-byte sequence. Invalid bytes count as complete. */
size_t hl_utf8_complete_len(const char *s, size_t n);
/* Nonzero when the whole string is valid UTF-8. */
int hl_utf8_valid(const char *s, size_t n);

#endif
