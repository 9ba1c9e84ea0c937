/*
 * test_emu_webhooks.c: the emulator's events and their delivery (emulator/webhooks.c), against
 * a receiver on loopback built from http/server.c. Signatures are checked with
 * stripe/webhook.c. The only waiting is emu_webhooks_drain on the real delivery thread.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/secret.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "http/server.h"
#include "stripe/webhook.h"
#include "t.h"
#include "webhooks.h"

#define SECRET     "whsec_emulator_test_secret"
#define CALLS_MAX  64
#define DRAIN_MS   INT64_C(10000)
#define CREATED    INT64_C(1700000000)
#define SHUF_SEED  UINT64_C(42)
#define SHUF_N     10
#define SHUF_DUP_P 30

/* What the receiver saw, one row per request. */
struct call {
    char *body;
    size_t len;
    char sig[160];
    char ua[96];
    char ctype[64];
};

static struct {
    pthread_mutex_t mu;
    struct call calls[CALLS_MAX];
    int n;
    atomic_int fail_first; /* answer 500 to this many calls before succeeding */
} rx = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void copy_header(const struct request *req, const char *name, char *dst, size_t size)
{
    const char *v = request_header(req, name);

    (void)str_copy(dst, size, v ? v : ""); /* a truncated copy fails the comparison anyway */
}

static void receive(void *app, struct request *req, struct response *resp)
{
    (void)app;
    pthread_mutex_lock(&rx.mu);
    if (rx.n < CALLS_MAX) {
        struct call *c = &rx.calls[rx.n++];
        c->len = req->body.len;
        c->body = xmalloc(c->len + 1);
        memcpy(c->body, buf_str(&req->body), c->len + 1);
        copy_header(req, "Stripe-Signature", c->sig, sizeof(c->sig));
        copy_header(req, "User-Agent", c->ua, sizeof(c->ua));
        copy_header(req, "Content-Type", c->ctype, sizeof(c->ctype));
    }
    pthread_mutex_unlock(&rx.mu);
    bool fail = atomic_fetch_sub(&rx.fail_first, 1) > 0;
    response_json(resp, fail ? 500 : 200, json_pack("{s:b}", "received", !fail));
}

static void rx_reset(int fail_first)
{
    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++)
        free(rx.calls[i].body);
    rx.n = 0;
    atomic_store(&rx.fail_first, fail_first);
    pthread_mutex_unlock(&rx.mu);
}

/* The "id" of the event in a received body; "" when unreadable. */
static void call_event_id(const struct call *c, char *out, size_t size)
{
    json_t *j = json_loadb(c->body, c->len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));

    (void)str_copy(out, size, id ? id : ""); /* ids fit */
    json_decref(j);
}

static void set_delivery(struct emu_webhooks *w, enum emu_webhook_order order, int dup,
                         int max_attempts)
{
    struct emu_webhook_delivery d = {
        .order = order,
        .duplicate_percent = dup,
        .retry_base_ms = 1, /* the backoff logic is real, its scale is not */
        .max_attempts = max_attempts,
        .seed = SHUF_SEED,
    };

    emu_webhooks_set_delivery(w, &d);
}

static void emit_n(struct emu_webhooks *w, int n, char ids[][EMU_EVENT_ID_MAX])
{
    for (int i = 0; i < n; i++) {
        json_t *obj =
            json_pack("{s:s, s:s, s:i}", "id", "cus_test", "object", "customer", "seq", i);
        emu_webhooks_emit(w, "customer.updated", obj, NULL, CREATED + i, ids[i]);
        json_decref(obj);
    }
}

static int64_t status_of(struct emu_webhooks *w, const char *key)
{
    json_t *s = emu_webhooks_status_json(w);
    int64_t v = json_integer_value(json_object_get(s, key));

    json_decref(s);
    return v;
}

