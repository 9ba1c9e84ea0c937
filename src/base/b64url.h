/*
 * b64url.h: strict decoding of unpadded base64url (RFC 4648 §5), as JOSE writes it: the parts of
 * a JWS (auth/jwt.c) and the key components of a JWKS (auth/jwks.c); and the encoding that
 * signing writes (auth/jwt_sign.c, auth/signer.c).
 */
#ifndef SUBGATE_BASE_B64URL_H
#define SUBGATE_BASE_B64URL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/err.h"

/*
 * Decodes <s, n> into out[cap] and sets *out_len. Strict: no '=', nothing outside the alphabet, no
 * impossible length and no stray bits in the last character, so each byte string has exactly one
 * encoding. False (out partly written) on any of those or when the result would pass cap.
 */
bool b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *out_len);

/* Appends the unpadded base64url form of <p, n> to out; ERR_TOO_LARGE past out's cap. */
MUST_CHECK enum err b64url_encode(struct buf *out, const unsigned char *p, size_t n);

#endif /* SUBGATE_BASE_B64URL_H */
