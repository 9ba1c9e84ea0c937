/*
 * jwt.c: compact JWS verification for user tokens. Cheap syntax checks run first, then the
 * choice of key (the pinned one, or the JWKS key the header's kid names), then the signature,
 * and only a signed payload reaches the claim checks, the same for every kind of key.
 */
#include "auth/jwt.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/jwks.h"
#include "auth/jwks_source.h"
#include "base/b64url.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/hmac.h"
#include "base/str.h"
#include "base/xalloc.h"

#define PART_MAX      ((size_t)JWT_TOKEN_MAX / 4 * 3) /* decoded bytes of the largest part */
#define SIG_MAX       1024 /* an RSA-8192 signature; more is never valid */
#define ES256_LEN     64   /* bytes of a JWS ES256 signature: R || S */
#define ES256_HALF    (ES256_LEN / 2)
#define HS256_LEN     32
#define DER_SIG_MAX   80                 /* DER ECDSA-Sig-Value for P-256 is at most 72 */
#define NUMERIC_MAX   9007199254740991.0 /* 2^53 - 1: beyond it a double is not a date */
#define EC_GROUP_P256 "prime256v1"
#define PEM_FILE_MAX  65536 /* bytes; a public key PEM is a few hundred */
#define ALG_NAME_MAX  16    /* bytes of a header's alg that could be one we know */

struct jwt_verifier {
    enum jwt_alg alg;         /* pinned; with jwks, each key pins its own */
    struct secret hmac_key;   /* HS256 only (base/hmac keeps it keyed per thread) */
    EVP_PKEY *pkey;           /* RS256 and ES256 only; read-only after creation */
    struct jwks_source *jwks; /* JWKS: the key is chosen by kid; borrowed, NULL otherwise */
    char *issuer;             /* NULL: iss unchecked */
    char *audience;           /* NULL: aud unchecked */
    int64_t leeway_s;         /* allowed clock skew on exp and nbf */
    uint64_t id;              /* unique per verifier ever made: keys the token cache */
};

/*
 * Verified tokens, shared by every thread: the hot path (every check) sees each active user's
 * token again and again, and the signature, issuer and audience of identical bytes under one
 * verifier cannot change, so a hit skips them and re-checks only the times against now. Exactly
 * the same answers as without the cache; the token bytes are compared in constant time. One
 * slot per token hash (a newer token takes an older one's slot), slots striped over locks.
 * A slot is one pointer, so the table costs 8 bytes a slot: with slots of 32 bytes each token
 * kept a page of the table resident of its own (4 KiB a user, measured: 328 KiB for 128 users).
 */
#define JWT_CACHE_SLOTS     16384 /* thousands of active users hit; a collision re-verifies */
#define JWT_CACHE_LOCKS     64
#define JWT_CACHE_TOKEN_MAX 2048

/* What a slot points to: whose it is, the claims, then the token's bytes. One allocation. */
struct jwt_cached {
    uint64_t verifier_id;
    uint64_t keys_id; /* the JWKS key set that verified it; 0 for a pinned key */
    uint64_t hash;
    struct jwt_claims claims;
    size_t len;
    char token[];
};

static struct {
    pthread_mutex_t locks[JWT_CACHE_LOCKS];
    pthread_once_t once;
    struct jwt_cached *slots[JWT_CACHE_SLOTS]; /* NULL: empty */
} jwt_cache = { .once = PTHREAD_ONCE_INIT };

static _Thread_local uint64_t jwt_cache_hit_count; /* this thread's hits, for tests */

static _Atomic uint64_t verifier_ids;

/* Why a token was refused; R_OK is zero so "if (r)" reads as "if refused". */
enum reason {
    R_OK = 0,
    R_TOO_LONG,
    R_MALFORMED,
    R_ALG,
    R_CRIT,
    R_SIG,
    R_NO_EXP,
    R_BAD_TIME,
    R_EXPIRED,
    R_NOT_YET,
    R_NO_KEYS,
    R_KID,
    R_ISSUER,
    R_AUDIENCE,
    R_NO_SUB,
    R_BAD_SUB,
    R_BAD_EMAIL,
    R_INTERNAL,
};

