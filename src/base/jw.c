/* jw.c: see jw.h. */
#include "base/jw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"

#define JW_MAX   ((size_t)1 << 20) /* far past any answer written this way */
#define JW_FIRST 1024              /* allocated at once: most answers fit, no regrowth */

/* An answer is a few hundred short appends: within the room reserved they are a plain copy. */
static inline void put(struct jw *w, const char *p, size_t n)
{
    struct buf *b = &w->b;

    if (n < b->cap - b->len && n <= b->max - b->len) { /* room, terminator too, within the cap */
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
    } else if (buf_append(b, p, n) != ERR_OK)
        w->bad = true;
}

/* s as a JSON string, quotes included, escaped as jansson escapes it. */
static void put_string(struct jw *w, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), run = 0;

    put(w, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t len;
        const char *esc = NULL;
        char u[8];

        if (s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') {
            i++; /* printable ASCII: the common case, copied as it is */
            continue;
        }
        len = str_utf8_len(s + i, n - i);
        if (len == 0) {
            w->bad = true;
            return;
        }
        if (len == 1 && (s[i] < 0x20 || s[i] == '"' || s[i] == '\\')) {
            put(w, (const char *)s + run, i - run);
            switch (s[i]) {
            case '"':
                esc = "\\\"";
                break;
            case '\\':
                esc = "\\\\";
                break;
            case '\b':
                esc = "\\b";
                break;
            case '\f':
                esc = "\\f";
                break;
            case '\n':
                esc = "\\n";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\t':
                esc = "\\t";
                break;
            default:
                snprintf(u, sizeof(u), "\\u%04X", (unsigned int)s[i]);
                esc = u;
            }
            put(w, esc, strlen(esc));
            run = i + 1;
        }
        i += len;
    }
    put(w, (const char *)s + run, n - run);
    put(w, "\"", 1);
}

static void put_key(struct jw *w, const char *key)
{
    if (!w->first[w->depth])
        put(w, ",", 1);
    w->first[w->depth] = false;
    put_string(w, key);
    put(w, ":", 1);
}

void jw_begin(struct jw *w)
{
    buf_init(&w->b, JW_MAX);
    if (buf_reserve(&w->b, JW_FIRST) != ERR_OK)
        w->bad = true;
    w->depth = 0;
    w->first[0] = true;
    w->bad = false;
    put(w, "{", 1);
}

void jw_object(struct jw *w, const char *key)
{
    put_key(w, key);
    if (w->depth + 1 >= JW_DEPTH_MAX) {
        w->bad = true;
        return;
    }
    w->first[++w->depth] = true;
    put(w, "{", 1);
}

void jw_end(struct jw *w)
{
    if (w->depth == 0) {
        w->bad = true;
        return;
    }
    w->depth--;
    put(w, "}", 1);
}

void jw_str(struct jw *w, const char *key, const char *value)
{
    if (!value) {
        jw_null(w, key);
        return;
    }
    put_key(w, key);
    put_string(w, value);
}

void jw_i64(struct jw *w, const char *key, int64_t value)
{
    char num[STR_I64_MAX];
    size_t n = str_i64(num, value);

    put_key(w, key);
    put(w, num, n);
}

void jw_bool(struct jw *w, const char *key, bool value)
{
    put_key(w, key);
    put(w, value ? "true" : "false", value ? 4 : 5);
}

void jw_null(struct jw *w, const char *key)
{
    put_key(w, key);
    put(w, "null", 4);
}

char *jw_finish(struct jw *w, size_t *len)
{
    while (w->depth > 0)
        jw_end(w);
    put(w, "}", 1);
    if (w->bad) {
        buf_release(&w->b);
        *len = 0;
        return NULL;
    }
    return buf_detach(&w->b, len);
}
