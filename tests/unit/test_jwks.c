/*
 * test_jwks.c: unit tests of auth/jwks and the JWKS path of auth/jwt: parsing (RSA and EC, the
 * kinds skipped, bad base64url, missing fields, repeated kids), selection by kid, the algorithm
 * pinned by the key, HS and none refused, and the rate limit of fetches for unknown kids. Keys
 * are made here with OpenSSL and tokens signed here, so nothing depends on fixtures.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwks.h"
#include "auth/jwks_source.h"
#include "auth/jwt.h"
#include "base/log.h"
#include "t.h"

#define NOW     INT64_C(1800000000)
#define ISSUER  "https://tenant.idp.example/"
#define CLAIMS  "{\"iss\":\"" ISSUER "\",\"sub\":\"user_1\",\"exp\":1800003600}"
#define B64_MAX 2048
#define TOK_MAX 4096
#define DOC_MAX 16384

static EVP_PKEY *rsa_a, *rsa_b, *rsa_short, *ec_e;

/* Base64url components of the keys: n and e, x and y. */
static char a_n[B64_MAX], a_e[16], b_n[B64_MAX], short_n[B64_MAX], e_x[64], e_y[64], e_y_bad[64];

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url(const unsigned char *p, size_t n, char *dst, size_t cap)
{
    unsigned acc = 0, bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6 && o + 1 < cap) {
            bits -= 6;
            dst[o++] = b64_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0 && o + 1 < cap)
        dst[o++] = b64_alphabet[(acc << (6 - bits)) & 63];
    dst[o] = '\0';
}

static void rsa_parts(EVP_PKEY *k, char *n_out, char *e_out)
{
    unsigned char buf[1024];
    BIGNUM *n = NULL, *e = NULL;

    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e);
    b64url(buf, (size_t)BN_bn2bin(n, buf), n_out, B64_MAX);
    if (e_out)
        b64url(buf, (size_t)BN_bn2bin(e, buf), e_out, 16);
    BN_free(n);
    BN_free(e);
}

static void ec_parts(EVP_PKEY *k)
{
    unsigned char pt[65];
    size_t len = 0;

    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len);
    T_EQ_I64(len, 65, "setup: uncompressed P-256 point");
    b64url(pt + 1, 32, e_x, sizeof(e_x));
    b64url(pt + 33, 32, e_y, sizeof(e_y));
    pt[64] ^= 1; /* off the curve */
    b64url(pt + 33, 32, e_y_bad, sizeof(e_y_bad));
}

static void setup_keys(void)
{
    rsa_a = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa_b = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa_short = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ec_e = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!rsa_a || !rsa_b || !rsa_short || !ec_e) {
        T_OK(0, "setup: key generation");
        exit(t_done() | 1);
    }
    rsa_parts(rsa_a, a_n, a_e);
    rsa_parts(rsa_b, b_n, NULL);
    rsa_parts(rsa_short, short_n, NULL);
    ec_parts(ec_e);
}

/* JWK texts, filled in by jwk() with the components above. */
static void jwk_rsa(char *dst, size_t cap, const char *n, const char *extra)
{
    snprintf(dst, cap, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s}", n, a_e, extra);
}

static void jwk_ec(char *dst, size_t cap, const char *y, const char *extra)
{
    snprintf(dst, cap, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"%s}", e_x, y,
             extra);
}

/* ---- parsing ---- */

enum which {
    RSA_A,
    RSA_B,
    RSA_SHORT,
    EC_E,
    EC_BAD,
    LITERAL,
};

struct entry {
    enum which which;
    const char *extra; /* members appended to the JWK; LITERAL: the whole entry */
};