static const char *const reason_text[] = {
    [R_OK] = "ok",
    [R_TOO_LONG] = "token too long",
    [R_MALFORMED] = "malformed token",
    [R_ALG] = "algorithm not allowed",
    [R_CRIT] = "unsupported critical header",
    [R_SIG] = "bad signature",
    [R_NO_EXP] = "missing exp claim",
    [R_BAD_TIME] = "invalid time claim",
    [R_EXPIRED] = "token expired",
    [R_NOT_YET] = "token not yet valid",
    [R_NO_KEYS] = "signing keys unavailable",
    [R_KID] = "unknown key id",
    [R_ISSUER] = "wrong issuer",
    [R_AUDIENCE] = "wrong audience",
    [R_NO_SUB] = "missing sub claim",
    [R_BAD_SUB] = "invalid sub claim",
    [R_BAD_EMAIL] = "invalid email claim",
    [R_INTERNAL] = "internal error",
};

static const char *const alg_names[] = {
    [JWT_HS256] = "HS256",
    [JWT_RS256] = "RS256",
    [JWT_ES256] = "ES256",
};

/* What the header says, copied out of it. */
struct jws_header {
    char alg[ALG_NAME_MAX];
    char kid[JWKS_KID_MAX];
    bool has_kid;
    bool crit;
};

/* The key that checks one token's signature. */
struct key_choice {
    enum jwt_alg alg;
    EVP_PKEY *pkey;         /* NULL for HS256 */
    struct jwks_keys *keys; /* JWKS: the reference held while pkey is in use; NULL otherwise */
};

/* The three dot-separated parts of a compact JWS, still base64url, borrowed from the token. */
struct jws {
    const char *header;
    size_t header_len;
    const char *payload;
    size_t payload_len;
    const char *sig;
    size_t sig_len;
    size_t signed_len; /* bytes of "header.payload", which start at header */
};

const char *jwt_alg_name(enum jwt_alg alg)
{
    if ((size_t)alg >= ARRAY_SIZE(alg_names))
        return "unknown";
    return alg_names[alg];
}

enum jwt_alg jwt_verifier_alg(const struct jwt_verifier *v)
{
    return v->alg;
}

void jwt_verifier_set_leeway(struct jwt_verifier *v, int64_t leeway_s)
{
    if (leeway_s < 0)
        leeway_s = 0;
    v->leeway_s = leeway_s > JWT_LEEWAY_MAX_S ? JWT_LEEWAY_MAX_S : leeway_s;
}

static struct jwt_verifier *verifier_new(enum jwt_alg alg, const char *issuer, const char *audience)
{
    struct jwt_verifier *v = xcalloc(1, sizeof(*v));

    v->alg = alg;
    v->issuer = issuer ? xstrdup(issuer) : NULL;
    v->audience = audience ? xstrdup(audience) : NULL;
    v->leeway_s = JWT_LEEWAY_DEFAULT_S;
    v->id = atomic_fetch_add(&verifier_ids, 1) + 1;
    return v;
}

void jwt_verifier_free(struct jwt_verifier *v)
{
    if (!v)
        return;
    secret_release(&v->hmac_key);
    EVP_PKEY_free(v->pkey);
    free(v->issuer);
    free(v->audience);
    free(v);
}

enum err jwt_verifier_new_hmac(const struct secret *key, const char *issuer, const char *audience,
                               struct jwt_verifier **out)
{
    size_t n;
    const unsigned char *bytes = secret_bytes(key, &n);
    unsigned char probe[HMAC_SHA256_LEN];

    *out = NULL;
    if (!bytes || n < JWT_HMAC_KEY_MIN || n > INT_MAX)
        return ERR_INVALID;
    if (hmac_sha256(bytes, n, NULL, 0, probe) != ERR_OK) /* OpenSSL can MAC under it */
        return ERR_INTERNAL;
    *out = verifier_new(JWT_HS256, issuer, audience);
    secret_set(&(*out)->hmac_key, bytes, n);
    return ERR_OK;
}

/* Decides the algorithm from the key type; false (with a reason in errbuf) for anything else. */
static bool pem_key_alg(EVP_PKEY *pkey, const char *path, enum jwt_alg *alg, char *errbuf,
                        size_t errlen)
{
    char group[64] = "";
    size_t glen = 0;

    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits >= JWT_RSA_BITS_MIN) {
            *alg = JWT_RS256;
            return true;
        }
        snprintf(errbuf, errlen,
                 "cannot use public key '%s': RSA key of %d bits is too short (need %d)", path,
                 bits, JWT_RSA_BITS_MIN);
        return false;
    }
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC &&
        EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1 &&
        strcmp(group, EC_GROUP_P256) == 0) {
        *alg = JWT_ES256;
        return true;
    }
    snprintf(errbuf, errlen,
             "cannot use public key '%s': unsupported key type (need RSA or EC P-256)", path);
    return false;
}

