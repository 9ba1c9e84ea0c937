/*
 * api_billing.c: /v1 handlers for subscriptions (retrieve, list, update, cancel), invoices
 * (retrieve, list), their payments (charges and PaymentIntents: retrieve, list) and refunds
 * (create, retrieve, list), with the parameter tables from Stripe's OpenAPI spec.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api_handlers.h"
#include "billing.h"
#include "objects.h"

#define ANY(name)                       \
    {                                   \
        name, EP_ANY, false, NULL, NULL \
    }
#define END                             \
    {                                   \
        NULL, EP_ANY, false, NULL, NULL \
    }
#define PAGING                                                                                 \
    { "ending_before", EP_STRING, false, NULL, NULL }, { "limit", EP_INT, false, NULL, NULL }, \
        { "starting_after", EP_STRING, false, NULL, NULL },                                    \
    {                                                                                          \
        "expand", EP_STRINGS, false, NULL, NULL                                                \
    }

/* clang-format off */
const struct emu_param emu_p_sub_list[] = {
    PAGING, ANY("automatic_tax"), ANY("created"), ANY("current_period_end"),
    ANY("current_period_start"),
    { "collection_method", EP_STRING, false, NULL, "charge_automatically|send_invoice" },
    { "customer", EP_STRING, false, NULL, NULL },
    { "price", EP_STRING, false, NULL, NULL },
    { "status", EP_STRING, false, NULL,
      "active|all|canceled|ended|incomplete|incomplete_expired|past_due|paused|trialing|unpaid" },
    { "test_clock", EP_STRING, false, NULL, NULL },
    END,
};

static const struct emu_param sub_item_fields[] = {
    ANY("billing_thresholds"), ANY("clear_usage"), ANY("deleted"), ANY("price_data"),
    ANY("tax_rates"),
    { "id", EP_STRING, false, NULL, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "price", EP_STRING, false, NULL, NULL },
    { "quantity", EP_INT, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_sub_update[] = {
    ANY("add_invoice_items"), ANY("application_fee_percent"), ANY("automatic_tax"),
    ANY("billing_thresholds"), ANY("cancel_at"),
    ANY("cancellation_details"), ANY("collection_method"), ANY("coupon"), ANY("days_until_due"),
    ANY("default_payment_method"), ANY("default_source"), ANY("default_tax_rates"),
    ANY("description"), ANY("off_session"), ANY("on_behalf_of"),
    ANY("payment_settings"), ANY("pending_invoice_item_interval"),
    ANY("promotion_code"), ANY("transfer_data"), ANY("trial_end"), ANY("trial_from_plan"),
    ANY("trial_settings"),
    { "billing_cycle_anchor", EP_STRING, false, NULL, "now|unchanged" },
    { "pause_collection", EP_ANY, false, NULL, NULL },
    { "payment_behavior", EP_STRING, false, NULL,
      "allow_incomplete|default_incomplete|error_if_incomplete|pending_if_incomplete" },
    { "cancel_at_period_end", EP_BOOL, false, NULL, NULL },
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "items", EP_OBJECTS, false, sub_item_fields, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "proration_behavior", EP_STRING, false, NULL, "always_invoice|create_prorations|none" },
    { "proration_date", EP_INT, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_invoice_upcoming[] = {
    ANY("automatic_tax"), ANY("coupon"), ANY("currency"), ANY("customer_details"),
    ANY("discounts"), ANY("invoice_items"), ANY("schedule"), ANY("subscription_cancel_at"),
    ANY("subscription_cancel_now"), ANY("subscription_default_tax_rates"),
    ANY("subscription_resume_at"), ANY("subscription_start_date"), ANY("subscription_trial_end"),
    ANY("subscription_trial_from_plan"),
    { "customer", EP_STRING, false, NULL, NULL },
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "subscription", EP_STRING, false, NULL, NULL },
    { "subscription_billing_cycle_anchor", EP_STRING, false, NULL, "now|unchanged" },
    { "subscription_cancel_at_period_end", EP_BOOL, false, NULL, NULL },
    { "subscription_items", EP_OBJECTS, false, sub_item_fields, NULL },
    { "subscription_proration_behavior", EP_STRING, false, NULL,
      "always_invoice|create_prorations|none" },
    { "subscription_proration_date", EP_INT, false, NULL, NULL },
    END,
};

static const struct emu_param phase_item_fields[] = {
    ANY("billing_thresholds"), ANY("price_data"), ANY("tax_rates"),
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "price", EP_STRING, false, NULL, NULL },
    { "quantity", EP_INT, false, NULL, NULL },
    END,
};

static const struct emu_param phase_fields[] = {
    ANY("add_invoice_items"), ANY("application_fee_percent"), ANY("automatic_tax"),
    ANY("billing_cycle_anchor"), ANY("billing_thresholds"), ANY("collection_method"),
    ANY("coupon"), ANY("currency"), ANY("default_payment_method"), ANY("default_tax_rates"),
    ANY("description"), ANY("end_date"), ANY("invoice_settings"), ANY("on_behalf_of"),
    ANY("start_date"), ANY("transfer_data"), ANY("trial"), ANY("trial_end"),
    { "items", EP_OBJECTS, true, phase_item_fields, NULL },
    { "iterations", EP_INT, false, NULL, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "proration_behavior", EP_STRING, false, NULL, "always_invoice|create_prorations|none" },
    END,
};

const struct emu_param emu_p_schedule_create[] = {
    ANY("default_settings"), ANY("start_date"),
    { "customer", EP_STRING, false, NULL, NULL },
    { "end_behavior", EP_STRING, false, NULL, "cancel|none|release|renew" },
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "from_subscription", EP_STRING, false, NULL, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "phases", EP_OBJECTS, false, phase_fields, NULL },
    END,
};

