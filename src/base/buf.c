/* buf.c: capped growable buffer. */
#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void buf_release(struct buf *b)
{
    free(b->data);
    buf_init(b, b->max);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static enum err grow(struct buf *b, size_t extra)
{
    size_t need;

    if (extra > b->max || b->len > b->max - extra)
        return ERR_TOO_LARGE;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return ERR_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return ERR_OK;
}

enum err buf_reserve(struct buf *b, size_t n)
{
    enum err err = grow(b, n);

    if (err == ERR_OK && b->len == 0)
        b->data[0] = '\0'; /* NUL-terminated once it has storage */
    return err;
}

enum err buf_append(struct buf *b, const void *p, size_t n)
{
    enum err err = grow(b, n);

    if (err)
        return err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return ERR_OK;
}

enum err buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum err buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n;
    enum err err;

    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return ERR_INTERNAL;
    err = grow(b, (size_t)n);
    if (err)
        return err;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return ERR_OK;
}

enum err buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    enum err err;

    va_start(ap, fmt);
    err = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return err;
}

const char *buf_str(const struct buf *b)
{
    return b->data ? b->data : "";
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p = b->data ? b->data : xstrdup("");

    if (len)
        *len = b->len;
    buf_init(b, b->max);
    return p;
}
