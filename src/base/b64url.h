/*
 * b64url.h: strict decoding of unpadded base64url (RFC 4648 §5), as JOSE writes it: the parts of
 * a JWS (auth/jwt.c) and the key components of a JWKS (auth/jwks.c).
 */
#ifndef SUBGATE_BASE_B64URL_H
#define SUBGATE_BASE_B64URL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Decodes <s, n> into out[cap] and sets *out_len. Strict: no '=', nothing outside the alphabet, no
 * impossible length and no stray bits in the last character, so each byte string has exactly one
 * encoding. False (out partly written) on any of those or when the result would pass cap.
 */
bool b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *out_len);

#endif /* SUBGATE_BASE_B64URL_H */