const struct emu_param emu_p_schedule_update[] = {
    ANY("default_settings"),
    { "end_behavior", EP_STRING, false, NULL, "cancel|none|release|renew" },
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "phases", EP_OBJECTS, false, phase_fields, NULL },
    { "proration_behavior", EP_STRING, false, NULL, "always_invoice|create_prorations|none" },
    END,
};

const struct emu_param emu_p_schedule_release[] = {
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "preserve_cancel_date", EP_BOOL, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_promotion_code_list[] = {
    PAGING, ANY("created"),
    { "active", EP_BOOL, false, NULL, NULL },
    { "code", EP_STRING, false, NULL, NULL },
    { "coupon", EP_STRING, false, NULL, NULL },
    { "customer", EP_STRING, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_sub_cancel[] = {
    ANY("cancellation_details"),
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "invoice_now", EP_BOOL, false, NULL, NULL },
    { "prorate", EP_BOOL, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_invoice_pay[] = {
    ANY("forgive"), ANY("mandate"), ANY("off_session"), ANY("paid_out_of_band"), ANY("source"),
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "payment_method", EP_STRING, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_sub_resume[] = {
    { "billing_cycle_anchor", EP_STRING, false, NULL, "now|unchanged" },
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "proration_behavior", EP_STRING, false, NULL, "always_invoice|create_prorations|none" },
    { "proration_date", EP_INT, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_invoice_list[] = {
    PAGING, ANY("created"), ANY("due_date"),
    { "collection_method", EP_STRING, false, NULL, "charge_automatically|send_invoice" },
    { "customer", EP_STRING, false, NULL, NULL },
    { "status", EP_STRING, false, NULL, "draft|open|paid|uncollectible|void" },
    { "subscription", EP_STRING, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_charge_list[] = {
    PAGING, ANY("created"), ANY("transfer_group"),
    { "customer", EP_STRING, false, NULL, NULL },
    { "payment_intent", EP_STRING, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_payment_intent_get[] = {
    ANY("client_secret"),
    { "expand", EP_STRINGS, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_refund_create[] = {
    ANY("currency"), ANY("customer"), ANY("instructions_email"), ANY("origin"),
    ANY("refund_application_fee"), ANY("reverse_transfer"),
    { "amount", EP_INT, false, NULL, NULL },
    { "charge", EP_STRING, false, NULL, NULL },
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "payment_intent", EP_STRING, false, NULL, NULL },
    { "reason", EP_STRING, false, NULL, "duplicate|fraudulent|requested_by_customer" },
    END,
};

const struct emu_param emu_p_refund_list[] = {
    PAGING, ANY("created"),
    { "charge", EP_STRING, false, NULL, NULL },
    { "payment_intent", EP_STRING, false, NULL, NULL },
    END,
};

/* clang-format on */

static const char *str_field(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int64_t int_field(const json_t *obj, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(obj, key));
}

static bool field_is(const json_t *obj, const char *key, const char *want)
{
    const char *have = str_field(obj, key);

    return !want || (have && strcmp(have, want) == 0);
}

enum err emu_sub_get_h(struct emu_call *c)
{
    json_t *sub;

    emu_pending_expire_due(c->app);
    sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, c->id);

    if (!sub)
        return emu_call_missing(c, "subscription", NULL, c->id);
    emu_call_answer(c, sub);
    return ERR_OK;
}

/* status filter: absent lists all but canceled ones; "all" lists all; "ended" the finished. */
static bool status_matches(const char *status, const char *want)
{
    if (!want)
        return strcmp(status, "canceled") != 0 && strcmp(status, "incomplete_expired") != 0;
    if (strcmp(want, "all") == 0)
        return true;
    if (strcmp(want, "ended") == 0)
        return strcmp(status, "canceled") == 0 || strcmp(status, "incomplete_expired") == 0;
    return strcmp(status, want) == 0;
}

static bool sub_match(const json_t *sub, const void *ctx)
{
    const json_t *params = ctx;
    const char *price = emu_param_str(params, "price");

    if (price && !field_is(emu_subscription_price(sub), "id", price))
        return false;
    return field_is(sub, "customer", emu_param_str(params, "customer")) &&
           field_is(sub, "test_clock", emu_param_str(params, "test_clock")) &&
           status_matches(str_field(sub, "status"), emu_param_str(params, "status"));
}

enum err emu_sub_list_h(struct emu_call *c)
{
    emu_pending_expire_due(c->app);
    return emu_call_list(c, EMU_SUBSCRIPTION, "/v1/subscriptions", sub_match, c->params);
}

/* The price items[0] (named `key`) switches to, or NULL when the call switches nothing. */
static enum err sub_new_price(struct emu_call *c, const json_t *sub, const char *key,
                              const json_t **price)
{
    const json_t *items = json_object_get(c->params, key);
    const json_t *item = json_array_get(items, 0);
    const json_t *cur = json_array_get(json_object_get(json_object_get(sub, "items"), "data"), 0);
    const char *price_id = emu_param_str(item, "price");
    char name[64];

    *price = NULL;
    if (!items)
        return ERR_OK;
    snprintf(name, sizeof(name), "%.40s[0][id]", key);
    if (json_array_size(items) != 1 || !field_is(cur, "id", emu_param_str(item, "id")) ||
        !emu_param_str(item, "id"))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", name,
                             "The emulator updates exactly one item, named by its id ('%s').",
                             str_field(cur, "id"));
    if (!price_id)
        return ERR_OK;
    *price = emu_state_get(c->app->st, EMU_PRICE, price_id);
    snprintf(name, sizeof(name), "%.40s[0][price]", key);
    if (!*price)
        return emu_call_missing(c, "price", name, price_id);
    return ERR_OK;
}

/*
 * The change a call asks for: items, proration_behavior, proration_date, billing_cycle_anchor
 * and payment_behavior, each name after `prefix` ("subscription_" for the upcoming invoice).
 */
static enum err read_change(struct emu_call *c, const json_t *sub, const char *prefix,
                            struct emu_sub_change *ch)
{
    char key[64];
    const char *anchor;
    int64_t start = int_field(sub, "current_period_start");
    int64_t end = int_field(sub, "current_period_end");

    *ch = (struct emu_sub_change){ 0 };
    snprintf(key, sizeof(key), "%sitems", prefix);
    if (sub_new_price(c, sub, key, &ch->price) != ERR_OK)
        return ERR_INVALID;
    snprintf(key, sizeof(key), "%sproration_behavior", prefix);
    ch->proration = emu_param_str(c->params, key);
    snprintf(key, sizeof(key), "%sbilling_cycle_anchor", prefix);
    anchor = emu_param_str(c->params, key);
    ch->anchor_now = anchor && strcmp(anchor, "now") == 0;
    ch->payment_behavior = emu_param_str(c->params, "payment_behavior");
    snprintf(key, sizeof(key), "%sproration_date", prefix);
    if (emu_param_int(c->params, key, &ch->proration_date) &&
        (ch->proration_date < start || ch->proration_date > end))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", key,
                             "The proration date must be within the current period (%lld to "
                             "%lld).",
                             (long long)start, (long long)end);
    return ERR_OK;
}

/* error_if_incomplete: refuses (402) a change whose invoice now the saved card would not pay. */
static enum err check_incomplete(struct emu_call *c, json_t *sub, const struct emu_sub_change *ch)
{
    json_t *inv;
    bool now, owed;
    enum emu_pay pay;

    if (!ch->payment_behavior || strcmp(ch->payment_behavior, "error_if_incomplete") != 0)
        return ERR_OK;
    inv = emu_subscription_preview(c->app, sub, ch);
    now = field_is(inv, "billing_reason", "subscription_update");
    owed = int_field(inv, "amount_due") > 0;
    json_decref(inv);
    pay = emu_customer_pay_outcome(c->app, str_field(sub, "customer"));
    if (!now || !owed || pay == EMU_PAY_OK)
        return ERR_OK;
    if (pay == EMU_PAY_ACTION)
        return emu_call_fail(c, ERR_QUOTA, "subscription_payment_intent_requires_action", NULL,
                             "Payment for this subscription requires additional user action "
                             "before it can be completed successfully.");
    return emu_call_fail(c, ERR_QUOTA, "card_declined", NULL, "Your card was declined.");
}

/* pause_collection: {behavior, resumes_at} pauses collection, "" resumes it. */
static void sub_pause(json_t *sub, const json_t *pc, json_t *prev)
{
    json_t *old = json_deep_copy(json_object_get(sub, "pause_collection"));
    int64_t resumes = 0;

    if (json_is_object(pc))
        json_object_set_new(
            sub, "pause_collection",
            json_pack("{s:O,s:o}", "behavior", json_object_get(pc, "behavior"), "resumes_at",
                      emu_param_int(pc, "resumes_at", &resumes) ? json_integer(resumes)
                                                                : json_null()));
    else
        json_object_set_new(sub, "pause_collection", json_null());
    if (!json_equal(old, json_object_get(sub, "pause_collection")) &&
        !json_object_get(prev, "pause_collection"))
        json_object_set(prev, "pause_collection", old);
    json_decref(old);
}

/* The live (active or not yet started) schedule managing sub, or NULL. */
static const json_t *sub_live_schedule(struct emu_call *c, const json_t *sub)
{
    const json_t *sched = emu_state_get(c->app->st, EMU_SCHEDULE, str_field(sub, "schedule"));

    return field_is(sched, "status", "active") || field_is(sched, "status", "not_started") ? sched
                                                                                           : NULL;
}

enum err emu_sub_update_h(struct emu_call *c)
{
    json_t *sub;
    struct emu_sub_change ch;
    json_t *prev, *inv = NULL;
    bool cape;

    emu_pending_expire_due(c->app);
    sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, c->id);
    if (!sub)
        return emu_call_missing(c, "subscription", NULL, c->id);
    if (field_is(sub, "status", "canceled"))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "A canceled subscription can only update its cancellation_details "
                             "and metadata.");
    if ((json_object_get(c->params, "cancel_at_period_end") ||
         json_object_get(c->params, "cancel_at")) &&
        sub_live_schedule(c, sub))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "The subscription is managed by the subscription schedule `%s`, and "
                             "updating any cancelation behavior directly is not allowed. Please "
                             "update the schedule instead.",
                             str_field(sub, "schedule"));
    if (read_change(c, sub, "", &ch) != ERR_OK || check_incomplete(c, sub, &ch) != ERR_OK)
        return ERR_INVALID;
    prev = json_object();
    if (json_object_get(c->params, "metadata"))
        emu_metadata_update(sub, json_object_get(c->params, "metadata"), prev);
    if (emu_param_bool(c->params, "cancel_at_period_end", &cape))
        emu_subscription_cancel_at_period_end(c->app, sub, cape, prev);
    if (json_object_get(c->params, "pause_collection"))
        sub_pause(sub, json_object_get(c->params, "pause_collection"), prev);
    if (ch.price || ch.anchor_now)
        inv = emu_subscription_change(c->app, sub, &ch, prev);
    emu_subscription_updated(c->app, sub, prev);
    if (inv)
        emu_invoice_events(c->app, inv, int_field(inv, "created"));
    emu_call_answer(c, sub);
    return ERR_OK;
}

/* The subscription an upcoming invoice is about: `subscription`, or the customer's live one. */
static json_t *upcoming_sub(struct emu_call *c)
{
    const char *sid = emu_param_str(c->params, "subscription");
    const char *cus = emu_param_str(c->params, "customer");
    size_t i;
    json_t *sub, *found = NULL;

    if (sid)
        return emu_state_get(c->app->st, EMU_SUBSCRIPTION, sid);
    json_array_foreach(emu_state_all(c->app->st, EMU_SUBSCRIPTION), i, sub)
    {
        if (field_is(sub, "customer", cus) && status_matches(str_field(sub, "status"), NULL))
            found = sub;
    }
    return found;
}

enum err emu_invoice_upcoming_h(struct emu_call *c)
{
    const char *sid = emu_param_str(c->params, "subscription");
    const char *cus = emu_param_str(c->params, "customer");
    json_t *sub;
    struct emu_sub_change ch;
    bool changes, cape = false;

    if (!sid && !cus)
        return emu_call_fail(c, ERR_INVALID, "parameter_missing", "customer",
                             "Must provide customer or subscription.");
    if (cus && !emu_state_get(c->app->st, EMU_CUSTOMER, cus))
        return emu_call_missing(c, "customer", "customer", cus);
    sub = upcoming_sub(c);
    if (sid && !sub)
        return emu_call_missing(c, "subscription", "subscription", sid);
    if (sub && cus && !field_is(sub, "customer", cus))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "subscription",
                             "The subscription '%s' does not belong to the customer '%s'.", sid,
                             cus);
    if (sub && read_change(c, sub, "subscription_", &ch) != ERR_OK)
        return ERR_INVALID;
    changes = sub && (ch.price || ch.anchor_now);
    (void)emu_param_bool(c->params, "subscription_cancel_at_period_end", &cape);
    if (!sub || field_is(sub, "status", "canceled") ||
        (!changes && (json_is_true(json_object_get(sub, "cancel_at_period_end")) || cape)))
        return emu_call_fail(c, ERR_NOT_FOUND, "invoice_upcoming_none", NULL,
                             "No upcoming invoices for customer: %s",
                             cus ? cus : str_field(sub, "customer"));
    c->result = emu_subscription_preview(c->app, sub, changes ? &ch : NULL);
    return ERR_OK;
}

enum err emu_sub_cancel_h(struct emu_call *c)
{
    json_t *sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, c->id);

    if (!sub)
        return emu_call_missing(c, "subscription", NULL, c->id);
    if (field_is(sub, "status", "canceled"))
        return emu_call_missing(c, "subscription", NULL, c->id);
    emu_subscription_cancel_now(c->app, sub);
    emu_call_answer(c, sub);
    return ERR_OK;
}

enum err emu_invoice_get_h(struct emu_call *c)
{
    json_t *inv;

    emu_pending_expire_due(c->app);
    inv = emu_state_get(c->app->st, EMU_INVOICE, c->id);

    if (!inv)
        return emu_call_missing(c, "invoice", NULL, c->id);
    emu_call_answer(c, inv);
    return ERR_OK;
}

static bool invoice_match(const json_t *inv, const void *ctx)
{
    const json_t *params = ctx;

    return field_is(inv, "customer", emu_param_str(params, "customer")) &&
           field_is(inv, "subscription", emu_param_str(params, "subscription")) &&
           field_is(inv, "status", emu_param_str(params, "status"));
}

enum err emu_invoice_list_h(struct emu_call *c)
{
    emu_pending_expire_due(c->app);
    return emu_call_list(c, EMU_INVOICE, "/v1/invoices", invoice_match, c->params);
}

enum err emu_invoice_pay_h(struct emu_call *c)
{
    json_t *inv;

    emu_pending_expire_due(c->app);
    inv = emu_state_get(c->app->st, EMU_INVOICE, c->id);
    if (!inv)
        return emu_call_missing(c, "invoice", NULL, c->id);
    if (field_is(inv, "status", "paid"))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL, "Invoice is already paid");
    if (field_is(inv, "status", "void"))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "This invoice is void and can no longer be paid.");
    if (!field_is(inv, "status", "open") && !field_is(inv, "status", "uncollectible"))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "This invoice is not finalized (status `%s`): finalize it before "
                             "paying it.",
                             str_field(inv, "status"));
    switch (emu_invoice_pay(c->app, inv, NULL)) {
    case EMU_PAY_OK:
        break;
    case EMU_PAY_DECLINED:
        return emu_call_fail(c, ERR_QUOTA, "card_declined", NULL, "Your card was declined.");
    case EMU_PAY_ACTION:
        return emu_call_fail(c, ERR_QUOTA, "invoice_payment_intent_requires_action", NULL,
                             "This payment requires additional user action before it can be "
                             "completed successfully. Payment can be completed using the "
                             "PaymentIntent associated with the invoice.");
    }
    emu_call_answer(c, inv);
    return ERR_OK;
}

