/*
 * jwt.h: verification of users' JSON Web Tokens (SPEC §2) with OpenSSL. The algorithm is pinned
 * by configuration (HS256 from a secret, RS256 or ES256 from a PEM public key), never by the token.
 */
#ifndef SUBGATE_AUTH_JWT_H
#define SUBGATE_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "base/secret.h"
#include "billing/records.h"

#define JWT_TOKEN_MAX        8192 /* bytes; a longer token is refused before any work */
#define JWT_HMAC_KEY_MIN     32   /* bytes of an HS256 secret (RFC 7518 §3.2: at least 256 bits) */
#define JWT_RSA_BITS_MIN     2048 /* a shorter RSA public key is a configuration error */
#define JWT_LEEWAY_DEFAULT_S INT64_C(60)
#define JWT_LEEWAY_MAX_S     INT64_C(86400)

enum jwt_alg {
    JWT_HS256,
    JWT_RS256,
    JWT_ES256,
};

struct jwt_verifier; /* opaque; immutable once made, so threads may share one */
struct jwks_source;  /* auth/jwks_source.h */

/* What a verified token says about its user. */
struct jwt_claims {
    char sub[USER_ID_MAX]; /* the user id: non-empty */
    char email[EMAIL_MAX]; /* "" when the token has none */
    int64_t exp;           /* Unix seconds */
    int64_t nbf;           /* 0 when absent */
    int64_t iat;           /* 0 when absent */
};

/*
 * Makes an HS256 verifier from a copy of key. issuer and audience are copied; NULL leaves that
 * claim unchecked. ERR_INVALID when the key is unset or shorter than JWT_HMAC_KEY_MIN bytes.
 * Free the result with jwt_verifier_free().
 */
MUST_CHECK enum err jwt_verifier_new_hmac(const struct secret *key, const char *issuer,
                                          const char *audience, struct jwt_verifier **out);

/*
 * Makes a verifier from the PEM public key file at path ("PUBLIC KEY", or "RSA PUBLIC KEY"): an RSA
 * key (at least JWT_RSA_BITS_MIN bits) pins RS256, an EC P-256 key pins ES256. issuer and audience
 * as above. ERR_INVALID when the file cannot be read or holds anything else (a certificate, a
 * private key, another key type); then errbuf[errlen] gets a one-line reason naming the file.
 */
MUST_CHECK enum err jwt_verifier_new_pem(const char *path, const char *issuer, const char *audience,
                                         struct jwt_verifier **out, char *errbuf, size_t errlen);

/*
 * Makes a verifier whose keys come from the JWKS source src (borrowed: it must outlive the
 * verifier). The header's kid chooses the key and the key's type pins the algorithm (RS256 for
 * RSA, ES256 for EC P-256); a header naming none, HS* or anything else is refused before any key
 * is looked up. Every claim is checked as for a PEM key. issuer and audience as above.
 */
MUST_CHECK enum err jwt_verifier_new_jwks(struct jwks_source *src, const char *issuer,
                                          const char *audience, struct jwt_verifier **out);

/* Frees the verifier and wipes its secret; NULL is a no-op. */
void jwt_verifier_free(struct jwt_verifier *v);

/*
 * Sets the clock leeway allowed on exp and nbf (default JWT_LEEWAY_DEFAULT_S), clamped to
 * [0, JWT_LEEWAY_MAX_S]. Not thread-safe: call it before sharing the verifier.
 */
void jwt_verifier_set_leeway(struct jwt_verifier *v, int64_t leeway_s);

/* The pinned algorithm; a JWKS verifier answers JWT_RS256, though each of its keys pins its own. */
enum jwt_alg jwt_verifier_alg(const struct jwt_verifier *v);

/* Returns the JOSE name of alg ("HS256"...), static. */
const char *jwt_alg_name(enum jwt_alg alg);

/*
 * Verifies the compact JWS <token, len> at time now. On ERR_OK, *out holds the claims. On
 * ERR_UNAUTHORIZED (a bad token) or ERR_INTERNAL (OpenSSL failed), *out is zeroed. *why always
 * points at a short static reason, safe to show the caller ("token expired", "bad signature"...;
 * "ok" on success). Thread-safe: threads may verify with one verifier concurrently.
 */
MUST_CHECK enum err jwt_verify(const struct jwt_verifier *v, const char *token, size_t len,
                               int64_t now, struct jwt_claims *out, const char **why);

/* How many verifications on this thread were answered from the shared cache (for tests). */
uint64_t jwt_cache_hits(void);

#endif /* SUBGATE_AUTH_JWT_H */
