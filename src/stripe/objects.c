/*
 * objects.c: Stripe JSON to value structs. The readers share a sticky error (struct rd) so each
 * mapping reads as a list of fields; the first bad field stops the rest and names itself.
 */
#include "stripe/objects.h"

#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"
#include "billing/status.h"

/* A reader: which object is being read (for messages) and the first failure. */
struct rd {
    const char *what;
    struct stripe_error *se;
    enum err err;
};

static void rd_fail(struct rd *r, const char *field, const char *why)
{
    if (r->err != ERR_OK)
        return;
    snprintf(r->se->message, sizeof(r->se->message), "malformed stripe %s: '%s' %s", r->what, field,
             why);
    r->err = ERR_UPSTREAM;
}

/* The member key of obj, or NULL when obj is not an object, key is missing or null. */
static const json_t *member(const json_t *obj, const char *key)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

    return json_is_null(v) ? NULL : v;
}

/* Copies a JSON string value into dst[size]; too long or with a NUL byte fails. */
static void rd_copy(struct rd *r, const json_t *v, const char *field, char *dst, size_t size)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);

    if (!s) {
        rd_fail(r, field, "is not a string");
        return;
    }
    if (strlen(s) != n)
        rd_fail(r, field, "has a NUL byte");
    else if (!str_copyn(dst, size, s, n))
        rd_fail(r, field, "is too long");
}

/* An optional string: missing and null read as "". */
static void rd_str(struct rd *r, const json_t *obj, const char *key, char *dst, size_t size)
{
    const json_t *v = member(obj, key);

    dst[0] = '\0';
    if (r->err == ERR_OK && v)
        rd_copy(r, v, key, dst, size);
}

/* A required id. */
static void rd_id(struct rd *r, const json_t *obj, const char *key, char *dst, size_t size)
{
    rd_str(r, obj, key, dst, size);
    if (r->err == ERR_OK && dst[0] == '\0')
        rd_fail(r, key, "is missing");
}

/*
 * A field that is an id or, when expanded, the object with that id; *expanded (may be NULL)
 * receives the object.
 */
static void rd_ref(struct rd *r, const json_t *obj, const char *key, char *dst, size_t size,
                   const json_t **expanded)
{
    const json_t *v = member(obj, key);

    dst[0] = '\0';
    if (expanded)
        *expanded = NULL;
    if (r->err != ERR_OK || !v)
        return;
    if (json_is_object(v)) {
        rd_id(r, v, "id", dst, size);
        if (expanded)
            *expanded = v;
        return;
    }
    rd_copy(r, v, key, dst, size);
}

static void rd_i64(struct rd *r, const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = member(obj, key);

    *out = 0;
    if (r->err != ERR_OK || !v)
        return;
    if (!json_is_integer(v))
        rd_fail(r, key, "is not an integer");
    else
        *out = (int64_t)json_integer_value(v);
}

/* An amount Stripe never makes negative (an invoice's amount due or paid): an integer >= 0. */
static void rd_amount(struct rd *r, const json_t *obj, const char *key, int64_t *out)
{
    rd_i64(r, obj, key, out);
    if (*out < 0)
        rd_fail(r, key, "is negative");
}

static void rd_bool(struct rd *r, const json_t *obj, const char *key, bool *out)
{
    const json_t *v = member(obj, key);

    *out = false;
    if (r->err != ERR_OK || !v)
        return;
    if (!json_is_boolean(v))
        rd_fail(r, key, "is not a boolean");
    else
        *out = json_is_true(v);
}

/* The object must be one: Stripe always answers objects, anything else is nonsense. */
static void rd_begin(struct rd *r, const char *what, const json_t *j, struct stripe_error *se)
{
    r->what = what;
    r->se = se;
    r->err = ERR_OK;
    if (!json_is_object(j)) {
        snprintf(se->message, sizeof(se->message), "malformed stripe %s: not a JSON object", what);
        r->err = ERR_UPSTREAM;
    }
}

