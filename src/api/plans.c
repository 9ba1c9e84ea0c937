/*
 * plans.c: plan changes through the API (issue #14). An upgrade (a higher tier, or a longer
 * interval) switches the price at once with its proration invoiced and charged now; when that
 * payment fails or needs authentication, Stripe keeps the switch as the subscription's pending
 * update until the invoice is paid. A downgrade waits for the end of the period paid for, as a
 * subscription schedule, and can be withdrawn until then. A cancellation at period end can be
 * resumed. Each handler reads the subscription from Stripe first and stores what Stripe answers,
 * so a second click, tab or instance sees the first one's result and does nothing twice.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "api/handlers.h"
#include "api/stripe_glue.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "billing/status.h"
#include "billing/tiers.h"
#include "store/store.h"
#include "stripe/resources.h"

/* The user's live subscription as Stripe has it now, stored, with its tier and price. */
struct plan_now {
    struct subscription sub;
    struct stripe_error se; /* of the read: its Date orders the state */
    const struct tier *tier;
    const struct tier_price *price;
};

/* The plan asked for. */
struct plan_ask {
    const struct tier *tier;
    const struct tier_price *price;
};

static const char *const change_names[] = {
    [TIER_CHANGE_NONE] = "none",
    [TIER_CHANGE_UPGRADE] = "upgrade",
    [TIER_CHANGE_DOWNGRADE] = "downgrade",
};

/*
 * Reads the user's live subscription from Stripe; 404 when there is none. The read is not
 * stored: a concurrent click's change may land first, and this older read would undo it.
 */
static enum err plan_now_read(struct request *req, struct stripe_client *sc, struct plan_now *now)
{
    const struct api *api = req->app;
    struct subscription stored;
    enum err err = store_subscription_get_for_user(api->store, req->user, &stored);

    memset(now, 0, sizeof(*now));
    if (err == ERR_NOT_FOUND || (!err && !sub_status_is_live(stored.status)))
        return request_fail(req, ERR_NOT_FOUND, "no_subscription", NULL,
                            "no subscription: subscribe through checkout first");
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the subscription");
    err = stripe_subscription_retrieve(sc, stored.id, &now->sub, &now->se);
    if (err)
        return glue_fail_stripe(req, err, &now->se, "read the subscription", NULL);
    if ((err = payments_check_answer(req, sc, &now->se, &now->sub)))
        return err;
    if (!sub_status_is_live(now->sub.status))
        return request_fail(req, ERR_NOT_FOUND, "no_subscription", NULL,
                            "no subscription: it has ended");
    now->price = tier_catalog_find_price(api->tiers, now->sub.price_id, &now->tier);
    if (!now->price) /* payments_check_answer refuses a price no tier names: not reached */
        return request_fail(req, ERR_CONFLICT, "price_unknown", NULL,
                            "your subscription's price '%s' is in no tier", now->sub.price_id);
    return ERR_OK;
}

/*
 * {tier, interval?}: a tier sold through checkout, at interval, else at the interval the user
 * pays by now when the tier sells one, else at its primary price.
 */
static enum err plan_input(struct request *req, const struct plan_now *now, struct plan_ask *out)
{
    static const char *const fields[] = { "tier", "interval", NULL };
    const struct api *api = req->app;
    const char *tier_id = NULL, *interval = NULL;
    enum err err;

