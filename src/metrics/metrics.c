/* metrics.c: per-thread counters and their Prometheus rendering (see metrics.h). */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "base/xalloc.h"

/* Upper bounds of the duration buckets, in microseconds ("+Inf" is the last, implicit). */
static const int64_t bucket_us[] = { 500,    1000,   2500,   5000,    10000,   25000,  50000,
                                     100000, 250000, 500000, 1000000, 2500000, 5000000 };
#define BUCKETS    ARRAY_SIZE(bucket_us)
#define CLASSES    5 /* status 1xx..5xx */
#define STRIPE_OUT 5 /* no answer, 2xx, 4xx, 429, 5xx */

struct histogram {
    uint64_t buckets[BUCKETS + 1]; /* the last one: past every bound */
    uint64_t sum_us;
};

/* One thread's counters; written by that thread only. */
struct slot {
    uint64_t requests[METRICS_ROUTES_MAX][CLASSES];
    struct histogram latency[METRICS_ROUTES_MAX];
    uint64_t events[METRICS_KINDS_MAX][METRICS_EVENT_OUTCOMES];
    uint64_t consumes[METRICS_QUOTAS_MAX][2]; /* refused, granted */
    uint64_t stripe[STRIPE_OUT];
    struct histogram stripe_latency;
    uint64_t queue_refusals[METRICS_QUEUE_REFUSALS];
    uint64_t storage_errors;
    uint64_t write_refusals;
    struct slot *next;
};

static struct {
    pthread_mutex_t mu; /* guards the list of slots */
    struct slot *slots;
    const char *version;
    const char *const *routes, *const *quotas, *const *kinds;
    size_t n_routes, n_quotas, n_kinds;
    int64_t connections;
} g = { .mu = PTHREAD_MUTEX_INITIALIZER };

static _Thread_local struct slot *mine;

static struct slot *slot(void)
{
    if (!mine) {
        mine = xcalloc(1, sizeof(*mine)); /* lives as long as the process: rendered after */
        pthread_mutex_lock(&g.mu);
        mine->next = g.slots;
        g.slots = mine;
        pthread_mutex_unlock(&g.mu);
    }
    return mine;
}

