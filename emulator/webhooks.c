/*
 * webhooks.c: the emulator's event log and its delivery thread (contract in webhooks.h).
 *
 * One mutex guards everything; the delivery thread drops it for the POST itself, working on
 * copies, and a generation counter tells it on return whether a reset or an endpoint change
 * has made its result moot. ORDERED mode only ever attempts the head of the queue, so an event
 * that keeps failing holds back the ones behind it until it succeeds or runs out of attempts:
 * a simple model of Stripe's best-effort ordering that makes "in emission order" testable.
 * SHUFFLED mode attempts any due delivery, in the shuffled order flush produced.
 */
#include "webhooks.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "base/clock.h"
#include "base/hmac.h"
#include "base/log.h"
#include "base/secret.h"
#include "base/str.h"
#include "base/xalloc.h"

#define API_VERSION        "2023-08-16"
#define USER_AGENT         "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
#define ATTEMPT_TIMEOUT_MS 5000L
#define RETRY_BASE_MAX_MS  INT64_C(3600000)
#define BACKOFF_SHIFT_MAX  20 /* retry_base_ms << 20 is plenty; more would overflow */
#define EVENT_ID_RANDOM    24 /* characters after "evt_", as Stripe's ids have */
#define LIST_LIMIT_MAX     100
#define LIST_LIMIT_DEF     10

static const struct emu_webhook_delivery default_delivery = {
    .order = EMU_WEBHOOK_ORDERED,
    .duplicate_percent = 0,
    .retry_base_ms = 200,
    .max_attempts = 5,
    .seed = 1,
};

/* A recorded event. */
struct event {
    char id[EMU_EVENT_ID_MAX];
    json_t *json; /* the event object; pending_webhooks drops to 0 once delivered */
    char *body;   /* the payload, serialized once: every attempt sends the same bytes */
    size_t body_len;
};

/* One delivery of an event (a duplicate is a second delivery of the same event). */
struct delivery {
    struct event *ev;
    int attempts;   /* made so far */
    int64_t due_ms; /* monotonic: not before */
};

struct delivery_list {
    struct delivery *items;
    size_t n, cap;
};

struct emu_webhooks {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* to the thread: new work, a change, or stop */
    pthread_cond_t idle; /* to drain: queue empty, nothing in flight */
    pthread_t thread;
    atomic_bool stop;
    char *url; /* NULL: no endpoint */
    struct secret secret;
    struct emu_webhook_delivery cfg;
    uint64_t rng;
    struct event **events; /* in emission order */
    size_t n_events, cap_events;
    struct delivery_list queue; /* ready to send (ORDERED: in emission order) */
    struct delivery_list held;  /* SHUFFLED: waiting for flush */
    bool in_flight;
    uint64_t generation; /* bumped whenever deliveries are dropped */
    int64_t delivered, failed, attempts;
};

/* What one attempt needs, copied so the POST runs without the lock. */
struct attempt {
    char *url;
    struct secret secret;
    char *body;
    size_t body_len;
    atomic_bool *stop; /* the object's flag, polled by curl to abort on free */
};