    if ((err = request_json_only(req, fields)) ||
        (err = request_json_string(req, "tier", true, &tier_id)) ||
        (err = request_json_string(req, "interval", false, &interval)))
        return err;
    out->tier = tier_catalog_find(api->tiers, tier_id);
    if (!out->tier)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "tier", "unknown tier '%s'",
                            tier_id);
    if (out->tier->contact_sales)
        return request_fail(req, ERR_INVALID, "contact_sales", "tier",
                            "tier '%s' is sold by contract: contact sales", tier_id);
    if (!out->tier->checkout)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "tier",
                            "tier '%s' is not sold: to stop paying, cancel the subscription "
                            "(POST /api/v1/payments/cancel-subscription)",
                            tier_id);
    if (interval && !tier_interval_months(interval))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "interval",
                            "interval must be 'month' or 'year'");
    if (interval && !tier_sold_price(out->tier, interval))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "interval",
                            "tier '%s' is not sold per %s", tier_id, interval);
    out->price = tier_price_for_interval(out->tier, interval ? interval : now->price->interval);
    if (!out->price && !interval)
        out->price = tier_price_for_interval(out->tier, NULL);
    if (!out->price)
        return request_fail(req, ERR_UNAVAILABLE, "price_not_configured",
                            interval ? "interval" : "tier",
                            "tier '%s' has no Stripe price per %s: set its price id", tier_id,
                            interval ? interval : tier_sold_price(out->tier, NULL)->interval);
    return ERR_OK;
}

/* The Stripe client, the user's subscription as Stripe has it, and the plan asked for. */
static enum err plan_read(struct request *req, struct stripe_client **sc, struct plan_now *now,
                          struct plan_ask *ask)
{
    enum err err;

    if ((err = payments_stripe_of(req, sc)) || (err = plan_now_read(req, *sc, now)) ||
        (err = plan_input(req, now, ask)))
        return err;
    if (now->tier && now->price && ask->tier && ask->price) /* set on success */
        return ERR_OK;
    (void)request_fail(req, ERR_INTERNAL, NULL, NULL, "the plans were not read");
    return ERR_INTERNAL;
}

/* A subscription a plan change cannot touch now: 409 saying what to do first. */
static enum err plan_changeable(struct request *req, const struct subscription *s)
{
    if (s->cancel_at_period_end)
        return request_fail(req, ERR_CONFLICT, "subscription_canceling", NULL,
                            "your subscription ends at the period end: resume it first "
                            "(POST /api/v1/payments/resume-subscription)");
    if (s->pending_price_id[0])
        return request_fail(req, ERR_CONFLICT, "payment_pending", NULL,
                            "a plan change waits for its invoice '%s' to be paid: pay it, or let "
                            "it lapse, first",
                            s->latest_invoice);
    if (s->status != SUB_STATUS_ACTIVE && s->status != SUB_STATUS_TRIALING)
        return request_fail(req, ERR_CONFLICT, "payment_due", NULL,
                            "your subscription is %s: pay the open invoice first",
                            sub_status_name(s->status));
    return ERR_OK;
}

/* Stores a schedule's state as Stripe answered it, ordered by the subscription's clock. */
static void schedule_store(struct request *req, struct stripe_client *sc,
                           const struct plan_now *now, struct schedule_record *sched,
                           const struct stripe_error *se)
{
    const struct api *api = req->app;
    bool applied = false;

    sched->stripe_updated = glue_answer_time(sc, &now->sub, se, clock_now());
    if (store_schedule_apply(api->store, sched, &applied) != ERR_OK)
        log_error("cannot store subscription schedule '%s': storage_error", sched->id);
}

/* Reads the subscription again after a change, and stores it. */
static enum err plan_reread(struct request *req, struct stripe_client *sc, struct plan_now *now)
{
    enum err err = stripe_subscription_retrieve(sc, now->sub.id, &now->sub, &now->se);

    if (err)
        return glue_fail_stripe(req, err, &now->se, "read the subscription", NULL);
    return payments_store_answer(req, sc, &now->se, &now->sub);
}

/* Releases the schedule that holds a downgrade: the subscription stays as it is. */
static enum err schedule_drop(struct request *req, struct stripe_client *sc, struct plan_now *now)
{
    struct schedule_record sched;
    struct stripe_error se;
    enum err err;