/* The one writer adds; readers load whole 64-bit values (relaxed: counts, not order). */
/* NOLINTNEXTLINE(readability-non-const-parameter): written through __atomic_store_n */
static void add(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void observe(struct histogram *h, int64_t us)
{
    size_t i = 0;

    if (us < 0)
        us = 0;
    while (i < BUCKETS && us > bucket_us[i])
        i++;
    add(&h->buckets[i], 1);
    add(&h->sum_us, (uint64_t)us);
}

void metrics_init(const char *version, const char *const *routes, size_t n_routes,
                  const char *const *quotas, size_t n_quotas, const char *const *kinds,
                  size_t n_kinds)
{
    g.version = version;
    g.routes = routes;
    g.n_routes = n_routes < METRICS_ROUTES_MAX - 1 ? n_routes : METRICS_ROUTES_MAX - 1;
    g.quotas = quotas;
    g.n_quotas = n_quotas < METRICS_QUOTAS_MAX ? n_quotas : METRICS_QUOTAS_MAX;
    g.kinds = kinds;
    g.n_kinds = n_kinds < METRICS_KINDS_MAX - 1 ? n_kinds : METRICS_KINDS_MAX - 1;
}

void metrics_request(size_t route, int status, int64_t elapsed_us)
{
    struct slot *s = slot();
    size_t r = route < g.n_routes ? route : METRICS_ROUTES_MAX - 1;
    int c = status >= 100 && status < 600 ? status / 100 - 1 : CLASSES - 1;

    add(&s->requests[r][c], 1);
    observe(&s->latency[r], elapsed_us);
}

void metrics_webhook(size_t kind, enum metrics_event_outcome outcome)
{
    size_t k = kind < g.n_kinds ? kind : METRICS_KINDS_MAX - 1;

    if ((size_t)outcome < METRICS_EVENT_OUTCOMES)
        add(&slot()->events[k][outcome], 1);
}

void metrics_consume(size_t q, bool granted)
{
    if (q < g.n_quotas)
        add(&slot()->consumes[q][granted], 1);
}

void metrics_stripe(int status, int64_t elapsed_us)
{
    struct slot *s = slot();
    int o = status == 0 ? 0 : status == 429 ? 3 : status >= 500 ? 4 : status >= 400 ? 2 : 1;

    add(&s->stripe[o], 1);
    observe(&s->stripe_latency, elapsed_us);
}

void metrics_queue_refused(enum metrics_queue_refusal why)
{
    if ((size_t)why < METRICS_QUEUE_REFUSALS)
        add(&slot()->queue_refusals[why], 1);
}

void metrics_write_refused(void)
{
    add(&slot()->write_refusals, 1);
}

void metrics_storage_error(void)
{
    add(&slot()->storage_errors, 1);
}

void metrics_set_connections(int64_t n)
{
    __atomic_store_n(&g.connections, n, __ATOMIC_RELAXED);
}

/* Rendering: sums over every thread's slot, under the list's mutex (slots are never freed). */

static void put(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void put(struct buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!buf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Sums the uint64 at byte offset off of every slot. */
static uint64_t total(size_t off)
{
    uint64_t n = 0;

    for (const struct slot *s = g.slots; s; s = s->next)
        n += get((const uint64_t *)(const void *)((const char *)s + off));
    return n;
}

/* Byte offsets of the counters, for total(). */
#define OFF_REQ(r, c) \
    (offsetof(struct slot, requests) + ((r)*CLASSES + (size_t)(c)) * sizeof(uint64_t))
#define OFF_EVENT(k, o) \
    (offsetof(struct slot, events) + ((k)*METRICS_EVENT_OUTCOMES + (o)) * sizeof(uint64_t))
#define OFF_CONS(q, r) (offsetof(struct slot, consumes) + ((q)*2 + (size_t)(r)) * sizeof(uint64_t))
#define OFF_STRIPE(o)  (offsetof(struct slot, stripe) + (o) * sizeof(uint64_t))

static void histogram_put(struct buf *b, const char *name, const char *labels, size_t off)
{
    uint64_t cum = 0;

    for (size_t i = 0; i <= BUCKETS; i++) {
        cum += total(off + offsetof(struct histogram, buckets) + i * sizeof(uint64_t));
        if (i < BUCKETS)
            put(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, labels[0] ? "," : "",
                (double)bucket_us[i] / 1e6, cum);
        else
            put(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, labels[0] ? "," : "",
                cum);
    }
    put(b, "%s_sum{%s} %.6f\n", name, labels,
        (double)total(off + offsetof(struct histogram, sum_us)) / 1e6);
    put(b, "%s_count{%s} %" PRIu64 "\n", name, labels, cum);
}

static const char *route_name(size_t r)
{
    return r < g.n_routes ? g.routes[r] : "unmatched";
}

static void render_requests(struct buf *b)
{
    char labels[160];

    head(b, "subgate_http_requests_total", "counter",
         "HTTP requests answered, by route and status class.");
    for (size_t r = 0; r < METRICS_ROUTES_MAX; r++) {
        if (r >= g.n_routes && r != METRICS_ROUTES_MAX - 1)
            continue;
        for (int c = 0; c < CLASSES; c++)
            put(b, "subgate_http_requests_total{route=\"%s\",code=\"%dxx\"} %" PRIu64 "\n",
                route_name(r), c + 1, total(OFF_REQ(r, c)));
    }
    head(b, "subgate_http_request_duration_seconds", "histogram",
         "Time from a complete request to its answer, by route.");
    for (size_t r = 0; r < METRICS_ROUTES_MAX; r++) {
        if (r >= g.n_routes && r != METRICS_ROUTES_MAX - 1)
            continue;
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_name(r));
        histogram_put(b, "subgate_http_request_duration_seconds", labels,
                      offsetof(struct slot, latency) + r * sizeof(struct histogram));
    }
}

static void render_billing(struct buf *b)
{
    static const char *const outcomes[] = { "applied", "ignored", "duplicate", "failed",
                                            "refused" };
    static const char *const stripe[] = { "no_answer", "2xx", "4xx", "429", "5xx" };
    static const char *const refusals[] = { "queue_full", "client_cap" };

    head(b, "subgate_webhook_events_total", "counter",
         "Stripe webhook events, by kind and outcome.");
    for (size_t k = 0; k < METRICS_KINDS_MAX; k++) {
        if (k >= g.n_kinds && k != METRICS_KINDS_MAX - 1)
            continue;
        for (size_t o = 0; o < METRICS_EVENT_OUTCOMES; o++)
            put(b, "subgate_webhook_events_total{kind=\"%s\",outcome=\"%s\"} %" PRIu64 "\n",
                k < g.n_kinds ? g.kinds[k] : "other", outcomes[o], total(OFF_EVENT(k, o)));
    }
    head(b, "subgate_consumes_total", "counter", "Quota consumes, by quota and result.");
    for (size_t q = 0; q < g.n_quotas; q++)
        for (int r = 0; r < 2; r++)
            put(b, "subgate_consumes_total{quota=\"%s\",result=\"%s\"} %" PRIu64 "\n", g.quotas[q],
                r ? "granted" : "refused", total(OFF_CONS(q, r)));
    head(b, "subgate_stripe_requests_total", "counter", "Attempts at Stripe's API, by outcome.");
    for (size_t o = 0; o < STRIPE_OUT; o++)
        put(b, "subgate_stripe_requests_total{outcome=\"%s\"} %" PRIu64 "\n", stripe[o],
            total(OFF_STRIPE(o)));
    head(b, "subgate_stripe_request_duration_seconds", "histogram",
         "Time of one attempt at Stripe's API.");
    histogram_put(b, "subgate_stripe_request_duration_seconds", "",
                  offsetof(struct slot, stripe_latency));
    head(b, "subgate_stripe_queue_refusals_total", "counter",
         "Requests that call Stripe refused before its pool: queue full (503) or client at its "
         "cap (429).");
    for (size_t w = 0; w < METRICS_QUEUE_REFUSALS; w++)
        put(b, "subgate_stripe_queue_refusals_total{reason=\"%s\"} %" PRIu64 "\n", refusals[w],
            total(offsetof(struct slot, queue_refusals) + w * sizeof(uint64_t)));
}

enum err metrics_render(struct buf *out)
{
    pthread_mutex_lock(&g.mu);
    render_requests(out);
    render_billing(out);
    head(out, "subgate_storage_errors_total", "counter",
         "Storage operations that failed for the database's sake.");
    put(out, "subgate_storage_errors_total %" PRIu64 "\n",
        total(offsetof(struct slot, storage_errors)));
    head(out, "subgate_write_queue_refusals_total", "counter",
         "Writes (consume, track, refund, webhooks) refused with 503 because WRITE_QUEUE_MAX "
         "writes already waited for the write pool.");
    put(out, "subgate_write_queue_refusals_total %" PRIu64 "\n",
        total(offsetof(struct slot, write_refusals)));
    pthread_mutex_unlock(&g.mu);
    head(out, "subgate_open_connections", "gauge", "HTTP connections open now.");
    put(out, "subgate_open_connections %" PRId64 "\n",
        __atomic_load_n(&g.connections, __ATOMIC_RELAXED));
    head(out, "subgate_build_info", "gauge", "The running build: always 1.");
    put(out, "subgate_build_info{version=\"%s\"} 1\n", g.version ? g.version : "unknown");
    return ERR_OK;
}