static void test_ordered(struct emu_webhooks *w)
{
    char ids[5][EMU_EVENT_ID_MAX], got[EMU_EVENT_ID_MAX];
    struct secret s = { 0 };
    const char *why = NULL;

    rx_reset(0);
    set_delivery(w, EMU_WEBHOOK_ORDERED, 0, 5);
    emit_n(w, 5, ids);
    T_OK(emu_webhooks_drain(w, DRAIN_MS), "ordered: drain returns once idle");
    T_EQ_I64(rx.n, 5, "ordered: one request per event");
    secret_set(&s, SECRET, strlen(SECRET));
    struct stripe_webhook_check chk = { &s, 1, clock_now(), STRIPE_WEBHOOK_TOLERANCE_S };
    for (int i = 0; i < rx.n && i < 5; i++) {
        const struct call *c = &rx.calls[i];
        call_event_id(c, got, sizeof(got));
        T_EQ_STR(got, ids[i], "ordered: request %d carries event %d", i, i);
        T_EQ_I64(stripe_webhook_verify(&chk, c->sig, strlen(c->sig), c->body, c->len, &why), ERR_OK,
                 "ordered: request %d signature verifies (%s)", i, why);
        T_EQ_STR(c->ctype, "application/json; charset=utf-8", "ordered: Content-Type %d", i);
        T_EQ_STR(c->ua, "Stripe/1.0 (+https://stripe.com/docs/webhooks)", "ordered: User-Agent %d",
                 i);
    }
    T_EQ_I64(status_of(w, "delivered"), 5, "ordered: status counts 5 delivered");
    secret_release(&s);
}

static void test_retry(struct emu_webhooks *w)
{
    char ids[2][EMU_EVENT_ID_MAX], got[EMU_EVENT_ID_MAX];

    emu_webhooks_reset(w);
    rx_reset(2);
    set_delivery(w, EMU_WEBHOOK_ORDERED, 0, 5);
    emit_n(w, 1, ids);
    T_OK(emu_webhooks_drain(w, DRAIN_MS), "retry: drained");
    T_EQ_I64(rx.n, 3, "retry: two 500s then a success");
    for (int i = 0; i < rx.n; i++) {
        call_event_id(&rx.calls[i], got, sizeof(got));
        T_EQ_STR(got, ids[0], "retry: attempt %d is the same event", i);
        T_OK(rx.calls[i].len == rx.calls[0].len &&
                 memcmp(rx.calls[i].body, rx.calls[0].body, rx.calls[0].len) == 0,
             "retry: attempt %d sends the same bytes", i);
    }
    T_EQ_I64(status_of(w, "delivered"), 1, "retry: delivered once");
    T_EQ_I64(status_of(w, "attempts"), 3, "retry: three attempts");
    T_EQ_I64(status_of(w, "failed"), 0, "retry: nothing failed");
}

/* The first event fails every attempt and holds back the second until it is given up. */
static void test_give_up(struct emu_webhooks *w)
{
    char ids[2][EMU_EVENT_ID_MAX], got[EMU_EVENT_ID_MAX];
    static const int want[] = { 0, 0, 0, 1 };

    emu_webhooks_reset(w);
    rx_reset(3);
    set_delivery(w, EMU_WEBHOOK_ORDERED, 0, 3);
    emit_n(w, 2, ids);
    T_OK(emu_webhooks_drain(w, DRAIN_MS), "give up: drained");
    T_EQ_I64(rx.n, 4, "give up: three attempts, then the next event");
    for (int i = 0; i < rx.n && i < 4; i++) {
        call_event_id(&rx.calls[i], got, sizeof(got));
        T_EQ_STR(got, ids[want[i]], "give up: request %d is event %d", i, want[i]);
    }
    T_EQ_I64(status_of(w, "failed"), 1, "give up: one failed");
    T_EQ_I64(status_of(w, "delivered"), 1, "give up: one delivered");
}

/* Index of id in ids[n], or n. */
static int index_of(char ids[][EMU_EVENT_ID_MAX], int n, const char *id)
{
    int i = 0;

    while (i < n && strcmp(ids[i], id) != 0)
        i++;
    return i;
}

/*
 * Counts the copies of each emitted event among the received ones; returns how many came
 * twice. reordered: the first copies did not arrive in emission order.
 */
static int count_copies(char ids[][EMU_EVENT_ID_MAX], int n, int *missing, bool *reordered)
{
    char got[EMU_EVENT_ID_MAX];
    int copies[SHUF_N + 1] = { 0 }, twice = 0, firsts = 0;

    *missing = 0;
    *reordered = false;
    for (int k = 0; k < rx.n; k++) {
        call_event_id(&rx.calls[k], got, sizeof(got));
        int i = index_of(ids, n, got);
        if (copies[i]++ == 0 && i < n && i != firsts++)
            *reordered = true;
    }
    for (int i = 0; i < n; i++) {
        *missing += copies[i] == 0;
        twice += copies[i] == 2;
    }
    return twice;
}

