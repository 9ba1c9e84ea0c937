/*
 * client.h: the HTTP transport to Stripe (libcurl). Authenticates, pins Stripe-Version, sends
 * form bodies with an Idempotency-Key on every POST, retries as Stripe's SDKs do, keeps
 * connections alive, and turns the answer into JSON or a struct stripe_error. Safe to call from
 * several threads at once. The typed operations are in resources.h.
 */
#ifndef SUBGATE_STRIPE_CLIENT_H
#define SUBGATE_STRIPE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"
#include "base/secret.h"
#include "stripe/form.h"
#include "stripe/objects.h"

#define STRIPE_API_BASE_DEFAULT    "https://api.stripe.com"
#define STRIPE_API_VERSION_DEFAULT "2023-08-16"
#define STRIPE_IDEMPOTENCY_KEY_MAX 64 /* bytes, terminator included */
#define STRIPE_POOL_MAX            16 /* idle connections (curl handles) kept for reuse */
#define STRIPE_KEY_LINKS_MAX       8  /* keys one call walks on to past failures Stripe saved */

struct stripe_client; /* opaque */

/* Test hooks: waits ms milliseconds; returns 64 random bits. */
typedef void (*stripe_sleep_fn)(void *ctx, int64_t ms);
typedef uint64_t (*stripe_random_fn)(void *ctx);

/* One attempt, as the trace hook sees it. Never carries the API key. */
struct stripe_trace {
    const char *method;          /* GET, POST, DELETE */
    const char *path;            /* /v1/customers, without the query string */
    const char *form;            /* the POST body or the query string; "" when none */
    const char *idempotency_key; /* "" when none (GET, DELETE) */
    int status;                  /* HTTP status; 0 when no answer came */
    int attempt;                 /* 1 for the first try */
    int64_t elapsed_us;          /* how long the attempt took */
};

typedef void (*stripe_trace_fn)(void *ctx, const struct stripe_trace *t);

struct stripe_client_params {
    const char *api_base;            /* STRIPE_API_BASE; no trailing path */
    const struct secret *secret_key; /* copied; sent as Authorization: Bearer, never logged */
    const char *api_version;         /* sent as Stripe-Version on every request */
    int max_retries;                 /* retries after the first attempt */
    int64_t connect_timeout_ms;
    int64_t timeout_ms;      /* per attempt, connection included */
    size_t max_response;     /* bodies past this many bytes fail with ERR_UPSTREAM */
    stripe_sleep_fn sleep;   /* NULL: nanosleep */
    stripe_random_fn random; /* NULL: OpenSSL's RAND_bytes */
    void *hook_ctx;          /* passed to sleep and random */
};

/*
 * Fills p with the defaults: api.stripe.com, version 2023-08-16, 2 retries, 5 s to connect,
 * 30 s in all, 1 MiB answers, real sleep and randomness. The caller sets secret_key.
 */
void stripe_client_params_init(struct stripe_client_params *p);

/*
 * Creates a client. A missing or malformed key or base URL is ERR_INVALID, with one line in
 * errbuf that never shows the key. Free with stripe_client_free.
 */
MUST_CHECK enum err stripe_client_new(const struct stripe_client_params *p,
                                      struct stripe_client **out, char *errbuf, size_t errlen);

/* Closes the kept connections, wipes the key, frees the client. NULL is a no-op. */
void stripe_client_free(struct stripe_client *c);

/*
 * Calls fn after every attempt (tests, debugging). Set it before the client is shared between
 * threads; fn may be called from several threads at once.
 */
void stripe_client_set_trace(struct stripe_client *c, stripe_trace_fn fn, void *ctx);

enum stripe_method {
    STRIPE_GET,
    STRIPE_POST,
    STRIPE_DELETE,
};

struct stripe_request {
    enum stripe_method method;
    const char *path;            /* "/v1/customers/cus_123"; path segments already safe */
    const struct form *form;     /* POST body, or query string for GET/DELETE; NULL for none */
    const char *idempotency_key; /* POST only; NULL: a random UUIDv4, kept for every retry */
    bool repeat_is_harmless;     /* a second object, were one made unseen, is harmless (client.c) */
};

/*
 * Performs one Stripe call, retrying as stripe_retry_should says. On success *out is the
 * answer (a JSON object; json_decref it). On failure *out is NULL, se says what happened (its
 * attempts counts every try) and the result is: no answer after the retries ERR_UNAVAILABLE,
 * 5xx after the retries or a malformed answer ERR_UPSTREAM, otherwise stripe_error_to_err()
 * (a 400 invalid_request_error, a refusal for the object's state, is ERR_REFUSED).
 *
 * A failure Stripe saved under the POST's key (stripe_attempt_is_saved_failure), which a retry
 * of the key would only replay, makes the call go on at once with the key's next link
 * (stripe_idempotency_key_link), up to STRIPE_KEY_LINKS_MAX links, without counting a retry:
 * when no attempt of this call has had an unknown outcome (a 5xx not replayed, or no answer),
 * or whatever came before when rq->repeat_is_harmless. Otherwise the saved failure ends the call.
 */
MUST_CHECK enum err stripe_client_call(struct stripe_client *c, const struct stripe_request *rq,
                                       json_t **out, struct stripe_error *se);

/*
 * A stable idempotency key for an operation that must happen once whatever the number of
 * callers or instances: "subgate-<operation>-<first 32 hex of sha256(subject)>". operation is
 * a short literal of ours ("customer-create", at most 22 bytes of [a-z0-9-]); subject names
 * what it acts on (the user id). Stripe keeps keys for 24 hours, and refuses a reused key
 * whose parameters differ (400 idempotency_error).
 */
void stripe_idempotency_key_for(const char *operation, const char *subject,
                                char out[STRIPE_IDEMPOTENCY_KEY_MAX]);

/*
 * Link n (1 for the first) of the chain of keys that starts at key, the key a call goes on with
 * past a failure Stripe saved: "<key>~<n>" when it fits in STRIPE_IDEMPOTENCY_KEY_MAX, else
 * "subgate-link-<first 32 hex of sha256(key)>~<n>". A function of key and n alone, so every
 * caller holding one key walks one chain. n is between 1 and STRIPE_KEY_LINKS_MAX.
 */
void stripe_idempotency_key_link(const char *key, int n, char out[STRIPE_IDEMPOTENCY_KEY_MAX]);

#endif /* SUBGATE_STRIPE_CLIENT_H */