static const struct {
    const char *name;
    struct entry entries[3];
    size_t count;
    size_t want_usable; /* 0: ERR_INVALID */
    size_t want_skipped;
} parse_rows[] = {
    { "RSA with kid", { { RSA_A, ",\"kid\":\"a\"" } }, 1, 1, 0 },
    { "RSA, use sig, alg RS256",
      { { RSA_A, ",\"kid\":\"a\",\"use\":\"sig\",\"alg\":\"RS256\"" } },
      1,
      1,
      0 },
    { "EC with kid", { { EC_E, ",\"kid\":\"e\"" } }, 1, 1, 0 },
    { "RSA and EC", { { RSA_A, ",\"kid\":\"a\"" }, { EC_E, ",\"kid\":\"e\"" } }, 2, 2, 0 },
    { "oct skipped",
      { { LITERAL, "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"kid\":\"o\"}" },
        { RSA_A, ",\"kid\":\"a\"" } },
      2,
      1,
      1 },
    { "only OKP",
      { { LITERAL, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}" } },
      1,
      0,
      1 },
    { "use enc skipped", { { RSA_A, ",\"use\":\"enc\"" }, { EC_E, "" } }, 2, 1, 1 },
    { "alg ES256 on RSA skipped", { { RSA_A, ",\"alg\":\"ES256\"" }, { EC_E, "" } }, 2, 1, 1 },
    { "alg RS512 on RSA skipped", { { RSA_A, ",\"alg\":\"RS512\"" }, { EC_E, "" } }, 2, 1, 1 },
    { "alg HS256 on EC skipped", { { EC_E, ",\"alg\":\"HS256\"" }, { RSA_A, "" } }, 2, 1, 1 },
    { "P-384 skipped",
      { { LITERAL, "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}" },
        { RSA_A, "" } },
      2,
      1,
      1 },
    { "point off the curve", { { EC_BAD, "" }, { RSA_A, "" } }, 2, 1, 1 },
    { "RSA of 1024 bits", { { RSA_SHORT, "" }, { EC_E, "" } }, 2, 1, 1 },
    { "n padded (not base64url)",
      { { LITERAL, "{\"kty\":\"RSA\",\"n\":\"AQAB==\",\"e\":\"AQAB\"}" }, { EC_E, "" } },
      2,
      1,
      1 },
    { "n in base64 (+/)",
      { { LITERAL, "{\"kty\":\"RSA\",\"n\":\"ab+/\",\"e\":\"AQAB\"}" }, { EC_E, "" } },
      2,
      1,
      1 },
    { "RSA without e", { { LITERAL, "{\"kty\":\"RSA\",\"n\":\"AQAB\"}" }, { EC_E, "" } }, 2, 1, 1 },
    { "EC without y",
      { { LITERAL, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\"}" }, { RSA_A, "" } },
      2,
      1,
      1 },
    { "no kty", { { LITERAL, "{\"n\":\"AQAB\",\"e\":\"AQAB\"}" }, { RSA_A, "" } }, 2, 1, 1 },
    { "entry not an object", { { LITERAL, "\"RSA\"" }, { RSA_A, "" } }, 2, 1, 1 },
    { "kid not a string", { { RSA_A, ",\"kid\":7" }, { EC_E, "" } }, 2, 1, 1 },
    { "duplicate kid: the first wins",
      { { RSA_A, ",\"kid\":\"k\"" }, { EC_E, ",\"kid\":\"k\"" }, { RSA_B, ",\"kid\":\"b\"" } },
      3,
      2,
      1 },
};

/* Builds {"keys":[...]} from the row's entries into doc[DOC_MAX]. */
static void build_doc(const struct entry *entries, size_t count, char *doc)
{
    static char jwk[B64_MAX * 2];
    size_t o = (size_t)snprintf(doc, DOC_MAX, "{\"keys\":[");

    for (size_t i = 0; i < count; i++) {
        const struct entry *e = &entries[i];
        switch (e->which) {
        case RSA_A:
            jwk_rsa(jwk, sizeof(jwk), a_n, e->extra);
            break;
        case RSA_B:
            jwk_rsa(jwk, sizeof(jwk), b_n, e->extra);
            break;
        case RSA_SHORT:
            jwk_rsa(jwk, sizeof(jwk), short_n, e->extra);
            break;
        case EC_E:
            jwk_ec(jwk, sizeof(jwk), e_y, e->extra);
            break;
        case EC_BAD:
            jwk_ec(jwk, sizeof(jwk), e_y_bad, e->extra);
            break;
        case LITERAL:
            snprintf(jwk, sizeof(jwk), "%s", e->extra);
            break;
        }
        o += (size_t)snprintf(doc + o, DOC_MAX - o, "%s%s", i ? "," : "", jwk);
    }
    snprintf(doc + o, DOC_MAX - o, "]}");
}

static void test_parse_rows(void)
{
    static char doc[DOC_MAX];

    for (size_t i = 0; i < ARRAY_SIZE(parse_rows); i++) {
        struct jwks_keys *ks = NULL;
        struct jwks_parse_info info;
        char err[256] = "";
        build_doc(parse_rows[i].entries, parse_rows[i].count, doc);
        enum err got = jwks_keys_parse(doc, strlen(doc), &ks, &info, err, sizeof(err));
        T_EQ_I64(got, parse_rows[i].want_usable ? ERR_OK : ERR_INVALID, "parse: %s (%s)",
                 parse_rows[i].name, err);
        T_EQ_I64(ks ? jwks_keys_count(ks) : 0, parse_rows[i].want_usable, "parse: %s: usable",
                 parse_rows[i].name);
        T_EQ_I64(info.skipped, parse_rows[i].want_skipped, "parse: %s: skipped",
                 parse_rows[i].name);
        jwks_keys_release(ks);
    }
}

static const struct {
    const char *doc;
    const char *want;
} bad_docs[] = {
    { "", "not a JWKS: " },
    { "[]", "not a JWKS: not a JSON object" },
    { "{}", "not a JWKS: no \"keys\" array" },
    { "{\"keys\":{}}", "not a JWKS: no \"keys\" array" },
    { "{\"keys\":[]}", "JWKS has no usable key (0 skipped)" },
    { "{\"keys\":[],\"keys\":[]}", "not a JWKS: " },
    { "{\"keys\":[{\"kty\":\"oct\"}]}",
      "JWKS has no usable key (1 skipped, first: key type other than RSA and EC)" },
};

static void test_bad_docs(void)
{
    static char many[DOC_MAX];
    size_t o = (size_t)snprintf(many, sizeof(many), "{\"keys\":[");

    for (size_t i = 0; i < ARRAY_SIZE(bad_docs); i++) {
        struct jwks_keys *ks = NULL;
        char err[256] = "";
        T_EQ_I64(
            jwks_keys_parse(bad_docs[i].doc, strlen(bad_docs[i].doc), &ks, NULL, err, sizeof(err)),
            ERR_INVALID, "bad doc %zu: refused", i);
        T_OK(ks == NULL && strncmp(err, bad_docs[i].want, strlen(bad_docs[i].want)) == 0,
             "bad doc %zu: '%s' starts with '%s'", i, err, bad_docs[i].want);
    }
    for (int i = 0; i <= JWKS_KEYS_MAX; i++)
        o += (size_t)snprintf(many + o, sizeof(many) - o, "%s{\"kty\":\"oct\"}", i ? "," : "");
    snprintf(many + o, sizeof(many) - o, "]}");
    struct jwks_keys *ks = NULL;
    char err[256] = "";
    T_EQ_I64(jwks_keys_parse(many, strlen(many), &ks, NULL, err, sizeof(err)), ERR_INVALID,
             "bad doc: %d keys refused (%s)", JWKS_KEYS_MAX + 1, err);
}

/* ---- selection by kid ---- */

static struct jwks_keys *parse_entries(const struct entry *entries, size_t count)
{
    static char doc[DOC_MAX];
    struct jwks_keys *ks = NULL;
    char err[256] = "";

    build_doc(entries, count, doc);
    if (jwks_keys_parse(doc, strlen(doc), &ks, NULL, err, sizeof(err)) != ERR_OK)
        T_OK(0, "select: parse (%s)", err);
    return ks;
}

static void test_select(void)
{
    const struct entry two[] = { { RSA_A, ",\"kid\":\"a\"" }, { EC_E, ",\"kid\":\"e\"" } };
    const struct entry bare[] = { { RSA_A, "" } };
    const struct entry mixed[] = { { RSA_A, "" }, { EC_E, ",\"kid\":\"e\"" } };
    const struct entry dup[] = { { RSA_A, ",\"kid\":\"k\"" }, { EC_E, ",\"kid\":\"k\"" } };
    struct jwks_keys *ks = parse_entries(two, 2);
    const struct jwks_key *k;

    k = ks ? jwks_keys_find(ks, "a") : NULL;
    T_OK(k && k->alg == JWT_RS256, "select: kid a is the RSA key, RS256");
    k = ks ? jwks_keys_find(ks, "e") : NULL;
    T_OK(k && k->alg == JWT_ES256, "select: kid e is the EC key, ES256");
    T_OK(ks && !jwks_keys_find(ks, "x"), "select: unknown kid");
    T_OK(ks && !jwks_keys_find(ks, "A"), "select: kids are case-sensitive");
    T_OK(ks && !jwks_keys_find(ks, NULL), "select: no kid, several keys");
    jwks_keys_release(ks);
    ks = parse_entries(bare, 1);
    T_OK(ks && jwks_keys_find(ks, NULL), "select: no kid, the one kid-less key");
    T_OK(ks && !jwks_keys_find(ks, "a"), "select: a kid never picks a kid-less key");
    jwks_keys_release(ks);
    ks = parse_entries(mixed, 2);
    T_OK(ks && !jwks_keys_find(ks, NULL), "select: no kid, a kid-less key among others");
    jwks_keys_release(ks);
    ks = parse_entries(dup, 2);
    k = ks ? jwks_keys_find(ks, "k") : NULL;
    T_OK(k && k->alg == JWT_RS256 && jwks_keys_count(ks) == 1, "select: repeated kid, first wins");
    jwks_keys_release(ks);
}

/* ---- tokens through a JWT_JWKS_FILE verifier ---- */

static void text_b64(const char *s, char *dst, size_t cap)
{
    b64url((const unsigned char *)s, strlen(s), dst, cap);
}

/* DER ECDSA-Sig-Value to JWS R || S. */
static size_t der_to_raw(const unsigned char *der, size_t len, unsigned char *raw)
{
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &der, (long)len);
    const BIGNUM *r = NULL, *s = NULL;

    if (!sig)
        return 0;
    ECDSA_SIG_get0(sig, &r, &s);
    BN_bn2binpad(r, raw, 32);
    BN_bn2binpad(s, raw + 32, 32);
    ECDSA_SIG_free(sig);
    return 64;
}