enum err emu_sub_resume_h(struct emu_call *c)
{
    json_t *sub;
    const char *anchor = emu_param_str(c->params, "billing_cycle_anchor");
    struct emu_resume r = { anchor && strcmp(anchor, "unchanged") == 0,
                            emu_param_str(c->params, "proration_behavior"), 0 };

    emu_pending_expire_due(c->app);
    sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, c->id);
    if (!sub)
        return emu_call_missing(c, "subscription", NULL, c->id);
    if (!field_is(sub, "status", "paused"))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "Only a subscription with status `paused` can be resumed; this one "
                             "is `%s`.",
                             str_field(sub, "status"));
    (void)emu_param_int(c->params, "proration_date", &r.proration_date);
    (void)emu_subscription_resume(c->app, sub, &r);
    emu_call_answer(c, sub);
    return ERR_OK;
}

enum err emu_charge_get_h(struct emu_call *c)
{
    json_t *ch = emu_state_get(c->app->st, EMU_CHARGE, c->id);

    if (!ch)
        return emu_call_missing(c, "charge", NULL, c->id);
    emu_call_answer(c, ch);
    return ERR_OK;
}

static bool charge_match(const json_t *ch, const void *ctx)
{
    const json_t *params = ctx;

    return field_is(ch, "customer", emu_param_str(params, "customer")) &&
           field_is(ch, "payment_intent", emu_param_str(params, "payment_intent"));
}

