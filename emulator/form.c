/* form.c: urlencoded bracket-notation decoding into jansson trees (see form.h). */
#include "form.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

struct key_path {
    char segs[EMU_FORM_MAX_DEPTH][EMU_FORM_MAX_KEY + 1];
    size_t n;
};

static enum err form_fail(struct emu_form *f, const char *fmt, ...) PRINTF_LIKE(2, 3);

static enum err form_fail(struct emu_form *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->error, sizeof(f->error), fmt, ap);
    va_end(ap);
    return ERR_INVALID;
}

void emu_form_init(struct emu_form *f)
{
    f->root = json_object();
    f->pairs = 0;
    f->error[0] = '\0';
}

void emu_form_release(struct emu_form *f)
{
    json_decref(f->root);
    f->root = NULL;
}

/* Splits "a[b][]" into "a", "b", "". */
static enum err split_key(struct emu_form *f, const char *key, struct key_path *kp)
{
    size_t len = strcspn(key, "[");

    kp->n = 0;
    if (len == 0 || strlen(key) > EMU_FORM_MAX_KEY)
        return form_fail(f, "Invalid parameter name: '%.100s'", key);
    str_copyn(kp->segs[kp->n++], sizeof(kp->segs[0]), key, len);
    key += len;
    while (*key) {
        const char *close = strchr(key, ']');
        if (*key != '[' || !close)
            return form_fail(f, "Invalid parameter name: '%.100s'", key);
        if (kp->n == EMU_FORM_MAX_DEPTH)
            return form_fail(f, "Parameters are nested too deeply (at most %d levels)",
                             EMU_FORM_MAX_DEPTH);
        str_copyn(kp->segs[kp->n++], sizeof(kp->segs[0]), key + 1, (size_t)(close - key - 1));
        key = close + 1;
    }
    return ERR_OK;
}

static bool is_index(const char *seg)
{
    return seg[0] == '\0' || (seg[0] >= '0' && seg[0] <= '9');
}

/* The array slot seg names: "" appends, "N" is N (at most the length). */
static enum err array_slot(struct emu_form *f, json_t *arr, const char *seg, size_t *slot)
{
    int64_t idx;

    if (seg[0] == '\0') {
        *slot = json_array_size(arr);
    } else if (parse_i64(seg, strlen(seg), 0, EMU_FORM_MAX_INDEX, &idx) != ERR_OK ||
               (size_t)idx > json_array_size(arr)) {
        return form_fail(f, "Invalid array index: '%s'", seg);
    } else {
        *slot = (size_t)idx;
    }
    return ERR_OK;
}

static bool same_kind(const json_t *v, const json_t *want)
{
    return json_typeof(v) == json_typeof(want);
}

/* Gets the child seg of cur, creating `fresh` there when missing (fresh is stolen). */
static enum err child_get(struct emu_form *f, json_t *cur, const char *seg, json_t *fresh,
                          json_t **out)
{
    json_t *v;
    size_t slot;

    if (json_is_object(cur)) {
        v = json_object_get(cur, seg);
        if (!v && json_object_set_new(cur, seg, fresh) != 0)
            return form_fail(f, "Invalid parameter name: invalid UTF-8");
    } else {
        if (array_slot(f, cur, seg, &slot) != ERR_OK) {
            json_decref(fresh);
            return ERR_INVALID;
        }
        v = json_array_get(cur, slot);
        if (!v)
            json_array_append_new(cur, fresh);
    }
    if (!v) {
        *out = fresh;
        return ERR_OK;
    }
    if (!same_kind(v, fresh)) {
        json_decref(fresh);
        return form_fail(f, "Invalid parameter: conflicting types for '%s'", seg);
    }
    json_decref(fresh);
    *out = v;
    return ERR_OK;
}

/* Sets the last segment of the path to the string value (stolen). */
static enum err leaf_set(struct emu_form *f, json_t *cur, const char *seg, json_t *value)
{
    json_t *old;
    size_t slot;

