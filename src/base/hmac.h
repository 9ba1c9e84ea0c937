/*
 * hmac.h: HMAC-SHA256 as lower-case hex over a list of byte ranges, so "<t>.<body>" needs no
 * copy. Shared by stripe/webhook.c (verification) and the emulator (signing).
 */
#ifndef SUBGATE_BASE_HMAC_H
#define SUBGATE_BASE_HMAC_H

#include <stddef.h>

#include "base/base.h"
#include "base/err.h"

#define HMAC_SHA256_LEN     32 /* bytes of a SHA-256 MAC */
#define HMAC_SHA256_HEX_LEN 64 /* hex digits of a SHA-256 MAC, without the terminator */

/* One byte range of the message; borrowed for the duration of the call. */
struct hmac_part {
    const void *p;
    size_t len;
};

/*
 * Computes HMAC-SHA256(key, parts[0] || parts[1] || ...) into mac. Each thread keeps the
 * contexts of its last four keys keyed and starts each MAC from one (the key copies are wiped
 * when the thread ends). ERR_INTERNAL when OpenSSL fails.
 */
MUST_CHECK enum err hmac_sha256(const void *key, size_t key_len, const struct hmac_part *parts,
                                size_t n_parts, unsigned char mac[HMAC_SHA256_LEN]);

/*
 * hmac_sha256 written as 64 lower-case hex
 * digits plus a NUL into hex. ERR_INTERNAL when OpenSSL fails (hex is then "").
 */
MUST_CHECK enum err hmac_sha256_hex(const void *key, size_t key_len, const struct hmac_part *parts,
                                    size_t n_parts, char hex[HMAC_SHA256_HEX_LEN + 1]);

#endif /* SUBGATE_BASE_HMAC_H */
