/*
 * test_stripe_webhook.c: Stripe-Signature verification and signing. The expected signatures
 * come from OpenSSL's one-shot HMAC(), not from base/hmac, so the two implementations check
 * each other; one vector was computed with Node's crypto.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/buf.h"
#include "base/hmac.h"
#include "base/secret.h"
#include "stripe/webhook.h"
#include "t.h"

#define NOW    INT64_C(1700000000)
#define S1     "whsec_test_secret_one"
#define S2     "whsec_test_secret_two"
#define S3     "whsec_someone_else"
#define BODY   "{\"id\":\"evt_1\",\"object\":\"event\"}"
#define HDR_SZ 10000

/* What the verifier is handed as body, relative to what was signed. */
enum body_mode {
    BODY_SAME,     /* BODY, signed and verified */
    BODY_TAMPERED, /* BODY signed, one byte changed before verifying */
    BODY_NUL,      /* bytes with NULs inside, signed and verified whole */
    BODY_NUL_CUT,  /* bytes with NULs signed, verified only up to the first NUL */
};

/* Which secrets the verifier is configured with. */
enum conf {
    CONF_S1,    /* [S1] */
    CONF_S2_S1, /* [S2, S1]: rotation, S1 is the second */
    CONF_NONE,  /* [] */
};

/*
 * A header template: {t} is the timestamp, {s1} {s2} {s3} the v1 signatures with each secret
 * over the row's signed body, {S1} the upper-case {s1}, {short} {s1} less its last digit.
 */