enum err emu_charge_list_h(struct emu_call *c)
{
    return emu_call_list(c, EMU_CHARGE, "/v1/charges", charge_match, c->params);
}

enum err emu_payment_intent_get_h(struct emu_call *c)
{
    json_t *pi = emu_state_get(c->app->st, EMU_PAYMENT_INTENT, c->id);

    if (!pi)
        return emu_call_missing(c, "payment_intent", NULL, c->id);
    emu_call_answer(c, pi);
    return ERR_OK;
}

/* The charge a refund names: `charge`, or `payment_intent`'s charge; when both, they agree. */
static enum err refund_target(struct emu_call *c, json_t **charge)
{
    const char *ch_id = emu_param_str(c->params, "charge");
    const char *pi_id = emu_param_str(c->params, "payment_intent");
    const json_t *pi = emu_state_get(c->app->st, EMU_PAYMENT_INTENT, pi_id);

    if (!ch_id && !pi_id)
        return emu_call_fail(c, ERR_INVALID, "parameter_missing", NULL,
                             "One of the following params should be provided for this request: "
                             "payment_intent or charge.");
    if (pi_id && !pi)
        return emu_call_missing(c, "payment_intent", "payment_intent", pi_id);
    *charge = emu_state_get(c->app->st, EMU_CHARGE, ch_id ? ch_id : str_field(pi, "latest_charge"));
    if (!*charge && ch_id)
        return emu_call_missing(c, "charge", "charge", ch_id);
    if (!*charge)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "payment_intent",
                             "This PaymentIntent ('%s') does not have a successful charge to "
                             "refund.",
                             pi_id);
    if (pi_id && !field_is(*charge, "payment_intent", pi_id))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "payment_intent",
                             "The charge '%s' was not made by the PaymentIntent '%s'.", ch_id,
                             pi_id);
    return ERR_OK;
}

