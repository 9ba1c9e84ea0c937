/*
 * retry.c: the retry policy. It follows stripe-node's _shouldRetry and _getSleepTimeInMS, with
 * two differences the issue asks for: 429 needs Stripe-Should-Retry: true, and the cap is 5 s.
 */
#include "stripe/retry.h"

#include <string.h>

bool stripe_retry_should(const struct stripe_attempt *a, int attempt, int max_retries)
{
    if (attempt > max_retries)
        return false;
    if (a->status == 0)
        return a->retryable_io;
    if (a->should_retry == STRIPE_SHOULD_RETRY_FALSE)
        return false;
    if (a->status == 409 || a->status >= 500)
        return true;
    return a->status == 429 && a->should_retry == STRIPE_SHOULD_RETRY_TRUE;
}

int64_t stripe_retry_delay_ms(int retry, int64_t retry_after_s, uint64_t random_bits)
{
    int64_t base = STRIPE_RETRY_INITIAL_MS;
    int64_t half;

    for (int i = 1; i < retry && base < STRIPE_RETRY_MAX_MS; i++)
        base *= 2;
    if (base > STRIPE_RETRY_MAX_MS)
        base = STRIPE_RETRY_MAX_MS;
    /* jitter: base/2 plus a uniform share of the other half, from the top 32 random bits */
    half = base / 2;
    int64_t delay = half + (int64_t)(((random_bits >> 32) * (uint64_t)half) >> 32);
    if (retry_after_s >= 0 && retry_after_s <= STRIPE_RETRY_AFTER_MAX_S &&
        retry_after_s * 1000 > delay)
        delay = retry_after_s * 1000;
    return delay;
}

bool stripe_attempt_is_saved_failure(const struct stripe_attempt *a)
{
    return a->status >= 500 && a->replayed;
}

enum stripe_should_retry stripe_should_retry_parse(const char *value)
{
    if (!value)
        return STRIPE_SHOULD_RETRY_ABSENT;
    if (strcmp(value, "true") == 0)
        return STRIPE_SHOULD_RETRY_TRUE;
    if (strcmp(value, "false") == 0)
        return STRIPE_SHOULD_RETRY_FALSE;
    return STRIPE_SHOULD_RETRY_ABSENT;
}