    if (!now->sub.schedule_id[0])
        return ERR_OK;
    err = stripe_schedule_release(sc, now->sub.schedule_id, &sched, &se);
    /* Refused: ended meanwhile (another tab, its date), nothing to release. */
    if (err == ERR_REFUSED || err == ERR_INVALID)
        return plan_reread(req, sc, now);
    if (err)
        return glue_fail_stripe(req, err, &se, "withdraw the scheduled plan change", NULL);
    schedule_store(req, sc, now, &sched, &se);
    return plan_reread(req, sc, now);
}

/*
 * The key of an upgrade: the state it starts from and where it goes. Concurrent clicks read the
 * same state and send one change; a later change starts from another state (its invoice).
 */
static void upgrade_key(const struct plan_now *now, const struct plan_ask *ask,
                        char key[STRIPE_IDEMPOTENCY_KEY_MAX])
{
    char subject[4 * STRIPE_ID_MAX + 32];

    snprintf(subject, sizeof(subject), "%s\n%s\n%s\n%s\n%lld", now->sub.id, now->sub.price_id,
             ask->price->stripe_price_id, now->sub.latest_invoice,
             (long long)now->sub.current_period_start);
    stripe_idempotency_key_for("plan-upgrade", subject, key);
}

/* Reads the change's invoice from Stripe and stores it for the user; NULL JSON when none. */
static json_t *change_invoice(struct request *req, struct stripe_client *sc, const char *id)
{
    const struct api *api = req->app;
    struct stripe_invoice si;
    struct stripe_error se;
    bool changed = false;

    if (!id[0] || stripe_invoice_retrieve(sc, id, &si, &se) != ERR_OK)
        return json_null();
    (void)str_copy(si.invoice.user_id, sizeof(si.invoice.user_id), req->user); /* same size */
    if (glue_invoice_store(api->store, &si.invoice, &changed) != ERR_OK)
        log_error("cannot store invoice '%s': storage_error", si.invoice.id);
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "id", si.invoice.id, "status",
                     si.invoice.status, "amount_due", (json_int_t)si.invoice.amount_due,
                     "amount_paid", (json_int_t)si.invoice.amount_paid, "currency",
                     si.invoice.currency, "hosted_invoice_url", si.invoice.hosted_invoice_url);
}

static enum err upgrade(struct request *req, struct stripe_client *sc, struct plan_now *now,
                        const struct plan_ask *ask, struct response *resp)
{
    const struct api *api = req->app;
    char key[STRIPE_IDEMPOTENCY_KEY_MAX], next[STRIPE_ID_MAX];
    struct subscription before = now->sub;
    struct stripe_error se;
    json_t *invoice, *change;
    bool scheduled = glue_scheduled_price(api->store, &now->sub, next);
    enum err err = schedule_drop(req, sc, now);

    if (err)
        return err;
    upgrade_key(now, ask, key);
    err = stripe_subscription_change_price(sc, now->sub.id, now->sub.item_id,
                                           ask->price->stripe_price_id, key, &now->sub, &se);
    if (err) { /* the answer says nothing changed: the downgrade withdrawn for it comes back */
        err = glue_fail_stripe(req, err, &se, "change the plan", NULL);
        if (scheduled)
            (void)glue_schedule_restore(api->store, api->tiers, sc, &before, next);
        return err;
    }
    now->se = se;
    if ((err = payments_store_answer(req, sc, &now->se, &now->sub)))
        return err;
    invoice = change_invoice(req, sc, now->sub.latest_invoice);
    if (now->sub.pending_price_id[0]) {
        log_info("plan change of user '%s' to '%s' waits for invoice '%s' to be paid", req->user,
                 ask->price->stripe_price_id, now->sub.latest_invoice);
        json_decref(invoice);
        return request_fail(req, ERR_QUOTA, "payment_pending", NULL,
                            "the upgrade waits for its invoice '%s' to be paid (the card was "
                            "declined or needs authentication): pay it through the invoice's "
                            "page (pending_change.invoice.hosted_invoice_url in GET "
                            "/api/v1/payments/subscription)",
                            now->sub.latest_invoice);
    }
    change =
        json_pack("{s:s, s:s, s:o}", "type", "upgrade", "status", "applied", "invoice", invoice);
    return payments_subscription_answer(req, resp, &now->sub, change);
}