/* Writes cents as dollars ("$9.99"): the emulator's prices are in usd. */
static void dollars(char *out, size_t len, int64_t cents)
{
    snprintf(out, len, "$%lld.%02lld", (long long)(cents / 100), (long long)(cents % 100));
}

/* The amount to refund (Stripe's refusals: nothing left, more than what is left). */
static enum err refund_amount(struct emu_call *c, const json_t *charge, int64_t *amount)
{
    int64_t requested = 0;
    bool has = emu_param_int(c->params, "amount", &requested);
    char want[32], left[32];

    if (has && requested < 1)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid_integer", "amount",
                             "This value must be greater than or equal to 1.");
    switch (emu_refund_amount(int_field(charge, "amount"), int_field(charge, "amount_refunded"),
                              has, requested, amount)) {
    case EMU_REFUND_OK:
        return ERR_OK;
    case EMU_REFUND_ALREADY_REFUNDED:
        return emu_call_fail(c, ERR_INVALID, "charge_already_refunded", NULL,
                             "Charge %s has already been refunded.", str_field(charge, "id"));
    case EMU_REFUND_TOO_LARGE:
        break;
    }
    dollars(want, sizeof(want), requested);
    dollars(left, sizeof(left), *amount);
    return emu_call_fail(c, ERR_INVALID, "amount_too_large", "amount",
                         "Refund amount (%s) is greater than unrefunded amount on charge (%s)",
                         want, left);
}