enum err stripe_json_parse(const char *body, size_t len, json_t **out, struct stripe_error *se)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

    *out = NULL;
    if (!j) {
        snprintf(se->message, sizeof(se->message),
                 "malformed JSON from stripe at line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return ERR_UPSTREAM;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(se->message, sizeof(se->message), "stripe answered JSON that is not an object");
        return ERR_UPSTREAM;
    }
    *out = j;
    return ERR_OK;
}

/* Copies an optional string of Stripe's error object; error text may be truncated. */
static void error_field(const json_t *e, const char *key, char *dst, size_t size)
{
    const char *s = json_string_value(member(e, key));

    (void)str_copy(dst, size, s ? s : ""); /* a truncated message is still a message */
}

void stripe_error_from_answer(int http_status, const char *body, size_t len,
                              struct stripe_error *se)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const json_t *e = member(j, "error");

    se->http_status = http_status;
    error_field(e, "type", se->type, sizeof(se->type));
    error_field(e, "code", se->code, sizeof(se->code));
    error_field(e, "decline_code", se->decline_code, sizeof(se->decline_code));
    error_field(e, "param", se->param, sizeof(se->param));
    error_field(e, "message", se->message, sizeof(se->message));
    if (!json_is_object(e))
        snprintf(se->message, sizeof(se->message),
                 "stripe answered HTTP %d without an error object", http_status);
    json_decref(j);
}

enum err stripe_error_to_err(const struct stripe_error *se)
{
    int st = se->http_status;

    if (st == 0 || st == 401 || st == 403)
        return ERR_UNAVAILABLE;
    if (st == 402 || strcmp(se->type, "card_error") == 0)
        return ERR_QUOTA;
    if (st == 404)
        return ERR_NOT_FOUND;
    if (st == 429)
        return ERR_RATE_LIMITED;
    if (st == 400 && strcmp(se->type, "invalid_request_error") == 0)
        return ERR_REFUSED;
    return ERR_UPSTREAM;
}

static void rd_user_id(struct rd *r, const json_t *obj, char *dst, size_t size)
{
    const json_t *md = member(obj, "metadata");

    dst[0] = '\0';
    if (md && !json_is_object(md))
        rd_fail(r, "metadata", "is not an object");
    else if (md)
        rd_str(r, md, "user_id", dst, size);
}

/* Keeps one metadata entry; a value that is not a string is malformed. */
static void rd_metadata_entry(struct rd *r, const char *key, const json_t *v,
                              struct stripe_metadata *m)
{
    struct stripe_metadata_entry *e;

    if (!json_is_string(v)) {
        rd_fail(r, "metadata", "has a value that is not a string");
        return;
    }
    if (m->len == STRIPE_METADATA_MAX)
        return; /* not kept (objects.h) */
    e = &m->entries[m->len];
    if (!str_copy(e->key, sizeof(e->key), key))
        return; /* not kept (objects.h) */
    e->value_len = json_string_length(v);
    e->value[0] = '\0';
    if (e->value_len < sizeof(e->value))
        rd_copy(r, v, "metadata", e->value, sizeof(e->value));
    m->len++;
}

static void rd_metadata(struct rd *r, const json_t *obj, struct stripe_metadata *m)
{
    json_t *md = json_is_object(obj) ? json_object_get(obj, "metadata") : NULL; /* iterated */
    const char *key;
    json_t *v;

    m->len = 0;
    if (r->err != ERR_OK || !md || json_is_null(md))
        return;
    if (!json_is_object(md)) {
        rd_fail(r, "metadata", "is not an object");
        return;
    }
    json_object_foreach(md, key, v)
    {
        rd_metadata_entry(r, key, v, m);
    }
}

const struct stripe_metadata_entry *stripe_metadata_find(const struct stripe_metadata *m,
                                                         const char *key)
{
    for (size_t i = 0; i < m->len; i++)
        if (strcmp(m->entries[i].key, key) == 0)
            return &m->entries[i];
    return NULL;
}

