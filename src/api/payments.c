/*
 * payments.c: the payments endpoints of SPEC §3 and the return from Checkout. The Stripe calls
 * go through stripe/resources.h; every state Stripe answers is stored through
 * store_subscription_apply (stripe_glue.h), so it never overwrites a newer one.
 */
#include <assert.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "api/checkout.h"
#include "api/duplicates.h"
#include "api/grants.h"
#include "api/handlers.h"
#include "api/page.h"
#include "api/stripe_glue.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/url.h"
#include "base/xalloc.h"
#include "billing/entitlement.h"
#include "billing/order.h"
#include "billing/records.h"
#include "billing/status.h"
#include "billing/tiers.h"
#include "config/config.h"
#include "store/store.h"
#include "stripe/resources.h"

#define INVOICES_MAX 100
#define DAY_S        INT64_C(86400)

static json_t *json_time_or_null(int64_t t)
{
    return t ? json_integer(t) : json_null();
}

void api_prepare(struct api *api)
{
    const char *pk = api->cfg->stripe_publishable_key;
    json_t *body =
        json_pack("{s:o, s:o}", "publishable_key", pk && *pk ? json_string(pk) : json_null(),
                  "tiers", tier_catalog_to_json(api->tiers));

    api->pricing_body = json_dumps(body, JSON_COMPACT);
    api->pricing_len = api->pricing_body ? strlen(api->pricing_body) : 0;
    json_decref(body);
    page_prepare(api);
}

void api_release(struct api *api)
{
    free(api->pricing_body);
    api->pricing_body = NULL;
    page_release(api);
}

/* The catalogue is fixed after start: the body rendered by api_prepare is lent, not copied. */
enum err payments_pricing(struct request *req, struct response *resp)
{
    const struct api *api = req->app;

    if (!api->pricing_body)
        return request_fail(req, ERR_INTERNAL, NULL, NULL, "pricing is not prepared");
    response_static(resp, 200, "application/json", api->pricing_body, api->pricing_len);
    return ERR_OK;
}

/* The tier, interval and price of a Stripe price, as the catalogue names them. */
static json_t *plan_json(const struct tier_catalog *cat, const char *price_id)
{
    const struct tier *t = NULL;
    const struct tier_price *p = tier_catalog_find_price(cat, price_id, &t);

    if (!p)
        return json_pack("{s:n, s:n, s:s}", "tier", "interval", "price_id", price_id);
    return json_pack("{s:s, s:s, s:s}", "tier", t->id, "interval", p->interval, "price_id",
                     price_id);
}

/* The invoice a pending change waits for, as stored; null when it is not stored yet. */
static json_t *pending_invoice_json(struct store *st, const char *id)
{
    struct invoice inv;

    if (!id[0] || store_invoice_get(st, id, &inv) != ERR_OK)
        return json_null();
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", inv.id, "status", inv.status, "amount_due",
                     (json_int_t)inv.amount_due, "currency", inv.currency, "hosted_invoice_url",
                     inv.hosted_invoice_url);
}

/*
 * A plan change in flight: an upgrade whose invoice is not paid yet (Stripe's pending update),
 * or a change scheduled for the period end (a live schedule naming another price); else null.
 */
static json_t *pending_change_json(const struct api *api, const struct subscription *s)
{
    struct schedule_record sched;
    json_t *j;

    if (s->pending_price_id[0]) {
        j = plan_json(api->tiers, s->pending_price_id);
        json_object_set_new(j, "type", json_string("upgrade"));
        json_object_set_new(j, "status", json_string("payment_pending"));
        json_object_set_new(j, "expires_at", json_time_or_null(s->pending_expires_at));
        json_object_set_new(j, "invoice", pending_invoice_json(api->store, s->latest_invoice));
        return j;
    }
    if (!s->schedule_id[0] || store_schedule_get(api->store, s->schedule_id, &sched) != ERR_OK ||
        schedule_has_ended(&sched) || !sched.next_price_id[0] ||
        strcmp(sched.next_price_id, s->price_id) == 0)
        return json_null();
    j = plan_json(api->tiers, sched.next_price_id);
    json_object_set_new(j, "type", json_string("downgrade"));
    json_object_set_new(j, "status", json_string("scheduled"));
    json_object_set_new(j, "effective_at", json_time_or_null(sched.next_at));
    json_object_set_new(j, "schedule_id", json_string(sched.id));
    return j;
}

