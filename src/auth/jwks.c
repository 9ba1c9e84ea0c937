/*
 * jwks.c: JWKS parsing into immutable key sets. Each entry either becomes an OpenSSL public key
 * built from its components (OpenSSL 3 EVP_PKEY_fromdata) or is skipped with a reason; one odd
 * entry in a provider's set must not lock every user out.
 */
#include "auth/jwks.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "base/b64url.h"
#include "base/str.h"
#include "base/xalloc.h"

#define RSA_N_MAX     1024 /* bytes of an RSA-8192 modulus: the largest signature jwt.c takes */
#define RSA_E_MAX     8    /* bytes of a public exponent */
#define P256_COORD    32 /* bytes of a P-256 coordinate, always full length (RFC 7518 §6.2.1.2) */
#define EC_GROUP_P256 "prime256v1"

struct jwks_keys {
    _Atomic long refs;
    uint64_t id;
    size_t count;
    struct jwks_key keys[JWKS_KEYS_MAX];
};

static _Atomic uint64_t keys_ids;

struct jwks_keys *jwks_keys_ref(struct jwks_keys *ks)
{
    atomic_fetch_add(&ks->refs, 1);
    return ks;
}

void jwks_keys_release(struct jwks_keys *ks)
{
    if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ks->count; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    free(ks);
}

size_t jwks_keys_count(const struct jwks_keys *ks)
{
    return ks->count;
}

const struct jwks_key *jwks_keys_at(const struct jwks_keys *ks, size_t i)
{
    return i < ks->count ? &ks->keys[i] : NULL;
}

uint64_t jwks_keys_id(const struct jwks_keys *ks)
{
    return ks->id;
}

const struct jwks_key *jwks_keys_find(const struct jwks_keys *ks, const char *kid)
{
    if (!kid)
        return ks->count == 1 && !ks->keys[0].has_kid ? &ks->keys[0] : NULL;
    for (size_t i = 0; i < ks->count; i++)
        if (ks->keys[i].has_kid && strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

/* Exact comparison of a JSON string with a C string (jansson strings may hold NULs). */
static bool json_str_equals(const json_t *j, const char *want)
{
    size_t n = strlen(want);

    return json_is_string(j) && json_string_length(j) == n &&
           memcmp(json_string_value(j), want, n) == 0;
}

/* Decodes the base64url string member name of jk into out[cap]; false when absent or bad. */
static bool member_bytes(const json_t *jk, const char *name, unsigned char *out, size_t cap,
                         size_t *len)
{
    const json_t *j = json_object_get(jk, name);

    return json_is_string(j) &&
           b64url_decode(json_string_value(j), json_string_length(j), out, cap, len) && *len > 0;
}

/* Makes a public key of type ("RSA", "EC") from the parameters in bld; NULL on failure. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;

    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static const char *rsa_key(const json_t *jk, EVP_PKEY **out)
{
    unsigned char n[RSA_N_MAX], e[RSA_E_MAX];
    size_t n_len = 0, e_len = 0;
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    const char *why = "cannot build the RSA key";

    if (!member_bytes(jk, "n", n, sizeof(n), &n_len) ||
        !member_bytes(jk, "e", e, sizeof(e), &e_len))
        return "RSA key without a valid base64url n and e";
    bld = OSSL_PARAM_BLD_new();
    bn_n = BN_bin2bn(n, (int)n_len, NULL);
    bn_e = BN_bin2bn(e, (int)e_len, NULL);
    if (bld && bn_n && bn_e && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
        *out = pkey_from_params("RSA", bld);
    if (*out && EVP_PKEY_get_bits(*out) < JWT_RSA_BITS_MIN) {
        EVP_PKEY_free(*out);
        *out = NULL;
        why = "RSA key shorter than 2048 bits";
    }
    BN_free(bn_n);
    BN_free(bn_e);
    OSSL_PARAM_BLD_free(bld);
    return *out ? NULL : why;
}

/* The point must be on the curve: EVP_PKEY_public_check says so. */
static bool ec_point_ok(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static const char *ec_key(const json_t *jk, EVP_PKEY **out)
{
    unsigned char point[1 + 2 * P256_COORD] = { 0x04 }; /* uncompressed: 04 || x || y */
    size_t x_len = 0, y_len = 0;
    OSSL_PARAM_BLD *bld = NULL;

    if (!json_str_equals(json_object_get(jk, "crv"), "P-256"))
        return "EC key on a curve other than P-256";
    if (!member_bytes(jk, "x", point + 1, P256_COORD, &x_len) ||
        !member_bytes(jk, "y", point + 1 + P256_COORD, P256_COORD, &y_len) || x_len != P256_COORD ||
        y_len != P256_COORD)
        return "EC key without a valid base64url x and y of 32 bytes";
    bld = OSSL_PARAM_BLD_new();
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, EC_GROUP_P256, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) == 1)
        *out = pkey_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (*out && !ec_point_ok(*out)) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    return *out ? NULL : "EC key whose point is not on P-256";
}

/* The kid member into out: absent is fine; anything but a short string without NULs is not. */
static const char *entry_kid(const json_t *jk, struct jwks_key *out)
{
    const json_t *j = json_object_get(jk, "kid");
    size_t n = json_string_length(j);

    out->has_kid = j != NULL;
    if (!j)
        return NULL;
    if (!json_is_string(j) || memchr(json_string_value(j), '\0', n) ||
        !str_copyn(out->kid, sizeof(out->kid), json_string_value(j), n))
        return "kid that is not a string of at most 255 bytes";
    return NULL;
}

/* What kty pins, before any key is built: "use" and "alg" may only agree with it. */
static const char *entry_alg(const json_t *jk, enum jwt_alg *alg)
{
    const json_t *use = json_object_get(jk, "use");
    const json_t *want = json_object_get(jk, "alg");
    const json_t *kty = json_object_get(jk, "kty");

    if (json_str_equals(kty, "RSA"))
        *alg = JWT_RS256;
    else if (json_str_equals(kty, "EC"))
        *alg = JWT_ES256;
    else
        return "key type other than RSA and EC";
    if (use && !json_str_equals(use, "sig"))
        return "key whose use is not sig";
    if (want && !json_str_equals(want, jwt_alg_name(*alg)))
        return "key whose alg disagrees with its type";
    return NULL;
}

/* Fills out from the entry jk; NULL when it is usable, else the static reason to skip it. */
static const char *entry_parse(const json_t *jk, struct jwks_key *out)
{
    const char *why;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(jk))
        return "entry that is not an object";
    why = entry_alg(jk, &out->alg);
    if (!why)
        why = entry_kid(jk, out);
    if (!why)
        why = out->alg == JWT_RS256 ? rsa_key(jk, &out->pkey) : ec_key(jk, &out->pkey);
    ERR_clear_error();
    return why;
}

