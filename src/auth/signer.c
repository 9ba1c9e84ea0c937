/*
 * signer.c: subgate's own signing keys with OpenSSL 3 (EVP_DigestSign): PEM loading, RFC 7638
 * thumbprints as kids, the JWKS that publishes them and compact JWS signing (see signer.h).
 */
#include "auth/signer.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/b64url.h"
#include "base/file.h"
#include "base/xalloc.h"

#define PEM_MAX     ((size_t)64 * 1024) /* bytes of a key file */
#define COORD_LEN   32                  /* bytes of a P-256 coordinate or an Ed25519 key */
#define B64_MAX     64                  /* base64url of COORD_LEN bytes, with room */
#define JWS_SIG_MAX 128                 /* bytes of a DER ECDSA or Ed25519 signature */

enum signer_alg {
    SIGNER_ES256,
    SIGNER_EDDSA,
};

struct signer_key {
    EVP_PKEY *pkey;
    enum signer_alg alg;
    char x[B64_MAX], y[B64_MAX]; /* base64url public components; y "" for Ed25519 */
    char kid[SIGNER_KID_LEN + 1];
};

struct signer {
    struct signer_key keys[1 + SIGNER_PREVIOUS_MAX]; /* [0]: the private, current one */
    size_t count;
    char *jwks;
    size_t jwks_len;
};

static enum err fail(char *errbuf, size_t errlen, const char *path, const char *why)
{
    snprintf(errbuf, errlen, "'%s': %s", path, why);
    return ERR_INVALID;
}

/* A private key, or for a previous key a public one (a private PEM is accepted too). */
static EVP_PKEY *pem_read(const char *pem, size_t n, bool private)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    EVP_PKEY *pkey = NULL;

    if (bio && !private)
        pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (bio && !pkey && BIO_reset(bio) == 1)
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return pkey;
}

static bool coord_b64(const unsigned char *p, size_t n, char out[B64_MAX])
{
    struct buf b;
    bool ok;

    buf_init(&b, B64_MAX - 1);
    ok = b64url_encode(&b, p, n) == ERR_OK && b.len > 0;
    if (ok)
        memcpy(out, b.data, b.len + 1);
    buf_release(&b);
    return ok;
}

static bool ec_coord(const EVP_PKEY *pkey, const char *name, char out[B64_MAX])
{
    unsigned char raw[COORD_LEN];
    BIGNUM *bn = NULL;
    bool ok = EVP_PKEY_get_bn_param(pkey, name, &bn) == 1 && BN_bn2binpad(bn, raw, COORD_LEN) > 0;

    BN_free(bn);
    return ok && coord_b64(raw, COORD_LEN, out);
}

/* Fills alg, x and y; false when the key is neither P-256 nor Ed25519. */
static bool key_components(struct signer_key *k)
{
    unsigned char raw[COORD_LEN];
    size_t n = sizeof(raw);
    char group[32] = "";

    k->y[0] = '\0';
    if (EVP_PKEY_is_a(k->pkey, "ED25519")) {
        k->alg = SIGNER_EDDSA;
        return EVP_PKEY_get_raw_public_key(k->pkey, raw, &n) == 1 && n == COORD_LEN &&
               coord_b64(raw, n, k->x);
    }
    if (!EVP_PKEY_is_a(k->pkey, "EC") ||
        EVP_PKEY_get_utf8_string_param(k->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1 ||
        strcmp(group, "prime256v1") != 0)
        return false;
    k->alg = SIGNER_ES256;
    return ec_coord(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, k->x) &&
           ec_coord(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, k->y);
}

/* The RFC 7638 thumbprint: SHA-256 of the required members in lexical order, no spaces. */
static bool key_thumbprint(struct signer_key *k)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char canon[256];
    int n =
        k->alg == SIGNER_ES256
            ? snprintf(canon, sizeof(canon),
                       "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", k->x, k->y)
            : snprintf(canon, sizeof(canon), "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}",
                       k->x);
    char b64[B64_MAX];

    if (n < 0 || (size_t)n >= sizeof(canon) ||
        EVP_Digest(canon, (size_t)n, md, &md_len, EVP_sha256(), NULL) != 1 ||
        !coord_b64(md, md_len, b64) || strlen(b64) != SIGNER_KID_LEN)
        return false;
    memcpy(k->kid, b64, SIGNER_KID_LEN + 1);
    return true;
}

static enum err key_load(const char *path, bool private, struct signer_key *k, char *errbuf,
                         size_t errlen)
{
    char why[256];
    struct buf b;
    enum err err;

    buf_init(&b, PEM_MAX);
    err = file_read_all(path, &b, why, sizeof(why));
    if (err) {
        buf_release(&b);
        snprintf(errbuf, errlen, "%s", why);
        return ERR_INVALID;
    }
    k->pkey = b.len ? pem_read(b.data, b.len, private) : NULL;
    buf_release(&b);
    if (!k->pkey)
        return fail(errbuf, errlen, path,
                    private ? "not a PEM private key" : "not a PEM public or private key");
    if (key_components(k) && key_thumbprint(k))
        return ERR_OK;
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
    return fail(errbuf, errlen, path, "must be an EC P-256 (ES256) or Ed25519 (EdDSA) key");
}

