/*
 * test_stripe_objects.c: Stripe JSON to structs, from Stripe's canonical fixtures
 * (tests/fixtures/stripe/, derived from fixtures3.*.json: both API-version shapes), plus the
 * error object, null and missing fields, and malformed answers. Run from the repo root.
 */
#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"
#include "billing/status.h"
#include "stripe/objects.h"
#include "t.h"

#define FIX "tests/fixtures/stripe/"

/* Loads a fixture as JSON; NULL (and a failed test) when it cannot. */
static json_t *load(const char *name)
{
    char path[256], errbuf[256];
    struct buf b;
    json_t *j = NULL;
    struct stripe_error se = { 0 };

    snprintf(path, sizeof(path), FIX "%s", name);
    buf_init(&b, 1 << 20);
    if (file_read_all(path, &b, errbuf, sizeof(errbuf)) != ERR_OK)
        T_OK(0, "read %.100s: %.200s", path, errbuf);
    else if (stripe_json_parse(buf_str(&b), b.len, &j, &se) != ERR_OK)
        T_OK(0, "parse %.100s: %.200s", path, se.message);
    buf_release(&b);
    return j;
}

static const struct {
    const char *file;
    const char *id, *customer, *price_id;
    enum sub_status status;
    const char *user_id;
    int64_t current_period_start, current_period_end;
    bool cancel_at_period_end;
    int64_t cancel_at, canceled_at, trial_end;
} subs[] = {
    { "subscription.2023-08-16.json", "sub_1NnmX4GPxmnHQRkJrhGrFloA", "cus_Oaxlz8kB0PJWGa",
      "price_1NnlpZGPxmnHQRkJuWjM7eRV", SUB_STATUS_ACTIVE, "user_42", 1700000000, 1702592000, false,
      0, 0, 0 },
    { "subscription.cancel_at.json", "sub_1NnmX4GPxmnHQRkJrhGrFloA", "cus_Oaxlz8kB0PJWGa",
      "price_1NnlpZGPxmnHQRkJuWjM7eRV", SUB_STATUS_TRIALING, "user_42", 1700000000, 1702592000,
      true, 1702592000, 1700100000, 1700600000 },
    /* newer API versions: periods only on items.data[0] */
    { "subscription.latest.json", "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw", "cus_QXg1o8vcGmoR32",
      "price_1PgafmB7WZ01zgkW6dKueIc5", SUB_STATUS_ACTIVE, "user_43", 1710000000, 1712678400, true,
      1234567890, 1234567890, 1234567890 },
};

static void test_subscriptions(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
        struct subscription s;
        struct stripe_error se = { 0 };
        json_t *j = load(subs[i].file);
        enum err err = stripe_subscription_from_json(j, &s, &se);

        T_EQ_I64(err, ERR_OK, "%s parses (%.200s)", subs[i].file, se.message);
        T_EQ_STR(s.id, subs[i].id, "%s: id", subs[i].file);
        T_EQ_STR(s.stripe_customer_id, subs[i].customer, "%s: customer", subs[i].file);
        T_EQ_STR(s.price_id, subs[i].price_id, "%s: price from items.data[0]", subs[i].file);
        T_EQ_STR(sub_status_name(s.status), sub_status_name(subs[i].status), "%s: status",
                 subs[i].file);
        T_EQ_STR(s.user_id, subs[i].user_id, "%s: metadata.user_id", subs[i].file);
        T_EQ_I64(s.current_period_start, subs[i].current_period_start, "%s: period start",
                 subs[i].file);
        T_EQ_I64(s.current_period_end, subs[i].current_period_end, "%s: period end", subs[i].file);
        T_EQ_I64(s.cancel_at_period_end, subs[i].cancel_at_period_end, "%s: cancel_at_period_end",
                 subs[i].file);
        T_EQ_I64(s.cancel_at, subs[i].cancel_at, "%s: cancel_at", subs[i].file);
        T_EQ_I64(s.canceled_at, subs[i].canceled_at, "%s: canceled_at", subs[i].file);
        T_EQ_I64(s.trial_end, subs[i].trial_end, "%s: trial_end", subs[i].file);
        json_decref(j);
    }
}

