/* skim.c: see skim.h. One pass over the text, recursive descent, no allocation when skipping. */
#include "stripe/skim.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

#define KEY_MAX      256  /* decoded bytes of a key compared with keep[]; longer ones are skipped */
#define KEYS_MAX     512  /* members of one built object checked for duplicates */
#define KEY_SLOTS    1024 /* their hash table: a power of two, twice KEYS_MAX */
#define KEYS_SMALL   32   /* members checked in the object's own frame; more go to the heap */
#define SLOTS_SMALL  64   /* their hash table: a power of two, twice KEYS_SMALL */
#define NUMBER_MAX   512  /* bytes of a number converted on the stack; longer ones on the heap */
#define STRING_STACK 256  /* decoded bytes of a kept string value read on the stack */
#define FNV_OFFSET   UINT64_C(14695981039346656037)
#define FNV_PRIME    UINT64_C(1099511628211)

struct skim {
    const unsigned char *start, *p, *end;
    const char *const *keep;
    size_t nkeep;
    int depth;
    const char *why; /* the first failure's reason (static), NULL while all is well */
    size_t at;       /* its byte offset */
};

static bool fail(struct skim *s, const char *why)
{
    if (!s->why) {
        s->why = why;
        s->at = (size_t)(s->p - s->start);
    }
    return false;
}