/* splitmix64: small, seedable, good enough for shuffling. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void list_push(struct delivery_list *l, struct delivery d)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    l->items[l->n++] = d;
}

static void list_remove(struct delivery_list *l, size_t i)
{
    memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof(*l->items));
    l->n--;
}

static void list_release(struct delivery_list *l)
{
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static void event_free(struct event *ev)
{
    json_decref(ev->json);
    free(ev->body);
    free(ev);
}

/* Monotonic absolute deadline for pthread_cond_timedwait. */
static struct timespec deadline_in(int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void signal_if_idle(struct emu_webhooks *w)
{
    if (w->queue.n == 0 && !w->in_flight)
        pthread_cond_broadcast(&w->idle);
}

/* Drops every queued and held delivery (not the events); a result in flight will be ignored. */
static void drop_deliveries(struct emu_webhooks *w)
{
    w->queue.n = 0;
    w->held.n = 0;
    w->generation++;
    signal_if_idle(w);
}

/* ---- the POST ---- */

/* NOLINTNEXTLINE(readability-non-const-parameter): the type of curl's write callback */
static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Aborts a transfer in flight when the object is being freed. */
static int check_stop(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load((atomic_bool *)ud) ? 1 : 0;
}

/* "Stripe-Signature: t=<t>,v1=<hex>", signed now. False when the HMAC fails. */
static bool signature_header(const struct attempt *a, char *out, size_t outlen)
{
    char hex[HMAC_SHA256_HEX_LEN + 1], digits[24];
    size_t key_len = 0;
    const unsigned char *key = secret_bytes(&a->secret, &key_len);
    int n = snprintf(digits, sizeof(digits), "%lld", (long long)clock_now());
    const struct hmac_part parts[] = { { digits, (size_t)n },
                                       { ".", 1 },
                                       { a->body, a->body_len } };

    if (hmac_sha256_hex(key, key_len, parts, ARRAY_SIZE(parts), hex) != ERR_OK)
        return false;
    snprintf(out, outlen, "Stripe-Signature: t=%s,v1=%s", digits, hex);
    return true;
}

static void set_options(CURL *c, const struct attempt *a, struct curl_slist *headers)
{
    curl_easy_setopt(c, CURLOPT_URL, a->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, a->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->body_len);
    curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ATTEMPT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, check_stop);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, a->stop);
}

/* Appends to *list; false (the list kept as it was) on out-of-memory. */
static bool add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);

    if (l)
        *list = l;
    return l != NULL;
}

/* One POST; true on any 2xx. */
static bool post(const struct attempt *a)
{
    char sig[160];
    struct curl_slist *headers = NULL;
    CURL *c = curl_easy_init();
    long status = 0;
    bool ok = false;

    if (!c || !signature_header(a, sig, sizeof(sig)))
        goto out;
    if (!add_header(&headers, "Content-Type: application/json; charset=utf-8") ||
        !add_header(&headers, sig) || !add_header(&headers, "Expect:")) /* no 100-continue */
        goto out;
    set_options(c, a, headers);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        log_debug("webhook to '%s' failed: %s", a->url, curl_easy_strerror(rc));
    ok = rc == CURLE_OK && status >= 200 && status < 300;
out:
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return ok;
}

/* ---- the delivery thread ---- */

/* The queue index to attempt now, or false with how long to wait (-1: until woken). */
static bool next_due(const struct emu_webhooks *w, size_t *idx, int64_t *wait_ms)
{
    int64_t now = clock_mono_ms(), soonest = -1;
    size_t n = w->cfg.order == EMU_WEBHOOK_ORDERED && w->queue.n > 0 ? 1 : w->queue.n;

    for (size_t i = 0; i < n; i++) {
        int64_t due = w->queue.items[i].due_ms;
        if (due <= now) {
            *idx = i;
            return true;
        }
        if (soonest < 0 || due - now < soonest)
            soonest = due - now;
    }
    *wait_ms = soonest;
    return false;
}

static void attempt_release(struct attempt *a)
{
    free(a->url);
    free(a->body);
    secret_release(&a->secret);
}

/* Records the outcome of an attempt on queue[i]. */
static void settle(struct emu_webhooks *w, size_t i, bool ok)
{
    struct delivery *d = &w->queue.items[i];

    d->attempts++;
    if (ok) {
        w->delivered++;
        json_object_set_new(d->ev->json, "pending_webhooks", json_integer(0));
        list_remove(&w->queue, i);
    } else if (d->attempts >= w->cfg.max_attempts) {
        w->failed++;
        log_info("webhook %s given up after %d attempts", d->ev->id, d->attempts);
        list_remove(&w->queue, i);
    } else {
        int shift = d->attempts - 1 < BACKOFF_SHIFT_MAX ? d->attempts - 1 : BACKOFF_SHIFT_MAX;
        d->due_ms = clock_mono_ms() + (w->cfg.retry_base_ms << shift);
    }
}