enum err emu_refund_create_h(struct emu_call *c)
{
    json_t *charge = NULL;
    int64_t amount = 0;
    enum err e = refund_target(c, &charge);

    if (e != ERR_OK)
        return e;
    e = refund_amount(c, charge, &amount);
    if (e != ERR_OK)
        return e;
    emu_call_answer(c, emu_charge_refund(c->app, charge, amount, emu_param_str(c->params, "reason"),
                                         json_object_get(c->params, "metadata")));
    return ERR_OK;
}

enum err emu_refund_get_h(struct emu_call *c)
{
    json_t *re = emu_state_get(c->app->st, EMU_REFUND, c->id);

    if (!re)
        return emu_call_missing(c, "refund", NULL, c->id);
    emu_call_answer(c, re);
    return ERR_OK;
}

static bool refund_match(const json_t *re, const void *ctx)
{
    const json_t *params = ctx;

    return field_is(re, "charge", emu_param_str(params, "charge")) &&
           field_is(re, "payment_intent", emu_param_str(params, "payment_intent"));
}

enum err emu_refund_list_h(struct emu_call *c)
{
    return emu_call_list(c, EMU_REFUND, "/v1/refunds", refund_match, c->params);
}

enum err emu_schedule_get_h(struct emu_call *c)
{
    json_t *sched = emu_state_get(c->app->st, EMU_SCHEDULE, c->id);