static void skip_ws(struct skim *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* The code unit of "\uXXXX" at p (p at the 'u'), or -1. */
static long hex4(const struct skim *s, const unsigned char *p)
{
    long v = 0;

    if (s->end - p < 5)
        return -1;
    for (int i = 1; i <= 4; i++) {
        int d = str_hex_digit((char)p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The code point of the escape at p (p at the backslash); *used: its bytes. -1 when invalid. */
static long escape(struct skim *s, const unsigned char *p, size_t *used)
{
    static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    const char *e;
    long hi, lo;

    if (p + 1 >= s->end)
        return -1;
    if (p[1] != 'u') {
        e = memchr(plain, p[1], sizeof(plain) - 1);
        *used = 2;
        return e ? (unsigned char)decoded[e - plain] : -1;
    }
    hi = hex4(s, p + 1);
    *used = 6;
    if (hi < 0 || hi == 0 || (hi >= 0xdc00 && hi <= 0xdfff))
        return -1; /* bad digits, NUL, or a low surrogate alone */
    if (hi < 0xd800 || hi > 0xdbff)
        return hi;
    if (s->end - p < 12 || p[6] != '\\' || p[7] != 'u')
        return -1;
    lo = hex4(s, p + 7);
    if (lo < 0xdc00 || lo > 0xdfff)
        return -1;
    *used = 12;
    return 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
}

/* Decoded bytes at w of a string: into out[cap] as far as they fit. */
static void put_bytes(char *out, size_t cap, size_t w, const void *p, size_t len)
{
    if (w < cap)
        memcpy(out + w, p, len < cap - w ? len : cap - w);
}

/*
 * Whether any of the eight bytes of w is a control character, '"', '\\' or not ASCII. Below
 * the first such byte (in the order the subtractions borrow) no byte borrows, so each
 * difference's top bit is clear; at it, b - 0x20 for b < 0x20, or a zero byte of w ^ '"' or of
 * w ^ '\\' minus one, sets its top bit, or w has it set. Only "any or none" is exact.
 */
static uint64_t special8(uint64_t w)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), tops = UINT64_C(0x8080808080808080);

    return ((w - ones * 0x20) | ((w ^ (ones * '"')) - ones) | ((w ^ (ones * '\\')) - ones) | w) &
           tops;
}

/*
 * The string at s->p (its opening quote), checked; s->p ends past its closing quote. Its
 * decoded bytes are written to out[cap] as far as they fit, and *n (when not NULL) is their
 * whole count, so *n > cap says they did not all fit.
 */
static bool string(struct skim *s, char *out, size_t cap, size_t *n)
{
    const unsigned char *p = s->p + 1;
    size_t w = 0;

    while (p < s->end && *p != '"') {
        char tmp[4];
        size_t len = 1, used;
        long cp;

        if (*p >= 0x20 && *p < 0x80 && *p != '\\') { /* a run of plain ASCII: as it is */
            const unsigned char *run = p;
            uint64_t word;
            /* eight bytes at a time while none of them ends the run */
            while (s->end - p >= 8 && (memcpy(&word, p, 8), !special8(word)))
                p += 8;
            while (p < s->end && *p >= 0x20 && *p < 0x80 && *p != '\\' && *p != '"')
                p++;
            put_bytes(out, cap, w, run, (size_t)(p - run));
            w += (size_t)(p - run);
            continue;
        }
        if (*p == '\\') {
            cp = escape(s, p, &used);
            if (cp < 0) {
                s->p = p;
                return fail(s, "invalid escape");
            }
            len = put_utf8(tmp, (uint32_t)cp);
        } else if (*p < 0x20) {
            s->p = p;
            return fail(s, "control character in a string");
        } else {
            used = len = str_utf8_len(p, (size_t)(s->end - p));
            if (len == 0) {
                s->p = p;
                return fail(s, "invalid UTF-8 in a string");
            }
            memcpy(tmp, p, len);
        }
        put_bytes(out, cap, w, tmp, len);
        w += len;
        p += used;
    }
    if (p >= s->end) {
        s->p = p;
        return fail(s, "unterminated string");
    }
    s->p = p + 1;
    if (n)
        *n = w;
    return true;
}

/* The number at s->p, checked as jansson checks it (integers must fit 64 bits, reals be finite). */
static bool number(struct skim *s, json_t **out)
{
    const unsigned char *p = s->p, *first = p;
    bool real = false;
    char stack[NUMBER_MAX], *text;
    size_t len;
    bool ok;

    if (p < s->end && *p == '-')
        p++;
    if (p < s->end && *p == '0') {
        p++;
    } else if (p < s->end && *p >= '1' && *p <= '9') {
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return fail(s, "invalid number");
    }
    if (p < s->end && *p == '.') {
        real = true;
        if (++p >= s->end || *p < '0' || *p > '9')
            return fail(s, "invalid number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        real = true;
        if (++p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s, "invalid number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    len = (size_t)(p - first);
    if (!real && len - (*first == '-') <= 18) { /* below 10^18: fits, no conversion needed */
        if (out) {
            int64_t v = 0;
            for (const unsigned char *d = first + (*first == '-'); d < p; d++)
                v = v * 10 + (*d - '0');
            *out = json_integer(*first == '-' ? -v : v);
        }
        s->p = p;
        return true;
    }
    text = len < sizeof(stack) ? stack : xmalloc(len + 1);
    memcpy(text, first, len);
    text[len] = '\0';
    errno = 0;
    if (real) {
        double d = strtod(text, NULL);
        ok = !(errno == ERANGE && isinf(d));
        if (ok && out)
            *out = json_real(d);
    } else {
        long long v = strtoll(text, NULL, 10);
        ok = errno != ERANGE;
        if (ok && out)
            *out = json_integer(v);
    }
    if (text != stack)
        free(text);
    if (!ok)
        return fail(s, real ? "real number overflow" : "integer overflow");
    s->p = p;
    return true;
}

static bool literal(struct skim *s, const char *word, json_t *(*make)(void), json_t **out)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail(s, "invalid token");
    s->p += n;
    if (out)
        *out = make();
    return true;
}

static bool value(struct skim *s, json_t **out);

/* word against key[n] in strcmp order; key holds no NUL (an escaped NUL is refused) */
static int key_order(const char *word, const char *key, size_t n)
{
    size_t i = 0;

    while (i < n && word[i] == key[i]) /* stops at word's NUL: key has none */
        i++;
    if (i < n)
        return (unsigned char)word[i] - (unsigned char)key[i];
    return word[n] != '\0'; /* word[n] is within word: it matched n bytes */
}

/* Binary search: keep[] is sorted (skim.h); a linear scan was 11% of a webhook's CPU. */
static bool kept(const struct skim *s, const char *key, size_t n)
{
    size_t lo = 0, hi = s->nkeep;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_order(s->keep[mid], key, n);

        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/*
 * A 64-bit hash of key[n], eight bytes at a time (FNV's constants, a shift to mix); key has
 * room for 8 bytes past n, which are zeroed to pad the last word.
 */
static uint64_t key_hash(char *key, size_t n)
{
    uint64_t h = FNV_OFFSET ^ n;

    memset(key + n, 0, 8);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = (h ^ w) * FNV_PRIME;
        h ^= h >> 29;
    }
    return h * FNV_PRIME;
}

/*
 * A member's key, checked; in an object being built, also its hash and, when short enough,
 * its decoded bytes in key[KEY_MAX + 8] (*n; SIZE_MAX when too long to be one of keep[]). A
 * longer key is decoded again whole, on the heap, for its hash.
 */
static bool member_key(struct skim *s, bool build, char *key, size_t *n, uint64_t *hash)
{
    const unsigned char *q = s->p;
    char *whole;

    if (q >= s->end || *q != '"')
        return fail(s, "string or '}' expected");
    if (!string(s, key, build ? KEY_MAX : 0, n))
        return false;
    if (!build)
        return true;
    if (*n < KEY_MAX) {
        *hash = key_hash(key, *n);
        return true;
    }
    whole = xmalloc(*n + 8);
    s->p = q;
    (void)string(s, whole, *n, n); /* checked above */
    *hash = key_hash(whole, *n);
    free(whole);
    *n = SIZE_MAX; /* never kept */
    return true;
}

/*
 * After a member or an element: past a ',' (*more) or past the container's close (not *more);
 * anything else is refused.
 */
static bool next_item(struct skim *s, char close, bool *more)
{
    skip_ws(s);
    *more = s->p < s->end && *s->p == ',';
    if (*more) {
        s->p++;
        skip_ws(s);
        return true;
    }
    if (s->p < s->end && *s->p == (unsigned char)close) {
        s->p++;
        return true;
    }
    return fail(s, close == '}' ? "',' or '}' expected" : "',' or ']' expected");
}

/*
 * A built object's members' key hashes, to find duplicates: the first KEYS_SMALL in the
 * object's own frame (most objects; nested objects' frames stay small, which matters on the
 * fibers' stacks), then on the heap up to KEYS_MAX. slot[] indexes seen[]: 0 for none, else an
 * index plus one.
 */
struct keyset {
    uint64_t *seen;
    uint16_t *slot;
    size_t n, cap, mask;
    uint64_t small_seen[KEYS_SMALL];
    uint16_t small_slot[SLOTS_SMALL];
};

static void keyset_init(struct keyset *k)
{
    k->seen = k->small_seen;
    k->slot = k->small_slot;
    k->n = 0;
    k->cap = KEYS_SMALL;
    k->mask = SLOTS_SMALL - 1;
    memset(k->small_slot, 0, sizeof(k->small_slot));
}

static void keyset_release(struct keyset *k)
{
    if (k->seen == k->small_seen)
        return;
    free(k->seen);
    free(k->slot);
}

/* The slot for h: its own when there, else the empty one where it goes. */
static size_t keyset_find(const struct keyset *k, uint64_t h)
{
    size_t i = (size_t)h & k->mask;

    while (k->slot[i] != 0 && k->seen[k->slot[i] - 1] != h)
        i = (i + 1) & k->mask;
    return i;
}

/* Moves the set to the heap, with room for KEYS_MAX. */
static void keyset_grow(struct keyset *k)
{
    uint64_t *seen = xcalloc(KEYS_MAX, sizeof(*seen));

    memcpy(seen, k->seen, k->n * sizeof(*seen));
    k->seen = seen;
    k->slot = xcalloc(KEY_SLOTS, sizeof(*k->slot));
    k->cap = KEYS_MAX;
    k->mask = KEY_SLOTS - 1;
    for (size_t j = 0; j < k->n; j++)
        k->slot[keyset_find(k, seen[j])] = (uint16_t)(j + 1);
}

/* Records h (past KEYS_MAX members, no more are recorded); false when it is there already. */
static bool key_new(struct keyset *k, uint64_t h)
{
    size_t i = keyset_find(k, h);

    if (k->slot[i] != 0)
        return false;
    if (k->n == k->cap) {
        if (k->cap == KEYS_MAX)
            return true;
        keyset_grow(k);
        i = keyset_find(k, h);
    }
    k->seen[k->n] = h;
    k->slot[i] = (uint16_t)++k->n;
    return true;
}

static bool members(struct skim *s, json_t **out, struct keyset *ks);

static bool object(struct skim *s, json_t **out)
{
    struct keyset ks;
    bool ok;

    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return true;
    }
    if (!out)
        return members(s, NULL, NULL);
    keyset_init(&ks);
    ok = members(s, out, &ks);
    keyset_release(&ks);
    return ok;
}

/* An object's members, from its first key on; ks collects a built object's keys. */
static bool members(struct skim *s, json_t **out, struct keyset *ks)
{
    for (;;) {
        char key[KEY_MAX + 8];
        size_t n = 0;
        uint64_t h = 0;
        json_t *v = NULL;
        bool more;
        bool keep;

        if (!member_key(s, out != NULL, key, &n, &h))
            return false;
        if (out && !key_new(ks, h))
            return fail(s, "duplicate object key");
        keep = out && n != SIZE_MAX && kept(s, key, n);
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return fail(s, "':' expected");
        s->p++;
        skip_ws(s);
        if (!value(s, keep ? &v : NULL))
            return false;
        if (keep && json_object_setn_new_nocheck(*out, key, n, v) != 0)
            return fail(s, "out of memory");
        if (!next_item(s, '}', &more))
            return false;
        if (!more)
            return true;
    }
}

static bool array(struct skim *s, json_t **out)
{
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return true;
    }
    for (;;) {
        json_t *v = NULL;
        bool more;

        if (!value(s, out ? &v : NULL))
            return false;
        if (out && json_array_append_new(*out, v) != 0)
            return fail(s, "out of memory");
        if (!next_item(s, ']', &more))
            return false;
        if (!more)
            return true;
    }
}

static bool nested(struct skim *s, json_t **out, json_t *(*make)(void),
                   bool (*body)(struct skim *, json_t **))
{
    bool ok;

    if (++s->depth > STRIPE_SKIM_DEPTH_MAX)
        return fail(s, "nested too deep");
    if (out)
        *out = make();
    ok = body(s, out);
    s->depth--;
    if (!ok && out) {
        json_decref(*out);
        *out = NULL;
    }
    return ok;
}

/* The value at s->p; built into *out when out is not NULL, only checked otherwise. */
static bool value(struct skim *s, json_t **out)
{
    const unsigned char *q = s->p;
    char stack[STRING_STACK], *text;
    size_t n = 0;

    if (s->p >= s->end)
        return fail(s, "value expected");
    switch (*s->p) {
    case '{':
        return nested(s, out, json_object, object);
    case '[':
        return nested(s, out, json_array, array);
    case '"':
        if (!string(s, out ? stack : NULL, out ? sizeof(stack) : 0, &n))
            return false;
        if (!out)
            return true;
        if (n <= sizeof(stack)) {
            *out = json_stringn_nocheck(stack, n);
            return *out != NULL || fail(s, "out of memory");
        }
        text = xmalloc(n); /* a long one: read again into its own room */
        s->p = q;
        (void)string(s, text, n, &n); /* checked above */
        *out = json_stringn_nocheck(text, n);
        free(text);
        return *out != NULL || fail(s, "out of memory");
    case 't':
        return literal(s, "true", json_true, out);
    case 'f':
        return literal(s, "false", json_false, out);
    case 'n':
        return literal(s, "null", json_null, out);
    default:
        return number(s, out);
    }
}

json_t *stripe_skim_parse(const char *text, size_t len, const char *const *keep, size_t nkeep,
                          char *errbuf, size_t errlen)
{
    struct skim s = { (const unsigned char *)text,
                      (const unsigned char *)text,
                      (const unsigned char *)text + len,
                      keep,
                      nkeep,
                      0,
                      NULL,
                      0 };
    json_t *top = NULL;

    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        (void)fail(&s, "'{' expected");
    else if (value(&s, &top)) {
        skip_ws(&s);
        if (s.p != s.end)
            (void)fail(&s, "end of text expected");
    }
    if (!s.why)
        return top;
    json_decref(top);
    snprintf(errbuf, errlen, "at byte %zu: %s", s.at, s.why);
    return NULL;
}