enum err stripe_customer_from_json(const json_t *j, struct stripe_customer *out,
                                   struct stripe_error *se)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    rd_begin(&r, "customer", j, se);
    rd_id(&r, j, "id", out->id, sizeof(out->id));
    rd_bool(&r, j, "deleted", &out->deleted);
    rd_str(&r, j, "email", out->email, sizeof(out->email));
    rd_str(&r, j, "name", out->name, sizeof(out->name));
    rd_i64(&r, j, "created", &out->created);
    rd_metadata(&r, j, &out->metadata);
    return r.err;
}

/* items.data[0] of a subscription, or NULL when it has no items. */
static const json_t *first_item(struct rd *r, const json_t *sub)
{
    const json_t *items = member(sub, "items");
    const json_t *data = member(items, "data");

    if (items && !json_is_object(items))
        rd_fail(r, "items", "is not an object");
    else if (data && !json_is_array(data))
        rd_fail(r, "items.data", "is not an array");
    if (r->err != ERR_OK || !data || json_array_size(data) == 0)
        return NULL;
    if (!json_is_object(json_array_get(data, 0)))
        rd_fail(r, "items.data[0]", "is not an object");
    return r->err == ERR_OK ? json_array_get(data, 0) : NULL;
}

/* A period bound at the top level or, from API version 2025-03-31 on, on the first item. */
static void rd_period(struct rd *r, const json_t *sub, const json_t *item, const char *key,
                      int64_t *out)
{
    rd_i64(r, sub, key, out);
    if (r->err == ERR_OK && !member(sub, key) && item)
        rd_i64(r, item, key, out);
}

/*
 * Stripe's status string, parsed here once: missing reads as SUB_STATUS_MISSING (the store
 * refuses it where a status is required), an unknown string as SUB_STATUS_UNKNOWN.
 */
static void rd_sub_status(struct rd *r, const json_t *obj, enum sub_status *out)
{
    char text[STATUS_MAX]; /* a longer string is malformed */

    rd_str(r, obj, "status", text, sizeof(text));
    *out = sub_status_parse(text);
}

/* An item's price: an id, or the price object; "" when it has none. */
static void rd_item_price(struct rd *r, const json_t *item, const char *field, char *dst,
                          size_t size)
{
    const json_t *price = member(item, "price");

    dst[0] = '\0';
    if (json_is_object(price))
        rd_str(r, price, "id", dst, size);
    else if (price)
        rd_copy(r, price, field, dst, size);
}

static void rd_subscription_item(struct rd *r, const json_t *item, struct subscription *out)
{
    rd_item_price(r, item, "items.data[0].price", out->price_id, sizeof(out->price_id));
    rd_str(r, item, "id", out->item_id, sizeof(out->item_id));
}

/*
 * pending_update: the change (payment_behavior pending_if_incomplete) that applies once its
 * invoice is paid. subgate switches one item, so its first item's price is the change.
 */
static void rd_pending_update(struct rd *r, const json_t *sub, struct subscription *out)
{
    const json_t *pu = member(sub, "pending_update");
    const json_t *items = member(pu, "subscription_items");

    if (!pu || r->err != ERR_OK)
        return;
    if (!json_is_object(pu)) {
        rd_fail(r, "pending_update", "is not an object");
        return;
    }
    rd_i64(r, pu, "expires_at", &out->pending_expires_at);
    if (items && !json_is_array(items))
        rd_fail(r, "pending_update.subscription_items", "is not an array");
    else if (json_array_size(items) > 0)
        rd_item_price(r, json_array_get(items, 0), "pending_update.subscription_items[0].price",
                      out->pending_price_id, sizeof(out->pending_price_id));
}

enum err stripe_subscription_from_json(const json_t *j, struct subscription *out,
                                       struct stripe_error *se)
{
    struct rd r;
    const json_t *item;

