/* secret.c: wiped, constant-time-compared secret bytes. */
#include "base/secret.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/xalloc.h"

void secret_set(struct secret *s, const void *p, size_t n)
{
    secret_release(s);
    s->bytes = xmalloc(n + 1);
    memcpy(s->bytes, p, n);
    s->bytes[n] = 0;
    s->len = n;
}

bool secret_is_set(const struct secret *s)
{
    return s->bytes != NULL;
}

bool secret_equal(const struct secret *s, const void *p, size_t n)
{
    unsigned char acc;

    if (!s->bytes || !p)
        return false;
    /*
     * The time depends only on the secret's own length: compare against the first len bytes
     * of the input (or the secret itself when the input is shorter) and fold the length check
     * in afterwards.
     */
    const unsigned char *other = n >= s->len ? p : s->bytes;
    acc = (unsigned char)(CRYPTO_memcmp(s->bytes, other, s->len) != 0);
    acc |= (unsigned char)(n != s->len);
    return acc == 0;
}

const unsigned char *secret_bytes(const struct secret *s, size_t *len)
{
    *len = s->len;
    return s->bytes;
}

void secret_release(struct secret *s)
{
    if (s->bytes) {
        OPENSSL_cleanse(s->bytes, s->len);
        free(s->bytes);
    }
    s->bytes = NULL;
    s->len = 0;
}
