/*
 * fuzz_jwt.c: libFuzzer target for auth/jwt. The first byte picks the mode: even feeds the rest
 * as a token to an HS256 and an ES256 verifier; odd signs the rest as an HS256 payload, so the
 * claim checks behind the signature get fuzzed too. Run from the repo root (it reads a key from
 * tests/fixtures/jwt/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt.h"
#include "base/secret.h"
#include "base/xalloc.h"

#define FUZZ_SECRET "fuzz-secret-0123456789abcdef-0123456789"
#define FUZZ_NOW    INT64_C(1800000000)
#define FUZZ_HEADER "eyJhbGciOiJIUzI1NiJ9" /* {"alg":"HS256"} */
#define ES_KEY      "tests/fixtures/jwt/ec_public.pem"
#define B64_BUF     (2 * JWT_TOKEN_MAX)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jwt_verifier *hs, *es;

static void setup(void)
{
    struct secret key = { 0 };
    char errbuf[256];

    secret_set(&key, FUZZ_SECRET, strlen(FUZZ_SECRET));
    if (jwt_verifier_new_hmac(&key, NULL, NULL, &hs) != ERR_OK ||
        jwt_verifier_new_pem(ES_KEY, NULL, "subgate", &es, errbuf, sizeof(errbuf)) != ERR_OK)
        abort(); /* run from the repo root */
    secret_release(&key);
}

/* Verifies and checks what the API promises whatever the input. */
static void check(const struct jwt_verifier *v, const char *token, size_t len)
{
    struct jwt_claims c;
    const char *why = NULL;
    enum err err = jwt_verify(v, token, len, FUZZ_NOW, &c, &why);

    if (!why || (err != ERR_OK && err != ERR_UNAUTHORIZED))
        abort();
    if (err == ERR_OK && (c.sub[0] == '\0' || strlen(c.sub) >= sizeof(c.sub)))
        abort();
    if (err != ERR_OK && c.sub[0] != '\0')
        abort();
}

/* Appends the unpadded base64url of <p, n> at dst + *pos (dst holds B64_BUF bytes). */
static void b64url_put(char *dst, size_t *pos, const void *p, size_t n)
{
    int len = EVP_EncodeBlock((unsigned char *)dst + *pos, p, (int)n);

    for (int i = 0; i < len; i++) {
        char *ch = &dst[*pos + (size_t)i];
        if (*ch == '+')
            *ch = '-';
        else if (*ch == '/')
            *ch = '_';
    }
    while (len > 0 && dst[*pos + (size_t)len - 1] == '=')
        len--;
    *pos += (size_t)len;
}

static void fuzz_signed_payload(const uint8_t *p, size_t n)
{
    static char token[B64_BUF];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t pos = sizeof(FUZZ_HEADER);

    if (n > JWT_TOKEN_MAX / 2)
        return;
    memcpy(token, FUZZ_HEADER ".", pos);
    b64url_put(token, &pos, p, n);
    if (!HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET), (unsigned char *)token, pos, mac,
              &mac_len))
        abort();
    token[pos++] = '.';
    b64url_put(token, &pos, mac, mac_len);
    check(hs, token, pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!hs)
        setup();
    if (size == 0)
        return 0;
    if (data[0] & 1) {
        fuzz_signed_payload(data + 1, size - 1);
        return 0;
    }
    /* A copy of exactly size - 1 bytes, so reading past the token is caught. */
    char *token = xmalloc(size - 1 ? size - 1 : 1);

    memcpy(token, data + 1, size - 1);
    check(hs, token, size - 1);
    check(es, token, size - 1);
    free(token);
    return 0;
}