    memset(out, 0, sizeof(*out));
    rd_begin(&r, "subscription", j, se);
    rd_id(&r, j, "id", out->id, sizeof(out->id));
    rd_ref(&r, j, "customer", out->stripe_customer_id, sizeof(out->stripe_customer_id), NULL);
    rd_sub_status(&r, j, &out->status);
    item = first_item(&r, j);
    if (item)
        rd_subscription_item(&r, item, out);
    rd_period(&r, j, item, "current_period_start", &out->current_period_start);
    rd_period(&r, j, item, "current_period_end", &out->current_period_end);
    rd_bool(&r, j, "cancel_at_period_end", &out->cancel_at_period_end);
    rd_i64(&r, j, "cancel_at", &out->cancel_at);
    rd_i64(&r, j, "canceled_at", &out->canceled_at);
    rd_i64(&r, j, "trial_end", &out->trial_end);
    rd_i64(&r, j, "created", &out->created);
    rd_user_id(&r, j, out->user_id, sizeof(out->user_id));
    rd_ref(&r, j, "test_clock", out->test_clock, sizeof(out->test_clock), NULL);
    rd_ref(&r, j, "schedule", out->schedule_id, sizeof(out->schedule_id), NULL);
    rd_ref(&r, j, "latest_invoice", out->latest_invoice, sizeof(out->latest_invoice), NULL);
    rd_pending_update(&r, j, out);
    return r.err;
}

/*
 * The first phase starting after `at` (the current phase's start): what the schedule changes
 * next, and when.
 */
static void rd_next_phase(struct rd *r, const json_t *phases, int64_t at,
                          struct schedule_record *out)
{
    size_t i;
    const json_t *ph;

    if (phases && !json_is_array(phases)) {
        rd_fail(r, "phases", "is not an array");
        return;
    }
    json_array_foreach(phases, i, ph)
    {
        const json_t *items = member(ph, "items");
        int64_t start = 0;
        rd_i64(r, ph, "start_date", &start);
        if (r->err != ERR_OK)
            return;
        if (start <= at || (out->next_at && start >= out->next_at))
            continue;
        if (!json_is_array(items) || json_array_size(items) == 0) {
            rd_fail(r, "phases[].items", "is not a list of items");
            return;
        }
        out->next_at = start;
        rd_item_price(r, json_array_get(items, 0), "phases[].items[0].price", out->next_price_id,
                      sizeof(out->next_price_id));
    }
}

enum err stripe_schedule_from_json(const json_t *j, struct schedule_record *out,
                                   struct stripe_error *se)
{
    struct rd r;
    int64_t at = -1; /* not started: its first phase is next */

    memset(out, 0, sizeof(*out));
    rd_begin(&r, "subscription schedule", j, se);
    rd_id(&r, j, "id", out->id, sizeof(out->id));
    rd_ref(&r, j, "subscription", out->subscription_id, sizeof(out->subscription_id), NULL);
    rd_id(&r, j, "status", out->status, sizeof(out->status));
    if (member(j, "current_phase"))
        rd_i64(&r, member(j, "current_phase"), "start_date", &at);
    rd_next_phase(&r, member(j, "phases"), at, out);
    return r.err;
}

enum err stripe_upcoming_from_json(const json_t *j, struct stripe_upcoming *out,
                                   struct stripe_error *se)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    rd_begin(&r, "upcoming invoice", j, se);
    rd_i64(&r, j, "amount_due", &out->amount_due);
    rd_i64(&r, j, "subtotal", &out->subtotal);
    rd_i64(&r, j, "tax", &out->tax);
    rd_i64(&r, j, "total", &out->total);
    rd_str(&r, j, "currency", out->currency, sizeof(out->currency));
    rd_str(&r, j, "billing_reason", out->billing_reason, sizeof(out->billing_reason));
    rd_i64(&r, j, "period_start", &out->period_start);
    rd_i64(&r, j, "period_end", &out->period_end);
    rd_i64(&r, j, "next_payment_attempt", &out->next_payment_attempt);
    rd_i64(&r, j, "created", &out->created);
    if (r.err == ERR_OK && !out->currency[0])
        rd_fail(&r, "currency", "is missing");
    return r.err;
}