/* Attempts queue[i]: called and returns with the lock held, drops it for the POST. */
static void attempt_delivery(struct emu_webhooks *w, size_t i)
{
    const struct event *ev = w->queue.items[i].ev;
    struct attempt a = { .url = xstrdup(w->url), .stop = &w->stop };
    uint64_t gen = w->generation;
    size_t key_len = 0;
    const unsigned char *key = secret_bytes(&w->secret, &key_len);

    secret_set(&a.secret, key ? key : (const unsigned char *)"", key_len);
    a.body = xmalloc(ev->body_len + 1);
    memcpy(a.body, ev->body, ev->body_len + 1);
    a.body_len = ev->body_len;
    w->in_flight = true;
    w->attempts++;
    pthread_mutex_unlock(&w->mu);
    bool ok = post(&a);
    pthread_mutex_lock(&w->mu);
    attempt_release(&a);
    w->in_flight = false;
    if (gen == w->generation)
        settle(w, i, ok);
    signal_if_idle(w);
}

static void *delivery_main(void *arg)
{
    struct emu_webhooks *w = arg;
    size_t i = 0;
    int64_t wait_ms = -1;

    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stop)) {
        if (next_due(w, &i, &wait_ms)) {
            attempt_delivery(w, i);
        } else if (wait_ms < 0) {
            pthread_cond_wait(&w->wake, &w->mu);
        } else {
            struct timespec ts = deadline_in(wait_ms);
            pthread_cond_timedwait(&w->wake, &w->mu, &ts); /* timeout or wake-up: loop again */
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- lifecycle and configuration ---- */

struct emu_webhooks *emu_webhooks_new(void)
{
    struct emu_webhooks *w = xcalloc(1, sizeof(*w));
    pthread_condattr_t attr;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &attr);
    pthread_cond_init(&w->idle, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&w->stop, false);
    w->cfg = default_delivery;
    w->rng = default_delivery.seed;
    int rc = pthread_create(&w->thread, NULL, delivery_main, w);
    if (rc != 0) {
        log_error("cannot start the webhook delivery thread: %s", strerror(rc));
        abort(); /* like out-of-memory: nothing sensible to do without it */
    }
    return w;
}

static void forget_events(struct emu_webhooks *w)
{
    for (size_t i = 0; i < w->n_events; i++)
        event_free(w->events[i]);
    w->n_events = 0;
}

void emu_webhooks_free(struct emu_webhooks *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    forget_events(w);
    free(w->events);
    list_release(&w->queue);
    list_release(&w->held);
    free(w->url);
    secret_release(&w->secret);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->idle);
    pthread_mutex_destroy(&w->mu);
    free(w);
    curl_global_cleanup();
}