static json_t *subscription_json(const struct api *api, const struct subscription *s,
                                 const char *tier, const struct entitlement *e)
{
    const struct tier_price *p = tier_catalog_find_price(api->tiers, s->price_id, NULL);

    return json_pack(
        "{s:s, s:s, s:o, s:o, s:b, s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "tier", tier, "status",
        sub_status_name(s->status), "current_period_start",
        json_time_or_null(s->current_period_start), "current_period_end",
        json_time_or_null(s->current_period_end), "cancel_at_period_end", s->cancel_at_period_end,
        "trial_end", json_time_or_null(s->trial_end), "price_id", s->price_id, "id", s->id,
        "access", entitlement_reason_name(e->reason), "access_until", json_time_or_null(e->until),
        "interval", p ? json_string(p->interval) : json_null(), "cancel_at",
        json_time_or_null(s->cancel_at), "pending_change", pending_change_json(api, s));
}

enum err payments_subscription_answer(struct request *req, struct response *resp,
                                      const struct subscription *s, json_t *change)
{
    const struct api *api = req->app;
    const struct tier *tier = tier_catalog_default(api->tiers);
    int64_t now = clock_now();
    struct subscription sub;
    struct grant_record g;
    struct entitlement e;
    bool granted = false;
    json_t *body;
    const char *source = "default";
    enum err err = ERR_OK;

    if (s)
        sub = *s;
    else
        err = store_subscription_get_for_user(api->store, req->user, &sub);
    if (err && err != ERR_NOT_FOUND) {
        json_decref(change);
        return request_fail(req, err, NULL, NULL, "cannot read the subscription");
    }
    if (!err) {
        e = entitlement_of(&sub, now, api->cfg->past_due_grace_days * DAY_S);
        if (e.grants && tier_catalog_find(api->tiers, sub.tier)) {
            tier = tier_catalog_find(api->tiers, sub.tier);
            source = "stripe";
        }
    }
    if (grants_effective_tier(api, req->user, now, &tier, &g, &granted) != ERR_OK) {
        json_decref(change);
        return request_fail(req, ERR_STORE, NULL, NULL, "cannot read the grants");
    }
    if (granted)
        source = "grant";
    if (err == ERR_NOT_FOUND)
        body = json_pack("{s:s, s:s, s:n, s:n, s:b, s:n, s:n, s:n, s:n, s:n}", "tier", tier->id,
                         "status", "none", "current_period_start", "current_period_end",
                         "cancel_at_period_end", 0, "trial_end", "price_id", "interval",
                         "cancel_at", "pending_change");
    else
        body = subscription_json(api, &sub, tier->id, &e);
    json_object_set_new(body, "source", json_string(source));
    json_object_set_new(body, "grant", granted ? grants_json(&g, now) : json_null());
    if (change)
        json_object_set_new(body, "change", change);
    response_json(resp, 200, body);
    return ERR_OK;
}

enum err payments_subscription(struct request *req, struct response *resp)
{
    static const char *const none[] = { NULL };
    enum err err = request_query_only(req, none); /* as /invoices: no stray parameter taken */

    return err ? err : payments_subscription_answer(req, resp, NULL, NULL);
}

static json_t *invoice_json(const struct invoice *inv)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:o, s:o, s:s, s:s}", "id", inv->id,
                     "number", inv->number, "status", inv->status, "amount_due",
                     (json_int_t)inv->amount_due, "amount_paid", (json_int_t)inv->amount_paid,
                     "currency", inv->currency, "created", (json_int_t)inv->created, "period_start",
                     json_time_or_null(inv->period_start), "period_end",
                     json_time_or_null(inv->period_end), "hosted_invoice_url",
                     inv->hosted_invoice_url, "invoice_pdf", inv->invoice_pdf);
}

enum err payments_invoices(struct request *req, struct response *resp)
{
    static const char *const allowed[] = { "limit", NULL };
    const struct api *api = req->app;
    const char *limit_s = request_query(req, "limit");
    int64_t limit = 10;
    struct invoice *list = NULL;
    int n = 0;
    enum err err = request_query_only(req, allowed);