/* The session's subscription: an id, or the whole object when it was expanded. */
static void rd_session_subscription(struct rd *r, const json_t *j,
                                    struct stripe_checkout_session *out,
                                    struct subscription *sub_out)
{
    const json_t *expanded = NULL;
    struct subscription tmp;

    rd_ref(r, j, "subscription", out->subscription, sizeof(out->subscription), &expanded);
    out->subscription_expanded = expanded != NULL;
    if (r->err != ERR_OK || !expanded)
        return;
    r->err = stripe_subscription_from_json(expanded, sub_out ? sub_out : &tmp, r->se);
}

enum err stripe_checkout_session_from_json(const json_t *j, struct stripe_checkout_session *out,
                                           struct subscription *sub_out, struct stripe_error *se)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    if (sub_out)
        memset(sub_out, 0, sizeof(*sub_out));
    rd_begin(&r, "checkout session", j, se);
    rd_id(&r, j, "id", out->id, sizeof(out->id));
    rd_str(&r, j, "url", out->url, sizeof(out->url));
    rd_str(&r, j, "mode", out->mode, sizeof(out->mode));
    rd_str(&r, j, "status", out->status, sizeof(out->status));
    rd_str(&r, j, "payment_status", out->payment_status, sizeof(out->payment_status));
    rd_ref(&r, j, "customer", out->customer, sizeof(out->customer), NULL);
    rd_str(&r, j, "client_reference_id", out->client_reference_id,
           sizeof(out->client_reference_id));
    rd_user_id(&r, j, out->user_id, sizeof(out->user_id));
    rd_i64(&r, j, "expires_at", &out->expires_at);
    rd_session_subscription(&r, j, out, sub_out);
    return r.err;
}

/* The invoice's subscription: top level (2023-08-16) or parent.subscription_details (newer). */
static void rd_invoice_subscription(struct rd *r, const json_t *j, char *dst, size_t size)
{
    const json_t *details = member(member(j, "parent"), "subscription_details");

    rd_ref(r, j, "subscription", dst, size, NULL);
    if (r->err == ERR_OK && dst[0] == '\0' && details)
        rd_ref(r, details, "subscription", dst, size, NULL);
}

enum err stripe_invoice_from_json(const json_t *j, struct stripe_invoice *out,
                                  struct stripe_error *se)
{
    struct rd r;
    struct invoice *inv = &out->invoice;

    memset(out, 0, sizeof(*out));
    rd_begin(&r, "invoice", j, se);
    rd_id(&r, j, "id", inv->id, sizeof(inv->id));
    rd_str(&r, j, "number", inv->number, sizeof(inv->number));
    rd_str(&r, j, "status", inv->status, sizeof(inv->status));
    rd_amount(&r, j, "amount_due", &inv->amount_due);
    rd_amount(&r, j, "amount_paid", &inv->amount_paid);
    rd_str(&r, j, "currency", inv->currency, sizeof(inv->currency));
    rd_i64(&r, j, "created", &inv->created);
    rd_i64(&r, j, "period_start", &inv->period_start);
    rd_i64(&r, j, "period_end", &inv->period_end);
    rd_str(&r, j, "hosted_invoice_url", inv->hosted_invoice_url, sizeof(inv->hosted_invoice_url));
    rd_str(&r, j, "invoice_pdf", inv->invoice_pdf, sizeof(inv->invoice_pdf));
    rd_invoice_subscription(&r, j, inv->subscription_id, sizeof(inv->subscription_id));
    rd_ref(&r, j, "customer", out->customer, sizeof(out->customer), NULL);
    rd_ref(&r, j, "charge", out->charge, sizeof(out->charge), NULL);
    return r.err;
}