static EVP_PKEY *pem_read_key(const char *path, char *errbuf, size_t errlen)
{
    struct buf pem;
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;

    buf_init(&pem, PEM_FILE_MAX);
    if (file_read_all(path, &pem, errbuf, errlen) != ERR_OK)
        goto out;
    bio = BIO_new_mem_buf(buf_str(&pem), (int)pem.len);
    pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    if (!pkey)
        snprintf(errbuf, errlen, "cannot use public key '%s': no PEM 'PUBLIC KEY' block found",
                 path);
out:
    BIO_free(bio);
    buf_release(&pem);
    ERR_clear_error();
    return pkey;
}

enum err jwt_verifier_new_pem(const char *path, const char *issuer, const char *audience,
                              struct jwt_verifier **out, char *errbuf, size_t errlen)
{
    EVP_PKEY *pkey = pem_read_key(path, errbuf, errlen);
    enum jwt_alg alg;

    *out = NULL;
    if (!pkey)
        return ERR_INVALID;
    if (!pem_key_alg(pkey, path, &alg, errbuf, errlen)) {
        EVP_PKEY_free(pkey);
        return ERR_INVALID;
    }
    *out = verifier_new(alg, issuer, audience);
    (*out)->pkey = pkey;
    return ERR_OK;
}

enum err jwt_verifier_new_jwks(struct jwks_source *src, const char *issuer, const char *audience,
                               struct jwt_verifier **out)
{
    *out = verifier_new(JWT_RS256, issuer, audience);
    (*out)->jwks = src;
    return ERR_OK;
}

static enum reason jws_split(const char *token, size_t len, struct jws *t)
{
    const char *end = token + len;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;

    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return R_MALFORMED;
    t->header = token;
    t->header_len = (size_t)(dot1 - token);
    t->payload = dot1 + 1;
    t->payload_len = (size_t)(dot2 - dot1 - 1);
    t->sig = dot2 + 1;
    t->sig_len = (size_t)(end - dot2 - 1);
    t->signed_len = (size_t)(dot2 - token);
    if (t->header_len == 0 || t->payload_len == 0)
        return R_MALFORMED;
    return R_OK;
}

/* Parses a decoded part as a JSON object; NULL when it is anything else. */
static json_t *part_parse(const unsigned char *p, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &jerr);

    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Copies a string member of the header into dst[size]; false when it is not one that fits. */
static bool header_string(const json_t *h, const char *name, char *dst, size_t size)
{
    const json_t *j = json_object_get(h, name);
    size_t n = json_string_length(j);

    return json_is_string(j) && !memchr(json_string_value(j), '\0', n) &&
           str_copyn(dst, size, json_string_value(j), n);
}

/*
 * Decodes and reads the header: alg is required; kid is optional and read only when it chooses
 * the key (want_kid), where one that is not a string is refused.
 */
static enum reason header_parse(const struct jws *t, bool want_kid, unsigned char *scratch,
                                struct jws_header *hd)
{
    size_t n;
    json_t *h;
    enum reason r = R_OK;

    if (!b64url_decode(t->header, t->header_len, scratch, PART_MAX, &n))
        return R_MALFORMED;
    h = part_parse(scratch, n);
    if (!h)
        return R_MALFORMED;
    memset(hd, 0, sizeof(*hd));
    if (!json_is_string(json_object_get(h, "alg")))
        r = R_MALFORMED;
    else if (!header_string(h, "alg", hd->alg, sizeof(hd->alg)))
        hd->alg[0] = '\0'; /* too long to be an algorithm we know: refused below */
    hd->has_kid = want_kid && json_object_get(h, "kid") != NULL;
    if (hd->has_kid && !header_string(h, "kid", hd->kid, sizeof(hd->kid)))
        r = R_MALFORMED;
    hd->crit = json_object_get(h, "crit") != NULL;
    json_decref(h);
    return r;
}