    if (err)
        return err;
    if (limit_s && parse_i64(limit_s, strlen(limit_s), 1, INVOICES_MAX, &limit) != ERR_OK)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "limit",
                            "limit must be an integer from 1 to %d", INVOICES_MAX);
    list = xcalloc((size_t)limit, sizeof(*list));
    err = store_invoice_list(api->store, req->user, (int)limit, list, &n);
    if (err) {
        free(list);
        return request_fail(req, err, NULL, NULL, "cannot read invoices");
    }
    json_t *data = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(data, invoice_json(&list[i]));
    free(list);
    response_json(resp, 200, json_pack("{s:o, s:i}", "data", data, "count", n));
    return ERR_OK;
}

static enum err check_redirect(struct request *req, const char *field, const char *url)
{
    const struct api *api = req->app;

    if (!url_origin_is_allowed(url, (const char *const *)api->cfg->allowed_redirect_origins,
                               api->cfg->allowed_redirect_origin_count))
        return request_fail(req, ERR_INVALID, "url_invalid", field,
                            "'%s' must be an absolute http(s) URL on an allowed origin "
                            "(ALLOWED_REDIRECT_ORIGINS)",
                            field);
    return ERR_OK;
}

/* The Stripe client, or 503 when STRIPE_SECRET_KEY is not set (SPEC §1). */
enum err payments_stripe_of(struct request *req, struct stripe_client **out)
{
    const struct api *api = req->app;

    *out = api->stripe;
    if (!api->stripe)
        return request_fail(req, ERR_UNAVAILABLE, "stripe_not_configured", NULL,
                            "Stripe is not configured: set STRIPE_SECRET_KEY");
    return ERR_OK;
}

static enum err checkout_tier(struct request *req, const char *id, const struct tier **out)
{
    const struct api *api = req->app;
    const struct tier *t = tier_catalog_find(api->tiers, id);

    if (!t)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "tier", "unknown tier '%s'", id);
    if (t->contact_sales)
        return request_fail(req, ERR_INVALID, "contact_sales", "tier",
                            "tier '%s' is sold by contract: contact sales", id);
    if (!t->checkout)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "tier",
                            "tier '%s' cannot be bought through checkout", id);
    *out = t;
    return ERR_OK;
}

/* The checked body of POST /create-checkout-session; strings borrowed from req->json. */
struct checkout_in {
    const struct tier *tier;
    const char *success_url;
    const char *cancel_url;
    const char *interval; /* "month" or "year"; NULL: the tier's primary price */
    int64_t trial_days;   /* 0: none */
};

static enum err checkout_input(struct request *req, struct checkout_in *in)
{
    static const char *const fields[] = { "tier",       "success_url", "cancel_url",
                                          "trial_days", "interval",    NULL };
    const char *tier_id = NULL;
    enum err err;

    if ((err = request_json_only(req, fields)) ||
        (err = request_json_string(req, "tier", true, &tier_id)) ||
        (err = request_json_string(req, "success_url", true, &in->success_url)) ||
        (err = request_json_string(req, "cancel_url", true, &in->cancel_url)) ||
        (err =
             request_json_int(req, "trial_days", false, 0, GLUE_TRIAL_DAYS_MAX, &in->trial_days)) ||
        (err = request_json_string(req, "interval", false, &in->interval)))
        return err;
    if ((err = checkout_tier(req, tier_id, &in->tier)))
        return err;
    if (in->interval && !tier_interval_months(in->interval))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "interval",
                            "interval must be 'month' or 'year'");
    if (in->interval && !tier_sold_price(in->tier, in->interval))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "interval",
                            "tier '%s' is not sold per %s", tier_id, in->interval);
    if ((err = check_redirect(req, "success_url", in->success_url)))
        return err;
    return check_redirect(req, "cancel_url", in->cancel_url);
}

static enum err price_needed(struct request *req, const struct tier *t, const char *interval)
{
    bool year = interval && strcmp(interval, "year") == 0;

