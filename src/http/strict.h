/*
 * strict.h: the edge's checks of a request's target and query, pure functions of bytes. The
 * server (server.c) answers 400 when one fails, before any handler runs.
 */
#ifndef SUBGATE_HTTP_STRICT_H
#define SUBGATE_HTTP_STRICT_H

#include <stdbool.h>
#include <stddef.h>

/* True when the n bytes are well-formed UTF-8 (no overlong form, surrogate or > U+10FFFF) and
 * hold no NUL. */
bool strict_text_is_clean(const char *s, size_t n);

/* True when a raw request target (before percent-decoding) encodes no NUL ("%00"). */
bool strict_target_is_clean(const char *raw);

#endif /* SUBGATE_HTTP_STRICT_H */