/* header.payload signed by key (or with HMAC over hmac_key when key is NULL). */
static const char *sign(const char *header, const char *payload, EVP_PKEY *key,
                        const char *hmac_key)
{
    static char tok[TOK_MAX];
    unsigned char sig[1024], raw[64];
    size_t sig_len = sizeof(sig), o;
    unsigned int mac_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    text_b64(header, tok, sizeof(tok));
    o = strlen(tok);
    tok[o++] = '.';
    text_b64(payload, tok + o, sizeof(tok) - o);
    o = strlen(tok);
    if (key) {
        EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key);
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)tok, o);
        if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
            sig_len = der_to_raw(sig, sig_len, raw);
            memcpy(sig, raw, sig_len);
        }
    } else if (hmac_key) {
        HMAC(EVP_sha256(), hmac_key, (int)strlen(hmac_key), (const unsigned char *)tok, o, sig,
             &mac_len);
        sig_len = mac_len;
    } else {
        sig_len = 0;
    }
    EVP_MD_CTX_free(ctx);
    tok[o++] = '.';
    b64url(sig, sig_len, tok + o, sizeof(tok) - o);
    return tok;
}

enum signer {
    BY_A,
    BY_B,
    BY_E,
    BY_HMAC_N, /* HS256 keyed with key A's n: the classic confusion */
    BY_NONE,
};

