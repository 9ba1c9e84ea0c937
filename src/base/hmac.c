/* hmac.c: HMAC-SHA256 to hex with OpenSSL 3's EVP_MAC (the HMAC_CTX calls are deprecated). */
#include "base/hmac.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/* OpenSSL's HMAC, looked up once: a fetch per call was most of a short MAC's cost. */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_alg_once = PTHREAD_ONCE_INIT;

static void hmac_alg_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL); /* kept for the process's life */
}

/*
 * Each thread keeps its last few keyed contexts: keying HMAC (two SHA-256 blocks, the digest's
 * lookup by name, a context's allocation) cost about as much as MACing a 3 KB webhook body.
 * A context is set up once per key and thread, and each later MAC under that key restarts it
 * from its keyed state (EVP_MAC_init with no key). The copies of the keys are wiped when the
 * thread ends.
 */
#define KEYED_SLOTS   4
#define KEYED_KEY_MAX 4096 /* longer keys are keyed afresh each time */

struct keyed {
    EVP_MAC_CTX *ctx;   /* keyed with key[len]; NULL when the slot is free */
    unsigned char *key; /* a copy, on the heap */
    size_t len;
};

struct keyed_set {
    struct keyed slot[KEYED_SLOTS];
    unsigned next; /* the slot a new key takes, round robin */
};

static pthread_key_t keyed_tls;
static bool keyed_tls_ok;
static pthread_once_t keyed_tls_once = PTHREAD_ONCE_INIT;

static void keyed_drop(struct keyed *k)
{
    EVP_MAC_CTX_free(k->ctx);
    k->ctx = NULL;
    if (k->key)
        OPENSSL_cleanse(k->key, k->len);
    free(k->key);
    k->key = NULL;
    k->len = 0;
}

static void keyed_set_free(void *arg)
{
    struct keyed_set *set = arg;

    for (size_t i = 0; i < KEYED_SLOTS; i++)
        keyed_drop(&set->slot[i]);
    free(set);
}

static void keyed_tls_create(void)
{
    keyed_tls_ok = pthread_key_create(&keyed_tls, keyed_set_free) == 0;
}

/* This thread's set, made on first use; NULL when it cannot be. */
static struct keyed_set *keyed_set_get(void)
{
    struct keyed_set *set;

    (void)pthread_once(&keyed_tls_once, keyed_tls_create);
    if (!keyed_tls_ok)
        return NULL;
    set = pthread_getspecific(keyed_tls);
    if (!set) {
        set = calloc(1, sizeof(*set));
        if (set && pthread_setspecific(keyed_tls, set) != 0) {
            free(set);
            set = NULL;
        }
    }
    return set;
}

static bool set_digest(EVP_MAC_CTX *ctx, const void *key, size_t key_len)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };

    return EVP_MAC_init(ctx, key, key_len, params) == 1;
}

/* Runs the MAC, started on ctx, over every part into mac[HMAC_SHA256_LEN]; false when OpenSSL
 * fails. */
static bool mac_parts(EVP_MAC_CTX *ctx, const struct hmac_part *parts, size_t n_parts,
                      unsigned char *mac)
{
    size_t mac_len = 0;

    for (size_t i = 0; i < n_parts; i++)
        if (parts[i].len > 0 && !EVP_MAC_update(ctx, parts[i].p, parts[i].len))
            return false;
    return EVP_MAC_final(ctx, mac, &mac_len, HMAC_SHA256_LEN) && mac_len == HMAC_SHA256_LEN;
}

/*
 * This thread's context keyed with key[key_len], started for a new MAC; NULL when there is
 * none to be had (the caller keys a context of its own).
 */
static struct keyed *keyed_start(const void *key, size_t key_len)
{
    struct keyed_set *set = key_len <= KEYED_KEY_MAX ? keyed_set_get() : NULL;
    struct keyed *k;

    if (!set)
        return NULL;
    for (size_t i = 0; i < KEYED_SLOTS; i++) {
        k = &set->slot[i];
        if (k->ctx && k->len == key_len && memcmp(k->key, key, key_len) == 0) {
            if (EVP_MAC_init(k->ctx, NULL, 0, NULL) == 1)
                return k;
            keyed_drop(k);
            return NULL;
        }
    }
    k = &set->slot[set->next++ % KEYED_SLOTS];
    keyed_drop(k);
    k->ctx = EVP_MAC_CTX_new(hmac_alg);
    k->key = malloc(key_len ? key_len : 1);
    if (!k->ctx || !k->key || !set_digest(k->ctx, key, key_len)) {
        keyed_drop(k);
        return NULL;
    }
    memcpy(k->key, key, key_len);
    k->len = key_len;
    return k;
}

enum err hmac_sha256(const void *key, size_t key_len, const struct hmac_part *parts, size_t n_parts,
                     unsigned char mac[HMAC_SHA256_LEN])
{
    /* OpenSSL refuses a NULL key even when empty: point at a real byte instead. */
    static const unsigned char no_key[1];
    struct keyed *k = NULL;
    EVP_MAC_CTX *own = NULL;
    bool ok = false;

    (void)pthread_once(&hmac_alg_once, hmac_alg_fetch);
    if (!hmac_alg)
        return ERR_INTERNAL;
    if (!key_len)
        key = no_key;
    k = keyed_start(key, key_len);
    if (!k) {
        own = EVP_MAC_CTX_new(hmac_alg);
        if (!own || !set_digest(own, key, key_len))
            goto out;
    }
    ok = mac_parts(k ? k->ctx : own, parts, n_parts, mac);
    if (!ok && k)
        keyed_drop(k); /* its state is unknown now */
out:
    EVP_MAC_CTX_free(own);
    if (!ok)
        ERR_clear_error();
    return ok ? ERR_OK : ERR_INTERNAL;
}

enum err hmac_sha256_hex(const void *key, size_t key_len, const struct hmac_part *parts,
                         size_t n_parts, char hex[HMAC_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char mac[HMAC_SHA256_LEN];
    enum err err = hmac_sha256(key, key_len, parts, n_parts, mac);

    hex[0] = '\0';
    if (err == ERR_OK) {
        for (size_t i = 0; i < HMAC_SHA256_LEN; i++) {
            hex[2 * i] = digits[mac[i] >> 4];
            hex[2 * i + 1] = digits[mac[i] & 0xf];
        }
        hex[HMAC_SHA256_HEX_LEN] = '\0';
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return err;
}
