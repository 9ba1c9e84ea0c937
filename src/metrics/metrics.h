/*
 * metrics.h: counters for GET /metrics (Prometheus text format, SPEC section 6). Each thread
 * counts into a slot of its own with plain stores (no locks, no atomic read-modify-write on the
 * hot path); rendering sums the slots. Series are fixed at start: routes and quotas are named
 * once by metrics_init, so a hostile request cannot create series.
 */
#ifndef SUBGATE_METRICS_METRICS_H
#define SUBGATE_METRICS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define METRICS_ROUTES_MAX 48 /* route index METRICS_ROUTES_MAX - 1 counts unmatched requests */
#define METRICS_QUOTAS_MAX 16

/* What became of a webhook event. */
enum metrics_event_outcome {
    METRICS_EVENT_APPLIED,
    METRICS_EVENT_IGNORED,
    METRICS_EVENT_DUPLICATE,
    METRICS_EVENT_FAILED,  /* recorded as failed: Stripe retries */
    METRICS_EVENT_REFUSED, /* bad signature or body: not recorded */
    METRICS_EVENT_OUTCOMES,
};

/* Why a request that calls Stripe was refused before the pool that runs those. */
enum metrics_queue_refusal {
    METRICS_QUEUE_FULL,       /* the pool's queue was full: 503 */
    METRICS_QUEUE_CLIENT_CAP, /* its client had its cap in flight: 429 */
    METRICS_QUEUE_REFUSALS,
};

/* The kinds of event (billing/events.h), by name; METRICS_KINDS_MAX - 1 is "other". */
#define METRICS_KINDS_MAX 8

/*
 * Names the series: route i of routes (its path template), quota i of quotas, event kind i of
 * kinds. The names are borrowed for the life of the process. Call once, before serving.
 */
void metrics_init(const char *version, const char *const *routes, size_t n_routes,
                  const char *const *quotas, size_t n_quotas, const char *const *kinds,
                  size_t n_kinds);

/* A request answered: route index (n_routes or more: unmatched), HTTP status, duration. */
void metrics_request(size_t route, int status, int64_t elapsed_us);

/* A webhook event: kind index, outcome. */
void metrics_webhook(size_t kind, enum metrics_event_outcome outcome);

/* A consume of quota index q: granted or refused. */
void metrics_consume(size_t q, bool granted);

/* One attempt at Stripe: its HTTP status (0: no answer) and duration. */
void metrics_stripe(int status, int64_t elapsed_us);

/* A request that calls Stripe refused before the pool, for reason why. */
void metrics_queue_refused(enum metrics_queue_refusal why);

/* A write refused before the write pool: its queue was full (503). */
void metrics_write_refused(void);

/* A storage operation that failed (the database's fault, not the request's). */
void metrics_storage_error(void);

/* The connections open now, as the server counts them. */
void metrics_set_connections(int64_t n);

/* Appends the Prometheus text exposition of every series to out. */
MUST_CHECK enum err metrics_render(struct buf *out);

#endif /* SUBGATE_METRICS_METRICS_H */