    if (!sched)
        return emu_call_missing(c, "subscription_schedule", NULL, c->id);
    emu_call_answer(c, sched);
    return ERR_OK;
}

enum err emu_schedule_create_h(struct emu_call *c)
{
    const char *sid = emu_param_str(c->params, "from_subscription");
    json_t *sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, sid);

    if (!sid)
        return emu_call_fail(c, ERR_INVALID, "parameter_missing", "from_subscription",
                             "The emulator creates subscription schedules from_subscription "
                             "only.");
    if (json_object_size(c->params) > 1 + (json_object_get(c->params, "expand") != NULL))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", NULL,
                             "You cannot set other parameters when using `from_subscription`.");
    if (!sub)
        return emu_call_missing(c, "subscription", "from_subscription", sid);
    if (field_is(sub, "status", "canceled"))
        return emu_call_fail(c, ERR_INVALID, NULL, "from_subscription",
                             "You cannot migrate a canceled subscription to a schedule.");
    if (json_is_string(json_object_get(sub, "schedule")))
        return emu_call_fail(c, ERR_INVALID, NULL, "from_subscription",
                             "You cannot migrate a subscription that is already attached to a "
                             "schedule: `%s`.",
                             str_field(sub, "schedule"));
    emu_call_answer(c, emu_schedule_create(c->app, sub));
    return ERR_OK;
}

/* A phase's start: its start_date (a time or "now"), else where the last one ended. */
static enum err phase_start(struct emu_call *c, const json_t *ph, size_t i, int64_t prev_end,
                            int64_t now, int64_t *out)
{
    const char *sd = emu_param_str(ph, "start_date");

    *out = prev_end;
    if (!sd)
        return ERR_OK;
    if (strcmp(sd, "now") == 0)
        *out = now;
    else if (!emu_param_int(ph, "start_date", out))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "phases[].start_date",
                             "Invalid start_date for phase %zu: %s", i, sd);
    return ERR_OK;
}

/* The phases of an update, checked, as schedule phase objects (new array in *out). */
static enum err read_phases(struct emu_call *c, const json_t *sched, const json_t *sub,
                            json_t **out)
{
    const json_t *phases = json_object_get(c->params, "phases");
    int64_t end = int_field(json_object_get(sched, "current_phase"), "start_date");
    int64_t now = emu_state_now(c->app->st, str_field(sub, "test_clock"));
    size_t i;
    const json_t *ph;

    *out = json_array();
    json_array_foreach(phases, i, ph)
    {
        const json_t *item = json_array_get(json_object_get(ph, "items"), 0);
        const json_t *price = emu_state_get(c->app->st, EMU_PRICE, emu_param_str(item, "price"));
        int64_t start = 0, qty = 1, iterations = 1, stop = 0;
        if (json_array_size(json_object_get(ph, "items")) != 1 || !price) {
            json_decref(*out);
            return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "phases",
                                 "Each phase has exactly one item with a known price "
                                 "(phases[%zu][items][0][price]).",
                                 i);
        }
        if (phase_start(c, ph, i, end, now, &start) != ERR_OK) {
            json_decref(*out);
            return ERR_INVALID;
        }
        (void)emu_param_int(item, "quantity", &qty);
        (void)emu_param_int(ph, "iterations", &iterations);
        stop = start;
        for (int64_t k = 0; k < iterations && k < 1200; k++)
            stop = emu_add_interval(stop, emu_price_interval(price));
        (void)emu_param_int(ph, "end_date", &stop);
        if (stop <= start) {
            json_decref(*out);
            return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "phases",
                                 "Phase %zu ends before it starts.", i);
        }
        json_array_append_new(*out, emu_schedule_phase_json(price, qty, start, stop));
        end = stop;
    }
    return ERR_OK;
}

