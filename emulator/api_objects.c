/*
 * api_objects.c: /v1 handlers for customers, prices, checkout sessions (create, retrieve, list,
 * expire), billing portal sessions, test clocks and events, with the parameter tables each endpoint
 * accepts (from Stripe's OpenAPI spec: documented parameters the emulator ignores are EP_ANY).
 */
#include <stdio.h>
#include <string.h>

#include "api_handlers.h"
#include "billing.h"
#include "objects.h"

#define P_EXPAND                                \
    {                                           \
        "expand", EP_STRINGS, false, NULL, NULL \
    }
#define P_LIST_PAGING                                                                          \
    { "ending_before", EP_STRING, false, NULL, NULL }, { "limit", EP_INT, false, NULL, NULL }, \
        { "starting_after", EP_STRING, false, NULL, NULL }, P_EXPAND

#define TRIAL_DAYS_MAX       730
#define SESSION_EXPIRY_MIN_S INT64_C(1800) /* expires_at: from 30 minutes after creation */
#define SESSION_EXPIRY_MAX_S EMU_DAY_S     /* to 24 hours after it (the default) */

/* clang-format off */
const struct emu_param emu_p_none[] = { { NULL, EP_ANY, false, NULL, NULL } };

const struct emu_param emu_p_retrieve[] = { P_EXPAND, { NULL, EP_ANY, false, NULL, NULL } };

#define CUSTOMER_COMMON                                                                  \
    { "address", EP_ANY, false, NULL, NULL }, { "balance", EP_INT, false, NULL, NULL },  \
    { "cash_balance", EP_ANY, false, NULL, NULL },                                       \
    { "coupon", EP_STRING, false, NULL, NULL },                                          \
    { "description", EP_STRING, false, NULL, NULL },                                     \
    { "email", EP_STRING, false, NULL, NULL },                                           \
    { "invoice_prefix", EP_STRING, false, NULL, NULL },                                  \
    { "invoice_settings", EP_ANY, false, NULL, NULL },                                   \
    { "metadata", EP_METADATA, false, NULL, NULL },                                      \
    { "name", EP_STRING, false, NULL, NULL },                                            \
    { "next_invoice_sequence", EP_INT, false, NULL, NULL },                              \
    { "phone", EP_STRING, false, NULL, NULL },                                           \
    { "preferred_locales", EP_STRINGS, false, NULL, NULL },                              \
    { "promotion_code", EP_STRING, false, NULL, NULL },                                  \
    { "shipping", EP_ANY, false, NULL, NULL }, { "source", EP_STRING, false, NULL, NULL }, \
    { "tax", EP_ANY, false, NULL, NULL },                                                \
    { "tax_exempt", EP_STRING, false, NULL, "|exempt|none|reverse" }, P_EXPAND

