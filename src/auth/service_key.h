/*
 * service_key.h: the API keys of the app's trusted back ends (SERVICE_API_KEYS, SPEC §2), held as
 * secrets and compared in constant time.
 */
#ifndef SUBGATE_AUTH_SERVICE_KEY_H
#define SUBGATE_AUTH_SERVICE_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "base/err.h"
#include "base/secret.h"

#define SERVICE_KEYS_MAX    16 /* keys in one set; room for rotation, not a user database */
#define SERVICE_KEY_MIN_LEN 16 /* bytes; a shorter key is a configuration error */

/* A set of keys. A zero-initialized struct is an empty set, which matches nothing. */
struct service_keys {
    struct secret keys[SERVICE_KEYS_MAX];
    size_t count;
};

/*
 * Fills k (which must be empty) from the comma-separated list, trimming spaces and tabs around
 * each key. ERR_INVALID, with k left empty and a one-line reason in errbuf[errlen] that never
 * quotes a key, when an entry is empty, shorter than SERVICE_KEY_MIN_LEN bytes, holds a byte
 * outside printable ASCII or a space, or there are more than SERVICE_KEYS_MAX entries.
 * Release k with service_keys_release().
 */
MUST_CHECK enum err service_keys_parse(struct service_keys *k, const char *list, char *errbuf,
                                       size_t errlen);

/*
 * Fills k (which must be empty) with copies of n secrets already validated elsewhere (the
 * configuration's SERVICE_API_KEYS). ERR_INVALID when n > SERVICE_KEYS_MAX.
 */
MUST_CHECK enum err service_keys_from_secrets(struct service_keys *k, const struct secret *s,
                                              size_t n);

/* Wipes and frees every key; k is an empty set afterwards. */
void service_keys_release(struct service_keys *k);

/*
 * True when <presented, len> equals one of the keys. Every key is compared, in constant time for
 * its length, whether or not an earlier one matched.
 */
bool service_keys_match(const struct service_keys *k, const char *presented, size_t len);

#endif /* SUBGATE_AUTH_SERVICE_KEY_H */
