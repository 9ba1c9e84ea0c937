/*
 * api_billing.c: /v1 handlers for subscriptions (retrieve, list, update, cancel), invoices
 * (retrieve, list), their payments (charges and PaymentIntents: retrieve, list) and refunds
 * (create, retrieve, list), with the parameter tables from Stripe's OpenAPI spec.
 */
#include <stdio.h>
#include <string.h>

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
    ANY("billing_cycle_anchor"), ANY("billing_thresholds"), ANY("cancel_at"),
    ANY("cancellation_details"), ANY("collection_method"), ANY("coupon"), ANY("days_until_due"),
    ANY("default_payment_method"), ANY("default_source"), ANY("default_tax_rates"),
    ANY("description"), ANY("off_session"), ANY("on_behalf_of"), ANY("pause_collection"),
    ANY("payment_behavior"), ANY("payment_settings"), ANY("pending_invoice_item_interval"),
    ANY("promotion_code"), ANY("transfer_data"), ANY("trial_end"), ANY("trial_from_plan"),
    ANY("trial_settings"),
    { "cancel_at_period_end", EP_BOOL, false, NULL, NULL },
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "items", EP_OBJECTS, false, sub_item_fields, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "proration_behavior", EP_STRING, false, NULL, "always_invoice|create_prorations|none" },
    { "proration_date", EP_INT, false, NULL, NULL },
    END,
};

const struct emu_param emu_p_sub_cancel[] = {
    ANY("cancellation_details"),
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "invoice_now", EP_BOOL, false, NULL, NULL },
    { "prorate", EP_BOOL, false, NULL, NULL },
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
    json_t *sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, c->id);

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
    return emu_call_list(c, EMU_SUBSCRIPTION, "/v1/subscriptions", sub_match, c->params);
}

/* The price items[0] switches to, or NULL when the call switches nothing. */
static enum err sub_new_price(struct emu_call *c, const json_t *sub, const json_t **price)
{
    const json_t *items = json_object_get(c->params, "items");
    const json_t *item = json_array_get(items, 0);
    const json_t *cur = json_array_get(json_object_get(json_object_get(sub, "items"), "data"), 0);
    const char *price_id = emu_param_str(item, "price");

    *price = NULL;
    if (!items)
        return ERR_OK;
    if (json_array_size(items) != 1 || !field_is(cur, "id", emu_param_str(item, "id")) ||
        !emu_param_str(item, "id"))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "items[0][id]",
                             "The emulator updates exactly one item, named by its id ('%s').",
                             str_field(cur, "id"));
    if (!price_id)
        return ERR_OK;
    *price = emu_state_get(c->app->st, EMU_PRICE, price_id);
    if (!*price)
        return emu_call_missing(c, "price", "items[0][price]", price_id);
    return ERR_OK;
}

enum err emu_sub_update_h(struct emu_call *c)
{
    json_t *sub = emu_state_get(c->app->st, EMU_SUBSCRIPTION, c->id);
    const json_t *price = NULL;
    json_t *prev;
    bool cape;

    if (!sub)
        return emu_call_missing(c, "subscription", NULL, c->id);
    if (field_is(sub, "status", "canceled"))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "A canceled subscription can only update its cancellation_details "
                             "and metadata.");
    if (sub_new_price(c, sub, &price) != ERR_OK)
        return ERR_INVALID;
    prev = json_object();
    if (json_object_get(c->params, "metadata"))
        emu_metadata_update(sub, json_object_get(c->params, "metadata"), prev);
    if (emu_param_bool(c->params, "cancel_at_period_end", &cape))
        emu_subscription_cancel_at_period_end(c->app, sub, cape, prev);
    if (price)
        emu_subscription_switch(sub, price, prev);
    emu_subscription_updated(c->app, sub, prev);
    emu_call_answer(c, sub);
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
    json_t *inv = emu_state_get(c->app->st, EMU_INVOICE, c->id);

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
    return emu_call_list(c, EMU_INVOICE, "/v1/invoices", invoice_match, c->params);
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