/*
 * The header must name exactly the pinned algorithm, or with a JWKS one that a JWKS key can pin
 * (never none, never HS*: no token may make us fetch, or pick a key, for another family), and
 * ask for no extension we do not know.
 */
static enum reason header_check(const struct jwt_verifier *v, const struct jws_header *hd)
{
    bool allowed = v->jwks ? strcmp(hd->alg, jwt_alg_name(JWT_RS256)) == 0 ||
                                 strcmp(hd->alg, jwt_alg_name(JWT_ES256)) == 0
                           : strcmp(hd->alg, jwt_alg_name(v->alg)) == 0;

    if (!allowed)
        return R_ALG;
    return hd->crit ? R_CRIT : R_OK;
}

/* The key for this token: the pinned one, or the JWKS key of its kid, whose type pins the alg. */
static enum reason key_choose(const struct jwt_verifier *v, const struct jws_header *hd,
                              struct key_choice *k)
{
    const struct jwks_key *key = NULL;

    memset(k, 0, sizeof(*k));
    if (!v->jwks) {
        k->alg = v->alg;
        k->pkey = v->pkey;
        return R_OK;
    }
    k->keys = jwks_source_get(v->jwks, hd->has_kid ? hd->kid : NULL, &key);
    if (!k->keys)
        return R_NO_KEYS;
    if (!key)
        return R_KID;
    if (strcmp(hd->alg, jwt_alg_name(key->alg)) != 0)
        return R_ALG;
    k->alg = key->alg;
    k->pkey = key->pkey;
    return R_OK;
}

static enum reason verify_hmac(const struct jwt_verifier *v, const struct jws *t,
                               const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[HMAC_SHA256_LEN];
    size_t key_len = 0;
    const unsigned char *key = secret_bytes(&v->hmac_key, &key_len);
    const struct hmac_part part = { t->header, t->signed_len };

    if (!key || hmac_sha256(key, key_len, &part, 1, mac) != ERR_OK)
        return R_INTERNAL;
    if (sig_len != HS256_LEN)
        return R_SIG;
    return CRYPTO_memcmp(mac, sig, HS256_LEN) == 0 ? R_OK : R_SIG;
}

/* Checks a DER (ECDSA) or PKCS #1 v1.5 (RSA) signature over SHA-256 of the signing input. */
static enum reason verify_pkey(EVP_PKEY *pkey, const struct jws *t, const unsigned char *sig,
                               size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    enum reason r = R_INTERNAL;

    if (!ctx || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1)
        goto out;
    r = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)t->header, t->signed_len) == 1
            ? R_OK
            : R_SIG;
out:
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return r;
}

/* JWS ES256 signatures are R || S, 32 bytes each (RFC 7518 §3.4); OpenSSL wants DER. */
static bool es256_to_der(const unsigned char *raw, unsigned char *der, size_t cap, size_t *der_len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, ES256_HALF, NULL);
    BIGNUM *s = BN_bin2bn(raw + ES256_HALF, ES256_HALF, NULL);
    bool ok = false;
    int n;

    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1)
        goto out;
    r = s = NULL; /* owned by es now */
    n = i2d_ECDSA_SIG(es, NULL);
    if (n <= 0 || (size_t)n > cap)
        goto out;
    *der_len = (size_t)i2d_ECDSA_SIG(es, &der);
    ok = *der_len == (size_t)n;
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return ok;
}

static enum reason verify_signature(const struct jwt_verifier *v, const struct key_choice *k,
                                    const struct jws *t, const unsigned char *sig, size_t sig_len)
{
    unsigned char der[DER_SIG_MAX];
    size_t der_len = 0;

    switch (k->alg) {
    case JWT_HS256:
        return verify_hmac(v, t, sig, sig_len);
    case JWT_RS256:
        if (sig_len != (size_t)EVP_PKEY_get_size(k->pkey))
            return R_SIG;
        return verify_pkey(k->pkey, t, sig, sig_len);
    case JWT_ES256:
        if (sig_len != ES256_LEN)
            return R_SIG;
        if (!es256_to_der(sig, der, sizeof(der), &der_len))
            return R_INTERNAL;
        return verify_pkey(k->pkey, t, der, der_len);
    }
    return R_INTERNAL;
}

/*
 * Reads a NumericDate claim (an integer, or a finite real within 2^53, truncated). Absent:
 * if_missing (R_OK when optional, *out = 0).
 */
