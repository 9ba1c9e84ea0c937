/*
 * payments.c: the payments endpoints of SPEC §3. The parts that call Stripe arrive with the
 * Stripe client (#3, #4); until then those endpoints validate their input fully and answer 503.
 */
#include <assert.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "api/handlers.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/url.h"
#include "base/xalloc.h"
#include "billing/entitlement.h"
#include "billing/records.h"
#include "billing/tiers.h"
#include "config/config.h"
#include "store/store.h"

#define INVOICES_MAX 100
#define DAY_S        INT64_C(86400)

static json_t *json_time_or_null(int64_t t)
{
    return t ? json_integer(t) : json_null();
}

enum err payments_pricing(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    const char *pk = api->cfg->stripe_publishable_key;

    response_json(resp, 200,
                  json_pack("{s:o, s:o}", "publishable_key",
                            pk && *pk ? json_string(pk) : json_null(), "tiers",
                            tier_catalog_to_json(api->tiers)));
    return ERR_OK;
}

static json_t *subscription_json(const struct subscription *s, const char *tier,
                                 const struct entitlement *e)
{
    return json_pack(
        "{s:s, s:s, s:o, s:o, s:b, s:o, s:s, s:s, s:s, s:o}", "tier", tier, "status", s->status,
        "current_period_start", json_time_or_null(s->current_period_start), "current_period_end",
        json_time_or_null(s->current_period_end), "cancel_at_period_end", s->cancel_at_period_end,
        "trial_end", json_time_or_null(s->trial_end), "price_id", s->price_id, "id", s->id,
        "access", entitlement_reason_name(e->reason), "access_until", json_time_or_null(e->until));
}

enum err payments_subscription(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    const char *free_tier = tier_catalog_default(api->tiers)->id;
    struct subscription sub;
    struct entitlement e;
    enum err err;

    err = store_subscription_get_for_user(api->store, req->user, &sub);
    if (err == ERR_NOT_FOUND) {
        response_json(resp, 200,
                      json_pack("{s:s, s:s, s:n, s:n, s:b, s:n, s:n}", "tier", free_tier, "status",
                                "none", "current_period_start", "current_period_end",
                                "cancel_at_period_end", 0, "trial_end", "price_id"));
        return ERR_OK;
    }
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the subscription");
    e = entitlement_of(&sub, clock_now(), api->cfg->past_due_grace_days * DAY_S);
    response_json(resp, 200, subscription_json(&sub, e.grants ? sub.tier : free_tier, &e));
    return ERR_OK;
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

/* The answer of every endpoint that needs Stripe, until the client exists. */
static enum err stripe_needed(struct request *req)
{
    const struct api *api = req->app;

    if (!config_has_stripe(api->cfg))
        return request_fail(req, ERR_UNAVAILABLE, "stripe_not_configured", NULL,
                            "Stripe is not configured: set STRIPE_SECRET_KEY");
    /* TODO(#3): call Stripe through the client once it exists. */
    return request_fail(req, ERR_UNAVAILABLE, "stripe_unavailable", NULL,
                        "this build has no Stripe client yet");
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

/* Reads and checks the checkout body; *t is the tier to sell. */
static enum err checkout_input(struct request *req, const struct tier **t)
{
    static const char *const fields[] = { "tier", "success_url", "cancel_url", "trial_days", NULL };
    const char *tier_id = NULL, *success = NULL, *cancel = NULL;
    int64_t trial_days = 0;
    enum err err;

    if ((err = request_json_only(req, fields)) ||
        (err = request_json_string(req, "tier", true, &tier_id)) ||
        (err = request_json_string(req, "success_url", true, &success)) ||
        (err = request_json_string(req, "cancel_url", true, &cancel)) ||
        (err = request_json_int(req, "trial_days", false, 0, 730, &trial_days)))
        return err;
    if ((err = checkout_tier(req, tier_id, t)))
        return err;
    if ((err = check_redirect(req, "success_url", success)))
        return err;
    return check_redirect(req, "cancel_url", cancel);
}

enum err payments_create_checkout_session(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    const struct tier *t = NULL;
    enum err err = checkout_input(req, &t);

    (void)resp;
    if (err)
        return err;
    assert(t != NULL); /* checkout_input sets it when it succeeds */
    if (config_has_stripe(api->cfg) && !t->stripe_price_id[0])
        return request_fail(req, ERR_UNAVAILABLE, "price_not_configured", "tier",
                            "tier '%s' has no Stripe price: set its price id (STRIPE_%s_PRICE_ID "
                            "or stripe_price_id in TIERS_FILE)",
                            t->id, strcmp(t->id, "plus") == 0 ? "PLUS" : "PREMIUM");
    return stripe_needed(req);
}

enum err payments_customer_portal(struct request *req, struct response *resp)
{
    static const char *const fields[] = { "return_url", NULL };
    const struct api *api = req->app;
    const char *ret = NULL;
    struct customer c;
    enum err err;

    (void)resp;
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
    return stripe_needed(req);
}

static bool status_is_live(const char *status)
{
    return strcmp(status, "active") == 0 || strcmp(status, "trialing") == 0 ||
           strcmp(status, "past_due") == 0;
}

enum err payments_cancel_subscription(struct request *req, struct response *resp)
{
    static const char *const allowed[] = { "immediate", NULL };
    const struct api *api = req->app;
    const char *imm = request_query(req, "immediate");
    struct subscription sub;
    enum err err = request_query_only(req, allowed);

    (void)resp;
    if (err)
        return err;
    if (imm && strcmp(imm, "true") != 0 && strcmp(imm, "false") != 0)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "immediate",
                            "immediate must be true or false");
    err = store_subscription_get_for_user(api->store, req->user, &sub);
    if (err == ERR_NOT_FOUND || (!err && !status_is_live(sub.status)))
        return request_fail(req, ERR_NOT_FOUND, "no_subscription", NULL,
                            "no subscription to cancel");
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the subscription");
    return stripe_needed(req);
}