static const char *alg_name(enum signer_alg alg)
{
    return alg == SIGNER_ES256 ? "ES256" : "EdDSA";
}

static json_t *key_jwk(const struct signer_key *k)
{
    json_t *j = json_pack("{s:s, s:s, s:s}", "kty", k->alg == SIGNER_ES256 ? "EC" : "OKP", "crv",
                          k->alg == SIGNER_ES256 ? "P-256" : "Ed25519", "x", k->x);

    if (k->alg == SIGNER_ES256)
        json_object_set_new(j, "y", json_string(k->y));
    json_object_set_new(j, "kid", json_string(k->kid));
    json_object_set_new(j, "alg", json_string(alg_name(k->alg)));
    json_object_set_new(j, "use", json_string("sig"));
    return j;
}

static void render_jwks(struct signer *s)
{
    json_t *keys = json_array();
    json_t *doc;

    for (size_t i = 0; i < s->count; i++)
        json_array_append_new(keys, key_jwk(&s->keys[i]));
    doc = json_pack("{s:o}", "keys", keys);
    s->jwks = json_dumps(doc, JSON_COMPACT);
    s->jwks_len = s->jwks ? strlen(s->jwks) : 0;
    json_decref(doc);
}

static bool kid_seen(const struct signer *s, const char *kid)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->keys[i].kid, kid) == 0)
            return true;
    return false;
}

enum err signer_new(const char *key_file, const char *const *prev, size_t n, struct signer **out,
                    char *errbuf, size_t errlen)
{
    struct signer *s = xcalloc(1, sizeof(*s));
    enum err err = ERR_INVALID;

    *out = NULL;
    if (n > SIGNER_PREVIOUS_MAX) {
        snprintf(errbuf, errlen, "at most %d previous keys", SIGNER_PREVIOUS_MAX);
        goto out;
    }
    if ((err = key_load(key_file, true, &s->keys[0], errbuf, errlen)))
        goto out;
    s->count = 1;
    for (size_t i = 0; i < n; i++) {
        struct signer_key k = { 0 };
        if ((err = key_load(prev[i], false, &k, errbuf, errlen)))
            goto out;
        if (kid_seen(s, k.kid))
            EVP_PKEY_free(k.pkey); /* the same key twice: published once */
        else
            s->keys[s->count++] = k;
    }
    render_jwks(s);
    err = s->jwks ? ERR_OK : ERR_INTERNAL;
out:
    if (err)
        signer_free(s);
    else
        *out = s;
    return err;
}

void signer_free(struct signer *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(s->keys); i++)
        EVP_PKEY_free(s->keys[i].pkey);
    free(s->jwks);
    free(s);
}

const char *signer_kid(const struct signer *s)
{
    return s->keys[0].kid;
}

const char *signer_alg(const struct signer *s)
{
    return alg_name(s->keys[0].alg);
}

const char *signer_jwks(const struct signer *s, size_t *len)
{
    *len = s->jwks_len;
    return s->jwks;
}

/* DER ECDSA-Sig-Value to JOSE r||s, each COORD_LEN bytes. */
static bool der_to_jose(const unsigned char *der, size_t n, unsigned char out[2 * COORD_LEN])
{
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &der, (long)n);
    const BIGNUM *r = NULL, *s = NULL;
    bool ok = false;

    if (sig) {
        ECDSA_SIG_get0(sig, &r, &s);
        ok = BN_bn2binpad(r, out, COORD_LEN) == COORD_LEN &&
             BN_bn2binpad(s, out + COORD_LEN, COORD_LEN) == COORD_LEN;
    }
    ECDSA_SIG_free(sig);
    return ok;
}

/* Appends "." and the base64url signature of <in, n> made with k. */
static enum err sign_append(const struct signer_key *k, const char *in, size_t n, struct buf *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[JWS_SIG_MAX], jose[2 * COORD_LEN];
    size_t sig_len = sizeof(sig);
    enum err err = ERR_INTERNAL;

    if (!ctx ||
        EVP_DigestSignInit(ctx, NULL, k->alg == SIGNER_ES256 ? EVP_sha256() : NULL, NULL,
                           k->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)in, n) != 1)
        goto out;
    if (k->alg == SIGNER_ES256) {
        if (!der_to_jose(sig, sig_len, jose))
            goto out;
        memcpy(sig, jose, sizeof(jose));
        sig_len = sizeof(jose);
    }
    if ((err = buf_puts(out, ".")) == ERR_OK)
        err = b64url_encode(out, sig, sig_len);
out:
    EVP_MD_CTX_free(ctx);
    return err;
}

enum err signer_sign(const struct signer *s, const char *claims, size_t n, struct buf *out)
{
    const struct signer_key *k = &s->keys[0];
    size_t start = out->len;
    char header[128];
    int hn = snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
                      alg_name(k->alg), k->kid);
    enum err err;

    if (hn < 0 || (size_t)hn >= sizeof(header))
        return ERR_INTERNAL;
    if ((err = b64url_encode(out, (const unsigned char *)header, (size_t)hn)) ||
        (err = buf_puts(out, ".")) || (err = b64url_encode(out, (const unsigned char *)claims, n)))
        return err;
    return sign_append(k, out->data + start, out->len - start, out);
}