void emu_webhooks_configure(struct emu_webhooks *w, const char *url, const char *secret)
{
    pthread_mutex_lock(&w->mu);
    free(w->url);
    w->url = url && *url ? xstrdup(url) : NULL;
    if (secret)
        secret_set(&w->secret, secret, strlen(secret));
    else
        secret_release(&w->secret);
    if (!w->url)
        drop_deliveries(w);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

/* Moves the held deliveries to the queue in the order they are in. */
static void release_held(struct emu_webhooks *w)
{
    for (size_t i = 0; i < w->held.n; i++)
        list_push(&w->queue, w->held.items[i]);
    w->held.n = 0;
}

void emu_webhooks_set_delivery(struct emu_webhooks *w, const struct emu_webhook_delivery *d)
{
    pthread_mutex_lock(&w->mu);
    w->cfg = *d;
    if (w->cfg.duplicate_percent < 0)
        w->cfg.duplicate_percent = 0;
    if (w->cfg.duplicate_percent > 100)
        w->cfg.duplicate_percent = 100;
    if (w->cfg.retry_base_ms < 0)
        w->cfg.retry_base_ms = 0;
    if (w->cfg.retry_base_ms > RETRY_BASE_MAX_MS)
        w->cfg.retry_base_ms = RETRY_BASE_MAX_MS;
    if (w->cfg.max_attempts < 1)
        w->cfg.max_attempts = 1;
    w->rng = d->seed; /* a new setting restarts the sequence: reproducible from the seed */
    if (w->cfg.order == EMU_WEBHOOK_ORDERED)
        release_held(w); /* switching back sends what was held, in emission order */
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

/* ---- events ---- */

/* "evt_" and 24 random base62 characters, as Stripe's look. */
static void new_event_id(char id[EMU_EVENT_ID_MAX])
{
    static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char r[EVENT_ID_RANDOM];

    if (RAND_bytes(r, (int)sizeof(r)) != 1)
        abort(); /* the CSPRNG failing is not something to carry on from */
    memcpy(id, "evt_", 4);
    for (size_t i = 0; i < sizeof(r); i++)
        id[4 + i] = alnum[r[i] % (sizeof(alnum) - 1)];
    id[4 + sizeof(r)] = '\0';
}

static json_t *event_object(const char *id, const char *type, const json_t *object,
                            const json_t *previous, int64_t created, bool pending)
{
    json_t *data = json_object();

    json_object_set_new(data, "object", json_deep_copy(object));
    if (previous)
        json_object_set_new(data, "previous_attributes", json_deep_copy(previous));
    return json_pack("{s:s, s:s, s:s, s:I, s:o, s:b, s:i, s:{s:n, s:n}, s:s}", "id", id, "object",
                     "event", "api_version", API_VERSION, "created", (json_int_t)created, "data",
                     data, "livemode", 0, "pending_webhooks", pending ? 1 : 0, "request", "id",
                     "idempotency_key", "type", type);
}

static struct event *event_new(const char *type, const json_t *object, const json_t *previous,
                               int64_t created, bool pending)
{
    struct event *ev = xcalloc(1, sizeof(*ev));

    new_event_id(ev->id);
    ev->json = event_object(ev->id, type, object, previous, created, pending);
    if (!ev->json)
        abort(); /* json_pack fails only on out-of-memory with these constant formats */
    /* Pretty-printed with two spaces, as Stripe sends them. */
    ev->body = json_dumps(ev->json, JSON_INDENT(2));
    if (!ev->body)
        abort();
    ev->body_len = strlen(ev->body);
    return ev;
}

static void record(struct emu_webhooks *w, struct event *ev)
{
    if (w->n_events == w->cap_events) {
        w->cap_events = w->cap_events ? 2 * w->cap_events : 64;
        w->events = xrealloc(w->events, w->cap_events * sizeof(struct event *));
    }
    w->events[w->n_events++] = ev;
}

void emu_webhooks_emit(struct emu_webhooks *w, const char *type, const json_t *object,
                       const json_t *previous, int64_t created, char id_out[EMU_EVENT_ID_MAX])
{
    pthread_mutex_lock(&w->mu);
    struct event *ev = event_new(type, object, previous, created, w->url != NULL);
    struct delivery d = { .ev = ev, .attempts = 0, .due_ms = 0 };

    record(w, ev);
    if (w->url)
        list_push(w->cfg.order == EMU_WEBHOOK_SHUFFLED ? &w->held : &w->queue, d);
    memcpy(id_out, ev->id, EMU_EVENT_ID_MAX);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

static void shuffle(struct delivery *items, size_t n, uint64_t *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(rng) % i);
        struct delivery t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
}

void emu_webhooks_flush(struct emu_webhooks *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->held.n;
    /* The duplicate share is exact (rounded): the first k of a shuffled order go twice. */
    size_t k = (n * (size_t)w->cfg.duplicate_percent + 50) / 100;

    shuffle(w->held.items, n, &w->rng);
    for (size_t i = 0; i < k; i++)
        list_push(&w->held, w->held.items[i]);
    shuffle(w->held.items, w->held.n, &w->rng);
    release_held(w);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

bool emu_webhooks_drain(struct emu_webhooks *w, int64_t timeout_ms)
{
    struct timespec ts = deadline_in(timeout_ms > 0 ? timeout_ms : 0);
    bool idle;

    pthread_mutex_lock(&w->mu);
    while (w->queue.n > 0 || w->in_flight)
        if (pthread_cond_timedwait(&w->idle, &w->mu, &ts) == ETIMEDOUT)
            break;
    idle = w->queue.n == 0 && !w->in_flight;
    pthread_mutex_unlock(&w->mu);
    return idle;
}

/* Index of the event with this id, or n_events. */
static size_t find_event(const struct emu_webhooks *w, const char *id)
{
    size_t i = 0;

    while (id && i < w->n_events && strcmp(w->events[i]->id, id) != 0)
        i++;
    return i;
}

json_t *emu_webhooks_event_json(struct emu_webhooks *w, const char *id)
{
    json_t *out = NULL;

    pthread_mutex_lock(&w->mu);
    size_t i = find_event(w, id);
    if (i < w->n_events)
        out = json_deep_copy(w->events[i]->json);
    pthread_mutex_unlock(&w->mu);
    return out;
}

json_t *emu_webhooks_list_json(struct emu_webhooks *w, int limit, const char *starting_after)
{
    json_t *data = json_array();
    size_t lim = limit <= 0               ? LIST_LIMIT_DEF
                 : limit > LIST_LIMIT_MAX ? LIST_LIMIT_MAX
                                          : (size_t)limit;

    pthread_mutex_lock(&w->mu);
    /* Newest first: start just below starting_after (unknown: nothing), else at the newest. */
    size_t end = starting_after ? find_event(w, starting_after) : w->n_events;
    size_t i = end;
    if (starting_after && end == w->n_events)
        i = 0;
    for (; i > 0 && json_array_size(data) < lim; i--)
        json_array_append_new(data, json_deep_copy(w->events[i - 1]->json));
    pthread_mutex_unlock(&w->mu);
    return json_pack("{s:s, s:s, s:o, s:b}", "object", "list", "url", "/v1/events", "data", data,
                     "has_more", i > 0);
}

json_t *emu_webhooks_status_json(struct emu_webhooks *w)
{
    pthread_mutex_lock(&w->mu);
    json_t *out =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:s?, s:s}", "delivered",
                  (json_int_t)w->delivered, "failed", (json_int_t)w->failed, "pending",
                  (json_int_t)(w->queue.n), "held", (json_int_t)w->held.n, "attempts",
                  (json_int_t)w->attempts, "events", (json_int_t)w->n_events, "endpoint", w->url,
                  "order", w->cfg.order == EMU_WEBHOOK_SHUFFLED ? "shuffled" : "ordered");
    pthread_mutex_unlock(&w->mu);
    return out;
}

void emu_webhooks_reset(struct emu_webhooks *w)
{
    pthread_mutex_lock(&w->mu);
    drop_deliveries(w);
    forget_events(w);
    w->delivered = w->failed = w->attempts = 0;
    w->rng = w->cfg.seed;
    pthread_mutex_unlock(&w->mu);
}

/* ---- the state file ---- */

static json_t *deliveries_json(const struct delivery_list *l)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:i}", "event", l->items[i].ev->id, "attempts",
                                             l->items[i].attempts));
    return arr;
}