/* The downgrade as a schedule: this period as it is, then the new price, then released. */
static enum err downgrade(struct request *req, struct stripe_client *sc, struct plan_now *now,
                          const struct plan_ask *ask, struct response *resp)
{
    struct schedule_record sched = { 0 };
    struct stripe_schedule_phases ph = { now->sub.price_id, now->sub.current_period_start,
                                         now->sub.current_period_end, ask->price->stripe_price_id };
    struct stripe_error se;
    enum err err = ERR_OK;

    if (!now->sub.schedule_id[0]) {
        err = stripe_schedule_from_subscription(sc, now->sub.id, NULL, &sched, &se);
        if (err == ERR_REFUSED || err == ERR_INVALID) { /* another tab attached one: use it */
            if ((err = plan_reread(req, sc, now)))
                return err;
            if (!now->sub.schedule_id[0])
                return glue_fail_stripe(req, ERR_INVALID, &se, "schedule the plan change", NULL);
        } else if (err) {
            return glue_fail_stripe(req, err, &se, "schedule the plan change", NULL);
        }
    }
    (void)str_copy(sched.id, sizeof(sched.id),
                   now->sub.schedule_id[0] ? now->sub.schedule_id : sched.id); /* same size */
    err = stripe_schedule_set_phases(sc, sched.id, &ph, NULL, &sched, &se);
    if (err)
        return glue_fail_stripe(req, err, &se, "schedule the plan change", NULL);
    schedule_store(req, sc, now, &sched, &se);
    if ((err = plan_reread(req, sc, now)))
        return err;
    return payments_subscription_answer(req, resp, &now->sub,
                                        json_pack("{s:s, s:s, s:I}", "type", "downgrade", "status",
                                                  "scheduled", "effective_at",
                                                  (json_int_t)sched.next_at));
}

enum err payments_change_plan(struct request *req, struct response *resp)
{
    struct stripe_client *sc = NULL;
    struct plan_now now = { 0 };
    struct plan_ask ask = { 0 };
    enum err err;

    if ((err = plan_read(req, &sc, &now, &ask)))
        return err;
    switch (tier_change_of(now.tier, now.price, ask.tier, ask.price)) {
    case TIER_CHANGE_NONE: /* already on it (a second click): a pending downgrade is withdrawn */
        if ((err = schedule_drop(req, sc, &now)))
            return err;
        return payments_subscription_answer(
            req, resp, &now.sub, json_pack("{s:s, s:s}", "type", "none", "status", "unchanged"));
    case TIER_CHANGE_UPGRADE:
        return (err = plan_changeable(req, &now.sub)) ? err : upgrade(req, sc, &now, &ask, resp);
    case TIER_CHANGE_DOWNGRADE:
        return (err = plan_changeable(req, &now.sub)) ? err : downgrade(req, sc, &now, &ask, resp);
    }
    return ERR_OK;
}

/* One upcoming invoice of the subscription with the item switched to price. */
static enum err upcoming(struct request *req, struct stripe_client *sc, const struct plan_now *now,
                         const struct plan_ask *ask, const char *proration,
                         struct stripe_upcoming *out)
{
    struct stripe_upcoming_params p = { now->sub.stripe_customer_id, now->sub.id, now->sub.item_id,
                                        ask->price->stripe_price_id, proration };
    struct stripe_error se;
    enum err err = stripe_invoice_upcoming(sc, &p, out, &se);

    return err ? glue_fail_stripe(req, err, &se, "preview the invoice", NULL) : ERR_OK;
}

static json_t *next_invoice_json(int64_t amount, const char *currency, int64_t date)
{
    return json_pack("{s:I, s:s, s:I}", "amount_due", (json_int_t)amount, "currency", currency,
                     "date", (json_int_t)date);
}