static const struct {
    const char *name;
    const char *header;
    const char *payload;
    enum signer by;
    const char *want;
} token_rows[] = {
    { "RS256, kid a, key A", "{\"alg\":\"RS256\",\"kid\":\"a\"}", CLAIMS, BY_A, "ok" },
    { "ES256, kid e, key E", "{\"alg\":\"ES256\",\"kid\":\"e\",\"typ\":\"JWT\"}", CLAIMS, BY_E,
      "ok" },
    { "RS256 under the EC kid", "{\"alg\":\"RS256\",\"kid\":\"e\"}", CLAIMS, BY_A,
      "algorithm not allowed" },
    { "ES256 under the RSA kid", "{\"alg\":\"ES256\",\"kid\":\"a\"}", CLAIMS, BY_E,
      "algorithm not allowed" },
    { "HS256 keyed with n", "{\"alg\":\"HS256\",\"kid\":\"a\"}", CLAIMS, BY_HMAC_N,
      "algorithm not allowed" },
    { "HS512", "{\"alg\":\"HS512\",\"kid\":\"a\"}", CLAIMS, BY_HMAC_N, "algorithm not allowed" },
    { "none", "{\"alg\":\"none\",\"kid\":\"a\"}", CLAIMS, BY_NONE, "algorithm not allowed" },
    { "RS512", "{\"alg\":\"RS512\",\"kid\":\"a\"}", CLAIMS, BY_A, "algorithm not allowed" },
    { "unknown kid", "{\"alg\":\"RS256\",\"kid\":\"x\"}", CLAIMS, BY_A, "unknown key id" },
    { "no kid, several keys", "{\"alg\":\"RS256\"}", CLAIMS, BY_A, "unknown key id" },
    { "kid not a string", "{\"alg\":\"RS256\",\"kid\":1}", CLAIMS, BY_A, "malformed token" },
    { "kid a, signed by B", "{\"alg\":\"RS256\",\"kid\":\"a\"}", CLAIMS, BY_B, "bad signature" },
    { "crit", "{\"alg\":\"RS256\",\"kid\":\"a\",\"crit\":[\"x\"]}", CLAIMS, BY_A,
      "unsupported critical header" },
    { "expired", "{\"alg\":\"RS256\",\"kid\":\"a\"}",
      "{\"iss\":\"" ISSUER "\",\"sub\":\"u\",\"exp\":1700000000}", BY_A, "token expired" },
    { "wrong issuer", "{\"alg\":\"ES256\",\"kid\":\"e\"}",
      "{\"iss\":\"https://evil.example/\",\"sub\":\"u\",\"exp\":1800003600}", BY_E,
      "wrong issuer" },
    { "no sub", "{\"alg\":\"RS256\",\"kid\":\"a\"}", "{\"iss\":\"" ISSUER "\",\"exp\":1800003600}",
      BY_A, "missing sub claim" },
};

