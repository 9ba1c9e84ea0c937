/*
 * webhook.c: Stripe-Signature verification and signing. The header is parsed strictly into a
 * timestamp and the candidate v1 signatures first; the clock check comes before any HMAC, so a
 * replayed or junk header costs no crypto.
 */
#include "stripe/webhook.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/hmac.h"
#include "base/str.h"

#define T_MAX INT64_C(999999999999) /* timestamps past year 33658 are junk, and cannot overflow */

static const char WHY_OK[] = "ok";
static const char WHY_MISSING[] = "missing Stripe-Signature header";
static const char WHY_MALFORMED[] = "malformed Stripe-Signature header";
static const char WHY_NO_V1[] = "no v1 signature";
static const char WHY_STALE[] = "timestamp outside the tolerance zone";
static const char WHY_NO_MATCH[] = "no signature matches";

/* The parsed header; the v1 pointers borrow from it. */
struct sig_header {
    int64_t t;
    bool has_t;
    const char *v1[STRIPE_WEBHOOK_V1_MAX]; /* each exactly HMAC_SHA256_HEX_LEN bytes */
    size_t n_v1;
};

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Printable ASCII other than space: what header values may hold here. */
static bool is_token_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

static bool parse_t(struct sig_header *h, const char *v, size_t n)
{
    if (h->has_t || v[0] < '0' || v[0] > '9')
        return false;
    h->has_t = parse_i64(v, n, 0, T_MAX, &h->t) == ERR_OK;
    return h->has_t;
}

/* One "key=value" item. Unknown keys and odd-shaped v1 values are ignored, not refused. */
static bool parse_item(struct sig_header *h, const char *item, size_t n)
{
    const char *eq = memchr(item, '=', n);

    if (!eq || eq == item || eq == item + n - 1)
        return false;
    size_t klen = (size_t)(eq - item);
    const char *v = eq + 1;
    size_t vlen = n - klen - 1;

    if (klen == 1 && item[0] == 't')
        return parse_t(h, v, vlen);
    if (klen != 2 || memcmp(item, "v1", 2) != 0)
        return true;
    if (vlen != HMAC_SHA256_HEX_LEN || !is_lower_hex(v, vlen))
        return true;
    if (h->n_v1 == STRIPE_WEBHOOK_V1_MAX)
        return false;
    h->v1[h->n_v1++] = v;
    return true;
}

static bool parse_header(const char *header, size_t len, struct sig_header *h)
{
    size_t start = 0;

    memset(h, 0, sizeof(*h));
    if (len > STRIPE_WEBHOOK_HEADER_MAX || !is_token_text(header, len))
        return false;
    while (start <= len) {
        const char *comma = memchr(header + start, ',', len - start);
        size_t end = comma ? (size_t)(comma - header) : len;

        if (!parse_item(h, header + start, end - start))
            return false;
        start = end + 1;
    }
    return h->has_t;
}

static bool within_tolerance(int64_t t, int64_t now, int64_t tolerance_s)
{
    int64_t age;

    if (tolerance_s < 0 || __builtin_sub_overflow(now, t, &age))
        return false;
    return age <= tolerance_s && age >= -tolerance_s;
}

/* Formats the decimal t into digits[21]; returns its length. */
static size_t format_t(int64_t t, char digits[21])
{
    int n = snprintf(digits, 21, "%lld", (long long)t);

    return n > 0 ? (size_t)n : 0;
}

/* hex(HMAC-SHA256(key, "<t>.<body>")). */
static enum err expected_sig(const void *key, size_t key_len, int64_t t, const char *body,
                             size_t body_len, char hex[HMAC_SHA256_HEX_LEN + 1])
{
    char digits[21];
    size_t n = format_t(t, digits);
    const struct hmac_part parts[] = { { digits, n }, { ".", 1 }, { body, body_len } };

    return hmac_sha256_hex(key, key_len, parts, ARRAY_SIZE(parts), hex);
}

/* Whether any v1 of h matches this secret; ERR_INTERNAL only when the HMAC fails. */
static enum err match_secret(const struct sig_header *h, const struct secret *s, const char *body,
                             size_t body_len, bool *matched)
{
    char hex[HMAC_SHA256_HEX_LEN + 1];
    size_t key_len = 0;
    const unsigned char *key = secret_bytes(s, &key_len);

    if (!key)
        return ERR_OK;
    if (expected_sig(key, key_len, h->t, body, body_len, hex) != ERR_OK)
        return ERR_INTERNAL;
    for (size_t i = 0; i < h->n_v1; i++)
        if (CRYPTO_memcmp(hex, h->v1[i], HMAC_SHA256_HEX_LEN) == 0)
            *matched = true;
    OPENSSL_cleanse(hex, sizeof(hex));
    return ERR_OK;
}

static enum err fail(const char **why, const char *reason)
{
    *why = reason;
    return ERR_INVALID;
}

enum err stripe_webhook_verify(const struct stripe_webhook_check *chk, const char *header,
                               size_t header_len, const char *body, size_t body_len,
                               const char **why)
{
    struct sig_header h;
    bool matched = false;

    if (!header || header_len == 0)
        return fail(why, WHY_MISSING);
    if (!parse_header(header, header_len, &h))
        return fail(why, WHY_MALFORMED);
    if (h.n_v1 == 0)
        return fail(why, WHY_NO_V1);
    if (!within_tolerance(h.t, chk->now, chk->tolerance_s))
        return fail(why, WHY_STALE);
    for (size_t i = 0; i < chk->n_secrets && !matched; i++) {
        if (match_secret(&h, &chk->secrets[i], body ? body : "", body_len, &matched) != ERR_OK) {
            *why = "hmac failed";
            return ERR_INTERNAL;
        }
    }
    if (!matched)
        return fail(why, WHY_NO_MATCH);
    *why = WHY_OK;
    return ERR_OK;
}

enum err stripe_webhook_sign_header(const void *key, size_t key_len, int64_t t, const char *body,
                                    size_t body_len, char *out, size_t outlen)
{
    char hex[HMAC_SHA256_HEX_LEN + 1];
    enum err err;

    if (outlen > 0)
        out[0] = '\0';
    if (t < 0)
        return ERR_INVALID;
    err = expected_sig(key, key_len, t, body ? body : "", body_len, hex);
    if (err != ERR_OK)
        return err;
    int n = snprintf(out, outlen, "t=%lld,v1=%s", (long long)t, hex);
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen > 0)
            out[0] = '\0';
        return ERR_TOO_LARGE;
    }
    return ERR_OK;
}