/* An earlier key of the set has kid's value: the first one wins. */
static bool kid_taken(const struct jwks_keys *ks, const struct jwks_key *k)
{
    return k->has_kid && jwks_keys_find(ks, k->kid) != NULL;
}

static void skip(struct jwks_parse_info *info, const char *why)
{
    info->skipped++;
    if (!info->first_skip)
        info->first_skip = why;
}

/* Adds each usable entry of the array keys to ks. */
static void keys_fill(struct jwks_keys *ks, const json_t *keys, struct jwks_parse_info *info)
{
    size_t i;
    const json_t *jk;

    json_array_foreach(keys, i, jk)
    {
        struct jwks_key *k = &ks->keys[ks->count];
        const char *why = entry_parse(jk, k);

        if (!why && kid_taken(ks, k))
            why = "kid seen before";
        if (why) {
            EVP_PKEY_free(k->pkey);
            memset(k, 0, sizeof(*k));
            skip(info, why);
            continue;
        }
        ks->count++;
    }
}

static const json_t *keys_array(const json_t *doc, char *errbuf, size_t errlen)
{
    const json_t *keys = json_object_get(doc, "keys");

    if (!json_is_array(keys)) {
        snprintf(errbuf, errlen, "not a JWKS: no \"keys\" array");
        return NULL;
    }
    if (json_array_size(keys) > JWKS_KEYS_MAX) {
        snprintf(errbuf, errlen, "JWKS has %zu keys, more than %d", json_array_size(keys),
                 JWKS_KEYS_MAX);
        return NULL;
    }
    return keys;
}

enum err jwks_keys_parse(const char *json, size_t len, struct jwks_keys **out,
                         struct jwks_parse_info *info, char *errbuf, size_t errlen)
{
    struct jwks_parse_info ignored = { 0 };
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *keys = NULL;
    struct jwks_keys *ks = NULL;

    *out = NULL;
    info = info ? info : &ignored;
    memset(info, 0, sizeof(*info));
    if (!json_is_object(doc))
        snprintf(errbuf, errlen, "not a JWKS: %s", doc ? "not a JSON object" : jerr.text);
    else
        keys = keys_array(doc, errbuf, errlen);
    if (keys) {
        ks = xcalloc(1, sizeof(*ks));
        atomic_init(&ks->refs, 1);
        ks->id = atomic_fetch_add(&keys_ids, 1) + 1;
        keys_fill(ks, keys, info);
    }
    json_decref(doc);
    if (ks && ks->count == 0) {
        snprintf(errbuf, errlen, "JWKS has no usable key (%zu skipped%s%s)", info->skipped,
                 info->first_skip ? ", first: " : "", info->first_skip ? info->first_skip : "");
        jwks_keys_release(ks);
        ks = NULL;
    }
    *out = ks;
    return ks ? ERR_OK : ERR_INVALID;
}
