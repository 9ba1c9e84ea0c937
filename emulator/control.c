/* control.c: the /_emulator control API (see control.h); one table of routes. */
#include "control.h"

#include <stdio.h>
#include <string.h>

#include "api.h"
#include "base/str.h"
#include "billing.h"
#include "faults.h"
#include "http/router.h"

#define DRAIN_TIMEOUT_MS_DEFAULT INT64_C(5000)

struct control_call {
    struct emu *app;
    struct request *req;
    struct response *resp;
    char id[EMU_ID_MAX];
    json_t *body; /* the JSON body, {} when empty */
};

typedef void (*control_fn)(struct control_call *c);

static void reset(struct control_call *c);
static void faults_set(struct control_call *c);
static void faults_get(struct control_call *c);
static void webhooks_set(struct control_call *c);
static void webhooks_get(struct control_call *c);
static void webhooks_flush(struct control_call *c);
static void webhooks_drain(struct control_call *c);
static void customer_card(struct control_call *c);
static void customer_payments(struct control_call *c);
static void requests_get(struct control_call *c);
static void subscription_pause(struct control_call *c);
static void requests_clear(struct control_call *c);

static const struct {
    const char *method;
    const char *pattern; /* '*' is one segment, the id */
    control_fn fn;
} control_routes[] = {
    { "POST", "/_emulator/reset", reset },
    { "POST", "/_emulator/faults", faults_set },
    { "GET", "/_emulator/faults", faults_get },
    { "POST", "/_emulator/webhooks", webhooks_set },
    { "GET", "/_emulator/webhooks", webhooks_get },
    { "POST", "/_emulator/webhooks/flush", webhooks_flush },
    { "POST", "/_emulator/webhooks/drain", webhooks_drain },
    { "POST", "/_emulator/customers/*/card", customer_card },
    { "GET", "/_emulator/customers/*/payments", customer_payments },
    { "POST", "/_emulator/subscriptions/*/pause", subscription_pause },
    { "GET", "/_emulator/requests", requests_get },
    { "POST", "/_emulator/requests/clear", requests_clear },
};

static void ok(struct control_call *c)
{
    response_json(c->resp, 200, json_pack("{s:b}", "ok", 1));
}

static void bad(struct control_call *c, int status, const char *msg)
{
    emu_api_error(c->resp, status, "invalid_request_error", NULL, NULL, msg);
}

static void reset(struct control_call *c)
{
    emu_reset(c->app);
    ok(c);
}

static void faults_set(struct control_call *c)
{
    struct emu_fault_config fc;
    char err[256];

    if (emu_fault_config_parse(c->body, &fc, err, sizeof(err)) != ERR_OK) {
        bad(c, 400, err);
        return;
    }
    emu_faults_set(c->app->faults, &fc);
    response_json(c->resp, 200, emu_faults_json(c->app->faults));
}

static void faults_get(struct control_call *c)
{
    response_json(c->resp, 200, emu_faults_json(c->app->faults));
}

/* Reads the delivery fields present in the body over d; false on a bad value. */
static bool delivery_parse(const json_t *body, struct emu_webhook_delivery *d)
{
    const char *order = json_string_value(json_object_get(body, "order"));
    int64_t dup = d->duplicate_percent, attempts = d->max_attempts, seed = (int64_t)d->seed;

    if (order && strcmp(order, "ordered") != 0 && strcmp(order, "shuffled") != 0)
        return false;
    if (order)
        d->order = strcmp(order, "shuffled") == 0 ? EMU_WEBHOOK_SHUFFLED : EMU_WEBHOOK_ORDERED;
    if (!emu_json_int_field(body, "duplicate_percent", 0, 100, &dup) ||
        !emu_json_int_field(body, "retry_base_ms", 0, 3600000, &d->retry_base_ms) ||
        !emu_json_int_field(body, "max_attempts", 1, 100, &attempts) ||
        !emu_json_int_field(body, "seed", 0, INT64_MAX, &seed))
        return false;
    d->duplicate_percent = (int)dup;
    d->max_attempts = (int)attempts;
    d->seed = (uint64_t)seed;
    return true;
}