static const char *sign_row(size_t i)
{
    EVP_PKEY *k = token_rows[i].by == BY_A   ? rsa_a
                  : token_rows[i].by == BY_B ? rsa_b
                  : token_rows[i].by == BY_E ? ec_e
                                             : NULL;

    return sign(token_rows[i].header, token_rows[i].payload, k,
                token_rows[i].by == BY_HMAC_N ? a_n : NULL);
}

static struct jwks_source *file_source(const char *doc, char *path, size_t cap)
{
    struct jwks_source_params p = { .min_refresh_s = 30, .refresh_s = 600 };
    struct jwks_source *src = NULL;
    char err[256] = "";
    FILE *f;
    int fd;

    snprintf(path, cap, "/tmp/test_jwks_XXXXXX");
    fd = mkstemp(path);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f) {
        fputs(doc, f);
        fclose(f);
    }
    p.file = path;
    T_EQ_I64(jwks_source_new(&p, &src, err, sizeof(err)), ERR_OK, "file source (%s)", err);
    return src;
}

static void test_tokens(void)
{
    const struct entry two[] = { { RSA_A, ",\"kid\":\"a\",\"use\":\"sig\"" },
                                 { EC_E, ",\"kid\":\"e\"" } };
    static char doc[DOC_MAX];
    char path[64];
    struct jwks_source *src;
    struct jwt_verifier *v = NULL;

    build_doc(two, 2, doc);
    src = file_source(doc, path, sizeof(path));
    if (!src || jwt_verifier_new_jwks(src, ISSUER, NULL, &v) != ERR_OK)
        exit(t_done() | 1);
    for (size_t i = 0; i < ARRAY_SIZE(token_rows); i++) {
        for (int pass = 0; pass < 2; pass++) { /* the second pass may come from the cache */
            struct jwt_claims c;
            const char *why = NULL;
            const char *tok = sign_row(i);
            enum err err = jwt_verify(v, tok, strlen(tok), NOW, &c, &why);
            T_EQ_STR(why, token_rows[i].want, "token: %s (pass %d)", token_rows[i].name, pass);
            T_EQ_I64(err == ERR_OK, strcmp(token_rows[i].want, "ok") == 0, "token: %s: err",
                     token_rows[i].name);
        }
    }
    T_EQ_I64(jwks_source_fetches(src), 0, "file source: never fetches");
    jwt_verifier_free(v);
    jwks_source_free(src);
    unlink(path);
}