static void test_sessions(void)
{
    struct stripe_checkout_session cs;
    struct subscription sub;
    struct stripe_error se = { 0 };
    json_t *j = load("checkout_session.json");

    T_EQ_I64(stripe_checkout_session_from_json(j, &cs, &sub, &se), ERR_OK, "session parses");
    T_EQ_STR(cs.subscription, "sub_1NnmX4GPxmnHQRkJrhGrFloA", "subscription as a string id");
    T_OK(!cs.subscription_expanded, "a string id is not expanded");
    T_EQ_STR(sub.id, "", "sub_out stays empty without expansion");
    T_EQ_STR(cs.customer, "cus_Oaxlz8kB0PJWGa", "customer");
    T_EQ_STR(cs.client_reference_id, "user_42", "client_reference_id");
    T_EQ_STR(cs.user_id, "user_42", "metadata.user_id");
    T_EQ_STR(cs.status, "complete", "status");
    T_EQ_STR(cs.payment_status, "paid", "payment_status");
    T_EQ_STR(cs.mode, "subscription", "mode");
    json_decref(j);

    j = load("checkout_session.expanded.json");
    T_EQ_I64(stripe_checkout_session_from_json(j, &cs, &sub, &se), ERR_OK, "expanded parses");
    T_OK(cs.subscription_expanded, "an object is expanded");
    T_EQ_STR(cs.subscription, "sub_1NnmX4GPxmnHQRkJrhGrFloA", "its id is copied");
    T_EQ_STR(sub.price_id, "price_1NnlpZGPxmnHQRkJuWjM7eRV", "the expanded subscription is read");
    T_EQ_I64(sub.current_period_end, 1702592000, "with its period");
    T_EQ_I64(stripe_checkout_session_from_json(j, &cs, NULL, &se), ERR_OK, "sub_out may be NULL");
    json_decref(j);

    j = load("checkout_session.open.json");
    T_EQ_I64(stripe_checkout_session_from_json(j, &cs, &sub, &se), ERR_OK, "open session parses");
    T_EQ_STR(cs.subscription, "", "null subscription reads as empty");
    T_EQ_STR(cs.customer, "", "null customer reads as empty");
    T_EQ_STR(cs.client_reference_id, "", "null client_reference_id reads as empty");
    T_EQ_STR(cs.user_id, "", "empty metadata");
    T_OK(str_has_prefix(cs.url, "https://checkout.stripe.com/"), "url");
    json_decref(j);
}