    return request_fail(req, ERR_UNAVAILABLE, "price_not_configured", year ? "interval" : "tier",
                        "tier '%s' has no Stripe price per %s: set its price id "
                        "(STRIPE_%s%s_PRICE_ID or stripe_price_id in TIERS_FILE)",
                        t->id, year ? "year" : "month",
                        strcmp(t->id, "plus") == 0 ? "PLUS" : "PREMIUM", year ? "_ANNUAL" : "");
}

/* 409 while the user has a live subscription: plans change through change-plan (or the portal). */
static enum err refuse_if_live(struct request *req)
{
    const struct api *api = req->app;
    struct subscription sub;
    enum err err = store_subscription_get_for_user(api->store, req->user, &sub);

    if (err == ERR_NOT_FOUND || (!err && !sub_status_is_live(sub.status)))
        return ERR_OK;
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the subscription");
    return request_fail(req, ERR_CONFLICT, "subscription_exists", NULL,
                        "you already have a subscription ('%s', status '%s'): change it with "
                        "POST /api/v1/payments/change-plan, or change or cancel it through "
                        "POST /api/v1/payments/customer-portal",
                        sub.tier, sub_status_name(sub.status));
}

/*
 * Creates the user's Stripe customer and stores it. The key is stable per user, so concurrent
 * first requests (here or on other instances) all get the same Stripe customer back; the
 * store's unique user_id lets one insert win, and the others read the winner's row.
 */
static enum err customer_create(struct request *req, struct stripe_client *sc, struct customer *out)
{
    const struct api *api = req->app;
    struct stripe_customer_params p = { .email = req->user_email, .user_id = req->user };
    char key[STRIPE_IDEMPOTENCY_KEY_MAX];
    struct stripe_customer cus;
    struct stripe_error se;
    enum err err;

    stripe_idempotency_key_for("customer-create", req->user, key);
    err = stripe_customer_create(sc, &p, key, &cus, &se);
    if (err)
        return glue_fail_stripe(req, err, &se, "create the stripe customer", NULL);
    memset(out, 0, sizeof(*out));
    (void)str_copy(out->user_id, sizeof(out->user_id), req->user); /* same size */
    (void)str_copy(out->stripe_customer_id, sizeof(out->stripe_customer_id), cus.id); /* same */
    (void)str_copy(out->email, sizeof(out->email), req->user_email); /* EMAIL_MAX >= 320 */
    out->created = cus.created ? cus.created : clock_now();
    err = store_customer_insert(api->store, out);
    if (err == ERR_CONFLICT)
        err = store_customer_get(api->store, req->user, out);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot store the customer");
    return ERR_OK;
}

/* The user's customer: the stored one, else a new one (created exactly once). */
static enum err customer_for(struct request *req, struct stripe_client *sc, struct customer *out)
{
    const struct api *api = req->app;
    enum err err = store_customer_get(api->store, req->user, out);

    if (err == ERR_NOT_FOUND)
        return customer_create(req, sc, out);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the customer");
    return ERR_OK;
}

enum err payments_create_checkout_session(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    struct checkout_in in = { 0 };
    struct stripe_client *sc = NULL;
    struct customer c;
    struct checkout_ask ask;
    const struct tier_price *price;
    enum err err = checkout_input(req, &in);

    if (err)
        return err;
    assert(in.tier != NULL); /* checkout_input sets it when it succeeds */
    if ((err = payments_stripe_of(req, &sc)))
        return err;
    price = tier_price_for_interval(in.tier, in.interval);
    if (!price)
        return price_needed(req, in.tier, in.interval);
    if ((err = refuse_if_live(req)) || (err = customer_for(req, sc, &c)))
        return err;
    ask = (struct checkout_ask){ .price_id = price->stripe_price_id,
                                 .success_url = in.success_url,
                                 .cancel_url = in.cancel_url,
                                 .trial_days = in.trial_days,
                                 .promotion_codes = api->cfg->checkout_promotion_codes,
                                 .automatic_tax = api->cfg->checkout_automatic_tax,
                                 .locale = api->cfg->checkout_locale };
    return checkout_session_open(req, sc, &ask, &c, resp);
}

/* Links the session's customer to the user when the user has none stored yet. */
static enum err customer_link(struct request *req, const char *stripe_customer_id)
{
    const struct api *api = req->app;
    struct customer c = { 0 };
    bool linked = false;