json_t *emu_webhooks_to_json(struct emu_webhooks *w)
{
    json_t *events = json_array();

    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->n_events; i++)
        json_array_append_new(events, json_deep_copy(w->events[i]->json));
    json_t *out = json_pack("{s:o,s:o,s:o,s:I,s:I,s:I}", "events", events, "queue",
                            deliveries_json(&w->queue), "held", deliveries_json(&w->held),
                            "delivered", (json_int_t)w->delivered, "failed", (json_int_t)w->failed,
                            "attempts", (json_int_t)w->attempts);
    pthread_mutex_unlock(&w->mu);
    return out;
}

static bool event_is_valid(const json_t *ev)
{
    const char *id = json_string_value(json_object_get(ev, "id"));

    return id && str_has_prefix(id, "evt_") && strlen(id) < EMU_EVENT_ID_MAX &&
           json_is_string(json_object_get(ev, "type"));
}

/* Index of the event with this id among the snapshot's events, or false. */
static bool snapshot_event(const json_t *events, const json_t *d, size_t *at)
{
    const char *id = json_string_value(json_object_get(d, "event"));
    size_t i;
    json_t *ev;

    json_array_foreach(events, i, ev)
    {
        if (id && strcmp(json_string_value(json_object_get(ev, "id")), id) == 0) {
            *at = i;
            return json_is_integer(json_object_get(d, "attempts"));
        }
    }
    return false;
}