static void test_invoices_customer_portal(void)
{
    struct stripe_invoice inv;
    struct stripe_customer cus;
    char url[URL_MAX];
    struct stripe_error se = { 0 };
    json_t *j = load("invoice.2023-08-16.json");

    T_EQ_I64(stripe_invoice_from_json(j, &inv, &se), ERR_OK, "invoice parses");
    T_EQ_STR(inv.invoice.id, "in_1NnmX4GPxmnHQRkJyyhHiHYa", "invoice id");
    T_EQ_STR(inv.invoice.number, "F79089B-0001", "number");
    T_EQ_STR(inv.invoice.status, "paid", "status");
    T_EQ_I64(inv.invoice.amount_due, 1000, "amount_due");
    T_EQ_I64(inv.invoice.amount_paid, 1000, "amount_paid");
    T_EQ_STR(inv.invoice.currency, "usd", "currency");
    T_EQ_I64(inv.invoice.period_start, 1234567890, "period_start");
    T_EQ_STR(inv.invoice.subscription_id, "sub_1NnmX4GPxmnHQRkJrhGrFloA", "subscription");
    T_EQ_STR(inv.invoice.invoice_pdf, "https://pay.stripe.com/invoice/acct_1/test_x/pdf", "pdf");
    T_EQ_STR(inv.customer, "cus_Oaxlz8kB0PJWGa", "customer");
    json_decref(j);

    j = load("invoice.latest.json");
    T_EQ_I64(stripe_invoice_from_json(j, &inv, &se), ERR_OK, "newer invoice parses");
    T_EQ_STR(inv.invoice.subscription_id, "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw",
             "subscription from parent.subscription_details");
    T_EQ_STR(inv.invoice.number, "", "null number reads as empty");
    T_EQ_STR(inv.invoice.hosted_invoice_url, "", "null url reads as empty");
    json_decref(j);

    /* Stripe never makes these negative: such an invoice is malformed, not stored as a credit */
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "amount_paid" : "amount_due";
        j = load("invoice.2023-08-16.json");
        json_object_set_new(j, key, json_integer(-1000));
        T_EQ_I64(stripe_invoice_from_json(j, &inv, &se), ERR_UPSTREAM, "a negative amount fails");
        T_OK(strstr(se.message, key) && strstr(se.message, "is negative"), "the message names it");
        json_object_set_new(j, key, json_integer(0));
        T_EQ_I64(stripe_invoice_from_json(j, &inv, &se), ERR_OK, "zero is an amount");
        json_decref(j);
    }

    j = load("customer.json");
    T_EQ_I64(stripe_customer_from_json(j, &cus, &se), ERR_OK, "customer parses");
    T_EQ_STR(cus.id, "cus_Oaxlz8kB0PJWGa", "customer id");
    T_EQ_STR(cus.email, "jenny@example.com", "email");
    T_OK(stripe_metadata_find(&cus.metadata, "user_id") != NULL, "metadata.user_id");
    T_EQ_STR(stripe_metadata_find(&cus.metadata, "user_id")->value, "user_42", "its value");
    T_OK(!cus.deleted, "not deleted");
    json_decref(j);

    j = load("billing_portal_session.json");
    T_EQ_I64(stripe_portal_session_from_json(j, url, &se), ERR_OK, "portal session parses");
    T_OK(str_has_prefix(url, "https://"), "portal url");
    json_decref(j);
}

static enum err parse_sub_text(const char *text, struct subscription *s, struct stripe_error *se)
{
    json_t *j = NULL;
    enum err err = stripe_json_parse(text, strlen(text), &j, se);

    if (err == ERR_OK)
        err = stripe_subscription_from_json(j, s, se);
    json_decref(j);
    return err;
}

static const struct {
    const char *json;
    enum err want;
    const char *message; /* a part of se.message, for failures */
} sub_texts[] = {
    { "{\"id\":\"sub_1\"}", ERR_OK, "" },
    { "{\"id\":\"sub_1\",\"items\":null,\"metadata\":null,\"customer\":null}", ERR_OK, "" },
    { "{\"id\":\"sub_1\",\"items\":{\"data\":[]}}", ERR_OK, "" },
    { "{\"id\":\"sub_1\",\"customer\":{\"id\":\"cus_1\",\"object\":\"customer\"}}", ERR_OK, "" },
    { "{\"status\":\"active\"}", ERR_UPSTREAM, "'id' is missing" },
    { "{\"id\":null}", ERR_UPSTREAM, "'id' is missing" },
    { "{\"id\":42}", ERR_UPSTREAM, "'id' is not a string" },
    { "{\"id\":\"sub_1\",\"current_period_end\":\"soon\"}", ERR_UPSTREAM, "not an integer" },
    { "{\"id\":\"sub_1\",\"current_period_end\":1.5}", ERR_UPSTREAM, "not an integer" },
    { "{\"id\":\"sub_1\",\"cancel_at_period_end\":1}", ERR_UPSTREAM, "not a boolean" },
    { "{\"id\":\"sub_1\",\"items\":{\"data\":{}}}", ERR_UPSTREAM, "'items.data' is not an array" },
    { "{\"id\":\"sub_1\",\"metadata\":[]}", ERR_UPSTREAM, "'metadata' is not an object" },
    { "{\"id\":\"sub_\\u0000x\"}", ERR_UPSTREAM, "malformed JSON" }, /* NUL refused */
    { "{\"id\":\"sub_1\",\"status\":\"acti", ERR_UPSTREAM, "malformed JSON" },
    { "", ERR_UPSTREAM, "malformed JSON" },
    { "[1,2]", ERR_UPSTREAM, "not an object" },
    { "{\"id\":\"a\",\"id\":\"b\"}", ERR_UPSTREAM, "malformed JSON" },
};

