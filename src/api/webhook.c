/*
 * webhook.c: POST /api/v1/payments/webhook (SPEC §5): verify the Stripe-Signature over the
 * raw body, then record and apply the event in one transaction.
 */
#include "api/webhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/duplicates.h"
#include "api/handlers.h"
#include "api/stripe_glue.h"
#include "base/clock.h"
#include "base/jw.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/tiers.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "stripe/events.h"
#include "stripe/resources.h"
#include "stripe/webhook.h"

/*
 * Names the tier of the event's subscription from its price. A price no tier names, or a status
 * Stripe's API of 2023-08-16 does not have, is refused (ERR_NOT_FOUND, why in se): applying it
 * would read as no tier, or no live subscription, and take the user's tier away.
 */
static enum err complete_tier(const struct tier_catalog *cat, struct billing_event *ev,
                              struct stripe_error *se)
{
    const struct tier *t = ev->has_sub ? tier_catalog_find_by_price(cat, ev->sub.price_id) : NULL;

    char why[1024];

    if (ev->has_sub && ev->sub.status == SUB_STATUS_UNKNOWN) {
        snprintf(why, sizeof(why),
                 "subscription '%s' has a status subgate does not know: not applied, the tier "
                 "stays; once subgate knows it, `subgate events replay %s`",
                 ev->sub.id, ev->id);
        (void)str_copy(se->message, sizeof(se->message), why); /* a cut message will do */
        return ERR_NOT_FOUND;
    }
    if (ev->has_sub && !t) {
        snprintf(why, sizeof(why),
                 "price '%s' of subscription '%s' is not the price of any tier: not applied; "
                 "configure it (STRIPE_*_PRICE_ID or TIERS_FILE), then `subgate events replay %s`",
                 ev->sub.price_id, ev->sub.id, ev->id);
        (void)str_copy(se->message, sizeof(se->message), why); /* a cut message will do */
        return ERR_NOT_FOUND;
    }
    (void)str_copy(ev->sub.tier, sizeof(ev->sub.tier), t ? t->id : ""); /* same size */
    return ERR_OK;
}

/* Whether the event id was received and applied or ignored before (not failed). */
static bool applied_before(struct store *st, const char *id)
{
    struct webhook_event rec;

    return id[0] && store_event_get(st, id, &rec) == ERR_OK && strcmp(rec.status, "failed") != 0;
}

enum err webhook_ingest(struct store *st, const struct tier_catalog *cat, const char *body,
                        size_t len, enum store_event_mode mode, struct webhook_outcome *out)
{
    struct billing_event ev;
    struct stripe_error se;
    struct store_event_in in = { &ev, body, len, mode, &out->same_second };
    bool refused, applied;
    enum err err;

    memset(out, 0, sizeof(*out));
    memset(&se, 0, sizeof(se));
    err = stripe_event_parse(body, len, &ev, &se);
    (void)str_copy(out->id, sizeof(out->id), ev.id);       /* same size */
    (void)str_copy(out->type, sizeof(out->type), ev.type); /* same size */
    if (!err && ev.has_sub)
        (void)str_copy(out->sub_id, sizeof(out->sub_id), ev.sub.id); /* same size */
    if (!err)
        err = complete_tier(cat, &ev, &se);
    refused = err == ERR_UPSTREAM || err == ERR_NOT_FOUND;
    applied = refused && applied_before(st, ev.id);
    if (applied && mode == STORE_EVENT_RECEIVE) {
        out->result = STORE_EVENT_DUPLICATE; /* its id was applied: this body changes nothing */
        return ERR_OK;
    }
    /* a failed replay of an applied event (its price not configured here) leaves it applied */
    if (refused && !applied && store_event_record_failed(st, &in, se.message) != ERR_OK)
        log_error("cannot record event '%s' as failed", ev.id);
    if (err) {
        (void)str_copy(out->message, sizeof(out->message), se.message); /* cut is fine */
        return err;
    }
    return store_event_record_apply(st, &in, &out->result, out->message, sizeof(out->message));
}

enum err webhook_refresh_subscription(struct store *st, const struct tier_catalog *cat,
                                      struct stripe_client *sc, const char *id)
{
    struct subscription stored, sub;
    struct stripe_error se;
    enum err err = store_subscription_get(st, id, &stored);

    if (!err)
        err = stripe_subscription_retrieve(sc, id, &sub, &se);
    if (!err)
        err = glue_subscription_store_answer(st, cat, sc, stored.user_id, &se, &sub, NULL);
    if (err)
        log_warn("cannot read subscription '%s' again after events of one second: %s", id,
                 err_name(err));
    return err;
}

/* 400 with the reason when the signature does not hold; nothing is read before this. */
static enum err verify_signature(struct request *req, const struct config *cfg)
{
    const struct stripe_webhook_check chk = {
        .secrets = cfg->stripe_webhook_secrets,
        .n_secrets = cfg->stripe_webhook_secret_count,
        .now = clock_now(),
        .tolerance_s = STRIPE_WEBHOOK_TOLERANCE_S,
    };
    const char *header = request_header(req, "Stripe-Signature");
    const char *why = NULL;
    enum err err = stripe_webhook_verify(&chk, header, header ? strlen(header) : 0,
                                         req->body.data ? req->body.data : "", req->body.len, &why);