enum err stripe_refund_from_json(const json_t *j, struct stripe_refund *out,
                                 struct stripe_error *se)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    rd_begin(&r, "refund", j, se);
    rd_id(&r, j, "id", out->id, sizeof(out->id));
    rd_ref(&r, j, "charge", out->charge, sizeof(out->charge), NULL);
    rd_i64(&r, j, "amount", &out->amount);
    rd_str(&r, j, "status", out->status, sizeof(out->status));
    return r.err;
}

enum err stripe_portal_session_from_json(const json_t *j, char *url_out, struct stripe_error *se)
{
    struct rd r;

    rd_begin(&r, "billing portal session", j, se);
    rd_id(&r, j, "url", url_out, URL_MAX);
    return r.err;
}

/* Checks a list object and hands back its data array and has_more. */
static enum err list_open(const json_t *j, const char *what, const json_t **data, bool *has_more,
                          struct stripe_error *se)
{
    struct rd r;

    rd_begin(&r, what, j, se);
    *data = member(j, "data");
    if (!json_is_array(*data))
        rd_fail(&r, "data", "is not an array");
    else if (json_array_size(*data) > STRIPE_LIST_MAX)
        rd_fail(&r, "data", "has more items than asked for");
    rd_bool(&r, j, "has_more", has_more);
    return r.err;
}

enum err stripe_customer_page_from_json(const json_t *j, struct stripe_customer_page *out,
                                        struct stripe_error *se)
{
    const json_t *data;
    enum err err;

    memset(out, 0, sizeof(*out));
    err = list_open(j, "customer list", &data, &out->has_more, se);
    if (err)
        return err;
    out->data = xcalloc(json_array_size(data) + 1, sizeof(*out->data));
    for (; out->len < json_array_size(data); out->len++) {
        err = stripe_customer_from_json(json_array_get(data, out->len), &out->data[out->len], se);
        if (err) {
            stripe_customer_page_release(out);
            return err;
        }
        str_copy(out->last_id, sizeof(out->last_id), out->data[out->len].id);
    }
    return ERR_OK;
}

enum err stripe_subscription_page_from_json(const json_t *j, struct stripe_subscription_page *out,
                                            struct stripe_error *se)
{
    const json_t *data;
    enum err err;

    memset(out, 0, sizeof(*out));
    err = list_open(j, "subscription list", &data, &out->has_more, se);
    if (err)
        return err;
    out->data = xcalloc(json_array_size(data) + 1, sizeof(*out->data));
    for (; out->len < json_array_size(data); out->len++) {
        err =
            stripe_subscription_from_json(json_array_get(data, out->len), &out->data[out->len], se);
        if (err) {
            stripe_subscription_page_release(out);
            return err;
        }
        str_copy(out->last_id, sizeof(out->last_id), out->data[out->len].id);
    }
    return ERR_OK;
}

enum err stripe_invoice_page_from_json(const json_t *j, struct stripe_invoice_page *out,
                                       struct stripe_error *se)
{
    const json_t *data;
    enum err err;

    memset(out, 0, sizeof(*out));
    err = list_open(j, "invoice list", &data, &out->has_more, se);
    if (err)
        return err;
    out->data = xcalloc(json_array_size(data) + 1, sizeof(*out->data));
    for (; out->len < json_array_size(data); out->len++) {
        err = stripe_invoice_from_json(json_array_get(data, out->len), &out->data[out->len], se);
        if (err) {
            stripe_invoice_page_release(out);
            return err;
        }
        str_copy(out->last_id, sizeof(out->last_id), out->data[out->len].invoice.id);
    }
    return ERR_OK;
}

void stripe_customer_page_release(struct stripe_customer_page *p)
{
    free(p->data);
    memset(p, 0, sizeof(*p));
}

void stripe_subscription_page_release(struct stripe_subscription_page *p)
{
    free(p->data);
    memset(p, 0, sizeof(*p));
}

void stripe_invoice_page_release(struct stripe_invoice_page *p)
{
    free(p->data);
    memset(p, 0, sizeof(*p));
}
