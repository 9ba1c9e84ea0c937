/* buf.h: a growable byte buffer with a hard cap, for everything fed by untrusted bytes. */
#ifndef SUBGATE_BASE_BUF_H
#define SUBGATE_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "base/base.h"
#include "base/err.h"

struct buf {
    char *data; /* always NUL-terminated once anything was appended; NULL when empty */
    size_t len; /* bytes used, not counting the terminator */
    size_t cap; /* bytes allocated */
    size_t max; /* growth past this many bytes fails with ERR_TOO_LARGE */
};

/* Sets up an empty buffer that may hold at most max bytes. Allocates nothing yet. */
void buf_init(struct buf *b, size_t max);

/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_release(struct buf *b);

/* Empties the buffer and keeps its storage. */
void buf_reset(struct buf *b);

/* Allocates room for n more bytes now; ERR_TOO_LARGE if that would pass the cap. */
MUST_CHECK enum err buf_reserve(struct buf *b, size_t n);

/* Appends n bytes; ERR_TOO_LARGE (and nothing appended) if that would pass the cap. */
MUST_CHECK enum err buf_append(struct buf *b, const void *p, size_t n);
MUST_CHECK enum err buf_puts(struct buf *b, const char *s);
MUST_CHECK enum err buf_appendf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
MUST_CHECK enum err buf_vappendf(struct buf *b, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);

/* Returns the contents as a NUL-terminated string ("" when empty); borrowed. */
const char *buf_str(const struct buf *b);

/* Hands the storage to the caller (free with free()) and empties the buffer. Never NULL. */
char *buf_detach(struct buf *b, size_t *len);

#endif /* SUBGATE_BASE_BUF_H */