    if (!stripe_customer_id[0])
        return ERR_OK;
    (void)str_copy(c.user_id, sizeof(c.user_id), req->user); /* same size */
    (void)str_copy(c.stripe_customer_id, sizeof(c.stripe_customer_id), stripe_customer_id);
    (void)str_copy(c.email, sizeof(c.email), req->user_email); /* same size */
    c.created = clock_now();
    return store_customer_link(api->store, &c, &linked); /* a link made meanwhile is kept */
}

/* The failures of storing or checking a subscription Stripe answered, told to the caller. */
static enum err answer_failed(struct request *req, enum err err, const struct subscription *sub)
{
    if (err == ERR_UPSTREAM)
        return request_fail(req, err, "price_unknown", NULL,
                            "stripe answered subscription '%s' with price '%s', which no tier "
                            "names: not applied",
                            sub->id, sub->price_id);
    return request_fail(req, err, NULL, NULL, "cannot store the subscription");
}

enum err payments_check_answer(struct request *req, struct stripe_client *sc,
                               const struct stripe_error *se, struct subscription *sub)
{
    const struct api *api = req->app;
    bool changed = false;
    enum err err =
        glue_subscription_check_answer(api->store, api->tiers, sc, req->user, se, sub, &changed);

    return err ? answer_failed(req, err, sub) : ERR_OK;
}

/* Applies a subscription as Stripe just answered it (se: that call's), for this user. */
enum err payments_store_answer(struct request *req, struct stripe_client *sc,
                               const struct stripe_error *se, struct subscription *sub)
{
    const struct api *api = req->app;
    enum err err =
        glue_subscription_store_answer(api->store, api->tiers, sc, req->user, se, sub, NULL);

    if (!err && sub->trial_end > 0)
        err = store_customer_mark_trial(api->store, req->user);
    if (err == ERR_NOT_FOUND)
        err = ERR_OK; /* no customer row to mark: the subscription itself records the trial */
    return err ? answer_failed(req, err, sub) : ERR_OK;
}

static enum err session_fetch(struct request *req, struct stripe_client *sc, const char *id,
                              struct stripe_checkout_session *cs, struct subscription *sub,
                              struct stripe_error *se_out)
{
    struct stripe_error se;
    enum err err = stripe_checkout_session_retrieve(sc, id, true, cs, sub, &se);

    *se_out = se;
    if (err == ERR_INVALID || err == ERR_NOT_FOUND ||
        (!err && !glue_session_belongs_to(cs, req->user)))
        return request_fail(req, ERR_NOT_FOUND, "resource_missing", "session_id",
                            "no checkout session '%s' for this user", id);
    if (err)
        return glue_fail_stripe(req, err, &se, "read the checkout session", "session_id");
    if (strcmp(cs->status, "complete") != 0 || !sub->id[0])
        return request_fail(req, ERR_CONFLICT, "checkout_incomplete", "session_id",
                            "checkout session '%s' is not complete (status '%s')", id, cs->status);
    return ERR_OK;
}

enum err payments_checkout_success(struct request *req, struct response *resp)
{
    static const char *const fields[] = { "session_id", NULL };
    const struct api *api = req->app;
    bool closed = false;
    struct stripe_client *sc = NULL;
    struct stripe_checkout_session cs;
    struct subscription sub;
    struct stripe_error se;
    const char *id = NULL;
    enum err err;

    if ((err = request_json_only(req, fields)) ||
        (err = request_json_string(req, "session_id", true, &id)) ||
        (err = payments_stripe_of(req, &sc)) || (err = session_fetch(req, sc, id, &cs, &sub, &se)))
        return err;
    if ((err = customer_link(req, cs.customer)))
        return request_fail(req, err, NULL, NULL, "cannot store the customer");
    if ((err = payments_store_answer(req, sc, &se, &sub)))
        return err;
    if (store_checkout_close(api->store, cs.id, "complete", &closed) != ERR_OK)
        log_error("cannot record checkout session '%s' as complete: storage_error", cs.id);
    (void)duplicates_resolve(api->store, sc, api->tiers, 4); /* paid twice: undone at once */
    return payments_subscription_answer(req, resp, NULL, NULL);
}

