/*
 * jwt_sign.h: minting HS256 tokens, for `subgate token` (development and tests). The service
 * itself only verifies tokens (jwt.h).
 */
#ifndef SUBGATE_AUTH_JWT_SIGN_H
#define SUBGATE_AUTH_JWT_SIGN_H

#include <stdint.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/secret.h"

struct jwt_mint {
    const char *sub;      /* required */
    const char *email;    /* NULL: no claim */
    const char *issuer;   /* NULL: no iss claim */
    const char *audience; /* NULL: no aud claim */
    int64_t iat;
    int64_t ttl_s; /* exp = iat + ttl_s */
};

/* Appends "header.payload.signature" to out. ERR_INVALID when a claim is not valid UTF-8. */
MUST_CHECK enum err jwt_sign_hs256(const struct secret *key, const struct jwt_mint *m,
                                   struct buf *out);

#endif /* SUBGATE_AUTH_JWT_SIGN_H */