/* A provider that cannot be reached: no keys, and no fetch per token. */
static void test_unreachable(void)
{
    struct jwks_source_params p = { .url = "http://127.0.0.1:1/jwks.json",
                                    .min_refresh_s = 30,
                                    .refresh_s = 600 };
    struct jwks_source *src = NULL;
    struct jwt_verifier *v = NULL;
    char err[256] = "";
    const char *tok = sign(token_rows[0].header, token_rows[0].payload, rsa_a, NULL);

    log_min_level = LOG_ERROR; /* the failed fetch is logged as a warning */
    T_EQ_I64(jwks_source_new(&p, &src, err, sizeof(err)), ERR_OK, "unreachable: starts (%s)", err);
    if (!src || jwt_verifier_new_jwks(src, NULL, NULL, &v) != ERR_OK)
        exit(t_done() | 1);
    T_EQ_I64(jwks_source_fetches(src), 1, "unreachable: one fetch at start");
    T_EQ_I64(jwks_source_keys_id(src), 0, "unreachable: no keys");
    for (int i = 0; i < 20; i++) {
        struct jwt_claims c;
        const char *why = NULL;
        (void)!jwt_verify(v, tok, strlen(tok), NOW, &c, &why); /* the reason is checked below */
        if (i == 0)
            T_EQ_STR(why, "signing keys unavailable", "unreachable: token refused");
    }
    T_EQ_I64(jwks_source_fetches(src), 1, "unreachable: no fetch within JWT_JWKS_MIN_REFRESH");
    jwt_verifier_free(v);
    jwks_source_free(src);
}

int main(void)
{
    setup_keys();
    test_parse_rows();
    test_bad_docs();
    test_select();
    test_tokens();
    test_unreachable();
    EVP_PKEY_free(rsa_a);
    EVP_PKEY_free(rsa_b);
    EVP_PKEY_free(rsa_short);
    EVP_PKEY_free(ec_e);
    return t_done();
}