    if (err == ERR_INVALID)
        return request_fail(req, err, "signature_invalid", "Stripe-Signature", "%s", why);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot verify the signature");
    return ERR_OK;
}

static enum err ingest_fail(struct request *req, enum err err, const struct webhook_outcome *o)
{
    log_warn("webhook event '%s' (%s) not applied: %s", o->id, o->type, o->message);
    switch (err) {
    case ERR_INVALID:
    case ERR_UPSTREAM:
        return request_fail(req, ERR_INVALID, "event_invalid", NULL, "%s", o->message);
    case ERR_NOT_FOUND: /* the customer is linked later: Stripe's retry will apply it */
        return request_fail(req, ERR_INTERNAL, "event_not_applied", NULL, "%s", o->message);
    case ERR_CONFLICT: /* another user's customer or subscription: recorded as failed */
        return request_fail(req, ERR_CONFLICT, "event_conflict", NULL, "%s", o->message);
    default:
        return request_fail(req, ERR_STORE, NULL, NULL, "cannot apply the event: %s", o->message);
    }
}

/* What a webhook asks of Stripe after its write (payments_webhook, through request_then). */
struct webhook_then {
    bool duplicates;            /* a duplicate subscription waits to be undone */
    char sub_id[STRIPE_ID_MAX]; /* a subscription to read again from Stripe; "" when none */
};

static void webhook_then_run(struct request *req, void *arg)
{
    const struct api *api = req->app;
    struct webhook_then *t = arg;

    if (t->duplicates)
        (void)duplicates_resolve(api->store, api->stripe, api->tiers, 4);
    if (t->sub_id[0])
        (void)webhook_refresh_subscription(api->store, api->tiers, api->stripe, t->sub_id);
    free(t);
}

/*
 * A second live subscription this made is undone now; an invoice event retries one whose cancel
 * or refund failed before (it may be the duplicate's own invoice, paid after). Two states of one
 * second: Stripe says which is the state now. Both after the write, through request_then: on the
 * write fibers' thread no call waits on Stripe.
 */
static void webhook_then(struct request *req, const struct webhook_outcome *o)
{
    const struct api *api = req->app;
    enum billing_event_kind kind = billing_event_kind_of(o->type);
    struct webhook_then t = { 0 };

    if (!api->stripe)
        return;
    t.duplicates =
        o->result == STORE_EVENT_APPLIED &&
        (kind == EVENT_SUBSCRIPTION || kind == EVENT_CHECKOUT || kind == EVENT_INVOICE) &&
        duplicates_pending(api->store);
    if (o->same_second)
        (void)str_copy(t.sub_id, sizeof(t.sub_id), o->sub_id); /* same size */
    if (t.duplicates || t.sub_id[0]) {
        struct webhook_then *heap = xmalloc(sizeof(*heap));
        *heap = t;
        request_then(req, webhook_then_run, heap);
    }
}

enum err payments_webhook(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    struct webhook_outcome o;
    struct jw w;
    enum err err;

    if (!config_has_webhook_secret(api->cfg))
        return request_fail(req, ERR_UNAVAILABLE, "webhooks_not_configured", NULL,
                            "STRIPE_WEBHOOK_SECRET is not configured: webhooks are refused");
    err = verify_signature(req, api->cfg);
    if (err) {
        metrics_webhook(METRICS_KINDS_MAX, METRICS_EVENT_REFUSED);
        return err;
    }
    err = webhook_ingest(api->store, api->tiers, req->body.data ? req->body.data : "",
                         req->body.len, STORE_EVENT_RECEIVE, &o);
    if (err) {
        metrics_webhook(billing_event_kind_of(o.type), err == ERR_INVALID || err == ERR_UPSTREAM
                                                           ? METRICS_EVENT_REFUSED
                                                           : METRICS_EVENT_FAILED);
        return ingest_fail(req, err, &o);
    }
    metrics_webhook(billing_event_kind_of(o.type),
                    o.result == STORE_EVENT_DUPLICATE ? METRICS_EVENT_DUPLICATE
                    : o.result == STORE_EVENT_IGNORED ? METRICS_EVENT_IGNORED
                                                      : METRICS_EVENT_APPLIED);
    webhook_then(req, &o);
    jw_begin(&w); /* the bytes jansson wrote: {"received":true,"id":...,"ignored":false} */
    jw_bool(&w, "received", true);
    jw_str(&w, "id", o.id);
    jw_bool(&w, "duplicate", o.result == STORE_EVENT_DUPLICATE);
    jw_bool(&w, "ignored", o.result == STORE_EVENT_IGNORED);
    response_jw(resp, 200, &w);
    return ERR_OK;
}