static void webhooks_set(struct control_call *c)
{
    const char *url = json_string_value(json_object_get(c->body, "url"));
    const char *secret = json_string_value(json_object_get(c->body, "secret"));
    struct emu_webhook_delivery d;

    pthread_mutex_lock(&c->app->mu);
    d = c->app->delivery;
    if (!delivery_parse(c->body, &d)) {
        pthread_mutex_unlock(&c->app->mu);
        bad(c, 400,
            "order is ordered or shuffled; duplicate_percent 0-100, retry_base_ms "
            "0-3600000, max_attempts 1-100 and seed >= 0 are integers");
        return;
    }
    c->app->delivery = d;
    if (json_object_get(c->body, "url"))
        str_copy(c->app->cfg.webhook_url, sizeof(c->app->cfg.webhook_url), url ? url : "");
    if (secret)
        str_copy(c->app->cfg.webhook_secret, sizeof(c->app->cfg.webhook_secret), secret);
    emu_webhooks_configure(c->app->wh, c->app->cfg.webhook_url, c->app->cfg.webhook_secret);
    emu_webhooks_set_delivery(c->app->wh, &d);
    pthread_mutex_unlock(&c->app->mu);
    webhooks_get(c);
}

static void webhooks_get(struct control_call *c)
{
    json_t *status = emu_webhooks_status_json(c->app->wh);

    pthread_mutex_lock(&c->app->mu);
    json_object_set_new(status, "url", json_string(c->app->cfg.webhook_url));
    json_object_set_new(
        status, "order",
        json_string(c->app->delivery.order == EMU_WEBHOOK_SHUFFLED ? "shuffled" : "ordered"));
    json_object_set_new(status, "duplicate_percent",
                        json_integer(c->app->delivery.duplicate_percent));
    json_object_set_new(status, "retry_base_ms", json_integer(c->app->delivery.retry_base_ms));
    json_object_set_new(status, "max_attempts", json_integer(c->app->delivery.max_attempts));
    pthread_mutex_unlock(&c->app->mu);
    response_json(c->resp, 200, status);
}

static void webhooks_flush(struct control_call *c)
{
    emu_webhooks_flush(c->app->wh);
    ok(c);
}

static void webhooks_drain(struct control_call *c)
{
    int64_t timeout_ms = DRAIN_TIMEOUT_MS_DEFAULT;

    if (!emu_json_int_field(c->body, "timeout_ms", 0, 600000, &timeout_ms)) {
        bad(c, 400, "timeout_ms: an integer from 0 to 600000");
        return;
    }
    if (emu_webhooks_drain(c->app->wh, timeout_ms))
        response_json(c->resp, 200, emu_webhooks_status_json(c->app->wh));
    else
        response_json(c->resp, 504, emu_webhooks_status_json(c->app->wh));
}

static void customer_card(struct control_call *c)
{
    const char *card = json_string_value(json_object_get(c->body, "card"));

    if (!card || emu_card_parse(card) == EMU_CARD_INVALID) {
        bad(c, 400,
            "card: one of the test cards 4242424242424242, 4000000000000002, "
            "4000002500003155, 4000002760003184");
        return;
    }
    pthread_mutex_lock(&c->app->mu);
    if (!emu_state_get(c->app->st, EMU_CUSTOMER, c->id)) {
        pthread_mutex_unlock(&c->app->mu);
        bad(c, 404, "No such customer");
        return;
    }
    json_object_set_new(emu_state_private(c->app->st, c->id), "card", json_string(card));
    pthread_mutex_unlock(&c->app->mu);
    ok(c);
}

