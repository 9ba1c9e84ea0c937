/* objects.c: Stripe-shaped JSON for the emulator's objects, and expand[] (see objects.h). */
#include "objects.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/str.h"
#include "params.h"

/* Sets each key of the NULL-terminated list to JSON null. */
static void set_nulls(json_t *obj, const char *const *keys)
{
    for (; *keys; keys++)
        json_object_set_new(obj, *keys, json_null());
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *metadata_copy(const json_t *m)
{
    return json_is_object(m) ? json_deep_copy(m) : json_object();
}

json_t *emu_customer_json(const json_t *params, int64_t now)
{
    static const char *const nulls[] = { "address", "default_source", "description", "discount",
                                         "phone",   "shipping",       NULL };
    char id[EMU_ID_MAX];
    char prefix[16];
    json_t *c;

    emu_id_new("cus_", id, 19);
    emu_id_new("", prefix, 9);
    for (char *p = prefix; *p; p++)
        *p = (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
    c = json_pack("{s:s,s:s,s:I,s:i,s:s,s:b,s:o,s:o,s:s,s:b,s:o,s:o,s:i,s:[],s:s,s:o}", "id", id,
                  "object", "customer", "created", (json_int_t)now, "balance", 0, "currency", "usd",
                  "delinquent", 0, "email", str_or_null(emu_param_str(params, "email")), "name",
                  str_or_null(emu_param_str(params, "name")), "invoice_prefix", prefix, "livemode",
                  0, "metadata", metadata_copy(json_object_get(params, "metadata")), "test_clock",
                  str_or_null(emu_param_str(params, "test_clock")), "next_invoice_sequence", 1,
                  "preferred_locales", "tax_exempt", "none", "invoice_settings",
                  json_pack("{s:n,s:n,s:n,s:n}", "custom_fields", "default_payment_method",
                            "footer", "rendering_options"));
    set_nulls(c, nulls);
    if (emu_param_str(params, "description"))
        json_object_set_new(c, "description", json_string(emu_param_str(params, "description")));
    if (emu_param_str(params, "phone"))
        json_object_set_new(c, "phone", json_string(emu_param_str(params, "phone")));
    return c;
}

json_t *emu_session_json(const json_t *params, const char *id, const char *url, int64_t now)
{
    static const char *const nulls[] = { "after_expiration",
                                         "allow_promotion_codes",
                                         "consent",
                                         "consent_collection",
                                         "currency_conversion",
                                         "customer_details",
                                         "invoice",
                                         "invoice_creation",
                                         "locale",
                                         "payment_intent",
                                         "payment_link",
                                         "setup_intent",
                                         "shipping_address_collection",
                                         "shipping_cost",
                                         "shipping_details",
                                         "submit_type",
                                         "subscription",
                                         "total_details",
                                         NULL };
    json_t *s = json_pack(
        "{s:s,s:s,s:I,s:I,s:o,s:o,s:o,s:o,s:s,s:b,s:o,s:s,s:s,s:s,s:[s],s:s,s:o,s:o,s:s}", "id", id,
        "object", "checkout.session", "created", (json_int_t)now, "expires_at",
        (json_int_t)now + EMU_DAY_S, "cancel_url", str_or_null(emu_param_str(params, "cancel_url")),
        "client_reference_id", str_or_null(emu_param_str(params, "client_reference_id")),
        "customer", str_or_null(emu_param_str(params, "customer")), "customer_email",
        str_or_null(emu_param_str(params, "customer_email")), "currency", "usd", "livemode", 0,
        "metadata", metadata_copy(json_object_get(params, "metadata")), "mode", "subscription",
        "payment_status", "unpaid", "status", "open", "payment_method_types", "card",
        "billing_address_collection", "auto", "success_url",
        str_or_null(emu_param_str(params, "success_url")), "automatic_tax",
        json_pack("{s:b,s:n}", "enabled", 0, "status"), "url", url);
    set_nulls(s, nulls);
    json_object_set_new(s, "customer_creation",
                        emu_param_str(params, "customer") ? json_null() : json_string("always"));
    return s;
}

static json_t *plan_json(const json_t *price)
{
    return json_pack("{s:O,s:s,s:b,s:s,s:O,s:O,s:s,s:O,s:O,s:i,s:b,s:{},s:n,s:O,s:s}", "id",
                     json_object_get(price, "id"), "object", "plan", "active", 1, "aggregate_usage",
                     "", "amount", json_object_get(price, "unit_amount"), "amount_decimal",
                     json_object_get(price, "unit_amount_decimal"), "billing_scheme", "per_unit",
                     "created", json_object_get(price, "created"), "currency",
                     json_object_get(price, "currency"), "interval_count", 1, "livemode", 0,
                     "metadata", "nickname", "product", json_object_get(price, "product"),
                     "usage_type", "licensed");
}

const char *emu_price_interval(const json_t *price)
{
    const char *iv =
        json_string_value(json_object_get(json_object_get(price, "recurring"), "interval"));

    return iv ? iv : "month";
}

static json_t *plan_of(const json_t *price)
{
    json_t *plan = plan_json(price);

    json_object_set_new(plan, "aggregate_usage", json_null());
    json_object_set_new(plan, "interval", json_string(emu_price_interval(price)));
    return plan;
}

static json_t *item_json(const char *sub_id, const struct emu_sub_params *p)
{
    char id[EMU_ID_MAX];

    emu_id_new("si_", id, 17);
    return json_pack("{s:s,s:s,s:n,s:I,s:{},s:O,s:o,s:I,s:s,s:[]}", "id", id, "object",
                     "subscription_item", "billing_thresholds", "created", (json_int_t)p->now,
                     "metadata", "price", p->price, "plan", plan_of(p->price), "quantity",
                     (json_int_t)p->quantity, "subscription", sub_id, "tax_rates");
}

static json_t *items_list(const char *sub_id, const struct emu_sub_params *p)
{
    char url[EMU_ID_MAX + 64];

    snprintf(url, sizeof(url), "/v1/subscription_items?subscription=%s", sub_id);
    return json_pack("{s:s,s:[o],s:b,s:i,s:s}", "object", "list", "data", item_json(sub_id, p),
                     "has_more", 0, "total_count", 1, "url", url);
}

static void sub_add_nulls(json_t *s)
{
    static const char *const nulls[] = { "application",
                                         "application_fee_percent",
                                         "billing_thresholds",
                                         "cancel_at",
                                         "canceled_at",
                                         "days_until_due",
                                         "default_payment_method",
                                         "default_source",
                                         "description",
                                         "discount",
                                         "ended_at",
                                         "latest_invoice",
                                         "next_pending_invoice_item_invoice",
                                         "on_behalf_of",
                                         "pause_collection",
                                         "pending_invoice_item_interval",
                                         "pending_setup_intent",
                                         "pending_update",
                                         "schedule",
                                         "transfer_data",
                                         "trial_end",
                                         "trial_start",
                                         NULL };

    set_nulls(s, nulls);
}

json_t *emu_subscription_json(const struct emu_sub_params *p)
{
    char id[EMU_ID_MAX];
    int64_t end = p->trial_days > 0 ? p->now + p->trial_days * EMU_DAY_S
                                    : emu_add_interval(p->now, emu_price_interval(p->price));
    json_t *s;

    emu_id_new("sub_", id, 28);
    s = json_pack(
        "{s:s,s:s,s:{s:b},s:I,s:b,s:{s:n,s:n,s:n},s:s,s:I,s:s,s:s,s:[],s:o,s:b,s:o,"
        "s:I,s:I,s:s,s:o}",
        "id", id, "object", "subscription", "automatic_tax", "enabled", 0, "billing_cycle_anchor",
        (json_int_t)end, "cancel_at_period_end", 0, "cancellation_details", "comment", "feedback",
        "reason", "collection_method", "charge_automatically", "created", (json_int_t)p->now,
        "currency", "usd", "customer", p->customer, "default_tax_rates", "items", items_list(id, p),
        "livemode", 0, "metadata", metadata_copy(p->metadata), "quantity", (json_int_t)p->quantity,
        "start_date", (json_int_t)p->now, "status", p->trial_days > 0 ? "trialing" : "active",
        "test_clock", str_or_null(p->test_clock));
    sub_add_nulls(s);
    json_object_set_new(s, "plan", plan_of(p->price));
    if (p->trial_days > 0) {
        json_object_set_new(s, "trial_start", json_integer(p->now));
        json_object_set_new(s, "trial_end", json_integer(end));
    }
    json_object_set_new(
        s, "trial_settings",
        json_pack("{s:{s:s}}", "end_behavior", "missing_payment_method", "create_invoice"));
    emu_subscription_set_period(s, p->now, end);
    return s;
}

void emu_subscription_set_period(json_t *sub, int64_t start, int64_t end)
{
    json_t *items = json_object_get(json_object_get(sub, "items"), "data");
    size_t i;
    json_t *it;

    json_object_set_new(sub, "current_period_start", json_integer(start));
    json_object_set_new(sub, "current_period_end", json_integer(end));
    json_array_foreach(items, i, it)
    {
        json_object_set_new(it, "current_period_start", json_integer(start));
        json_object_set_new(it, "current_period_end", json_integer(end));
    }
}

void emu_subscription_set_price(json_t *sub, const json_t *price)
{
    json_t *item = json_array_get(json_object_get(json_object_get(sub, "items"), "data"), 0);

    json_object_set_new(item, "price", json_deep_copy(price));
    json_object_set_new(item, "plan", plan_of(price));
    json_object_set_new(sub, "plan", plan_of(price));
}

json_t *emu_subscription_price(const json_t *sub)
{
    json_t *item = json_array_get(json_object_get(json_object_get(sub, "items"), "data"), 0);

    return json_object_get(item, "price");
}

json_t *emu_line_json(const struct emu_line_params *p)
{
    const json_t *item =
        json_array_get(json_object_get(json_object_get(p->sub, "items"), "data"), 0);
    char id[EMU_ID_MAX], ii[EMU_ID_MAX];
    bool is_item = strcmp(p->type, "invoiceitem") == 0;
    json_t *line;

    emu_id_new("il_", id, 27);
    emu_id_new("ii_", ii, 27);
    line = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:[],s:b,s:[],s:b,s:{},s:{s:I,s:I},s:O,s:o,"
                     "s:b,s:I,s:O,s:O,s:s,s:[],s:[],s:{s:n}}",
                     "id", id, "object", "line_item", "amount", (json_int_t)p->amount,
                     "amount_excluding_tax", (json_int_t)p->amount, "currency", "usd",
                     "description", p->description, "discount_amounts", "discountable", 1,
                     "discounts", "livemode", 0, "metadata", "period", "end", (json_int_t)p->end,
                     "start", (json_int_t)p->start, "price", p->price, "plan", plan_of(p->price),
                     "proration", p->proration, "quantity", (json_int_t)p->quantity, "subscription",
                     json_object_get(p->sub, "id"), "subscription_item",
                     json_object_get(item, "id"), "type", p->type, "tax_amounts", "tax_rates",
                     "proration_details", "credited_items");
    json_object_set_new(line, "invoice_item", is_item ? json_string(ii) : json_null());
    return line;
}

static json_t *line_json(const struct emu_invoice_params *p)
{
    const json_t *item =
        json_array_get(json_object_get(json_object_get(p->sub, "items"), "data"), 0);
    struct emu_line_params lp = {
        .sub = p->sub,
        .price = json_object_get(item, "price"),
        .quantity = (int64_t)json_integer_value(json_object_get(item, "quantity")),
        .amount = p->amount,
        .description = "Subscription",
        .start = p->period_start,
        .end = p->period_end,
        .proration = false,
        .type = "subscription",
    };

    return emu_line_json(&lp);
}

static void invoice_number(const json_t *customer, char *out, size_t len)
{
    snprintf(out, len, "%s-%04lld", json_string_value(json_object_get(customer, "invoice_prefix")),
             (long long)json_integer_value(json_object_get(customer, "next_invoice_sequence")));
}

static void invoice_add_nulls(json_t *inv)
{
    static const char *const nulls[] = { "account_name",
                                         "account_tax_ids",
                                         "application",
                                         "application_fee_amount",
                                         "charge",
                                         "custom_fields",
                                         "customer_address",
                                         "customer_phone",
                                         "customer_shipping",
                                         "default_payment_method",
                                         "default_source",
                                         "description",
                                         "discount",
                                         "due_date",
                                         "footer",
                                         "from_invoice",
                                         "last_finalization_error",
                                         "latest_revision",
                                         "next_payment_attempt",
                                         "on_behalf_of",
                                         "payment_intent",
                                         "quote",
                                         "receipt_number",
                                         "rendering_options",
                                         "statement_descriptor",
                                         "subscription_details",
                                         "transfer_data",
                                         NULL };

    set_nulls(inv, nulls);
}

static json_t *invoice_lines(const struct emu_invoice_params *p, const char *id)
{
    char url[EMU_ID_MAX + 64];
    json_t *data = p->lines ? json_deep_copy(p->lines) : json_pack("[o]", line_json(p));

    snprintf(url, sizeof(url), "/v1/invoices/%s/lines", id);
    return json_pack("{s:s,s:I,s:b,s:s,s:o}", "object", "list", "total_count",
                     (json_int_t)json_array_size(data), "has_more", 0, "url", url, "data", data);
}

json_t *emu_invoice_json(const struct emu_invoice_params *p)
{
    char id[EMU_ID_MAX], number[64], hosted[EMU_ID_MAX + 1100], pdf[EMU_ID_MAX + 1200];
    json_t *inv;

    emu_id_new("in_", id, 27);
    invoice_number(p->customer, number, sizeof(number));
    snprintf(hosted, sizeof(hosted), "%s/invoice/%s", p->public_url, id);
    snprintf(pdf, sizeof(pdf), "%s/invoice/%s/pdf", p->public_url, id);
    inv = json_pack(
        "{s:s,s:s,s:s,s:I,s:i,s:I,s:i,s:b,s:b,s:s,s:s,s:I,s:s,s:O,s:O,s:O,s:s,"
        "s:[],s:I,s:s,s:s,s:o,s:b,s:{},s:s,s:b,s:I,s:I,s:s,s:O,s:I,s:I,s:O}",
        "id", id, "object", "invoice", "account_country", "US", "amount_due", (json_int_t)p->amount,
        "amount_paid", 0, "amount_remaining", (json_int_t)p->amount, "attempt_count", 0,
        "attempted", 0, "auto_advance", 1, "billing_reason", p->billing_reason, "collection_method",
        "charge_automatically", "created", (json_int_t)p->now, "currency", "usd", "customer",
        json_object_get(p->customer, "id"), "customer_email", json_object_get(p->customer, "email"),
        "customer_name", json_object_get(p->customer, "name"), "customer_tax_exempt", "none",
        "customer_tax_ids", "effective_at", (json_int_t)p->now, "hosted_invoice_url", hosted,
        "invoice_pdf", pdf, "lines", invoice_lines(p, id), "livemode", 0, "metadata", "number",
        number, "paid", 0, "period_end", (json_int_t)p->period_end, "period_start",
        (json_int_t)p->period_start, "status", "open", "subscription",
        json_object_get(p->sub, "id"), "subtotal", (json_int_t)p->amount, "total",
        (json_int_t)p->amount, "test_clock", json_object_get(p->sub, "test_clock"));
    invoice_add_nulls(inv);
    json_object_set_new(inv, "automatic_tax", json_pack("{s:b,s:n}", "enabled", 0, "status"));
    json_object_set_new(inv, "discounts", json_array());
    json_object_set_new(inv, "default_tax_rates", json_array());
    json_object_set_new(inv, "amount_shipping", json_integer(0));
    json_object_set_new(inv, "starting_balance", json_integer(0));
    json_object_set_new(inv, "ending_balance", json_integer(0));
    json_object_set_new(inv, "tax", json_null());
    json_object_set_new(inv, "total_discount_amounts", json_array());
    json_object_set_new(inv, "total_tax_amounts", json_array());
    json_object_set_new(inv, "subtotal_excluding_tax", json_integer(p->amount));
    json_object_set_new(inv, "total_excluding_tax", json_integer(p->amount));
    json_object_set_new(inv, "status_transitions",
                        json_pack("{s:I,s:n,s:n,s:n}", "finalized_at", (json_int_t)p->now,
                                  "marked_uncollectible_at", "paid_at", "voided_at"));
    return inv;
}

void emu_invoice_settle(json_t *inv, bool paid, int64_t now)
{
    json_t *due = json_object_get(inv, "amount_due");
    json_int_t attempts = json_integer_value(json_object_get(inv, "attempt_count"));

    json_object_set_new(inv, "attempted", json_true());
    json_object_set_new(inv, "attempt_count", json_integer(attempts + 1));
    if (!paid)
        return;
    json_object_set(inv, "amount_paid", due);
    json_object_set_new(inv, "amount_remaining", json_integer(0));
    json_object_set_new(inv, "paid", json_true());
    json_object_set_new(inv, "status", json_string("paid"));
    json_object_set_new(json_object_get(inv, "status_transitions"), "paid_at", json_integer(now));
}

/* The invoice's description of its payment, as Stripe words it. */
static const char *payment_description(const json_t *inv)
{
    const char *reason = json_string_value(json_object_get(inv, "billing_reason"));

    return reason && strcmp(reason, "subscription_create") == 0 ? "Subscription creation"
                                                                : "Subscription update";
}

json_t *emu_payment_intent_json(const struct emu_charge_params *p)
{
    static const char *const nulls[] = { "application",
                                         "application_fee_amount",
                                         "automatic_payment_methods",
                                         "canceled_at",
                                         "cancellation_reason",
                                         "last_payment_error",
                                         "latest_charge",
                                         "next_action",
                                         "on_behalf_of",
                                         "payment_method",
                                         "processing",
                                         "receipt_email",
                                         "review",
                                         "setup_future_usage",
                                         "shipping",
                                         "statement_descriptor",
                                         "statement_descriptor_suffix",
                                         "transfer_data",
                                         "transfer_group",
                                         NULL };
    const json_t *inv = p->invoice;
    char id[EMU_ID_MAX], secret[EMU_ID_MAX * 2];
    json_t *pi;

    emu_id_new("pi_", id, 28);
    emu_id_new("_secret_", secret, 33);
    pi = json_pack("{s:s,s:s,s:O,s:i,s:{s:{}},s:O,s:s,s:s,s:I,s:O,s:O,s:s,s:O,s:b,s:{},s:{},"
                   "s:[s],s:s}",
                   "id", id, "object", "payment_intent", "amount",
                   json_object_get(inv, "amount_paid"), "amount_capturable", 0, "amount_details",
                   "tip", "amount_received", json_object_get(inv, "amount_paid"), "capture_method",
                   "automatic", "confirmation_method", "automatic", "created", (json_int_t)p->now,
                   "currency", json_object_get(inv, "currency"), "customer",
                   json_object_get(inv, "customer"), "description", payment_description(inv),
                   "invoice", json_object_get(inv, "id"), "livemode", 0, "metadata",
                   "payment_method_options", "payment_method_types", "card", "status", "succeeded");
    set_nulls(pi, nulls);
    json_object_set_new(pi, "client_secret", json_sprintf("%s%s", id, secret));
    return pi;
}

static json_t *billing_details(const json_t *inv)
{
    return json_pack("{s:{s:n,s:n,s:n,s:n,s:n,s:n},s:O,s:O,s:n}", "address", "city", "country",
                     "line1", "line2", "postal_code", "state", "email",
                     json_object_get(inv, "customer_email"), "name",
                     json_object_get(inv, "customer_name"), "phone");
}

static json_t *card_details(const char *card)
{
    size_t n = card ? strlen(card) : 0;
    const char *last4 = n >= 4 ? card + n - 4 : "4242";

    return json_pack("{s:{s:s,s:{s:n,s:n,s:s},s:s,s:i,s:i,s:s,s:s,s:s},s:s}", "card", "brand",
                     "visa", "checks", "address_line1_check", "address_postal_code_check",
                     "cvc_check", "pass", "country", "US", "exp_month", 12, "exp_year", 2034,
                     "funding", "credit", "last4", last4, "network", "visa", "type", "card");
}

json_t *emu_charge_json(const struct emu_charge_params *p, const char *pi_id)
{
    static const char *const nulls[] = { "application",
                                         "application_fee",
                                         "application_fee_amount",
                                         "balance_transaction",
                                         "calculated_statement_descriptor",
                                         "failure_balance_transaction",
                                         "failure_code",
                                         "failure_message",
                                         "on_behalf_of",
                                         "payment_method",
                                         "receipt_email",
                                         "receipt_number",
                                         "receipt_url",
                                         "review",
                                         "shipping",
                                         "source_transfer",
                                         "statement_descriptor",
                                         "statement_descriptor_suffix",
                                         "transfer_data",
                                         "transfer_group",
                                         NULL };
    const json_t *inv = p->invoice;
    char id[EMU_ID_MAX];
    json_t *ch;

    emu_id_new("ch_", id, 28);
    ch = json_pack(
        "{s:s,s:s,s:O,s:O,s:i,s:o,s:b,s:I,s:O,s:O,s:s,s:b,s:{},s:O,s:b,s:{},s:b,"
        "s:o,s:s,s:b,s:s}",
        "id", id, "object", "charge", "amount", json_object_get(inv, "amount_paid"),
        "amount_captured", json_object_get(inv, "amount_paid"), "amount_refunded", 0,
        "billing_details", billing_details(inv), "captured", 1, "created", (json_int_t)p->now,
        "currency", json_object_get(inv, "currency"), "customer", json_object_get(inv, "customer"),
        "description", payment_description(inv), "disputed", 0, "fraud_details", "invoice",
        json_object_get(inv, "id"), "livemode", 0, "metadata", "paid", 1, "payment_method_details",
        card_details(p->card), "payment_intent", pi_id, "refunded", 0, "status", "succeeded");
    set_nulls(ch, nulls);
    json_object_set_new(ch, "outcome",
                        json_pack("{s:s,s:n,s:s,s:s,s:s}", "network_status", "approved_by_network",
                                  "reason", "risk_level", "normal", "seller_message",
                                  "Payment complete.", "type", "authorized"));
    return ch;
}

json_t *emu_refund_json(const struct emu_refund_params *p)
{
    char id[EMU_ID_MAX];

    emu_id_new("re_", id, 28);
    return json_pack("{s:s,s:s,s:I,s:n,s:O,s:I,s:O,s:o,s:O,s:o,s:n,s:n,s:s,s:n}", "id", id,
                     "object", "refund", "amount", (json_int_t)p->amount, "balance_transaction",
                     "charge", json_object_get(p->charge, "id"), "created", (json_int_t)p->now,
                     "currency", json_object_get(p->charge, "currency"), "metadata",
                     metadata_copy(p->metadata), "payment_intent",
                     json_object_get(p->charge, "payment_intent"), "reason", str_or_null(p->reason),
                     "receipt_number", "source_transfer_reversal", "status", "succeeded",
                     "transfer_reversal");
}

json_t *emu_portal_json(const char *customer, const char *return_url, const char *url, int64_t now)
{
    char id[EMU_ID_MAX];

    emu_id_new("bps_", id, 28);
    return json_pack("{s:s,s:s,s:s,s:I,s:s,s:n,s:b,s:n,s:n,s:s,s:s}", "id", id, "object",
                     "billing_portal.session", "configuration", "bpc_emulator", "created",
                     (json_int_t)now, "customer", customer, "flow", "livemode", 0, "locale",
                     "on_behalf_of", "return_url", return_url, "url", url);
}

json_t *emu_clock_json(int64_t frozen_time, const char *name, int64_t now)
{
    char id[EMU_ID_MAX];

    emu_id_new("clock_", id, 30);
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:b,s:o,s:s}", "id", id, "object",
                     "test_helpers.test_clock", "created", (json_int_t)now, "deletes_after",
                     (json_int_t)now + 30 * EMU_DAY_S, "frozen_time", (json_int_t)frozen_time,
                     "livemode", 0, "name", str_or_null(name), "status", "ready");
}