static void test_malformed(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(sub_texts); i++) {
        struct subscription s;
        struct stripe_error se = { 0 };
        enum err err = parse_sub_text(sub_texts[i].json, &s, &se);

        T_EQ_I64(err, sub_texts[i].want, "subscription text %zu", i);
        if (err != ERR_OK)
            T_OK(strstr(se.message, sub_texts[i].message) != NULL, "text %zu says '%.100s': %.200s",
                 i, sub_texts[i].message, se.message);
    }
}

/* The status is parsed once, here: none, Stripe's names, and a string this build does not know. */
static void test_sub_status(void)
{
    static const struct {
        const char *json;
        enum err want;
        enum sub_status status;
    } rows[] = {
        { "{\"id\":\"sub_1\"}", ERR_OK, SUB_STATUS_MISSING },
        { "{\"id\":\"sub_1\",\"status\":null}", ERR_OK, SUB_STATUS_MISSING },
        { "{\"id\":\"sub_1\",\"status\":\"\"}", ERR_OK, SUB_STATUS_MISSING },
        { "{\"id\":\"sub_1\",\"status\":\"past_due\"}", ERR_OK, SUB_STATUS_PAST_DUE },
        { "{\"id\":\"sub_1\",\"status\":\"incomplete_expired\"}", ERR_OK,
          SUB_STATUS_INCOMPLETE_EXPIRED },
        { "{\"id\":\"sub_1\",\"status\":\"frobnicated\"}", ERR_OK, SUB_STATUS_UNKNOWN },
        { "{\"id\":\"sub_1\",\"status\":\"Active\"}", ERR_OK, SUB_STATUS_UNKNOWN },
        { "{\"id\":\"sub_1\",\"status\":7}", ERR_UPSTREAM, SUB_STATUS_MISSING },
        { "{\"id\":\"sub_1\",\"status\":\"a_status_of_thirty_two_bytes_xxx\"}", ERR_UPSTREAM,
          SUB_STATUS_MISSING },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct subscription s;
        struct stripe_error se = { 0 };
        enum err err = parse_sub_text(rows[i].json, &s, &se);

        T_EQ_I64(err, rows[i].want, "status text %zu (%.200s)", i, se.message);
        if (err == ERR_OK)
            T_EQ_STR(sub_status_name(s.status), sub_status_name(rows[i].status),
                     "status text %zu: status", i);
        else
            T_OK(strstr(se.message, "'status'") != NULL, "status text %zu names the field: %.200s",
                 i, se.message);
    }
}

/* An id one byte too long for its field is refused, never truncated. */
static void test_long_id(void)
{
    char text[STRIPE_ID_MAX + 64];
    char id[STRIPE_ID_MAX + 1];
    struct subscription s;
    struct stripe_error se = { 0 };

    memset(id, 'x', STRIPE_ID_MAX);
    id[STRIPE_ID_MAX] = '\0';
    snprintf(text, sizeof(text), "{\"id\":\"%s\"}", id);
    T_EQ_I64(parse_sub_text(text, &s, &se), ERR_UPSTREAM, "an id of %d bytes is refused",
             STRIPE_ID_MAX);
    T_OK(strstr(se.message, "too long") != NULL, "and the message says so: %.200s", se.message);
    id[STRIPE_ID_MAX - 1] = '\0';
    snprintf(text, sizeof(text), "{\"id\":\"%s\"}", id);
    T_EQ_I64(parse_sub_text(text, &s, &se), ERR_OK, "an id of %d bytes fits", STRIPE_ID_MAX - 1);
}

static enum err parse_customer_text(const char *text, struct stripe_customer *c,
                                    struct stripe_error *se)
{
    json_t *j = NULL;
    enum err err = stripe_json_parse(text, strlen(text), &j, se);

