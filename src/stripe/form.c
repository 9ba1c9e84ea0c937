/*
 * form.c: form encoding for the Stripe client. Brackets in keys stay literal because that is
 * what the official SDKs put on the wire (they undo the encoding of '[' and ']' in keys).
 */
#include "stripe/form.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void form_init(struct form *f, size_t max)
{
    buf_init(&f->b, max);
    f->err = ERR_OK;
}

void form_release(struct form *f)
{
    buf_release(&f->b);
    f->err = ERR_OK;
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

enum err form_encode(struct buf *b, const char *s, size_t n, bool keep_brackets)
{
    static const char hex[] = "0123456789ABCDEF";
    enum err err = ERR_OK;

    for (size_t i = 0; i < n && err == ERR_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_brackets && (c == '[' || c == ']'))) {
            err = buf_append(b, &s[i], 1);
        } else {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            err = buf_append(b, esc, sizeof(esc));
        }
    }
    return err;
}

/* Starts a new pair: '&' before every pair but the first. */
static void begin_pair(struct form *f)
{
    if (f->err == ERR_OK && f->b.len > 0)
        f->err = buf_append(&f->b, "&", 1);
}

static void put_value(struct form *f, const char *value)
{
    if (f->err == ERR_OK)
        f->err = buf_append(&f->b, "=", 1);
    if (f->err == ERR_OK)
        f->err = form_encode(&f->b, value, strlen(value), false);
}

void form_add(struct form *f, const char *key, const char *value)
{
    begin_pair(f);
    if (f->err == ERR_OK)
        f->err = form_encode(&f->b, key, strlen(key), true);
    put_value(f, value);
}

void form_add_i64(struct form *f, const char *key, int64_t value)
{
    char num[24];

    snprintf(num, sizeof(num), "%" PRId64, value);
    form_add(f, key, num);
}

void form_add_bool(struct form *f, const char *key, bool value)
{
    form_add(f, key, value ? "true" : "false");
}

void form_add_path(struct form *f, const char *const *segments, size_t n, const char *value)
{
    begin_pair(f);
    for (size_t i = 0; i < n && f->err == ERR_OK; i++) {
        if (i > 0)
            f->err = buf_append(&f->b, "[", 1);
        if (f->err == ERR_OK)
            f->err = form_encode(&f->b, segments[i], strlen(segments[i]), false);
        if (i > 0 && f->err == ERR_OK)
            f->err = buf_append(&f->b, "]", 1);
    }
    put_value(f, value);
}

enum err form_err(const struct form *f)
{
    return f->err;
}

const char *form_str(const struct form *f)
{
    return buf_str(&f->b);
}

size_t form_len(const struct form *f)
{
    return f->b.len;
}