int64_t emu_round_div(int64_t num, int64_t den)
{
    int64_t q, r;

    if (den < 0) {
        num = -num;
        den = -den;
    }
    q = num / den;
    r = num % den;
    if (2 * (r < 0 ? -r : r) >= den)
        q += num < 0 ? -1 : 1;
    return q;
}

/* Puts the discount and tax amounts of one line; its tax through *tax. */
static void line_terms(json_t *line, const struct emu_invoice_terms *t, int64_t *discount,
                       int64_t *tax)
{
    int64_t amount = (int64_t)json_integer_value(json_object_get(line, "amount"));
    bool discountable = json_is_true(json_object_get(line, "discountable"));
    const char *di = json_string_value(json_object_get(t->discount, "id"));

    *discount = t->discount && discountable ? emu_round_div(amount * t->percent_off_bp, 10000) : 0;
    *tax = t->tax ? emu_round_div((amount - *discount) * EMU_TAX_PERCENT, 100) : 0;
    if (*discount != 0) {
        json_array_append_new(
            json_object_get(line, "discount_amounts"),
            json_pack("{s:I,s:s}", "amount", (json_int_t)*discount, "discount", di));
        json_array_append_new(json_object_get(line, "discounts"), json_string(di));
    }
    if (t->tax)
        json_array_append_new(json_object_get(line, "tax_amounts"),
                              json_pack("{s:I,s:b,s:s,s:s,s:I}", "amount", (json_int_t)*tax,
                                        "inclusive", 0, "tax_rate", EMU_TAX_RATE_ID,
                                        "taxability_reason", "standard_rated", "taxable_amount",
                                        (json_int_t)(amount - *discount)));
    json_object_set_new(line, "amount_excluding_tax", json_integer(amount));
}