    if (err == ERR_OK)
        err = stripe_customer_from_json(j, c, se);
    json_decref(j);
    return err;
}

/* A customer's metadata: each key kept with its value, or its length when it is too long. */
static void test_customer_metadata(void)
{
    static const struct {
        const char *json;
        enum err want;
        const char *key;   /* looked up */
        const char *value; /* NULL: not found */
        size_t len;
        const char *message; /* a part of se.message, for failures */
    } rows[] = {
        { "{\"id\":\"cus_1\"}", ERR_OK, "user_id", NULL, 0, "" },
        { "{\"id\":\"cus_1\",\"metadata\":null}", ERR_OK, "user_id", NULL, 0, "" },
        { "{\"id\":\"cus_1\",\"metadata\":{}}", ERR_OK, "user_id", NULL, 0, "" },
        { "{\"id\":\"cus_1\",\"metadata\":{\"user_id\":\"u1\",\"team\":\"t-9\"}}", ERR_OK, "team",
          "t-9", 3, "" },
        { "{\"id\":\"cus_1\",\"metadata\":{\"user_id\":\"u1\",\"team\":\"t-9\"}}", ERR_OK,
          "user_id", "u1", 2, "" },
        { "{\"id\":\"cus_1\",\"metadata\":{\"user_id\":\"\"}}", ERR_OK, "user_id", "", 0, "" },
        { "{\"id\":\"cus_1\",\"metadata\":{\"User_Id\":\"u1\"}}", ERR_OK, "user_id", NULL, 0, "" },
        { "{\"id\":\"cus_1\",\"metadata\":{\"k\":\"\u00e9t\u00e9\"}}", ERR_OK, "k",
          "\xc3\xa9t\xc3\xa9", 5, "" },
        { "{\"id\":\"cus_1\",\"metadata\":[]}", ERR_UPSTREAM, "", NULL, 0,
          "'metadata' is not an object" },
        { "{\"id\":\"cus_1\",\"metadata\":\"x\"}", ERR_UPSTREAM, "", NULL, 0,
          "'metadata' is not an object" },
        { "{\"id\":\"cus_1\",\"metadata\":{\"user_id\":5}}", ERR_UPSTREAM, "", NULL, 0,
          "not a string" },
        { "{\"id\":\"cus_1\",\"metadata\":{\"user_id\":null}}", ERR_UPSTREAM, "", NULL, 0,
          "not a string" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct stripe_customer c;
        struct stripe_error se = { 0 };
        const struct stripe_metadata_entry *e;

        T_EQ_I64(parse_customer_text(rows[i].json, &c, &se), rows[i].want, "metadata row %zu", i);
        if (rows[i].want != ERR_OK) {
            T_OK(strstr(se.message, rows[i].message) != NULL, "metadata row %zu: says '%s': %.200s",
                 i, rows[i].message, se.message);
            continue;
        }
        e = stripe_metadata_find(&c.metadata, rows[i].key);
        T_OK((e != NULL) == (rows[i].value != NULL), "metadata row %zu: '%s' found", i,
             rows[i].key);
        if (e && rows[i].value) {
            T_EQ_STR(e->value, rows[i].value, "metadata row %zu: value", i);
            T_EQ_I64(e->value_len, rows[i].len, "metadata row %zu: length", i);
        }
    }
}

/* Metadata at and past what is kept: long values keep their length, long keys and key 51 go. */
static void test_customer_metadata_limits(void)
{
    char text[8192], value[STRIPE_METADATA_VALUE_MAX + 1], key[STRIPE_METADATA_KEY_MAX + 1];
    struct stripe_customer c;
    struct stripe_error se = { 0 };
    const struct stripe_metadata_entry *e;
    size_t n;

    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(text, sizeof(text),
             "{\"id\":\"cus_1\",\"metadata\":{\"long\":\"%s\",\"fits\":\"%.*s\","
             "\"%s\":\"x\",\"%.*s\":\"y\"}}",
             value, STRIPE_METADATA_VALUE_MAX - 1, value, key, STRIPE_METADATA_KEY_MAX - 1, key);
    T_EQ_I64(parse_customer_text(text, &c, &se), ERR_OK, "long metadata parses: %.200s",
             se.message);
    e = stripe_metadata_find(&c.metadata, "long");
    T_OK(e && e->value[0] == '\0' && e->value_len == STRIPE_METADATA_VALUE_MAX,
         "a value too long to keep: empty, with its length");
    e = stripe_metadata_find(&c.metadata, "fits");
    T_OK(e && strlen(e->value) == STRIPE_METADATA_VALUE_MAX - 1, "the longest value kept");
    T_EQ_I64(c.metadata.len, 3, "a key of %d bytes is not kept", STRIPE_METADATA_KEY_MAX);
    key[STRIPE_METADATA_KEY_MAX - 1] = '\0';
    T_OK(stripe_metadata_find(&c.metadata, key) != NULL, "a key of %d bytes is",
         STRIPE_METADATA_KEY_MAX - 1);

    n = (size_t)snprintf(text, sizeof(text), "{\"id\":\"cus_1\",\"metadata\":{");
    for (int i = 0; i <= STRIPE_METADATA_MAX && n < sizeof(text); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"k%d\":\"%d\"", i ? "," : "", i, i);
    if (n < sizeof(text))
        snprintf(text + n, sizeof(text) - n, "}}");
    T_EQ_I64(parse_customer_text(text, &c, &se), ERR_OK, "%d keys parse", STRIPE_METADATA_MAX + 1);
    T_EQ_I64(c.metadata.len, STRIPE_METADATA_MAX, "%d are kept", STRIPE_METADATA_MAX);
}

static const struct {
    int status;
    enum err want;
    const char *body;
    const char *type, *code, *decline_code, *param, *message;
} errors[] = {
    { 402, ERR_QUOTA,
      "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\",\"decline_code\":"
      "\"insufficient_funds\",\"message\":\"Your card has insufficient funds.\"}}",
      "card_error", "card_declined", "insufficient_funds", "",
      "Your card has insufficient funds." },
    { 400, ERR_REFUSED,
      "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"charge_already_refunded\","
      "\"message\":\"Charge ch_1 has already been refunded.\"}}",
      "invalid_request_error", "charge_already_refunded", "", "",
      "Charge ch_1 has already been refunded." },
    { 400, ERR_REFUSED,
      "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"parameter_unknown\",\"param\":"
      "\"bogus\",\"message\":\"Received unknown parameter: bogus\"}}",
      "invalid_request_error", "parameter_unknown", "", "bogus",
      "Received unknown parameter: bogus" },
    { 400, ERR_UPSTREAM,
      "{\"error\":{\"type\":\"idempotency_error\",\"message\":\"Keys for idempotent requests can "
      "only be used with the same parameters they were first used with.\"}}",
      "idempotency_error", "", "", "",
      "Keys for idempotent requests can only be used with the same parameters they were first "
      "used with." },
    { 404, ERR_NOT_FOUND,
      "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"resource_missing\",\"param\":"
      "\"id\",\"message\":\"No such customer: 'cus_x'\"}}",
      "invalid_request_error", "resource_missing", "", "id", "No such customer: 'cus_x'" },
    { 401, ERR_UNAVAILABLE,
      "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Invalid API Key provided: "
      "sk_test_****1234\"}}",
      "invalid_request_error", "", "", "", "Invalid API Key provided: sk_test_****1234" },
    { 403, ERR_UNAVAILABLE, "{\"error\":{\"type\":\"permission_error\",\"message\":\"no\"}}",
      "permission_error", "", "", "", "no" },
    { 429, ERR_RATE_LIMITED,
      "{\"error\":{\"type\":\"rate_limit_error\",\"code\":\"rate_limit\",\"message\":\"Too many\"}}",
      "rate_limit_error", "rate_limit", "", "", "Too many" },
    { 409, ERR_UPSTREAM, "{\"error\":{\"type\":\"idempotency_error\",\"message\":\"in use\"}}",
      "idempotency_error", "", "", "", "in use" },
    { 500, ERR_UPSTREAM,
      "{\"error\":{\"type\":\"api_error\",\"message\":\"Something went wrong\"}}", "api_error", "",
      "", "", "Something went wrong" },
    { 502, ERR_UPSTREAM, "<html>Bad Gateway</html>", "", "", "", "",
      "stripe answered HTTP 502 without an error object" },
    { 400, ERR_UPSTREAM,
      "{\"error\":{\"type\":null,\"code\":null,\"param\":null,\"message\":null}}", "", "", "", "",
      "" },
    { 0, ERR_UNAVAILABLE, "", "", "", "", "", "stripe answered HTTP 0 without an error object" },
};

static void test_errors(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(errors); i++) {
        struct stripe_error se = { .attempts = 3 };

        stripe_error_from_answer(errors[i].status, errors[i].body, strlen(errors[i].body), &se);
        T_EQ_I64(se.http_status, errors[i].status, "error %zu: status", i);
        T_EQ_STR(se.type, errors[i].type, "error %zu: type", i);
        T_EQ_STR(se.code, errors[i].code, "error %zu: code", i);
        T_EQ_STR(se.decline_code, errors[i].decline_code, "error %zu: decline_code", i);
        T_EQ_STR(se.param, errors[i].param, "error %zu: param", i);
        T_EQ_STR(se.message, errors[i].message, "error %zu: message", i);
        T_EQ_I64(se.attempts, 3, "error %zu: attempts kept", i);
        T_EQ_I64(stripe_error_to_err(&se), errors[i].want, "error %zu maps to %s", i,
                 err_name(errors[i].want));
    }
}

