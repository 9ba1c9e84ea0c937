/* hmac.c: HMAC-SHA256 to hex with OpenSSL 3's EVP_MAC (the HMAC_CTX calls are deprecated). */
#include "base/hmac.h"

#include <pthread.h>
#include <stdbool.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define SHA256_LEN 32

/* OpenSSL's HMAC, looked up once: a fetch per call was most of a short MAC's cost. */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_alg_once = PTHREAD_ONCE_INIT;

static void hmac_alg_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL); /* kept for the process's life */
}

/* Runs the MAC over every part into mac[SHA256_LEN]; false when OpenSSL fails. */
static bool mac_parts(EVP_MAC_CTX *ctx, const void *key, size_t key_len,
                      const struct hmac_part *parts, size_t n_parts, unsigned char *mac)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t mac_len = 0;

    if (!EVP_MAC_init(ctx, key, key_len, params))
        return false;
    for (size_t i = 0; i < n_parts; i++)
        if (parts[i].len > 0 && !EVP_MAC_update(ctx, parts[i].p, parts[i].len))
            return false;
    return EVP_MAC_final(ctx, mac, &mac_len, SHA256_LEN) && mac_len == SHA256_LEN;
}

enum err hmac_sha256_hex(const void *key, size_t key_len, const struct hmac_part *parts,
                         size_t n_parts, char hex[HMAC_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    /* OpenSSL refuses a NULL key even when empty: point at a real byte instead. */
    static const unsigned char no_key[1];
    unsigned char mac[SHA256_LEN];
    EVP_MAC_CTX *ctx;
    enum err err = ERR_INTERNAL;

    (void)pthread_once(&hmac_alg_once, hmac_alg_fetch);
    ctx = hmac_alg ? EVP_MAC_CTX_new(hmac_alg) : NULL;

    hex[0] = '\0';
    if (!ctx || !mac_parts(ctx, key_len ? key : no_key, key_len, parts, n_parts, mac))
        goto out;
    for (size_t i = 0; i < SHA256_LEN; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 0xf];
    }
    hex[HMAC_SHA256_HEX_LEN] = '\0';
    err = ERR_OK;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    EVP_MAC_CTX_free(ctx);
    return err;
}