static void test_shuffled(struct emu_webhooks *w)
{
    char ids[SHUF_N][EMU_EVENT_ID_MAX];
    int missing = 0;
    bool reordered = false;

    emu_webhooks_reset(w);
    rx_reset(0);
    set_delivery(w, EMU_WEBHOOK_SHUFFLED, SHUF_DUP_P, 5);
    emit_n(w, SHUF_N, ids);
    T_OK(emu_webhooks_drain(w, DRAIN_MS), "shuffled: held events do not keep drain waiting");
    T_EQ_I64(rx.n, 0, "shuffled: nothing sent before flush");
    T_EQ_I64(status_of(w, "held"), SHUF_N, "shuffled: all held");
    emu_webhooks_flush(w);
    T_OK(emu_webhooks_drain(w, DRAIN_MS), "shuffled: drained after flush");
    T_EQ_I64(rx.n, SHUF_N + SHUF_N * SHUF_DUP_P / 100, "shuffled: every event plus 30%% again");
    T_EQ_I64(count_copies(ids, SHUF_N, &missing, &reordered), SHUF_N * SHUF_DUP_P / 100,
             "shuffled: 3 events came twice");
    T_EQ_I64(missing, 0, "shuffled: no event missing");
    T_OK(reordered, "shuffled: seed %llu delivers out of emission order",
         (unsigned long long)SHUF_SEED);
    set_delivery(w, EMU_WEBHOOK_ORDERED, 0, 5);
}

static void test_drain_and_reset(struct emu_webhooks *w)
{
    char ids[1][EMU_EVENT_ID_MAX];
    struct emu_webhook_delivery slow = { EMU_WEBHOOK_ORDERED, 0, 60000, 2, 1 };
    json_t *list;

    emu_webhooks_reset(w);
    rx_reset(1000);
    T_OK(emu_webhooks_drain(w, 0), "drain: idle at once when nothing is queued");
    emu_webhooks_set_delivery(w, &slow);
    emit_n(w, 1, ids);
    T_OK(!emu_webhooks_drain(w, 200), "drain: times out while a retry is a minute away");
    T_EQ_I64(status_of(w, "pending"), 1, "drain: the delivery is still pending");
    emu_webhooks_reset(w);
    T_OK(emu_webhooks_drain(w, DRAIN_MS), "reset: drops the pending delivery");
    json_t *ev = emu_webhooks_event_json(w, ids[0]);
    T_OK(ev == NULL, "reset: the event is forgotten");
    json_decref(ev);
    list = emu_webhooks_list_json(w, 10, NULL);
    T_EQ_I64(json_array_size(json_object_get(list, "data")), 0, "reset: the list is empty");
    json_decref(list);
    T_EQ_I64(status_of(w, "events") + status_of(w, "attempts"), 0, "reset: counters are zero");
    json_t *st = emu_webhooks_status_json(w);
    T_OK(json_string_value(json_object_get(st, "endpoint")) != NULL, "reset: the endpoint is kept");
    json_decref(st);
}

/* Checks the fixed fields of an event object. */
static void check_envelope(const json_t *ev, const char *type, int pending)
{
    const char *id = json_string_value(json_object_get(ev, "id"));
    json_t *req = json_object_get(ev, "request");

    T_OK(id && str_has_prefix(id, "evt_") && strlen(id) == 28, "shape: id is evt_ + 24");
    T_EQ_STR(json_string_value(json_object_get(ev, "object")), "event", "shape: object");
    T_EQ_STR(json_string_value(json_object_get(ev, "api_version")), "2023-08-16", "shape: version");
    T_EQ_I64(json_integer_value(json_object_get(ev, "created")), CREATED, "shape: created");
    T_OK(json_is_false(json_object_get(ev, "livemode")), "shape: livemode false");
    T_EQ_I64(json_integer_value(json_object_get(ev, "pending_webhooks")), pending,
             "shape: pending_webhooks %d", pending);
    T_OK(json_is_null(json_object_get(req, "id")) &&
             json_is_null(json_object_get(req, "idempotency_key")),
         "shape: request id and idempotency_key null");
    T_EQ_STR(json_string_value(json_object_get(ev, "type")), type, "shape: type");
    T_EQ_I64(json_object_size(ev), 9, "shape: nine fields");
}