static void test_pages(void)
{
    static const char list[] =
        "{\"object\":\"list\",\"has_more\":true,\"url\":\"/v1/subscriptions\",\"data\":["
        "{\"id\":\"sub_3\",\"status\":\"active\"},{\"id\":\"sub_2\",\"status\":\"canceled\"}]}";
    static const char empty[] = "{\"object\":\"list\",\"has_more\":false,\"data\":[]}";
    static const char bad_item[] = "{\"object\":\"list\",\"data\":[{\"id\":\"in_1\"},{}]}";
    struct stripe_subscription_page sp;
    struct stripe_invoice_page ip;
    struct stripe_customer_page cp;
    struct stripe_error se = { 0 };
    json_t *j = json_loads(list, 0, NULL);

    T_EQ_I64(stripe_subscription_page_from_json(j, &sp, &se), ERR_OK, "page parses");
    T_EQ_I64(sp.len, 2, "two items");
    T_OK(sp.has_more, "has_more");
    T_EQ_STR(sp.last_id, "sub_2", "last id for starting_after");
    T_EQ_STR(sub_status_name(sp.data[1].status), "canceled", "items are read");
    stripe_subscription_page_release(&sp);
    json_decref(j);
    j = json_loads(empty, 0, NULL);
    T_EQ_I64(stripe_customer_page_from_json(j, &cp, &se), ERR_OK, "empty page parses");
    T_EQ_I64(cp.len, 0, "no items");
    T_OK(!cp.has_more && cp.last_id[0] == '\0', "no more, no last id");
    stripe_customer_page_release(&cp);
    json_decref(j);
    j = json_loads(bad_item, 0, NULL);
    T_EQ_I64(stripe_invoice_page_from_json(j, &ip, &se), ERR_UPSTREAM, "a bad item fails the page");
    T_OK(ip.data == NULL && ip.len == 0, "and leaves the page empty");
    json_decref(j);
}