int64_t emu_invoice_total(json_t *inv, const struct emu_invoice_terms *t)
{
    int64_t subtotal = 0, discount = 0, tax = 0, total, owed;
    size_t i;
    json_t *line;

    json_array_foreach(json_object_get(json_object_get(inv, "lines"), "data"), i, line)
    {
        int64_t d, x;
        line_terms(line, t, &d, &x);
        subtotal += (int64_t)json_integer_value(json_object_get(line, "amount"));
        discount += d;
        tax += x;
    }
    total = subtotal - discount + tax;
    owed = total + t->balance;
    json_object_set_new(inv, "subtotal", json_integer(subtotal));
    json_object_set_new(inv, "subtotal_excluding_tax", json_integer(subtotal));
    json_object_set_new(inv, "total", json_integer(total));
    json_object_set_new(inv, "total_excluding_tax", json_integer(subtotal - discount));
    json_object_set_new(inv, "amount_due", json_integer(owed > 0 ? owed : 0));
    json_object_set_new(inv, "amount_remaining", json_integer(owed > 0 ? owed : 0));
    json_object_set_new(inv, "starting_balance", json_integer(t->balance));
    json_object_set_new(inv, "ending_balance", json_integer(owed > 0 ? 0 : owed));
    if (t->discount) {
        json_object_set_new(inv, "discount", json_deep_copy(t->discount));
        json_array_append(json_object_get(inv, "discounts"), json_object_get(t->discount, "id"));
        json_array_append_new(json_object_get(inv, "total_discount_amounts"),
                              json_pack("{s:I,s:O}", "amount", (json_int_t)discount, "discount",
                                        json_object_get(t->discount, "id")));
    }
    if (t->tax) {
        json_object_set_new(inv, "automatic_tax",
                            json_pack("{s:b,s:s}", "enabled", 1, "status", "complete"));
        json_object_set_new(inv, "tax", json_integer(tax));
        json_array_append_new(json_object_get(inv, "total_tax_amounts"),
                              json_pack("{s:I,s:b,s:s,s:s,s:I}", "amount", (json_int_t)tax,
                                        "inclusive", 0, "tax_rate", EMU_TAX_RATE_ID,
                                        "taxability_reason", "standard_rated", "taxable_amount",
                                        (json_int_t)(subtotal - discount)));
    }
    return owed > 0 ? 0 : owed;
}