static const char *str_field(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static bool same_id(const json_t *obj, const char *key, const char *id)
{
    const char *v = str_field(obj, key);

    return v && id && strcmp(v, id) == 0;
}

/* obj[key], or JSON null when absent (borrowed either way). */
static json_t *field_or_null(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return v ? v : json_null();
}

/* One charge as the payments view shows it: what paid which subscription, and its refunds. */
static json_t *payment_json(const struct emu_state *st, const json_t *ch)
{
    const json_t *inv = emu_state_get(st, EMU_INVOICE, str_field(ch, "invoice"));
    json_t *refunds = json_array();
    size_t i;
    json_t *re;

    json_array_foreach(emu_state_all(st, EMU_REFUND), i, re)
    {
        if (same_id(re, "charge", str_field(ch, "id")))
            json_array_append_new(refunds,
                                  json_pack("{s:O,s:O,s:O,s:O}", "id", field_or_null(re, "id"),
                                            "amount", field_or_null(re, "amount"), "reason",
                                            field_or_null(re, "reason"), "created",
                                            field_or_null(re, "created")));
    }
    return json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:o}", "charge", field_or_null(ch, "id"),
                     "payment_intent", field_or_null(ch, "payment_intent"), "invoice",
                     field_or_null(ch, "invoice"), "subscription",
                     field_or_null(inv, "subscription"), "amount", field_or_null(ch, "amount"),
                     "amount_refunded", field_or_null(ch, "amount_refunded"), "refunded",
                     field_or_null(ch, "refunded"), "created", field_or_null(ch, "created"),
                     "refunds", refunds);
}

/* The customer's card payments, oldest first, each with what went back of it. */
static void customer_payments(struct control_call *c)
{
    json_t *data = json_array();
    size_t i;
    json_t *ch;

    pthread_mutex_lock(&c->app->mu);
    if (!emu_state_get(c->app->st, EMU_CUSTOMER, c->id)) {
        pthread_mutex_unlock(&c->app->mu);
        json_decref(data);
        bad(c, 404, "No such customer");
        return;
    }
    json_array_foreach(emu_state_all(c->app->st, EMU_CHARGE), i, ch)
    {
        if (same_id(ch, "customer", c->id))
            json_array_append_new(data, payment_json(c->app->st, ch));
    }
    pthread_mutex_unlock(&c->app->mu);
    response_json(c->resp, 200, json_pack("{s:o}", "data", data));
}

/* Pauses a trialing or active subscription (as a trial ending without a payment method does). */
static void subscription_pause(struct control_call *c)
{
    json_t *sub;
    const char *status;

    pthread_mutex_lock(&c->app->mu);
    sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, c->id);
    status = str_field(sub, "status");
    if (!sub || (strcmp(status, "trialing") != 0 && strcmp(status, "active") != 0)) {
        pthread_mutex_unlock(&c->app->mu);
        bad(c, sub ? 400 : 404,
            sub ? "only a trialing or active subscription can be paused" : "No such subscription");
        return;
    }
    emu_subscription_pause(c->app, sub);
    response_json(c->resp, 200, json_deep_copy(sub));
    pthread_mutex_unlock(&c->app->mu);
}

static void requests_get(struct control_call *c)
{
    json_t *copy;

    pthread_mutex_lock(&c->app->log_mu);
    copy = json_deep_copy(c->app->reqlog);
    pthread_mutex_unlock(&c->app->log_mu);
    response_json(c->resp, 200, json_pack("{s:o}", "data", copy));
}

static void requests_clear(struct control_call *c)
{
    pthread_mutex_lock(&c->app->log_mu);
    json_array_clear(c->app->reqlog);
    pthread_mutex_unlock(&c->app->log_mu);
    ok(c);
}

static void control_run(struct control_call *c, control_fn fn)
{
    json_t *body = NULL;
    json_error_t jerr;

    if (c->req->body.len > 0) {
        body = json_loadb(buf_str(&c->req->body), c->req->body.len, 0, &jerr);
        if (!json_is_object(body)) {
            json_decref(body);
            bad(c, 400, "the body must be a JSON object");
            return;
        }
    }
    c->body = body ? body : json_object();
    fn(c);
    json_decref(c->body);
}

void emu_control_handle(struct emu *app, struct request *req, struct response *resp)
{
    struct control_call c = { .app = app, .req = req, .resp = resp };

    if (!request_peer_is_loopback(req)) {
        bad(&c, 403, "the control API answers loopback callers only");
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(control_routes); i++) {
        if (strcmp(control_routes[i].method, req->method) == 0 &&
            router_path_match(control_routes[i].pattern, req->path, c.id, sizeof(c.id))) {
            req->route = control_routes[i].pattern;
            control_run(&c, control_routes[i].fn);
            return;
        }
    }
    bad(&c, 404, "no such control endpoint");
}