static bool schedule_is_live(const json_t *sched)
{
    return field_is(sched, "status", "active") || field_is(sched, "status", "not_started");
}

enum err emu_schedule_update_h(struct emu_call *c)
{
    json_t *sched = emu_state_get(c->app->st, EMU_SCHEDULE, c->id);
    json_t *sub;
    json_t *phases = NULL;
    const char *eb = emu_param_str(c->params, "end_behavior");

    if (!sched)
        return emu_call_missing(c, "subscription_schedule", NULL, c->id);
    if (!schedule_is_live(sched))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "You cannot update a subscription schedule that is currently in the "
                             "`%s` status. It must be in one of the following statuses: "
                             "`not_started`, `active`.",
                             str_field(sched, "status"));
    if (eb && strcmp(eb, "cancel") == 0)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "end_behavior",
                             "The emulator's schedules end by releasing their subscription "
                             "(end_behavior release).");
    sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, str_field(sched, "subscription"));
    if (json_object_get(c->params, "phases") &&
        json_array_size(json_object_get(c->params, "phases")) == 0)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "phases",
                             "A schedule needs at least one phase.");
    if (json_object_get(c->params, "phases") && read_phases(c, sched, sub, &phases) != ERR_OK)
        return ERR_INVALID;
    if (json_object_get(c->params, "metadata")) {
        json_t *prev = json_object();
        emu_metadata_update(sched, json_object_get(c->params, "metadata"), prev);
        json_decref(prev);
    }
    if (phases)
        emu_schedule_set_phases(c->app, sched, phases, eb);
    else if (eb)
        json_object_set_new(sched, "end_behavior", json_string(eb));
    emu_call_answer(c, sched);
    return ERR_OK;
}

enum err emu_schedule_release_h(struct emu_call *c)
{
    json_t *sched = emu_state_get(c->app->st, EMU_SCHEDULE, c->id);

    if (!sched)
        return emu_call_missing(c, "subscription_schedule", NULL, c->id);
    if (!schedule_is_live(sched))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "You cannot release a subscription schedule that is currently in "
                             "the `%s` status. It must be in one of the following statuses: "
                             "`not_started`, `active`.",
                             str_field(sched, "status"));
    emu_schedule_release(c->app, sched);
    emu_call_answer(c, sched);
    return ERR_OK;
}

static bool promotion_code_match(const json_t *pc, const void *ctx)
{
    const json_t *params = ctx;
    const char *code = emu_param_str(params, "code");
    const char *coupon = emu_param_str(params, "coupon");
    bool active;

    if (code && strcasecmp(code, str_field(pc, "code")) != 0)
        return false;
    if (coupon && !field_is(json_object_get(pc, "coupon"), "id", coupon))
        return false;
    if (emu_param_bool(params, "active", &active) &&
        active != json_is_true(json_object_get(pc, "active")))
        return false;
    return field_is(pc, "customer", emu_param_str(params, "customer"));
}

enum err emu_promotion_code_list_h(struct emu_call *c)
{
    return emu_call_list(c, EMU_PROMOTION_CODE, "/v1/promotion_codes", promotion_code_match,
                         c->params);
}

enum err emu_promotion_code_get_h(struct emu_call *c)
{
    json_t *pc = emu_state_get(c->app->st, EMU_PROMOTION_CODE, c->id);

    if (!pc)
        return emu_call_missing(c, "promotion_code", NULL, c->id);
    emu_call_answer(c, pc);
    return ERR_OK;
}

enum err emu_coupon_get_h(struct emu_call *c)
{
    json_t *co = emu_state_get(c->app->st, EMU_COUPON, c->id);

    if (!co)
        return emu_call_missing(c, "coupon", NULL, c->id);
    emu_call_answer(c, co);
    return ERR_OK;
}