json_t *emu_discount_json(json_t *coupon, const struct emu_discount_params *p)
{
    char id[EMU_ID_MAX];
    int64_t months = (int64_t)json_integer_value(json_object_get(coupon, "duration_in_months"));
    const char *duration = json_string_value(json_object_get(coupon, "duration"));
    bool repeating = duration && strcmp(duration, "repeating") == 0;

    emu_id_new("di_", id, 27);
    return json_pack("{s:s,s:s,s:o,s:O,s:s,s:o,s:n,s:n,s:o,s:I,s:o}", "id", id, "object",
                     "discount", "checkout_session", str_or_null(p->session), "coupon", coupon,
                     "customer", p->customer, "end",
                     repeating ? json_integer(emu_add_months(p->now, months)) : json_null(),
                     "invoice", "invoice_item", "promotion_code", str_or_null(p->promotion_code),
                     "start", (json_int_t)p->now, "subscription", str_or_null(p->subscription));
}

json_t *emu_schedule_json(const json_t *sub, int64_t now)
{
    char id[EMU_ID_MAX];
    const json_t *item = json_array_get(json_object_get(json_object_get(sub, "items"), "data"), 0);
    json_t *phase = emu_schedule_phase_json(
        json_object_get(item, "price"),
        (int64_t)json_integer_value(json_object_get(item, "quantity")),
        (int64_t)json_integer_value(json_object_get(sub, "current_period_start")),
        (int64_t)json_integer_value(json_object_get(sub, "current_period_end")));
    json_t *s;

    emu_id_new("sub_sched_", id, 34);
    s = json_pack("{s:s,s:s,s:n,s:n,s:n,s:I,s:{s:O,s:O},s:O,s:s,s:b,s:{},s:[o],s:n,s:n,s:s,"
                  "s:O,s:O}",
                  "id", id, "object", "subscription_schedule", "application", "canceled_at",
                  "completed_at", "created", (json_int_t)now, "current_phase", "start_date",
                  json_object_get(phase, "start_date"), "end_date",
                  json_object_get(phase, "end_date"), "customer", json_object_get(sub, "customer"),
                  "end_behavior", "release", "livemode", 0, "metadata", "phases", phase,
                  "released_at", "released_subscription", "status", "active", "subscription",
                  json_object_get(sub, "id"), "test_clock", json_object_get(sub, "test_clock"));
    json_object_set_new(s, "default_settings",
                        json_pack("{s:n,s:{s:b},s:s,s:n,s:s,s:n,s:n,s:n,s:n,s:n}",
                                  "application_fee_percent", "automatic_tax", "enabled", 0,
                                  "billing_cycle_anchor", "automatic", "billing_thresholds",
                                  "collection_method", "charge_automatically",
                                  "default_payment_method", "description", "invoice_settings",
                                  "on_behalf_of", "transfer_data"));
    return s;
}