static enum reason numeric_date(const json_t *claims, const char *name, enum reason if_missing,
                                int64_t *out)
{
    const json_t *j = json_object_get(claims, name);
    double d;

    *out = 0;
    if (!j)
        return if_missing;
    if (json_is_integer(j)) {
        *out = (int64_t)json_integer_value(j);
        return R_OK;
    }
    d = json_real_value(j);
    if (!json_is_real(j) || !isfinite(d) || fabs(d) > NUMERIC_MAX)
        return R_BAD_TIME;
    *out = (int64_t)d;
    return R_OK;
}

static enum reason check_times(const struct jwt_verifier *v, const json_t *claims, int64_t now,
                               struct jwt_claims *out)
{
    enum reason r = numeric_date(claims, "exp", R_NO_EXP, &out->exp);

    if (!r)
        r = numeric_date(claims, "nbf", R_OK, &out->nbf);
    if (!r)
        r = numeric_date(claims, "iat", R_OK, &out->iat);
    if (r)
        return r;
    /* The claims may be anything up to 2^63, so only our own small now and leeway are added. */
    if (out->exp <= now - v->leeway_s)
        return R_EXPIRED;
    if (out->nbf > now + v->leeway_s)
        return R_NOT_YET;
    return R_OK;
}

/* Exact byte comparison of a JSON string with a C string (jansson strings may hold NULs). */
static bool json_str_is(const json_t *j, const char *want)
{
    size_t n = strlen(want);

    return json_is_string(j) && json_string_length(j) == n &&
           memcmp(json_string_value(j), want, n) == 0;
}

static bool audience_matches(const json_t *aud, const char *want)
{
    size_t i;
    const json_t *el;

    if (json_is_string(aud))
        return json_str_is(aud, want);
    if (!json_is_array(aud))
        return false;
    json_array_foreach(aud, i, el) if (json_str_is(el, want)) return true;
    return false;
}

static enum reason check_parties(const struct jwt_verifier *v, const json_t *claims)
{
    if (v->issuer && !json_str_is(json_object_get(claims, "iss"), v->issuer))
        return R_ISSUER;
    if (v->audience && !audience_matches(json_object_get(claims, "aud"), v->audience))
        return R_AUDIENCE;
    return R_OK;
}

/* Copies a string claim into dst[size]; absent leaves "" and returns if_missing. */
static enum reason claim_string(const json_t *claims, const char *name, char *dst, size_t size,
                                enum reason if_missing, enum reason if_bad)
{
    const json_t *j = json_object_get(claims, name);
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);

    dst[0] = '\0';
    if (!j)
        return if_missing;
    if (!s || memchr(s, '\0', n) || !str_copyn(dst, size, s, n)) {
        dst[0] = '\0';
        return if_bad;
    }
    return R_OK;
}

static enum reason check_claims(const struct jwt_verifier *v, const unsigned char *payload,
                                size_t n, int64_t now, struct jwt_claims *out)
{
    json_t *claims = part_parse(payload, n);
    enum reason r;

    if (!claims)
        return R_MALFORMED;
    r = check_times(v, claims, now, out);
    if (!r)
        r = check_parties(v, claims);
    if (!r)
        r = claim_string(claims, "sub", out->sub, sizeof(out->sub), R_NO_SUB, R_BAD_SUB);
    if (!r && out->sub[0] == '\0')
        r = R_BAD_SUB;
    if (!r)
        r = claim_string(claims, "email", out->email, sizeof(out->email), R_OK, R_BAD_EMAIL);
    json_decref(claims);
    return r;
}

/* *keys_id gets the JWKS key set that chose the key (0 for a pinned key), for the cache. */
static enum reason verify_token(const struct jwt_verifier *v, const char *token, size_t len,
                                int64_t now, struct jwt_claims *out, uint64_t *keys_id)
{
    struct jws t;
    struct jws_header hd;
    struct key_choice k = { 0 };
    unsigned char body[PART_MAX];
    unsigned char sig[SIG_MAX];
    size_t body_len, sig_len;
    enum reason r;

    if (!token)
        return R_MALFORMED;
    if (len > JWT_TOKEN_MAX)
        return R_TOO_LONG;
    r = jws_split(token, len, &t);
    if (!r)
        r = header_parse(&t, v->jwks != NULL, body, &hd);
    if (!r)
        r = header_check(v, &hd);
    if (r)
        return r;
    if (!b64url_decode(t.payload, t.payload_len, body, sizeof(body), &body_len) ||
        !b64url_decode(t.sig, t.sig_len, sig, sizeof(sig), &sig_len))
        return R_MALFORMED;
    r = key_choose(v, &hd, &k);
    if (!r)
        r = verify_signature(v, &k, &t, sig, sig_len);
    if (!r)
        r = check_claims(v, body, body_len, now, out);
    *keys_id = k.keys ? jwks_keys_id(k.keys) : 0;
    jwks_keys_release(k.keys);
    return r;
}