    if (json_is_object(cur)) {
        old = json_object_get(cur, seg);
        if (old && !json_is_string(old)) {
            json_decref(value);
            return form_fail(f, "Invalid parameter: conflicting types for '%s'", seg);
        }
        return json_object_set_new(cur, seg, value) == 0
                   ? ERR_OK
                   : form_fail(f, "Invalid parameter name: invalid UTF-8");
    }
    if (array_slot(f, cur, seg, &slot) != ERR_OK) {
        json_decref(value);
        return ERR_INVALID;
    }
    old = json_array_get(cur, slot);
    if (old && !json_is_string(old)) {
        json_decref(value);
        return form_fail(f, "Invalid parameter: conflicting types for '%s'", seg);
    }
    if (old)
        return json_array_set_new(cur, slot, value) == 0 ? ERR_OK : ERR_INTERNAL;
    return json_array_append_new(cur, value) == 0 ? ERR_OK : ERR_INTERNAL;
}

static enum err walk_and_set(struct emu_form *f, const struct key_path *kp, json_t *value)
{
    json_t *cur = f->root;

    for (size_t i = 0; i + 1 < kp->n; i++) {
        json_t *fresh = is_index(kp->segs[i + 1]) ? json_array() : json_object();
        json_t *next = NULL;
        if (child_get(f, cur, kp->segs[i], fresh, &next) != ERR_OK) {
            json_decref(value);
            return ERR_INVALID;
        }
        cur = next;
    }
    return leaf_set(f, cur, kp->segs[kp->n - 1], value);
}

enum err emu_form_add(struct emu_form *f, const char *key, const char *value)
{
    struct key_path kp;
    json_t *v;

    if (f->pairs >= EMU_FORM_MAX_PAIRS)
        return form_fail(f, "Too many parameters (at most %d)", EMU_FORM_MAX_PAIRS);
    f->pairs++;
    if (split_key(f, key, &kp) != ERR_OK)
        return ERR_INVALID;
    v = json_string(value ? value : "");
    if (!v)
        return form_fail(f, "Invalid string for '%.100s': not valid UTF-8", key);
    return walk_and_set(f, &kp, v);
}

/* Decodes <s, len> into a new NUL-terminated string; NULL on a bad %-escape or a NUL byte. */
static char *percent_decode(const char *s, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < len ? str_hex_digit(s[i + 1]) : -1;
            int lo = hi >= 0 ? str_hex_digit(s[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

static enum err add_raw_pair(struct emu_form *f, const char *pair, size_t len)
{
    const char *eq = memchr(pair, '=', len);
    size_t klen = eq ? (size_t)(eq - pair) : len;
    char *key = percent_decode(pair, klen);
    char *value = eq ? percent_decode(eq + 1, len - klen - 1) : xstrdup("");
    enum err e;

    if (!key || !value)
        e = form_fail(f, "Invalid %%-encoding in the request body");
    else
        e = emu_form_add(f, key, value);
    free(key);
    free(value);
    return e;
}

enum err emu_form_parse(struct emu_form *f, const char *body, size_t len)
{
    size_t i = 0;

    while (i < len) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t n = amp ? (size_t)(amp - (body + i)) : len - i;
        if (n > 0 && add_raw_pair(f, body + i, n) != ERR_OK)
            return ERR_INVALID;
        i += n + 1;
    }
    return ERR_OK;
}

static enum err encode_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("-_.~[]", c) != NULL;
        enum err e = plain ? buf_append(b, s, 1) : buf_append(b, esc, sizeof(esc));
        if (e != ERR_OK)
            return e;
    }
    return ERR_OK;
}

enum err emu_form_encode_pair(struct buf *b, const char *key, const char *value)
{
    enum err e = b->len ? buf_puts(b, "&") : ERR_OK;

    if (e == ERR_OK)
        e = encode_str(b, key);
    if (e == ERR_OK)
        e = buf_puts(b, "=");
    if (e == ERR_OK)
        e = encode_str(b, value ? value : "");
    return e;
}