json_t *emu_schedule_phase_json(const json_t *price, int64_t quantity, int64_t start, int64_t end)
{
    return json_pack("{s:[],s:n,s:n,s:n,s:n,s:n,s:s,s:n,s:[],s:n,s:I,s:n,s:[{s:n,s:{},s:O,s:I,"
                     "s:[]}],s:{},s:n,s:s,s:I,s:n,s:n}",
                     "add_invoice_items", "application_fee_percent", "billing_cycle_anchor",
                     "billing_thresholds", "collection_method", "coupon", "currency", "usd",
                     "default_payment_method", "default_tax_rates", "description", "end_date",
                     (json_int_t)end, "invoice_settings", "items", "billing_thresholds", "metadata",
                     "price", json_object_get(price, "id"), "quantity", (json_int_t)quantity,
                     "tax_rates", "metadata", "on_behalf_of", "proration_behavior",
                     "create_prorations", "start_date", (json_int_t)start, "transfer_data",
                     "trial_end");
}

static int days_in_month(int year, int mon)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return mon == 1 && leap ? 29 : days[mon];
}

int64_t emu_add_month(int64_t t)
{
    return emu_add_months(t, 1);
}

int64_t emu_add_interval(int64_t t, const char *interval)
{
    if (strcmp(interval, "year") == 0)
        return emu_add_months(t, 12);
    if (strcmp(interval, "week") == 0)
        return t + 7 * EMU_DAY_S;
    if (strcmp(interval, "day") == 0)
        return t + EMU_DAY_S;
    return emu_add_months(t, 1);
}