/* Plan changes in flight: a pending update and a schedule, and the upcoming invoice. */
static void test_plan_objects(void)
{
    struct subscription s;
    struct schedule_record sched;
    struct stripe_upcoming up;
    struct stripe_error se = { 0 };
    json_t *j = load("subscription.pending_update.json");

    T_EQ_I64(stripe_subscription_from_json(j, &s, &se), ERR_OK, "pending update parses (%.200s)",
             se.message);
    T_EQ_STR(s.schedule_id, "sub_sched_1NnmX8GPxmnHQRkJ37AGvTnf", "its schedule");
    T_EQ_STR(s.pending_price_id, "price_1NnlpZGPxmnHQRkJnextPRICE", "the price it waits for");
    T_EQ_I64(s.pending_expires_at, 1700082800, "until");
    T_EQ_STR(s.latest_invoice, "in_1NnmX6GPxmnHQRkJpending", "the invoice it waits for");
    T_EQ_STR(s.item_id, "si_OayUGOTQ3S6pqQ", "the item a change switches");
    T_EQ_STR(s.price_id, "price_1NnlpZGPxmnHQRkJuWjM7eRV", "the price now is unchanged");
    json_decref(j);
    j = load("subscription.2023-08-16.json");
    T_EQ_I64(stripe_subscription_from_json(j, &s, &se), ERR_OK, "a plain one parses");
    T_OK(!s.schedule_id[0] && !s.pending_price_id[0] && s.pending_expires_at == 0,
         "nothing in flight");
    json_decref(j);
    j = load("subscription_schedule.active.json");
    T_EQ_I64(stripe_schedule_from_json(j, &sched, &se), ERR_OK, "a schedule parses (%.200s)",
             se.message);
    T_EQ_STR(sched.id, "sub_sched_1NnmX8GPxmnHQRkJ37AGvTnf", "its id");
    T_EQ_STR(sched.subscription_id, "sub_1NnmX4GPxmnHQRkJrhGrFloA", "its subscription");
    T_EQ_STR(sched.status, "active", "status");
    T_EQ_STR(sched.next_price_id, "price_1NnlpZGPxmnHQRkJnextPRICE", "the next phase's price");
    T_EQ_I64(sched.next_at, 1702592000, "from the end of the current phase");
    json_decref(j);
    j = json_pack("{s:s, s:[{s:I, s:[{s:s}]}]}", "id", "sub_sched_2", "phases", "start_date",
                  (json_int_t)5, "items", "price", "price_a");
    T_EQ_I64(stripe_schedule_from_json(j, &sched, &se), ERR_UPSTREAM,
             "a schedule without status is refused");
    json_decref(j);
    j = json_pack("{s:s, s:s, s:n, s:[{s:I, s:[{s:s}]}]}", "id", "sub_sched_2", "status",
                  "not_started", "current_phase", "phases", "start_date", (json_int_t)5, "items",
                  "price", "price_a");
    T_EQ_I64(stripe_schedule_from_json(j, &sched, &se), ERR_OK, "not started");
    T_EQ_STR(sched.next_price_id, "price_a", "its first phase is next");
    json_decref(j);
    j = json_pack("{s:s, s:s, s:{s:I}, s:[{s:I, s:s}]}", "id", "sub_sched_2", "status", "active",
                  "current_phase", "start_date", (json_int_t)5, "phases", "start_date",
                  (json_int_t)9, "items", "x");
    T_EQ_I64(stripe_schedule_from_json(j, &sched, &se), ERR_UPSTREAM,
             "a phase whose items are no list is refused");
    json_decref(j);
    j = load("invoice.2023-08-16.json");
    T_EQ_I64(stripe_upcoming_from_json(j, &up, &se), ERR_OK, "an invoice reads as upcoming");
    T_OK(up.amount_due >= 0 && up.currency[0], "amount and currency");
    json_decref(j);
    j = json_pack("{s:I}", "amount_due", (json_int_t)5);
    T_EQ_I64(stripe_upcoming_from_json(j, &up, &se), ERR_UPSTREAM,
             "an upcoming invoice without currency is refused");
    json_decref(j);
}

int main(void)
{
    test_plan_objects();
    test_subscriptions();
    test_sessions();
    test_invoices_customer_portal();
    test_malformed();
    test_sub_status();
    test_long_id();
    test_customer_metadata();
    test_customer_metadata_limits();
    test_errors();
    test_pages();
    return t_done();
}
