/*
 * jwks.h: JSON Web Key Sets (RFC 7517, RFC 7518 §6) as identity providers publish them, parsed
 * into immutable, refcounted sets of OpenSSL public keys. jwks_source.h keeps one fresh.
 */
#ifndef SUBGATE_AUTH_JWKS_H
#define SUBGATE_AUTH_JWKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "auth/jwt.h"
#include "base/base.h"
#include "base/err.h"

#define JWKS_KID_MAX  256 /* bytes of a kid, with the terminator */
#define JWKS_KEYS_MAX 64  /* entries of "keys" looked at; more is refused */

/* One usable key: RSA (at least JWT_RSA_BITS_MIN bits) pins RS256, EC P-256 pins ES256. */
struct jwks_key {
    char kid[JWKS_KID_MAX]; /* "" when has_kid is false */
    bool has_kid;
    enum jwt_alg alg; /* JWT_RS256 or JWT_ES256, from the key type */
    EVP_PKEY *pkey;   /* read-only once the set is made */
};

struct jwks_keys; /* opaque; immutable once parsed, shared by threads through its count */

/* What parsing found besides the usable keys: for the log line of a fetch. */
struct jwks_parse_info {
    size_t skipped;         /* entries skipped (other kinds, bad fields, duplicate kids) */
    const char *first_skip; /* static reason of the first skipped entry, NULL when none */
};

/*
 * Parses the JWKS <json, len> into a new key set with one reference. Entries that are not keys
 * subgate can use are skipped, not fatal: another kty or crv, "use" other than "sig", an "alg"
 * that disagrees with the key type, missing or malformed (non-base64url) components, a short RSA
 * modulus, a point off the curve, and a kid seen before (the first one wins). ERR_INVALID, with
 * one line in errbuf[errlen], when the text is not a JSON object with a "keys" array of at most
 * JWKS_KEYS_MAX entries, or when no entry is usable. info may be NULL.
 */
MUST_CHECK enum err jwks_keys_parse(const char *json, size_t len, struct jwks_keys **out,
                                    struct jwks_parse_info *info, char *errbuf, size_t errlen);

/* Adds a reference; returns ks. */
struct jwks_keys *jwks_keys_ref(struct jwks_keys *ks);

/* Drops a reference; the last one frees the set. NULL is a no-op. */
void jwks_keys_release(struct jwks_keys *ks);

size_t jwks_keys_count(const struct jwks_keys *ks);

/* The i-th usable key, in document order; i < jwks_keys_count(ks). */
const struct jwks_key *jwks_keys_at(const struct jwks_keys *ks, size_t i);

/*
 * The key a token's header names: kid NULL means the header has none, which matches only a set
 * of exactly one key that has no kid either. NULL when no key matches. Borrowed from ks.
 */
const struct jwks_key *jwks_keys_find(const struct jwks_keys *ks, const char *kid);

/* Unique per set ever parsed (never 0): keys caches of verified tokens. */
uint64_t jwks_keys_id(const struct jwks_keys *ks);

#endif /* SUBGATE_AUTH_JWKS_H */
