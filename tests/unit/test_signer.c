/*
 * test_signer.c: subgate's entitlement-token keys: tokens minted for both key types verify with
 * plain OpenSSL, the JWKS has the JOSE shape, kids are RFC 7638 thumbprints and stay stable.
 */
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/signer.h"
#include "base/b64url.h"
#include "t.h"

#define SIG_MAX 128

/* RFC 8037 A.1: the Ed25519 private key whose thumbprint A.3 gives. */
static const unsigned char rfc8037_d[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};
static const char rfc8037_kid[] = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

/* Writes pkey as PEM (private or public) to a new temp file named in path. */
static void pem_file(EVP_PKEY *pkey, bool private, char *path, size_t cap)
{
    FILE *f;
    int fd;

    snprintf(path, cap, "/tmp/test_signer_XXXXXX");
    fd = mkstemp(path);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    T_OK(f != NULL, "temp file");
    if (!f)
        return;
    if (private)
        T_OK(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1, "write private PEM");
    else
        T_OK(PEM_write_PUBKEY(f, pkey) == 1, "write public PEM");
    fclose(f);
}

/* JOSE r||s back to DER, as OpenSSL verifies it. */
static size_t jose_to_der(const unsigned char *rs, unsigned char *der)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    unsigned char *p = der;
    int n;

    ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL));
    n = i2d_ECDSA_SIG(sig, &p);
    ECDSA_SIG_free(sig);
    return n > 0 ? (size_t)n : 0;
}

/* Checks the token's signature with pkey and OpenSSL alone; returns the decoded header. */
static json_t *verify(EVP_PKEY *pkey, bool ec, const char *tok, size_t len)
{
    const char *dot1 = memchr(tok, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok)) : NULL;
    unsigned char sig[SIG_MAX], der[SIG_MAX], head[256];
    size_t sig_len = 0, head_len = 0, der_len;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    T_OK(dot2 != NULL, "three parts");
    if (!dot2)
        return NULL;
    T_OK(b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - tok), sig, sizeof(sig), &sig_len),
         "signature is base64url");
    T_EQ_I64((int64_t)sig_len, 64, "signature is 64 bytes (r||s or Ed25519)");
    der_len = ec ? jose_to_der(sig, der) : sig_len;
    ok = EVP_DigestVerifyInit(ctx, NULL, ec ? EVP_sha256() : NULL, NULL, pkey) == 1 &&
         EVP_DigestVerify(ctx, ec ? der : sig, der_len, (const unsigned char *)tok,
                          (size_t)(dot2 - tok)) == 1;
    EVP_MD_CTX_free(ctx);
    T_OK(ok, "signature verifies with OpenSSL");
    T_OK(b64url_decode(tok, (size_t)(dot1 - tok), head, sizeof(head), &head_len), "header");
    return json_loadb((const char *)head, head_len, 0, NULL);
}

static void check_jwks_key(json_t *k, bool ec, const char *kid)
{
    T_EQ_STR(json_string_value(json_object_get(k, "kty")), ec ? "EC" : "OKP", "kty");
    T_EQ_STR(json_string_value(json_object_get(k, "crv")), ec ? "P-256" : "Ed25519", "crv");
    T_EQ_STR(json_string_value(json_object_get(k, "alg")), ec ? "ES256" : "EdDSA", "alg");
    T_EQ_STR(json_string_value(json_object_get(k, "use")), "sig", "use");
    T_EQ_STR(json_string_value(json_object_get(k, "kid")), kid, "kid");
    T_EQ_I64((int64_t)strlen(json_string_value(json_object_get(k, "x"))), 43, "x is 32 bytes");
    T_OK(ec == (json_object_get(k, "y") != NULL), "y only for EC");
    T_OK(!json_object_get(k, "d"), "no private part published");
}

