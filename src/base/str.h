/* str.h: string helpers that replace the banned libc calls. */
#ifndef SUBGATE_BASE_STR_H
#define SUBGATE_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"

/*
 * Parses a base-10 integer from exactly len bytes (optional leading '-'), rejecting empty
 * input, junk, trailing bytes, overflow and values outside [min, max]: ERR_INVALID.
 */
MUST_CHECK enum err parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

/*
 * Copies src into dst[size] and terminates it. Returns false (dst holds a truncated copy) when
 * src did not fit.
 */
bool str_copy(char *dst, size_t size, const char *src);

/* Same, from a <ptr, len> pair. */
bool str_copyn(char *dst, size_t size, const char *src, size_t len);

bool str_has_prefix(const char *s, const char *prefix);

/* Case-insensitive ASCII comparison of a <ptr, len> pair with a C string. */
bool str_eq_nocase(const char *s, size_t len, const char *lit);

/* The value of a hex digit (either case), or -1 for any other byte. */
int str_hex_digit(char c);

#define STR_I64_MAX 21 /* "-9223372036854775808" and its NUL */

/* v in decimal into out (NUL-terminated), without printf; returns the digits' length. */
size_t str_i64(char out[STR_I64_MAX], int64_t v);

/*
 * Length of the well-formed UTF-8 sequence at s (at most n bytes, n > 0): 1 to 4, or 0 when it
 * is malformed (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, cut
 * short).
 */
size_t str_utf8_len(const unsigned char *s, size_t n);

/*
 * s for a terminal or a line of a report, into dst[size] (cut to fit, always terminated): a
 * control character (a line break, a tab, an escape sequence) becomes \xNN, so stored text can
 * neither forge a line or a column nor drive the terminal. Returns dst.
 */
const char *str_for_terminal(char *dst, size_t size, const char *s);

/* Trims ASCII spaces and tabs at both ends of <*s, *len> in place. */
void str_trim(const char **s, size_t *len);

#endif /* SUBGATE_BASE_STR_H */