static void cache_locks_init(void)
{
    for (size_t i = 0; i < JWT_CACHE_LOCKS; i++)
        pthread_mutex_init(&jwt_cache.locks[i], NULL);
}

static uint64_t token_hash(const char *token, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * UINT64_C(1099511628211);
    return h;
}

/* The same time checks as check_times, on claims verified before. */
static enum reason cached_times(const struct jwt_verifier *v, const struct jwt_claims *c,
                                int64_t now)
{
    if (c->exp <= now - v->leeway_s)
        return R_EXPIRED;
    if (c->nbf > now + v->leeway_s)
        return R_NOT_YET;
    return R_OK;
}

/* Copies the claims of <token, len> verified by v under keys_id into out; false on a miss. */
static bool cache_get(const struct jwt_verifier *v, uint64_t keys_id, uint64_t h, const char *token,
                      size_t len, struct jwt_claims *out)
{
    struct jwt_cached **e = &jwt_cache.slots[h % JWT_CACHE_SLOTS];
    pthread_mutex_t *lock = &jwt_cache.locks[h % JWT_CACHE_LOCKS];
    const struct jwt_cached *c;
    bool hit;

    pthread_mutex_lock(lock);
    c = *e;
    hit = c && c->verifier_id == v->id && c->keys_id == keys_id && c->hash == h && c->len == len &&
          CRYPTO_memcmp(c->token, token, len) == 0;
    if (hit)
        *out = c->claims;
    pthread_mutex_unlock(lock);
    return hit;
}

static void cache_put(const struct jwt_verifier *v, uint64_t keys_id, uint64_t h, const char *token,
                      size_t len, const struct jwt_claims *claims)
{
    struct jwt_cached **e = &jwt_cache.slots[h % JWT_CACHE_SLOTS];
    pthread_mutex_t *lock = &jwt_cache.locks[h % JWT_CACHE_LOCKS];
    struct jwt_cached *c = xmalloc(sizeof(*c) + len), *old;

    c->verifier_id = v->id;
    c->keys_id = keys_id;
    c->hash = h;
    c->claims = *claims;
    c->len = len;
    memcpy(c->token, token, len);
    pthread_mutex_lock(lock);
    old = *e;
    *e = c;
    pthread_mutex_unlock(lock);
    free(old);
}

static enum reason verify_cached(const struct jwt_verifier *v, const char *token, size_t len,
                                 int64_t now, struct jwt_claims *out)
{
    bool cacheable = len <= JWT_CACHE_TOKEN_MAX;
    uint64_t h = cacheable ? token_hash(token, len) : 0;
    /* With a JWKS, a hit needs the current key set: a key withdrawn at the provider ends it. */
    uint64_t keys_id = v->jwks ? jwks_source_keys_id(v->jwks) : 0;
    enum reason r;

    pthread_once(&jwt_cache.once, cache_locks_init);
    if (cacheable && cache_get(v, keys_id, h, token, len, out)) {
        jwt_cache_hit_count++;
        return cached_times(v, out, now);
    }
    r = verify_token(v, token, len, now, out, &keys_id);
    if (r == R_OK && cacheable)
        cache_put(v, keys_id, h, token, len, out);
    return r;
}

uint64_t jwt_cache_hits(void)
{
    return jwt_cache_hit_count;
}

enum err jwt_verify(const struct jwt_verifier *v, const char *token, size_t len, int64_t now,
                    struct jwt_claims *out, const char **why)
{
    enum reason r = verify_cached(v, token, len, now, out);

    *why = reason_text[r];
    if (r == R_OK)
        return ERR_OK;
    memset(out, 0, sizeof(*out));
    return r == R_INTERNAL ? ERR_INTERNAL : ERR_UNAUTHORIZED;
}
