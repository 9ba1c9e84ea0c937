/*
 * retry.h: when to retry a Stripe call and how long to wait first, as Stripe's SDKs do it.
 * Pure functions of the attempt's outcome and a random number, so the tests need no clock.
 */
#ifndef SUBGATE_STRIPE_RETRY_H
#define SUBGATE_STRIPE_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define STRIPE_RETRY_INITIAL_MS    INT64_C(500)  /* the first backoff */
#define STRIPE_RETRY_MAX_MS        INT64_C(5000) /* backoff cap, before jitter */
#define STRIPE_RETRY_AFTER_MAX_S   INT64_C(60)   /* a larger Retry-After is ignored (SDKs: 60 s) */
#define STRIPE_MAX_RETRIES_DEFAULT 2

/* The Stripe-Should-Retry header of an answer. */
enum stripe_should_retry {
    STRIPE_SHOULD_RETRY_ABSENT,
    STRIPE_SHOULD_RETRY_TRUE,
    STRIPE_SHOULD_RETRY_FALSE,
};

/* What one attempt produced. */
struct stripe_attempt {
    int status;        /* HTTP status; 0 when the connection failed (refused, reset, timeout) */
    bool retryable_io; /* with status 0: a transient network failure, worth another try */
    enum stripe_should_retry should_retry;
    int64_t retry_after_s; /* the Retry-After header in seconds; < 0 when absent */
    bool replayed;         /* Idempotent-Replayed: true: the answer Stripe saved for the key */
};

/*
 * Whether to try again after attempt number `attempt` (1 for the first) when max_retries
 * retries are allowed: transient network failures, 409, and 5xx, unless Stripe-Should-Retry
 * says false; 429 only when Stripe-Should-Retry says true; never any other status.
 */
bool stripe_retry_should(const struct stripe_attempt *a, int attempt, int max_retries);

/*
 * The wait before retry number `retry` (1 for the first): 0.5 s doubling up to 5 s, times a
 * jitter between 50 % and 100 % drawn from random_bits; at least retry_after_s when that is
 * between 0 and STRIPE_RETRY_AFTER_MAX_S.
 */
int64_t stripe_retry_delay_ms(int retry, int64_t retry_after_s, uint64_t random_bits);

/*
 * Whether the answer is a failure Stripe saved under the request's Idempotency-Key: a 5xx
 * replayed (Idempotent-Replayed: true). Stripe replays it to the key for 24 hours, so retrying
 * the key cannot succeed; stripe_client_call walks on to another key (client.c says when).
 */
bool stripe_attempt_is_saved_failure(const struct stripe_attempt *a);

/* Parses a Stripe-Should-Retry header value (NULL when absent). */
enum stripe_should_retry stripe_should_retry_parse(const char *value);

#endif /* SUBGATE_STRIPE_RETRY_H */