int64_t emu_add_months(int64_t t, int64_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    int year, dim;
    int64_t mon;

    gmtime_r(&tt, &tm);
    mon = tm.tm_mon + n;
    tm.tm_year += (int)(mon / 12);
    tm.tm_mon = (int)(mon % 12);
    year = tm.tm_year + 1900;
    dim = days_in_month(year, tm.tm_mon);
    if (tm.tm_mday > dim)
        tm.tm_mday = dim;
    return (int64_t)timegm(&tm);
}

/* Replaces the id string at node[key] with a copy of the object it names. */
static json_t *expand_id(const struct emu_state *st, json_t *node, const char *key)
{
    json_t *v = json_object_get(node, key);
    enum emu_kind kind;
    json_t *obj;

    if (!json_is_string(v) || !emu_kind_of_id(json_string_value(v), &kind))
        return v;
    obj = emu_state_get(st, kind, json_string_value(v));
    if (!obj)
        return v;
    json_object_set_new(node, key, json_deep_copy(obj));
    return json_object_get(node, key);
}

/* Recursive, at most 4 levels deep. */
/* NOLINTNEXTLINE(misc-no-recursion) */
static void expand_path(const struct emu_state *st, json_t *node, const char *path, int depth)
{
    char seg[64];
    size_t n = strcspn(path, ".");
    const char *rest = path[n] ? path + n + 1 : NULL;
    json_t *child;
    size_t i;
    json_t *el;

    if (depth > 4 || n == 0 || n >= sizeof(seg))
        return;
    str_copyn(seg, sizeof(seg), path, n);
    child = expand_id(st, node, seg);
    if (!rest)
        return;
    if (json_is_object(child)) {
        expand_path(st, child, rest, depth + 1);
        return;
    }
    json_array_foreach(child, i, el)
    {
        if (json_is_object(el))
            expand_path(st, el, rest, depth + 1);
    }
}

json_t *emu_expand(const struct emu_state *st, const json_t *obj, const json_t *expand)
{
    json_t *out = json_deep_copy(obj);
    size_t i;
    json_t *path;

    json_array_foreach(expand, i, path)
    {
        if (json_is_string(path))
            expand_path(st, out, json_string_value(path), 0);
    }
    return out;
}