enum err payments_customer_portal(struct request *req, struct response *resp)
{
    static const char *const fields[] = { "return_url", NULL };
    const struct api *api = req->app;
    struct stripe_client *sc = NULL;
    const char *ret = NULL;
    struct stripe_error se;
    struct customer c;
    char url[URL_MAX];
    enum err err;

    if ((err = request_json_only(req, fields)) ||
        (err = request_json_string(req, "return_url", true, &ret)) ||
        (err = check_redirect(req, "return_url", ret)))
        return err;
    err = store_customer_get(api->store, req->user, &c);
    if (err == ERR_NOT_FOUND)
        return request_fail(req, err, "no_customer", NULL,
                            "no billing account yet: subscribe through checkout first");
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the customer");
    if ((err = payments_stripe_of(req, &sc)))
        return err;
    err = stripe_billing_portal_session_create(sc, c.stripe_customer_id, ret, url, &se);
    if (err)
        return glue_fail_stripe(req, err, &se, "create the billing portal session", NULL);
    response_json(resp, 200, json_pack("{s:s}", "url", url));
    return ERR_OK;
}

/* Releases the subscription's schedule (a scheduled plan change), stored as Stripe answers. */
static enum err release_schedule(struct request *req, struct stripe_client *sc,
                                 const struct subscription *sub)
{
    const struct api *api = req->app;
    struct schedule_record sched;
    struct stripe_error se;
    bool applied = false;
    enum err err = stripe_schedule_release(sc, sub->schedule_id, &sched, &se);

    if (err == ERR_REFUSED || err == ERR_INVALID)
        return ERR_OK; /* it has ended already */
    if (err)
        return glue_fail_stripe(req, err, &se, "withdraw the scheduled plan change", NULL);
    sched.stripe_updated = glue_answer_time(sc, sub, &se, clock_now());
    if (store_schedule_apply(api->store, &sched, &applied) != ERR_OK)
        log_error("cannot store subscription schedule '%s': storage_error", sched.id);
    return ERR_OK;
}

/* Reads ?immediate=true|false (default false). */
static enum err cancel_input(struct request *req, bool *immediate)
{
    static const char *const allowed[] = { "immediate", NULL };
    const char *imm = request_query(req, "immediate");
    enum err err = request_query_only(req, allowed);

    if (err)
        return err;
    if (imm && strcmp(imm, "true") != 0 && strcmp(imm, "false") != 0)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "immediate",
                            "immediate must be true or false");
    *immediate = imm && strcmp(imm, "true") == 0;
    return ERR_OK;
}

enum err payments_cancel_subscription(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    struct stripe_client *sc = NULL;
    struct subscription sub, now;
    struct stripe_error se;
    char next[STRIPE_ID_MAX];
    bool immediate = false, scheduled;
    enum err err;

    if ((err = cancel_input(req, &immediate)))
        return err;
    err = store_subscription_get_for_user(api->store, req->user, &sub);
    if (err == ERR_NOT_FOUND || (!err && !sub_status_is_live(sub.status)))
        return request_fail(req, ERR_NOT_FOUND, "no_subscription", NULL,
                            "no subscription to cancel");
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the subscription");
    if ((err = payments_stripe_of(req, &sc)))
        return err;
    /*
     * A scheduled downgrade goes first: Stripe refuses to cancel what a schedule manages. When
     * the cancel then fails, the downgrade is put back, as the answer says nothing changed.
     */
    scheduled = glue_scheduled_price(api->store, &sub, next);
    if (sub.schedule_id[0] && (err = release_schedule(req, sc, &sub)))
        return err;
    err = immediate ? stripe_subscription_cancel(sc, sub.id, &now, &se)
                    : stripe_subscription_set_cancel_at_period_end(sc, sub.id, true, &now, &se);
    if (err) {
        err = glue_fail_stripe(req, err, &se, "cancel the subscription", NULL);
        if (scheduled)
            (void)glue_schedule_restore(api->store, api->tiers, sc, &sub, next);
        return err;
    }
    if ((err = payments_store_answer(req, sc, &se, &now)))
        return err;
    return payments_subscription_answer(req, resp, NULL, NULL);
}