static void test_shape(struct emu_webhooks *w, const char *url)
{
    char id[EMU_EVENT_ID_MAX], id2[EMU_EVENT_ID_MAX];
    json_t *obj =
        json_pack("{s:s, s:s, s:s}", "id", "sub_1", "object", "subscription", "status", "active");
    json_t *prev = json_pack("{s:s}", "status", "trialing");

    emu_webhooks_reset(w);
    rx_reset(0);
    emu_webhooks_emit(w, "customer.subscription.updated", obj, prev, CREATED, id);
    T_OK(emu_webhooks_drain(w, DRAIN_MS), "shape: drained");
    json_t *ev = emu_webhooks_event_json(w, id);
    check_envelope(ev, "customer.subscription.updated", 0);
    json_t *data = json_object_get(ev, "data");
    T_OK(json_equal(json_object_get(data, "object"), obj), "shape: data.object is the object");
    T_OK(json_equal(json_object_get(data, "previous_attributes"), prev),
         "shape: data.previous_attributes");
    json_t *sent = rx.n == 1 ? json_loadb(rx.calls[0].body, rx.calls[0].len, 0, NULL) : NULL;
    json_object_set_new(ev, "pending_webhooks", json_integer(1));
    T_OK(sent && json_equal(sent, ev), "shape: the body sent is the event, pending_webhooks 1");
    json_decref(sent);
    json_decref(ev);

    emu_webhooks_configure(w, NULL, NULL);
    emu_webhooks_emit(w, "customer.subscription.created", obj, NULL, CREATED, id2);
    ev = emu_webhooks_event_json(w, id2);
    check_envelope(ev, "customer.subscription.created", 0);
    T_OK(!json_object_get(json_object_get(ev, "data"), "previous_attributes"),
         "shape: no previous_attributes when none given");
    T_OK(emu_webhooks_drain(w, DRAIN_MS) && rx.n == 1, "shape: nothing sent without an endpoint");
    json_decref(ev);
    json_decref(obj);
    json_decref(prev);
    emu_webhooks_configure(w, url, SECRET);
}

static void test_list(struct emu_webhooks *w)
{
    char ids[5][EMU_EVENT_ID_MAX];

    emu_webhooks_reset(w);
    emu_webhooks_configure(w, NULL, NULL);
    emit_n(w, 5, ids);
    json_t *l = emu_webhooks_list_json(w, 2, NULL);
    json_t *d = json_object_get(l, "data");
    T_EQ_STR(json_string_value(json_object_get(l, "object")), "list", "list: object");
    T_EQ_I64(json_array_size(d), 2, "list: limit 2");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(d, 0), "id")), ids[4],
             "list: newest first");
    T_OK(json_is_true(json_object_get(l, "has_more")), "list: has_more");
    json_decref(l);
    l = emu_webhooks_list_json(w, 10, ids[2]);
    d = json_object_get(l, "data");
    T_EQ_I64(json_array_size(d), 2, "list: two older than the third");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(d, 0), "id")), ids[1],
             "list: starting_after");
    T_OK(json_is_false(json_object_get(l, "has_more")), "list: no more");
    json_decref(l);
}

int main(void)
{
    struct http_server *srv = NULL;
    struct http_server_params p = { .host = "127.0.0.1",
                                    .threads = 2,
                                    .max_body = 1 << 20,
                                    .dispatch = receive };
    char err[256], url[64];

    log_min_level = LOG_WARN;
    if (http_server_start(&p, &srv, err, sizeof(err)) != ERR_OK) {
        printf("Bail out! receiver: %s\n", err);
        return 1;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/webhook", (unsigned)http_server_port(srv));
    struct emu_webhooks *w = emu_webhooks_new();
    emu_webhooks_configure(w, url, SECRET);
    test_ordered(w);
    test_retry(w);
    test_give_up(w);
    test_shuffled(w);
    test_drain_and_reset(w);
    test_shape(w, url);
    test_list(w);
    emu_webhooks_free(w);
    http_server_stop(srv, 1000);
    rx_reset(0);
    return t_done();
}