enum err payments_preview_plan_change(struct request *req, struct response *resp)
{
    struct stripe_client *sc = NULL;
    struct stripe_upcoming now_inv = { 0 }, next = { 0 };
    struct plan_now now = { 0 };
    struct plan_ask ask = { 0 };
    enum tier_change change;
    bool new_cycle;
    int64_t effective, due_now = 0;
    json_t *next_json;
    enum err err;

    if ((err = plan_read(req, &sc, &now, &ask)))
        return err;
    change = tier_change_of(now.tier, now.price, ask.tier, ask.price);
    new_cycle = strcmp(now.price->interval, ask.price->interval) != 0;
    effective = now.sub.current_period_end;
    if (change == TIER_CHANGE_UPGRADE) {
        if ((err = upcoming(req, sc, &now, &ask, "always_invoice", &now_inv)))
            return err;
        due_now = now_inv.amount_due;
        effective = now_inv.period_start ? now_inv.period_start : now_inv.created;
    }
    if (change != TIER_CHANGE_NONE && !new_cycle) {
        if ((err = upcoming(req, sc, &now, &ask, "none", &next)))
            return err;
        next_json = next_invoice_json(next.amount_due, next.currency,
                                      next.next_payment_attempt ? next.next_payment_attempt
                                                                : next.period_end);
    } else if (change == TIER_CHANGE_UPGRADE) { /* a new cycle starts now: its end is next */
        next_json = next_invoice_json(ask.price->amount, ask.price->currency, now_inv.period_end);
    } else { /* a downgrade to another interval, or no change: the new price at period end */
        next_json =
            next_invoice_json(ask.price->amount, ask.price->currency, now.sub.current_period_end);
    }
    response_json(resp, 200,
                  json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:s, s:s}, s:I, s:I, s:s, s:o}", "change",
                            change_names[change], "tier", ask.tier->id, "interval",
                            ask.price->interval, "price_id", ask.price->stripe_price_id, "price",
                            "amount", (json_int_t)ask.price->amount, "currency",
                            ask.price->currency, "interval", ask.price->interval, "effective_at",
                            (json_int_t)(change == TIER_CHANGE_NONE ? 0 : effective),
                            "amount_due_now", (json_int_t)due_now, "currency",
                            now_inv.currency[0] ? now_inv.currency : ask.price->currency,
                            "next_invoice", next_json));
    return ERR_OK;
}

enum err payments_cancel_plan_change(struct request *req, struct response *resp)
{
    struct stripe_client *sc = NULL;
    struct plan_now now;
    bool had = false;
    enum err err;

    if ((err = payments_stripe_of(req, &sc)) || (err = plan_now_read(req, sc, &now)))
        return err;
    had = now.sub.schedule_id[0] != '\0';
    if ((err = schedule_drop(req, sc, &now)))
        return err;
    return payments_subscription_answer(
        req, resp, &now.sub,
        json_pack("{s:s, s:s}", "type", "withdrawn", "status", had ? "withdrawn" : "unchanged"));
}

enum err payments_resume_subscription(struct request *req, struct response *resp)
{
    struct stripe_client *sc = NULL;
    struct plan_now now;
    struct stripe_error se;
    bool was = false;
    enum err err;

    if ((err = payments_stripe_of(req, &sc)) || (err = plan_now_read(req, sc, &now)))
        return err;
    was = now.sub.cancel_at_period_end;
    if (was) {
        err = stripe_subscription_set_cancel_at_period_end(sc, now.sub.id, false, &now.sub, &se);
        if (err)
            return glue_fail_stripe(req, err, &se, "resume the subscription", NULL);
        now.se = se;
        if ((err = payments_store_answer(req, sc, &now.se, &now.sub)))
            return err;
    }
    return payments_subscription_answer(
        req, resp, &now.sub,
        json_pack("{s:s, s:s}", "type", "resume", "status", was ? "resumed" : "unchanged"));
}
