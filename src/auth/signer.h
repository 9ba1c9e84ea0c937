/*
 * signer.h: the keys subgate signs its own tokens with (entitlement tokens, SPEC §4): one
 * private key, EC P-256 (ES256) or Ed25519 (EdDSA), plus previous public keys still published
 * for rotation. Key ids are RFC 7638 JWK thumbprints, so a key keeps its kid everywhere.
 */
#ifndef SUBGATE_AUTH_SIGNER_H
#define SUBGATE_AUTH_SIGNER_H

#include <stddef.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/err.h"

#define SIGNER_PREVIOUS_MAX 8  /* previous public keys published */
#define SIGNER_KID_LEN      43 /* base64url of a SHA-256 thumbprint */

struct signer; /* opaque; immutable once made, shared by the serving threads */

/*
 * Reads the private key PEM file key_file and the public key PEM files prev[0..n) into a new
 * signer. ERR_INVALID with one line in errbuf[errlen] (naming the file) when a file cannot be
 * read, is not such a key, or n passes SIGNER_PREVIOUS_MAX. Free with signer_free().
 */
MUST_CHECK enum err signer_new(const char *key_file, const char *const *prev, size_t n,
                               struct signer **out, char *errbuf, size_t errlen);

/* NULL is a no-op. */
void signer_free(struct signer *s);

/* The current key's kid (SIGNER_KID_LEN characters) and JOSE alg ("ES256" or "EdDSA"). */
const char *signer_kid(const struct signer *s);
const char *signer_alg(const struct signer *s);

/* The public keys, current first, as a JWKS JSON text; borrowed from s, *len its length. */
const char *signer_jwks(const struct signer *s, size_t *len);

/*
 * Appends the compact JWS "header.payload.signature" of the JSON text <claims, n> to out, with
 * the header {"alg", "kid", "typ": "JWT"}; an ES256 signature is r||s (64 bytes), not DER.
 */
MUST_CHECK enum err signer_sign(const struct signer *s, const char *claims, size_t n,
                                struct buf *out);

#endif /* SUBGATE_AUTH_SIGNER_H */