/* Mints with a new key of the type, checks it, and returns the signer's kid in kid. */
static void test_type(EVP_PKEY *pkey, bool ec, char kid[SIGNER_KID_LEN + 1])
{
    static const char claims[] = "{\"sub\":\"user_1\",\"tier\":\"premium\"}";
    char priv[64], pub[64], err[256] = "";
    const char *prev[] = { pub };
    struct signer *s = NULL, *again = NULL;
    struct buf tok;
    json_t *head, *jwks;
    size_t jwks_len = 0;

    pem_file(pkey, true, priv, sizeof(priv));
    pem_file(pkey, false, pub, sizeof(pub));
    T_EQ_I64(signer_new(priv, NULL, 0, &s, err, sizeof(err)), ERR_OK, "signer (%s)", err);
    if (!s)
        return;
    snprintf(kid, SIGNER_KID_LEN + 1, "%s", signer_kid(s));
    T_EQ_STR(signer_alg(s), ec ? "ES256" : "EdDSA", "alg");
    buf_init(&tok, 4096);
    T_EQ_I64(signer_sign(s, claims, strlen(claims), &tok), ERR_OK, "signs");
    head = verify(pkey, ec, tok.data, tok.len);
    T_EQ_STR(json_string_value(json_object_get(head, "alg")), signer_alg(s), "header alg");
    T_EQ_STR(json_string_value(json_object_get(head, "kid")), kid, "header kid");
    T_EQ_STR(json_string_value(json_object_get(head, "typ")), "JWT", "header typ");
    json_decref(head);
    jwks = json_loads(signer_jwks(s, &jwks_len), 0, NULL);
    T_EQ_I64((int64_t)json_array_size(json_object_get(jwks, "keys")), 1, "one key");
    check_jwks_key(json_array_get(json_object_get(jwks, "keys"), 0), ec, kid);
    json_decref(jwks);
    /* The public half names the same kid, and a repeated key is published once. */
    T_EQ_I64(signer_new(priv, prev, 1, &again, err, sizeof(err)), ERR_OK, "with previous");
    T_EQ_STR(again ? signer_kid(again) : "", kid, "kid stable across loads");
    jwks = json_loads(again ? signer_jwks(again, &jwks_len) : "{}", 0, NULL);
    T_EQ_I64((int64_t)json_array_size(json_object_get(jwks, "keys")), 1, "same key once");
    json_decref(jwks);
    signer_free(again);
    signer_free(s);
    buf_release(&tok);
    unlink(priv);
    unlink(pub);
}

/* A rotation: the new private key signs, the previous public one is still published. */
static void test_rotation(EVP_PKEY *ec, EVP_PKEY *ed, const char *ec_kid, const char *ed_kid)
{
    char priv[64], pub[64], err[256] = "";
    const char *prev[] = { pub };
    struct signer *s = NULL;
    size_t len = 0;
    json_t *jwks, *keys;

    pem_file(ed, true, priv, sizeof(priv));
    pem_file(ec, false, pub, sizeof(pub));
    T_EQ_I64(signer_new(priv, prev, 1, &s, err, sizeof(err)), ERR_OK, "rotated (%s)", err);
    jwks = json_loads(s ? signer_jwks(s, &len) : "{}", 0, NULL);
    keys = json_object_get(jwks, "keys");
    T_EQ_I64((int64_t)json_array_size(keys), 2, "current and previous");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(keys, 0), "kid")), ed_kid,
             "current first");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(keys, 1), "kid")), ec_kid,
             "previous second");
    json_decref(jwks);
    signer_free(s);
    /* A public key cannot sign. */
    T_EQ_I64(signer_new(pub, NULL, 0, &s, err, sizeof(err)), ERR_INVALID, "public key refused");
    T_OK(strstr(err, "not a PEM private key") != NULL, "says why: %s", err);
    unlink(priv);
    unlink(pub);
}

static void test_refused(EVP_PKEY *ed)
{
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    char path[64], pub[64], good[64], err[256] = "";
    const char *prev[] = { pub };
    struct signer *s = NULL;

    pem_file(ed, true, good, sizeof(good));
    pem_file(p384, true, path, sizeof(path));
    T_EQ_I64(signer_new(path, NULL, 0, &s, err, sizeof(err)), ERR_INVALID, "P-384 refused");
    T_OK(strstr(err, "P-256") != NULL, "says which keys: %s", err);
    /* As a previous key too, with nothing left behind (ASan's leak check). */
    pem_file(p384, false, pub, sizeof(pub));
    T_EQ_I64(signer_new(good, prev, 1, &s, err, sizeof(err)), ERR_INVALID, "P-384 previous key");
    T_OK(strstr(err, pub) != NULL, "names the file: %s", err);
    unlink(pub);
    unlink(path);
    T_EQ_I64(signer_new("/nonexistent/key.pem", NULL, 0, &s, err, sizeof(err)), ERR_INVALID,
             "missing file refused");
    T_OK(s == NULL, "no signer");
    unlink(good);
    EVP_PKEY_free(p384);
}

int main(void)
{
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *rfc = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, rfc8037_d, 32);
    char ec_kid[SIGNER_KID_LEN + 1] = "", ed_kid[SIGNER_KID_LEN + 1] = "";
    char rfc_kid[SIGNER_KID_LEN + 1] = "";

    test_type(ec, true, ec_kid);
    test_type(ed, false, ed_kid);
    test_type(rfc, false, rfc_kid);
    T_EQ_STR(rfc_kid, rfc8037_kid, "kid is the RFC 7638 thumbprint (RFC 8037 A.3)");
    T_OK(strcmp(ec_kid, ed_kid) != 0, "two keys, two kids");
    test_rotation(ec, ed, ec_kid, ed_kid);
    test_refused(ed);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rfc);
    return t_done();
}
