/*
 * fuzz_stripe_signature.c: libFuzzer target for stripe/webhook.c. The first two bytes give the
 * header length (little-endian, clamped); the header and the body that follow are copied to
 * buffers of exactly their size, so any read past either is caught. Each input is verified
 * against two fixed secrets, and the body is then signed and must verify.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/secret.h"
#include "base/xalloc.h"
#include "stripe/webhook.h"

#define FUZZ_NOW INT64_C(1700000000)
#define SECRET_A "whsec_fuzz_secret_a"
#define SECRET_B "whsec_fuzz_secret_b"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct secret secrets[2];
static const struct stripe_webhook_check chk = { secrets, ARRAY_SIZE(secrets), FUZZ_NOW,
                                                 STRIPE_WEBHOOK_TOLERANCE_S };

static void setup(void)
{
    secret_set(&secrets[0], SECRET_A, strlen(SECRET_A));
    secret_set(&secrets[1], SECRET_B, strlen(SECRET_B));
}

static char *copy(const uint8_t *p, size_t n)
{
    char *c = xmalloc(n ? n : 1);

    memcpy(c, p, n);
    return c;
}

/* The verdict on any input: a reason always, and only the two documented results. */
static void check_arbitrary(const char *hdr, size_t hlen, const char *body, size_t blen)
{
    const char *why = NULL;
    enum err err = stripe_webhook_verify(&chk, hdr, hlen, body, blen, &why);

    if (!why || (err != ERR_OK && err != ERR_INVALID))
        abort();
    if (err == ERR_OK && strcmp(why, "ok") != 0)
        abort();
}

/* Whatever the body, a header we sign for it with the second secret verifies. */
static void check_roundtrip(const char *body, size_t blen)
{
    char hdr[STRIPE_WEBHOOK_SIGNED_MAX];
    const char *why = NULL;

    if (stripe_webhook_sign_header(SECRET_B, strlen(SECRET_B), FUZZ_NOW, body, blen, hdr,
                                   sizeof(hdr)) != ERR_OK)
        abort();
    if (stripe_webhook_verify(&chk, hdr, strlen(hdr), body, blen, &why) != ERR_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!secrets[0].bytes)
        setup();
    if (size < 2)
        return 0;
    size_t hlen = (size_t)data[0] | (size_t)data[1] << 8;
    if (hlen > size - 2)
        hlen = size - 2;
    char *hdr = copy(data + 2, hlen);
    char *body = copy(data + 2 + hlen, size - 2 - hlen);

    check_arbitrary(hdr, hlen, body, size - 2 - hlen);
    check_roundtrip(body, size - 2 - hlen);
    free(hdr);
    free(body);
    return 0;
}