const struct emu_param emu_p_customer_create[] = {
    CUSTOMER_COMMON,
    { "payment_method", EP_STRING, false, NULL, NULL },
    { "tax_id_data", EP_ANY, false, NULL, NULL },
    { "test_clock", EP_STRING, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

const struct emu_param emu_p_customer_update[] = {
    CUSTOMER_COMMON,
    { "bank_account", EP_ANY, false, NULL, NULL },
    { "card", EP_ANY, false, NULL, NULL },
    { "default_alipay_account", EP_STRING, false, NULL, NULL },
    { "default_bank_account", EP_STRING, false, NULL, NULL },
    { "default_card", EP_STRING, false, NULL, NULL },
    { "default_source", EP_STRING, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

const struct emu_param emu_p_customer_list[] = {
    P_LIST_PAGING,
    { "created", EP_ANY, false, NULL, NULL },
    { "email", EP_STRING, false, NULL, NULL },
    { "test_clock", EP_STRING, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

const struct emu_param emu_p_price_list[] = {
    P_LIST_PAGING,
    { "active", EP_BOOL, false, NULL, NULL },
    { "created", EP_ANY, false, NULL, NULL },
    { "currency", EP_STRING, false, NULL, NULL },
    { "lookup_keys", EP_STRINGS, false, NULL, NULL },
    { "product", EP_STRING, false, NULL, NULL },
    { "recurring", EP_ANY, false, NULL, NULL },
    { "type", EP_STRING, false, NULL, "one_time|recurring" },
    { NULL, EP_ANY, false, NULL, NULL },
};

static const struct emu_param line_item_fields[] = {
    { "adjustable_quantity", EP_ANY, false, NULL, NULL },
    { "dynamic_tax_rates", EP_ANY, false, NULL, NULL },
    { "price", EP_STRING, false, NULL, NULL },
    { "price_data", EP_ANY, false, NULL, NULL },
    { "quantity", EP_INT, false, NULL, NULL },
    { "tax_rates", EP_ANY, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

static const struct emu_param subscription_data_fields[] = {
    { "application_fee_percent", EP_ANY, false, NULL, NULL },
    { "billing_cycle_anchor", EP_INT, false, NULL, NULL },
    { "default_tax_rates", EP_ANY, false, NULL, NULL },
    { "description", EP_STRING, false, NULL, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "on_behalf_of", EP_STRING, false, NULL, NULL },
    { "proration_behavior", EP_STRING, false, NULL, "create_prorations|none" },
    { "transfer_data", EP_ANY, false, NULL, NULL },
    { "trial_end", EP_INT, false, NULL, NULL },
    { "trial_period_days", EP_INT, false, NULL, NULL },
    { "trial_settings", EP_ANY, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};


static const struct emu_param enabled_fields[] = {
    { "enabled", EP_BOOL, true, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

static const struct emu_param customer_update_fields[] = {
    { "address", EP_STRING, false, NULL, "auto|never" },
    { "name", EP_STRING, false, NULL, "auto|never" },
    { "shipping", EP_STRING, false, NULL, "auto|never" },
    { NULL, EP_ANY, false, NULL, NULL },
};

static const struct emu_param discount_fields[] = {
    { "coupon", EP_STRING, false, NULL, NULL },
    { "promotion_code", EP_STRING, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

#define LOCALES                                                                                  \
    "auto|bg|cs|da|de|el|en|en-GB|es|es-419|et|fi|fil|fr|fr-CA|hr|hu|id|it|ja|ko|lt|lv|ms|mt|nb|" \
    "nl|pl|pt|pt-BR|ro|ru|sk|sl|sv|th|tr|vi|zh|zh-HK|zh-TW"

const struct emu_param emu_p_session_create[] = {
    { "allow_promotion_codes", EP_BOOL, false, NULL, NULL },
    { "automatic_tax", EP_OBJECT, false, enabled_fields, NULL },
    { "billing_address_collection", EP_STRING, false, NULL, "auto|required" },
    { "customer_update", EP_OBJECT, false, customer_update_fields, NULL },
    { "discounts", EP_OBJECTS, false, discount_fields, NULL },
    { "locale", EP_STRING, false, NULL, LOCALES },
    { "tax_id_collection", EP_OBJECT, false, enabled_fields, NULL },
    { "cancel_url", EP_STRING, false, NULL, NULL },
    { "client_reference_id", EP_STRING, false, NULL, NULL },
    { "customer", EP_STRING, false, NULL, NULL },
    { "customer_email", EP_STRING, false, NULL, NULL },
    { "expires_at", EP_INT, false, NULL, NULL },
    { "line_items", EP_OBJECTS, false, line_item_fields, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "mode", EP_STRING, true, NULL, "payment|setup|subscription" },
    { "subscription_data", EP_OBJECT, false, subscription_data_fields, NULL },
    { "success_url", EP_STRING, true, NULL, NULL },
    P_EXPAND,
    /* documented, not emulated */
    { "after_expiration", EP_ANY, false, NULL, NULL },

    { "consent_collection", EP_ANY, false, NULL, NULL },
    { "currency", EP_ANY, false, NULL, NULL },
    { "custom_fields", EP_ANY, false, NULL, NULL },
    { "custom_text", EP_ANY, false, NULL, NULL },
    { "customer_creation", EP_ANY, false, NULL, NULL },

    { "invoice_creation", EP_ANY, false, NULL, NULL },

    { "payment_intent_data", EP_ANY, false, NULL, NULL },
    { "payment_method_collection", EP_ANY, false, NULL, NULL },
    { "payment_method_options", EP_ANY, false, NULL, NULL },
    { "payment_method_types", EP_ANY, false, NULL, NULL },
    { "phone_number_collection", EP_ANY, false, NULL, NULL },
    { "setup_intent_data", EP_ANY, false, NULL, NULL },
    { "shipping_address_collection", EP_ANY, false, NULL, NULL },
    { "shipping_options", EP_ANY, false, NULL, NULL },
    { "submit_type", EP_ANY, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

static const struct emu_param customer_details_fields[] = {
    { "email", EP_STRING, true, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

const struct emu_param emu_p_session_list[] = {
    P_LIST_PAGING,
    { "customer", EP_STRING, false, NULL, NULL },
    { "customer_details", EP_OBJECT, false, customer_details_fields, NULL },
    { "payment_intent", EP_STRING, false, NULL, NULL },
    { "payment_link", EP_STRING, false, NULL, NULL },
    { "subscription", EP_STRING, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

const struct emu_param emu_p_portal_create[] = {
    { "configuration", EP_STRING, false, NULL, NULL },
    { "customer", EP_STRING, true, NULL, NULL },
    { "flow_data", EP_ANY, false, NULL, NULL },
    { "locale", EP_STRING, false, NULL, NULL },
    { "on_behalf_of", EP_STRING, false, NULL, NULL },
    { "return_url", EP_STRING, false, NULL, NULL },
    P_EXPAND,
    { NULL, EP_ANY, false, NULL, NULL },
};

const struct emu_param emu_p_clock_create[] = {
    { "frozen_time", EP_INT, true, NULL, NULL },
    { "name", EP_STRING, false, NULL, NULL },
    P_EXPAND,
    { NULL, EP_ANY, false, NULL, NULL },
};

const struct emu_param emu_p_clock_advance[] = {
    { "frozen_time", EP_INT, true, NULL, NULL },
    P_EXPAND,
    { NULL, EP_ANY, false, NULL, NULL },
};

const struct emu_param emu_p_clock_list[] = { P_LIST_PAGING, { NULL, EP_ANY, false, NULL, NULL } };

const struct emu_param emu_p_event_list[] = {
    P_LIST_PAGING,
    { "created", EP_ANY, false, NULL, NULL },
    { "delivery_success", EP_BOOL, false, NULL, NULL },
    { "type", EP_STRING, false, NULL, NULL },
    { "types", EP_STRINGS, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

/* clang-format on */

static const char *str_field(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

enum err emu_customer_create_h(struct emu_call *c)
{
    const char *clock = emu_param_str(c->params, "test_clock");

    if (clock && !emu_state_get(c->app->st, EMU_CLOCK, clock))
        return emu_call_missing(c, "test_clock", "test_clock", clock);
    emu_call_answer(c, emu_customer_create(c->app, c->params));
    return ERR_OK;
}

enum err emu_customer_get_h(struct emu_call *c)
{
    json_t *cus = emu_state_get(c->app->st, EMU_CUSTOMER, c->id);

    if (!cus)
        return emu_call_missing(c, "customer", NULL, c->id);
    emu_call_answer(c, cus);
    return ERR_OK;
}

/* Applies the emulated fields of an update, recording old values into prev. */
static void customer_apply(json_t *cus, const json_t *params, json_t *prev)
{
    static const char *const fields[] = { "email", "name", "description", "phone" };

    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(params, fields[i]);
        if (!v || json_equal(v, json_object_get(cus, fields[i])))
            continue;
        json_object_set(prev, fields[i], json_object_get(cus, fields[i]));
        json_object_set(cus, fields[i], json_string_length(v) ? v : json_null());
    }
    if (json_object_get(params, "metadata"))
        emu_metadata_update(cus, json_object_get(params, "metadata"), prev);
}

enum err emu_customer_update_h(struct emu_call *c)
{
    json_t *cus = emu_state_get(c->app->st, EMU_CUSTOMER, c->id);
    json_t *prev;

    if (!cus)
        return emu_call_missing(c, "customer", NULL, c->id);
    prev = json_object();
    customer_apply(cus, c->params, prev);
    if (json_object_size(prev) > 0)
        emu_emit(c->app, "customer.updated", cus, prev, emu_state_customer_now(c->app->st, c->id));
    json_decref(prev);
    emu_call_answer(c, cus);
    return ERR_OK;
}

static bool field_matches(const json_t *obj, const json_t *params, const char *key)
{
    const char *want = emu_param_str(params, key);
    const char *have = str_field(obj, key);

    return !want || (have && strcmp(want, have) == 0);
}

static bool customer_match(const json_t *cus, const void *ctx)
{
    return field_matches(cus, ctx, "email") && field_matches(cus, ctx, "test_clock");
}

enum err emu_customer_list_h(struct emu_call *c)
{
    return emu_call_list(c, EMU_CUSTOMER, "/v1/customers", customer_match, c->params);
}

enum err emu_price_get_h(struct emu_call *c)
{
    json_t *price = emu_state_get(c->app->st, EMU_PRICE, c->id);

    if (!price)
        return emu_call_missing(c, "price", NULL, c->id);
    emu_call_answer(c, price);
    return ERR_OK;
}

static bool price_match(const json_t *price, const void *ctx)
{
    bool active;

    if (emu_param_bool(ctx, "active", &active) &&
        active != json_is_true(json_object_get(price, "active")))
        return false;
    return field_matches(price, ctx, "product") && field_matches(price, ctx, "type") &&
           field_matches(price, ctx, "currency");
}

enum err emu_price_list_h(struct emu_call *c)
{
    return emu_call_list(c, EMU_PRICE, "/v1/prices", price_match, c->params);
}

/* The one line item of a subscription-mode session: its price and quantity. */
static enum err session_line(struct emu_call *c, const json_t **price, int64_t *quantity)
{
    const json_t *items = json_object_get(c->params, "line_items");
    const json_t *item = json_array_get(items, 0);
    const char *price_id = emu_param_str(item, "price");

    if (json_array_size(items) != 1 || !price_id)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "line_items",
                             "The emulator supports exactly one line item with a price "
                             "(line_items[0][price]).");
    *price = emu_state_get(c->app->st, EMU_PRICE, price_id);
    if (!*price)
        return emu_call_missing(c, "price", "line_items[0][price]", price_id);
    *quantity = 1;
    if (emu_param_int(item, "quantity", quantity) && (*quantity < 1 || *quantity > 1000))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid_integer", "line_items[0][quantity]",
                             "This value must be greater than or equal to 1.");
    return ERR_OK;
}

static enum err session_trial(struct emu_call *c, int64_t *days)
{
    const json_t *sd = json_object_get(c->params, "subscription_data");

    *days = 0;
    if (emu_param_int(sd, "trial_period_days", days) && (*days < 1 || *days > TRIAL_DAYS_MAX))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid_integer",
                             "subscription_data[trial_period_days]",
                             "The maximum number of trial period days is %d.", TRIAL_DAYS_MAX);
    return ERR_OK;
}

static bool param_is_true(const json_t *obj, const char *key)
{
    bool v = false;

    return emu_param_bool(obj, key, &v) && v;
}

static bool param_is(const json_t *obj, const char *key, const char *want)
{
    const char *v = emu_param_str(obj, key);

    return v && strcmp(v, want) == 0;
}

/* The discount a session names (discounts[0]): a known coupon or active promotion code. */
static enum err session_discounts(struct emu_call *c)
{
    const json_t *ds = json_object_get(c->params, "discounts");
    const json_t *d = json_array_get(ds, 0);
    const char *promo = emu_param_str(d, "promotion_code");
    const char *coupon = emu_param_str(d, "coupon");
    const json_t *pc = emu_state_get(c->app->st, EMU_PROMOTION_CODE, promo);

    if (!ds)
        return ERR_OK;
    if (param_is_true(c->params, "allow_promotion_codes"))
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "You may only specify one of these parameters: "
                             "allow_promotion_codes, discounts.");
    if (json_array_size(ds) != 1 || (promo && coupon) || (!promo && !coupon))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "discounts",
                             "Only one discount is supported: a coupon or a promotion_code.");
    if (promo && !pc)
        return emu_call_missing(c, "promotion code", "discounts[0][promotion_code]", promo);
    if (promo && !json_is_true(json_object_get(pc, "active")))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "discounts[0][promotion_code]",
                             "This promotion code is not active.");
    if (coupon && !emu_state_get(c->app->st, EMU_COUPON, coupon))
        return emu_call_missing(c, "coupon", "discounts[0][coupon]", coupon);
    return ERR_OK;
}

/* Automatic tax needs an address: the customer's, or the one Checkout saves to it. */
static enum err session_tax(struct emu_call *c)
{
    const char *cus_id = emu_param_str(c->params, "customer");
    const json_t *cus = emu_state_get(c->app->st, EMU_CUSTOMER, cus_id);
    const json_t *cu = json_object_get(c->params, "customer_update");

    if (cu && !cus_id)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "customer_update",
                             "customer_update can only be used with customer.");
    if (!param_is_true(json_object_get(c->params, "automatic_tax"), "enabled") || !cus ||
        json_is_object(json_object_get(cus, "address")) || param_is(cu, "address", "auto") ||
        param_is(cu, "shipping", "auto"))
        return ERR_OK;
    return emu_call_fail(c, ERR_INVALID, NULL, "automatic_tax[enabled]",
                         "Automatic tax calculation in Checkout requires a valid address on the "
                         "Customer. Add a valid address to the Customer or set either "
                         "`customer_update[address]` to 'auto' or `customer_update[shipping]` to "
                         "'auto' to save the address entered in Checkout to the Customer.");
}

static enum err session_check(struct emu_call *c, const json_t **price, int64_t *qty,
                              int64_t *trial_days)
{
    const char *cus = emu_param_str(c->params, "customer");

    if (strcmp(emu_param_str(c->params, "mode"), "subscription") != 0)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "mode",
                             "The emulator supports only mode=subscription.");
    if (cus && !emu_state_get(c->app->st, EMU_CUSTOMER, cus))
        return emu_call_missing(c, "customer", "customer", cus);
    if (session_line(c, price, qty) != ERR_OK || session_discounts(c) != ERR_OK ||
        session_tax(c) != ERR_OK)
        return ERR_INVALID;
    return session_trial(c, trial_days);
}

/* expires_at: 30 minutes to 24 hours after creation, 24 hours when absent (Stripe's rule). */
static enum err session_expiry(struct emu_call *c, int64_t now, int64_t *expires_at)
{
    *expires_at = now + SESSION_EXPIRY_MAX_S;
    if (!emu_param_int(c->params, "expires_at", expires_at))
        return ERR_OK;
    if (*expires_at < now + SESSION_EXPIRY_MIN_S || *expires_at > now + SESSION_EXPIRY_MAX_S)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "expires_at",
                             "The `expires_at` timestamp must be between 30 minutes and 24 hours "
                             "from Checkout Session creation.");
    return ERR_OK;
}

/*
 * Promotion codes, discounts, automatic tax, address and tax id collection, locale: reflected on
 * the session and kept for the page and the payment. amount_total counts the discount; tax
 * comes when the address is known.
 */
static void session_options(struct emu_call *c, json_t *s, json_t *priv, int64_t subtotal)
{
    const json_t *d = json_array_get(json_object_get(c->params, "discounts"), 0);
    const json_t *pc =
        emu_state_get(c->app->st, EMU_PROMOTION_CODE, emu_param_str(d, "promotion_code"));
    const json_t *coupon = pc ? json_object_get(pc, "coupon")
                              : emu_state_get(c->app->st, EMU_COUPON, emu_param_str(d, "coupon"));
    const json_t *cu = json_object_get(c->params, "customer_update");
    bool tax = param_is_true(json_object_get(c->params, "automatic_tax"), "enabled");
    bool promos = param_is_true(c->params, "allow_promotion_codes");
    int64_t discount = 0;

    if (coupon)
        discount = emu_round_div(
            subtotal *
                (int64_t)(json_number_value(json_object_get(coupon, "percent_off")) * 100.0 + 0.5),
            10000);
    json_object_set_new(s, "amount_subtotal", json_integer(subtotal));
    json_object_set_new(s, "amount_total", json_integer(subtotal - discount));
    json_object_set_new(s, "total_details",
                        json_pack("{s:I,s:i,s:i}", "amount_discount", (json_int_t)discount,
                                  "amount_shipping", 0, "amount_tax", 0));
    json_object_set_new(s, "allow_promotion_codes", promos ? json_true() : json_null());
    json_object_set_new(s, "automatic_tax",
                        json_pack("{s:b,s:o}", "enabled", tax, "status",
                                  tax ? json_string("requires_location_inputs") : json_null()));
    json_object_set_new(
        s, "tax_id_collection",
        json_pack("{s:b}", "enabled",
                  param_is_true(json_object_get(c->params, "tax_id_collection"), "enabled")));
    if (emu_param_str(c->params, "billing_address_collection"))
        json_object_set_new(s, "billing_address_collection",
                            json_string(emu_param_str(c->params, "billing_address_collection")));
    if (emu_param_str(c->params, "locale"))
        json_object_set_new(s, "locale", json_string(emu_param_str(c->params, "locale")));
    json_object_set_new(priv, "allow_promotion_codes", json_boolean(promos));
    json_object_set_new(priv, "automatic_tax", json_boolean(tax));
    json_object_set_new(
        priv, "address_required",
        json_boolean(tax || param_is(c->params, "billing_address_collection", "required")));
    json_object_set_new(priv, "update_address", json_boolean(param_is(cu, "address", "auto")));
    json_object_set_new(priv, "update_name", json_boolean(param_is(cu, "name", "auto")));
    if (pc)
        json_object_set(priv, "promotion_code", json_object_get(pc, "id"));
    else if (coupon)
        json_object_set(priv, "coupon", json_object_get(coupon, "id"));
}

enum err emu_session_create_h(struct emu_call *c)
{
    const json_t *price = NULL;
    int64_t qty = 1, trial_days = 0;
    char id[EMU_ID_MAX], url[EMU_URL_MAX + EMU_ID_MAX + 16];
    const char *cus = emu_param_str(c->params, "customer");
    int64_t now = emu_state_customer_now(c->app->st, cus), expires_at = 0;
    json_t *s, *priv;

    if (cus && !emu_state_get(c->app->st, EMU_CUSTOMER, cus))
        return emu_call_missing(c, "customer", "customer", cus); /* as Stripe: 400 */
    if (session_check(c, &price, &qty, &trial_days) != ERR_OK ||
        session_expiry(c, now, &expires_at) != ERR_OK)
        return ERR_INVALID;
    emu_id_new("cs_test_", id, 40);
    snprintf(url, sizeof(url), "%s/checkout/%s", c->app->cfg.public_url, id);
    s = emu_session_json(c->params, id, url, now);
    json_object_set_new(s, "expires_at", json_integer(expires_at));
    emu_state_put(c->app->st, EMU_SESSION, s);
    priv = emu_state_private(c->app->st, id);
    session_options(c, s, priv, json_integer_value(json_object_get(price, "unit_amount")) * qty);
    json_object_set(priv, "price", json_object_get(price, "id"));
    json_object_set_new(priv, "quantity", json_integer(qty));
    json_object_set_new(priv, "trial_days", json_integer(trial_days));
    json_object_set(priv, "metadata",
                    json_object_get(json_object_get(c->params, "subscription_data"), "metadata"));
    emu_call_answer(c, s);
    return ERR_OK;
}

enum err emu_session_get_h(struct emu_call *c)
{
    json_t *s;

    emu_checkout_expire_due(c->app);
    s = emu_state_get(c->app->st, EMU_SESSION, c->id);
    if (!s)
        return emu_call_missing(c, "checkout.session", NULL, c->id);
    emu_call_answer(c, s);
    return ERR_OK;
}

/* customer_details[email] matches what a session filled in when it completed, as at Stripe. */
static bool session_match(const json_t *s, const void *ctx)
{
    const char *email = emu_param_str(json_object_get(ctx, "customer_details"), "email");
    const char *have = str_field(json_object_get(s, "customer_details"), "email");

    if (email && (!have || strcmp(email, have) != 0))
        return false;
    return field_matches(s, ctx, "customer") && field_matches(s, ctx, "subscription") &&
           field_matches(s, ctx, "payment_intent") && field_matches(s, ctx, "payment_link");
}

enum err emu_session_list_h(struct emu_call *c)
{
    emu_checkout_expire_due(c->app);
    return emu_call_list(c, EMU_SESSION, "/v1/checkout/sessions", session_match, c->params);
}

enum err emu_session_expire_h(struct emu_call *c)
{
    json_t *s;
    const char *status;

    emu_checkout_expire_due(c->app);
    s = emu_state_get(c->app->st, EMU_SESSION, c->id);
    if (!s)
        return emu_call_missing(c, "checkout.session", NULL, c->id);
    status = str_field(s, "status");
    if (strcmp(status, "open") != 0)
        return emu_call_fail(c, ERR_INVALID, NULL, NULL,
                             "Only Checkout Sessions with a status in [\"open\"] can be expired. "
                             "This Checkout Session has a status of `%s`.",
                             status);
    emu_checkout_expire(c->app, s, emu_state_customer_now(c->app->st, str_field(s, "customer")));
    emu_call_answer(c, s);
    return ERR_OK;
}

enum err emu_portal_create_h(struct emu_call *c)
{
    const char *cus = emu_param_str(c->params, "customer");
    const char *ret = emu_param_str(c->params, "return_url");
    char id_url[EMU_URL_MAX + EMU_ID_MAX + 16];
    json_t *p;

    if (!emu_state_get(c->app->st, EMU_CUSTOMER, cus))
        return emu_call_missing(c, "customer", "customer", cus);
    p = emu_portal_json(cus, ret ? ret : c->app->cfg.public_url, "",
                        emu_state_customer_now(c->app->st, cus));
    snprintf(id_url, sizeof(id_url), "%s/portal/%s", c->app->cfg.public_url, str_field(p, "id"));
    json_object_set_new(p, "url", json_string(id_url));
    emu_state_put(c->app->st, EMU_PORTAL, p);
    emu_call_answer(c, p);
    return ERR_OK;
}

enum err emu_clock_create_h(struct emu_call *c)
{
    int64_t frozen = 0;
    json_t *clk;

    (void)!emu_param_int(c->params, "frozen_time", &frozen); /* required: checked already */
    clk = emu_clock_json(frozen, emu_param_str(c->params, "name"), emu_state_now(c->app->st, NULL));
    emu_state_put(c->app->st, EMU_CLOCK, clk);
    emu_emit(c->app, "test_helpers.test_clock.created", clk, NULL, frozen);
    emu_call_answer(c, clk);
    return ERR_OK;
}

enum err emu_clock_get_h(struct emu_call *c)
{
    json_t *clk = emu_state_get(c->app->st, EMU_CLOCK, c->id);

    if (!clk)
        return emu_call_missing(c, "test_clock", NULL, c->id);
    emu_call_answer(c, clk);
    return ERR_OK;
}

enum err emu_clock_list_h(struct emu_call *c)
{
    return emu_call_list(c, EMU_CLOCK, "/v1/test_helpers/test_clocks", NULL, NULL);
}

enum err emu_clock_advance_h(struct emu_call *c)
{
    json_t *clk = emu_state_get(c->app->st, EMU_CLOCK, c->id);
    int64_t to = 0;

    if (!clk)
        return emu_call_missing(c, "test_clock", NULL, c->id);
    (void)!emu_param_int(c->params, "frozen_time", &to); /* required: checked already */
    if (to <= json_integer_value(json_object_get(clk, "frozen_time")))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", "frozen_time",
                             "The test clock's frozen_time can only move forward.");
    emu_clock_advance(c->app, clk, to);
    emu_call_answer(c, clk);
    return ERR_OK;
}

enum err emu_clock_delete_h(struct emu_call *c)
{
    if (!emu_state_remove(c->app->st, EMU_CLOCK, c->id))
        return emu_call_missing(c, "test_clock", NULL, c->id);
    c->result =
        json_pack("{s:s,s:s,s:b}", "id", c->id, "object", "test_helpers.test_clock", "deleted", 1);
    return ERR_OK;
}

enum err emu_event_get_h(struct emu_call *c)
{
    json_t *ev = emu_webhooks_event_json(c->app->wh, c->id);

    if (!ev)
        return emu_call_missing(c, "event", NULL, c->id);
    c->result = ev;
    return ERR_OK;
}

enum err emu_event_list_h(struct emu_call *c)
{
    int64_t limit = EMU_LIST_LIMIT_DEFAULT;

    if (emu_param_int(c->params, "limit", &limit) && (limit < 1 || limit > 100))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid_integer", "limit",
                             "This value must be greater than or equal to 1 and less than or "
                             "equal to 100.");
    c->result =
        emu_webhooks_list_json(c->app->wh, (int)limit, emu_param_str(c->params, "starting_after"));
    return ERR_OK;
}