static const struct {
    const char *name;
    const char *tmpl; /* NULL: no header at all */
    int64_t t_offset; /* t = NOW + t_offset */
    enum body_mode body;
    enum conf conf;
    size_t pad; /* appended as ",x=aaa..." to reach this length, 0 = none */
    enum err want;
    const char *why;
} rows[] = {
    { "valid", "t={t},v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_OK, "ok" },
    { "second v1 matches", "t={t},v1={s3},v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_OK, "ok" },
    { "v1 before t", "v1={s1},t={t}", 0, BODY_SAME, CONF_S1, 0, ERR_OK, "ok" },
    { "second secret matches (rotation)", "t={t},v1={s1}", 0, BODY_SAME, CONF_S2_S1, 0, ERR_OK,
      "ok" },
    { "v0 only", "t={t},v0={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID, "no v1 signature" },
    { "unknown scheme plus valid v1", "t={t},v9=zz,v0={s3},v1={s1}", 0, BODY_SAME, CONF_S1, 0,
      ERR_OK, "ok" },
    { "stale by 301 s", "t={t},v1={s1}", -301, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "timestamp outside the tolerance zone" },
    { "future by 301 s", "t={t},v1={s1}", 301, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "timestamp outside the tolerance zone" },
    { "exactly 300 s old", "t={t},v1={s1}", -300, BODY_SAME, CONF_S1, 0, ERR_OK, "ok" },
    { "exactly 300 s ahead", "t={t},v1={s1}", 300, BODY_SAME, CONF_S1, 0, ERR_OK, "ok" },
    { "tampered body", "t={t},v1={s1}", 0, BODY_TAMPERED, CONF_S1, 0, ERR_INVALID,
      "no signature matches" },
    { "signed with another secret", "t={t},v1={s3}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "no signature matches" },
    { "signed with an unconfigured secret", "t={t},v1={s2}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "no signature matches" },
    { "no secret configured", "t={t},v1={s1}", 0, BODY_SAME, CONF_NONE, 0, ERR_INVALID,
      "no signature matches" },
    { "missing t", "v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "non-numeric t", "t=17000x0000,v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "negative t", "t=-1,v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "huge t", "t=99999999999999999999999,v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "duplicate t", "t={t},t={t},v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "empty header", "", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "missing Stripe-Signature header" },
    { "no header", NULL, 0, BODY_SAME, CONF_S1, 0, ERR_INVALID, "missing Stripe-Signature header" },
    { "upper-case hex", "t={t},v1={S1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID, "no v1 signature" },
    { "short hex", "t={t},v1={short}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID, "no v1 signature" },
    { "header with spaces", "t={t}, v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "trailing comma", "t={t},v1={s1},", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "item without =", "t={t},v1,v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "empty value", "t={t},v1=,v1={s1}", 0, BODY_SAME, CONF_S1, 0, ERR_INVALID,
      "malformed Stripe-Signature header" },
    { "header at the cap", "t={t},v1={s1}", 0, BODY_SAME, CONF_S1, STRIPE_WEBHOOK_HEADER_MAX,
      ERR_OK, "ok" },
    { "huge header", "t={t},v1={s1}", 0, BODY_SAME, CONF_S1, STRIPE_WEBHOOK_HEADER_MAX + 1,
      ERR_INVALID, "malformed Stripe-Signature header" },
    { "too many v1",
      "t={t},v1={s3},v1={s3},v1={s3},v1={s3},v1={s3},v1={s3},v1={s3},v1={s3},"
      "v1={s3},v1={s3},v1={s3},v1={s3},v1={s3},v1={s3},v1={s3},v1={s3},v1={s1}",
      0, BODY_SAME, CONF_S1, 0, ERR_INVALID, "malformed Stripe-Signature header" },
    { "body with NUL bytes", "t={t},v1={s1}", 0, BODY_NUL, CONF_S1, 0, ERR_OK, "ok" },
    { "NUL body cut at the first NUL", "t={t},v1={s1}", 0, BODY_NUL_CUT, CONF_S1, 0, ERR_INVALID,
      "no signature matches" },
};

static const char nul_body[] = "{\"a\":\"x\0y\"}\0tail";

/* hex(HMAC-SHA256(key, "<t>.<body>")) with OpenSSL's one-shot HMAC. */
static void reference_sig(const char *key, int64_t t, const char *body, size_t len, char *hex)
{
    unsigned char msg[256], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int n = snprintf((char *)msg, sizeof(msg), "%lld.", (long long)t);

    memcpy(msg + n, body, len);
    HMAC(EVP_sha256(), key, (int)strlen(key), msg, (size_t)n + len, mac, &mac_len);
    for (unsigned int i = 0; i < mac_len; i++)
        snprintf(hex + (size_t)2 * i, 3, "%02x", mac[i]);
}

/* Appends the expansion of the placeholder {name} (nlen bytes) to the buf. */
static void expand_one(struct buf *out, const char *name, size_t nlen, int64_t t, const char *body,
                       size_t blen)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
    const char *key = nlen == 2 && name[1] == '2' ? S2 : nlen == 2 && name[1] == '3' ? S3 : S1;

    if (nlen == 1) {
        (void)!buf_appendf(out, "%lld", (long long)t); /* the cap is far away */
        return;
    }
    reference_sig(key, t, body, blen, hex);
    if (name[0] == 'S')
        for (char *p = hex; *p; p++)
            *p = (char)(*p >= 'a' ? *p - 'a' + 'A' : *p);
    if (nlen == 5)
        hex[HMAC_SHA256_HEX_LEN - 1] = '\0';
    (void)!buf_puts(out, hex); /* the cap is far away */
}

/* Expands tmpl, then pads it with ",x=aaa..." up to pad bytes. */
static void expand(struct buf *out, const char *tmpl, int64_t t, const char *body, size_t blen,
                   size_t pad)
{
    for (const char *p = tmpl; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (!close) {
            (void)!buf_append(out, p++, 1); /* the cap is far away */
            continue;
        }
        expand_one(out, p + 1, (size_t)(close - p - 1), t, body, blen);
        p = close + 1;
    }
    if (pad > out->len + 3)
        (void)!buf_puts(out, ",x="); /* the cap is far away */
    while (pad > out->len)
        (void)!buf_append(out, "a", 1); /* the cap is far away */
}

static size_t n_configured(enum conf c)
{
    return c == CONF_S2_S1 ? 2 : c == CONF_S1 ? 1 : 0;
}

static void test_rows(void)
{
    struct secret s[2] = { { 0 }, { 0 } };
    struct stripe_webhook_check chk = { s, 0, NOW, STRIPE_WEBHOOK_TOLERANCE_S };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct buf hdr;
        const char *why = NULL;
        bool nul = rows[i].body == BODY_NUL || rows[i].body == BODY_NUL_CUT;
        const char *signed_body = nul ? nul_body : BODY;
        size_t signed_len = nul ? sizeof(nul_body) - 1 : strlen(BODY);
        char verified[64];
        size_t verified_len = rows[i].body == BODY_NUL_CUT ? strlen(nul_body) : signed_len;

        memcpy(verified, signed_body, signed_len);
        if (rows[i].body == BODY_TAMPERED)
            verified[signed_len - 2] = 'X';
        secret_set(&s[0], rows[i].conf == CONF_S2_S1 ? S2 : S1, strlen(S1));
        secret_set(&s[1], S1, strlen(S1));
        chk.n_secrets = n_configured(rows[i].conf);
        buf_init(&hdr, HDR_SZ);
        if (rows[i].tmpl)
            expand(&hdr, rows[i].tmpl, NOW + rows[i].t_offset, signed_body, signed_len,
                   rows[i].pad);
        enum err err = stripe_webhook_verify(&chk, rows[i].tmpl ? buf_str(&hdr) : NULL, hdr.len,
                                             verified, verified_len, &why);
        T_EQ_I64(err, rows[i].want, "%s: result", rows[i].name);
        T_EQ_STR(why, rows[i].why, "%s: reason", rows[i].name);
        buf_release(&hdr);
    }
    secret_release(&s[0]);
    secret_release(&s[1]);
}

/* A header signed at NOW - 10, checked at other clocks and tolerances. */
static const struct {
    const char *name;
    int64_t now;
    int64_t tolerance_s;
    enum err want;
} clocks[] = {
    { "10 s old passes a 10 s tolerance", NOW, 10, ERR_OK },
    { "10 s old fails a 9 s tolerance", NOW, 9, ERR_INVALID },
    { "a zero tolerance passes the exact second", NOW - 10, 0, ERR_OK },
    { "a zero tolerance fails a second later", NOW - 9, 0, ERR_INVALID },
    { "now = INT64_MIN is out of tolerance, not an overflow", INT64_MIN, 300, ERR_INVALID },
    { "now = INT64_MAX is out of tolerance, not an overflow", INT64_MAX, 300, ERR_INVALID },
    { "a negative tolerance refuses everything", NOW - 10, -1, ERR_INVALID },
};

static void test_tolerance(void)
{
    struct secret s = { 0 };
    char hdr[STRIPE_WEBHOOK_SIGNED_MAX];
    const char *why = NULL;

    secret_set(&s, S1, strlen(S1));
    T_OK(stripe_webhook_sign_header(S1, strlen(S1), NOW - 10, BODY, strlen(BODY), hdr,
                                    sizeof(hdr)) == ERR_OK,
         "sign for the tolerance checks");
    for (size_t i = 0; i < ARRAY_SIZE(clocks); i++) {
        struct stripe_webhook_check chk = { &s, 1, clocks[i].now, clocks[i].tolerance_s };
        T_EQ_I64(stripe_webhook_verify(&chk, hdr, strlen(hdr), BODY, strlen(BODY), &why),
                 clocks[i].want, "%s", clocks[i].name);
    }
    secret_release(&s);
}

static void test_sign(void)
{
    char hdr[STRIPE_WEBHOOK_SIGNED_MAX], small[40];

    /* Computed with Node: createHmac('sha256', S1).update('1700000000.' + BODY). */
    T_OK(stripe_webhook_sign_header(S1, strlen(S1), NOW, BODY, strlen(BODY), hdr, sizeof(hdr)) ==
             ERR_OK,
         "sign");
    T_EQ_STR(hdr,
             "t=1700000000,v1=f47f64da9d1ba42eb488b654a981fb3ad1d6774e08e65b8ecea14a14ecf4d750",
             "signed header matches Node's HMAC");
    T_EQ_I64(
        stripe_webhook_sign_header(S1, strlen(S1), NOW, BODY, strlen(BODY), small, sizeof(small)),
        ERR_TOO_LARGE, "too small an output buffer");
    T_EQ_STR(small, "", "too small an output buffer is left empty");
    T_EQ_I64(stripe_webhook_sign_header(S1, strlen(S1), -1, BODY, strlen(BODY), hdr, sizeof(hdr)),
             ERR_INVALID, "negative timestamp");
    T_OK(stripe_webhook_sign_header(S1, strlen(S1), INT64_MAX, BODY, strlen(BODY), hdr,
                                    sizeof(hdr)) == ERR_OK,
         "the largest timestamp fits STRIPE_WEBHOOK_SIGNED_MAX");
}

/* RFC 4231 test case 2, fed in three parts. */
static void test_hmac(void)
{
    const struct hmac_part parts[] = { { "what do ya", 10 },
                                       { "", 0 },
                                       { " want for nothing?", 18 } };
    char hex[HMAC_SHA256_HEX_LEN + 1];

    T_OK(hmac_sha256_hex("Jefe", 4, parts, ARRAY_SIZE(parts), hex) == ERR_OK, "hmac in parts");
    T_EQ_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
             "RFC 4231 case 2");
    T_OK(hmac_sha256_hex("", 0, NULL, 0, hex) == ERR_OK, "empty key, empty message");
    T_EQ_STR(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
             "HMAC-SHA256 of nothing under the empty key");
}

/* hex of OpenSSL's one-shot HMAC-SHA256, the reference */
static void reference_hex(const void *key, size_t key_len, const void *msg, size_t len, char *hex)
{
    unsigned char mac[32];
    unsigned int mac_len = 0;

    HMAC(EVP_sha256(), key_len ? key : "", (int)key_len, msg, len, mac, &mac_len);
    for (unsigned i = 0; i < mac_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

/*
 * base/hmac keeps a few keyed contexts per thread and restarts them: keys taking turns (more
 * of them than it keeps, one longer than it keeps, one empty, two of one length differing only
 * in the last byte), each MAC
 * against the one-shot reference, on this thread and on two more at once.
 */
static void *mac_rounds(void *arg)
{
    static const size_t lens[] = { 0, 4, 32, 64, 65, 128, 129, 5000, 32 };
    static _Thread_local unsigned char keys[ARRAY_SIZE(lens)][5000];
    char msg[300];
    size_t *bad = arg;

    for (size_t k = 0; k < ARRAY_SIZE(lens); k++)
        for (size_t i = 0; i < sizeof(keys[k]); i++)
            keys[k][i] = (unsigned char)((k * 31 + i * 7) & 0xff);
    memcpy(keys[8], keys[2], 31); /* key 2's length and first 31 bytes, not its last */
    for (size_t round = 0; round < 300; round++) {
        size_t k = (round * 5 + round / 9) % ARRAY_SIZE(lens);
        size_t len = (round * 37) % sizeof(msg);
        char got[HMAC_SHA256_HEX_LEN + 1], want[HMAC_SHA256_HEX_LEN + 1];
        const struct hmac_part parts[] = { { msg, len / 3 }, { msg + len / 3, len - len / 3 } };

        for (size_t i = 0; i < len; i++)
            msg[i] = (char)('a' + (round + i) % 26);
        reference_hex(keys[k], lens[k], msg, len, want);
        if (hmac_sha256_hex(keys[k], lens[k], parts, ARRAY_SIZE(parts), got) != ERR_OK ||
            strcmp(got, want) != 0)
            (*bad)++;
    }
    return NULL;
}

static void test_hmac_keys(void)
{
    size_t bad[3] = { 0, 0, 0 };
    pthread_t th[2];

    mac_rounds(&bad[0]);
    T_EQ_I64((int64_t)bad[0], 0, "300 MACs under 9 keys taking turns match the reference");
    for (int i = 0; i < 2; i++)
        T_OK(pthread_create(&th[i], NULL, mac_rounds, &bad[i + 1]) == 0, "thread %d starts", i);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    T_EQ_I64((int64_t)(bad[1] + bad[2]), 0, "and on two threads at once");
}

int main(void)
{
    test_rows();
    test_tolerance();
    test_sign();
    test_hmac();
    test_hmac_keys();
    return t_done();
}