static bool snapshot_is_valid(const json_t *snap)
{
    json_t *events = json_object_get(snap, "events");
    const char *lists[] = { "queue", "held" };
    size_t i, at;
    json_t *v;

    if (!json_is_array(events))
        return false;
    json_array_foreach(events, i, v)
    {
        if (!event_is_valid(v))
            return false;
    }
    for (size_t k = 0; k < ARRAY_SIZE(lists); k++) {
        json_t *l = json_object_get(snap, lists[k]);
        if (!json_is_array(l))
            return false;
        json_array_foreach(l, i, v)
        {
            if (!snapshot_event(events, v, &at))
                return false;
        }
    }
    return true;
}

static struct event *event_from_json(const json_t *obj)
{
    struct event *ev = xcalloc(1, sizeof(*ev));

    (void)str_copy(ev->id, sizeof(ev->id), json_string_value(json_object_get(obj, "id")));
    ev->json = json_deep_copy(obj);
    ev->body = json_dumps(ev->json, JSON_INDENT(2));
    if (!ev->json || !ev->body)
        abort(); /* out of memory */
    ev->body_len = strlen(ev->body);
    return ev;
}

/* Queues the snapshot's deliveries of list `name` into l; w's events are the snapshot's. */
static void deliveries_load(struct emu_webhooks *w, const json_t *snap, const char *name,
                            struct delivery_list *l)
{
    json_t *events = json_object_get(snap, "events");
    size_t i, at = 0;
    json_t *v;

    json_array_foreach(json_object_get(snap, name), i, v)
    {
        (void)snapshot_event(events, v, &at); /* checked before */
        struct delivery d = { .ev = w->events[at],
                              .attempts = (int)json_integer_value(json_object_get(v, "attempts")),
                              .due_ms = 0 };
        list_push(l, d);
    }
}

enum err emu_webhooks_from_json(struct emu_webhooks *w, const json_t *snap, char *err,
                                size_t errlen)
{
    size_t i;
    json_t *v;

    if (!snapshot_is_valid(snap)) {
        snprintf(err, errlen, "webhooks: not a snapshot of events and deliveries");
        return ERR_INVALID;
    }
    pthread_mutex_lock(&w->mu);
    drop_deliveries(w);
    forget_events(w);
    json_array_foreach(json_object_get(snap, "events"), i, v)
    {
        record(w, event_from_json(v));
    }
    if (w->url) {
        deliveries_load(w, snap, "queue", &w->queue);
        deliveries_load(w, snap, "held", &w->held);
    }
    w->delivered = (int64_t)json_integer_value(json_object_get(snap, "delivered"));
    w->failed = (int64_t)json_integer_value(json_object_get(snap, "failed"));
    w->attempts = (int64_t)json_integer_value(json_object_get(snap, "attempts"));
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
    return ERR_OK;
}
