/* test_stripe_retry.c: the retry decision table and the backoff, with injected randomness. */
#include "stripe/retry.h"
#include "t.h"

#define T_ STRIPE_SHOULD_RETRY_TRUE
#define F_ STRIPE_SHOULD_RETRY_FALSE
#define A_ STRIPE_SHOULD_RETRY_ABSENT

static const struct {
    int status; /* 0: no answer */
    enum stripe_should_retry header;
    int attempt;
    int max_retries;
    bool retryable_io;
    bool want;
} decisions[] = {
    /* connection failures */
    { 0, A_, 1, 2, true, true },
    { 0, A_, 2, 2, true, true },
    { 0, A_, 3, 2, true, false },  /* budget spent */
    { 0, A_, 1, 2, false, false }, /* not transient (bad URL, answer too large) */
    { 0, A_, 1, 0, true, false },  /* retries off */
    /* server errors */
    { 500, A_, 1, 2, false, true },
    { 502, A_, 2, 2, false, true },
    { 503, A_, 3, 2, false, false },
    { 500, F_, 1, 2, false, false }, /* Stripe-Should-Retry: false wins */
    { 500, T_, 1, 2, false, true },
    /* conflicts (idempotency key in use by a concurrent request) */
    { 409, A_, 1, 2, false, true },
    { 409, F_, 1, 2, false, false },
    { 409, A_, 3, 2, false, false },
    /* rate limits: only when Stripe says so */
    { 429, A_, 1, 2, false, false },
    { 429, T_, 1, 2, false, true },
    { 429, T_, 3, 2, false, false },
    { 429, F_, 1, 2, false, false },
    /* other client errors: never */
    { 400, A_, 1, 2, false, false },
    { 400, T_, 1, 2, false, false },
    { 401, A_, 1, 2, false, false },
    { 402, A_, 1, 2, false, false },
    { 403, A_, 1, 2, false, false },
    { 404, T_, 1, 2, false, false },
    /* success */
    { 200, A_, 1, 2, false, false },
    { 200, T_, 1, 2, false, false },
};

static void test_decisions(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(decisions); i++) {
        struct stripe_attempt a = {
            .status = decisions[i].status,
            .retryable_io = decisions[i].retryable_io,
            .should_retry = decisions[i].header,
            .retry_after_s = -1,
        };
        T_EQ_I64(stripe_retry_should(&a, decisions[i].attempt, decisions[i].max_retries),
                 decisions[i].want, "row %zu: status %d header %d attempt %d of 1+%d", i,
                 decisions[i].status, decisions[i].header, decisions[i].attempt,
                 decisions[i].max_retries);
    }
}

#define R_MIN UINT64_C(0)
#define R_MID (UINT64_C(1) << 63)
#define R_MAX UINT64_MAX

static const struct {
    int retry;
    int64_t retry_after_s;
    uint64_t random_bits;
    int64_t want_ms;
} delays[] = {
    /* 0.5 s doubling, capped at 5 s, then jittered to 50 %..100 % */
    { 1, -1, R_MIN, 250 },
    { 2, -1, R_MIN, 500 },
    { 3, -1, R_MIN, 1000 },
    { 4, -1, R_MIN, 2000 },
    { 5, -1, R_MIN, 2500 },
    { 9, -1, R_MIN, 2500 },
    { 1, -1, R_MID, 375 },
    { 2, -1, R_MID, 750 },
    { 4, -1, R_MID, 3000 },
    { 6, -1, R_MID, 3750 },
    { 1, -1, R_MAX, 499 },
    { 3, -1, R_MAX, 1999 },
    { 5, -1, R_MAX, 4999 },
    { 1000, -1, R_MAX, 4999 },
    /* Retry-After: honoured when larger and at most 60 s */
    { 1, 3, R_MIN, 3000 },
    { 1, 60, R_MID, 60000 },
    { 1, 61, R_MIN, 250 },
    { 1, 0, R_MID, 375 },
    { 4, 1, R_MIN, 2000 },
};

static void test_delays(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(delays); i++)
        T_EQ_I64(
            stripe_retry_delay_ms(delays[i].retry, delays[i].retry_after_s, delays[i].random_bits),
            delays[i].want_ms, "delay row %zu: retry %d, Retry-After %lld", i, delays[i].retry,
            (long long)delays[i].retry_after_s);
}

/* Every random value keeps the jitter inside [50 %, 100 %) of the capped base. */
static void test_jitter_bounds(void)
{
    uint64_t x = UINT64_C(0x9e3779b97f4a7c15);
    bool inside = true;

    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int retry = 1 + i % 6;
        int64_t base = retry >= 5 ? 5000 : 500 << (retry - 1);
        int64_t d = stripe_retry_delay_ms(retry, -1, x);
        if (d < base / 2 || d >= base)
            inside = false;
    }
    T_OK(inside, "10000 random delays stay within 50 %%..100 %% of the base");
}

static const struct {
    const char *value;
    enum stripe_should_retry want;
} headers[] = {
    { NULL, A_ }, { "true", T_ }, { "false", F_ }, { "TRUE", A_ }, { "", A_ }, { "yes", A_ },
};

static void test_header_parse(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(headers); i++)
        T_EQ_I64(stripe_should_retry_parse(headers[i].value), headers[i].want,
                 "Stripe-Should-Retry '%s'", headers[i].value ? headers[i].value : "(absent)");
}

/* A saved failure: a 5xx that Stripe replayed for the key. */
static const struct {
    int status;
    bool replayed;
    bool want;
} saved[] = {
    { 500, true, true },  { 503, true, true },  { 500, false, false },
    { 200, true, false }, { 409, true, false }, { 0, false, false },
};

static void test_saved_failure(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(saved); i++) {
        struct stripe_attempt a = { .status = saved[i].status, .replayed = saved[i].replayed };
        T_EQ_I64(stripe_attempt_is_saved_failure(&a), saved[i].want, "HTTP %d%s", saved[i].status,
                 saved[i].replayed ? " replayed" : "");
    }
}

int main(void)
{
    test_decisions();
    test_delays();
    test_jitter_bounds();
    test_header_parse();
    test_saved_failure();
    return t_done();
}
