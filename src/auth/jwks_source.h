/*
 * jwks_source.h: the current JWKS key set of the verifier, kept fresh: fetched with libcurl from
 * JWT_JWKS_URL at start, every JWT_JWKS_REFRESH seconds and (rate-limited) on an unknown kid, or
 * read once from JWT_JWKS_FILE. A failed fetch keeps the keys there were.
 */
#ifndef SUBGATE_AUTH_JWKS_SOURCE_H
#define SUBGATE_AUTH_JWKS_SOURCE_H

#include <stdint.h>

#include "auth/jwks.h"
#include "base/base.h"
#include "base/err.h"

#define JWKS_BODY_MAX   ((size_t)256 * 1024) /* bytes of a fetched JWKS or a JWKS file */
#define JWKS_CONNECT_MS 2000L
#define JWKS_TIMEOUT_MS 5000L

struct jwks_source; /* opaque; thread-safe */

struct jwks_source_params {
    const char *url;       /* JWT_JWKS_URL, or NULL */
    const char *file;      /* JWT_JWKS_FILE, or NULL; exactly one of the two is set */
    int64_t min_refresh_s; /* fetches for an unknown kid, at least this far apart */
    int64_t refresh_s;     /* fetches by the refresh thread, this far apart */
};

/*
 * Makes a source and loads its first key set. From a file, a file that cannot be read or parsed
 * is ERR_INVALID with one line in errbuf. From a URL, a failed first fetch is logged and not an
 * error: the source then has no keys (every token is refused) until a fetch succeeds, which the
 * refresh thread tries every min_refresh_s. Free with jwks_source_free().
 */
MUST_CHECK enum err jwks_source_new(const struct jwks_source_params *p, struct jwks_source **out,
                                    char *errbuf, size_t errlen);

/* Starts the refresh thread (a URL source only; a file is read once). ERR_INTERNAL if it fails. */
MUST_CHECK enum err jwks_source_start(struct jwks_source *src);

/*
 * The current key set with a reference for the caller (release it with jwks_keys_release), or
 * NULL while there is none; *key is the key for kid (as jwks_keys_find), or NULL. When there is
 * no such key, a URL source fetches again on this thread first, unless a fetch is in flight or
 * the last one began less than min_refresh_s ago: then the answer is just "no key".
 */
struct jwks_keys *jwks_source_get(struct jwks_source *src, const char *kid,
                                  const struct jwks_key **key);

/* The current set's jwks_keys_id, 0 while there is none; lock-free. */
uint64_t jwks_source_keys_id(struct jwks_source *src);

/* How many fetches began (startup, refresh thread and unknown kids): for tests and logs. */
uint64_t jwks_source_fetches(struct jwks_source *src);

/* Stops the refresh thread and frees the source; NULL is a no-op. */
void jwks_source_free(struct jwks_source *src);

#endif /* SUBGATE_AUTH_JWKS_SOURCE_H */
