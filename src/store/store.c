/*
 * store.c: opens the backend that DATABASE_URL names, and the wrappers callers use: they
 * validate arguments once for every backend, then call the backend's ops.
 */
#include "store/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "store/backend.h"

struct backend_scheme {
    const char *prefix;      /* matched at the start of the URL */
    store_open_fn open;      /* NULL: known, but not built */
    const char *unavailable; /* why, when open is NULL */
};

static const struct backend_scheme schemes[] = {
    { "sqlite:", sqlite_store_open, NULL },
    { "postgres://", pg_store_open, NULL },
    { "postgresql://", pg_store_open, NULL },
};

/*
 * The record layouts, one field per line. clang-format is off for them because version 14
 * spreads a braced macro body over five lines and packs these rows several to a line.
 */
/* clang-format off */
#define SIZE(rec, f)      sizeof(((struct rec *)0)->f)
#define TEXT(rec, f, req) { #f, FIELD_TEXT, offsetof(struct rec, f), SIZE(rec, f), req }
#define I64(rec, f)       { #f, FIELD_I64, offsetof(struct rec, f), 0, false }
#define INT(rec, f)       { #f, FIELD_INT, offsetof(struct rec, f), 0, false }
#define BOOL(rec, f)      { #f, FIELD_BOOL, offsetof(struct rec, f), 0, false }
#define RECORD(name, rec, fields) { name, sizeof(struct rec), fields, ARRAY_SIZE(fields) }

static const struct store_field customer_fields[] = {
    TEXT(customer, user_id, true),
    TEXT(customer, stripe_customer_id, true),
    TEXT(customer, email, false),
    BOOL(customer, had_trial),
    I64(customer, created),
};

static const struct store_field subscription_fields[] = {
    TEXT(subscription, id, true),
    TEXT(subscription, user_id, true),
    TEXT(subscription, stripe_customer_id, false),
    TEXT(subscription, tier, false),
    TEXT(subscription, price_id, false),
    TEXT(subscription, status, true),
    I64(subscription, current_period_start),
    I64(subscription, current_period_end),
    BOOL(subscription, cancel_at_period_end),
    I64(subscription, cancel_at),
    I64(subscription, canceled_at),
    I64(subscription, trial_end),
    I64(subscription, past_due_since),
    I64(subscription, stripe_updated),
};

static const struct store_field invoice_fields[] = {
    TEXT(invoice, id, true),
    TEXT(invoice, user_id, true),
    TEXT(invoice, subscription_id, false),
    TEXT(invoice, number, false),
    TEXT(invoice, status, false),
    I64(invoice, amount_due),
    I64(invoice, amount_paid),
    TEXT(invoice, currency, false),
    I64(invoice, created),
    I64(invoice, period_start),
    I64(invoice, period_end),
    TEXT(invoice, hosted_invoice_url, false),
    TEXT(invoice, invoice_pdf, false),
};

static const struct store_field event_fields[] = {
    TEXT(webhook_event, id, true),
    TEXT(webhook_event, type, true),
    I64(webhook_event, created),
    TEXT(webhook_event, status, true),
    INT(webhook_event, attempts),
    TEXT(webhook_event, last_error, false),
    I64(webhook_event, received_at),
    I64(webhook_event, applied_at),
};
/* clang-format on */

const struct store_record store_customer_record = RECORD("customer", customer, customer_fields);
const struct store_record store_subscription_record =
    RECORD("subscription", subscription, subscription_fields);
const struct store_record store_invoice_record = RECORD("invoice", invoice, invoice_fields);
const struct store_record store_event_record = RECORD("webhook event", webhook_event, event_fields);

void store_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!errbuf || errlen == 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(errbuf, errlen, fmt, ap); /* a cut message is still a message */
    va_end(ap);
}

/* The URL's scheme, for messages: never the rest, which may hold a password. */
static int scheme_len(const char *url)
{
    const char *colon = strchr(url, ':');

    return colon ? (int)(colon - url) : (int)strlen(url);
}

enum err store_open(const char *url, int pool_size, struct store **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
        const struct backend_scheme *b = &schemes[i];
        if (!str_has_prefix(url, b->prefix))
            continue;
        if (b->open)
            return b->open(url + strlen(b->prefix), pool_size, out, errbuf, errlen);
        store_errf(errbuf, errlen, "cannot open database '%s...': %s", b->prefix, b->unavailable);
        return ERR_UNAVAILABLE;
    }
    store_errf(errbuf, errlen,
               "cannot open database: unsupported scheme '%.*s' (want sqlite:PATH or "
               "postgres://...)",
               scheme_len(url), url);
    return ERR_INVALID;
}

void store_close(struct store *st)
{
    if (st)
        st->ops->close(st);
}

const char *store_backend_name(const struct store *st)
{
    return st->ops->name;
}

enum err store_migrate(struct store *st, int *applied, char *errbuf, size_t errlen)
{
    *applied = 0;
    return st->ops->migrate(st, applied, errbuf, errlen);
}

enum err store_schema_version(struct store *st, int *version)
{
    return st->ops->schema_version(st, version);
}

int store_schema_version_latest(const struct store *st)
{
    return st->ops->schema_version_latest(st);
}

enum err store_ping(struct store *st)
{
    return st->ops->ping(st);
}

/* A string argument that must be non-empty and fit a field of size bytes. */
static bool arg_ok(const char *s, size_t size)
{
    return s && s[0] != '\0' && strnlen(s, size) < size;
}

/* Every text field terminated inside its array, and (when asked) the required ones non-empty. */
static bool record_check(const struct store_record *r, const void *rec, bool required)
{
    for (size_t i = 0; i < r->count; i++) {
        const struct store_field *f = &r->fields[i];
        const char *text = (const char *)rec + f->off;
        if (f->kind != FIELD_TEXT)
            continue;
        if (!memchr(text, '\0', f->size) || (required && f->required && text[0] == '\0'))
            return false;
    }
    return true;
}

static bool record_ok(const struct store_record *r, const void *rec)
{
    return record_check(r, rec, true);
}

enum err store_customer_get(struct store *st, const char *user_id, struct customer *out)
{
    if (!arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    return st->ops->customer_get(st, user_id, out);
}

enum err store_customer_get_by_stripe_id(struct store *st, const char *stripe_customer_id,
                                         struct customer *out)
{
    if (!arg_ok(stripe_customer_id, STRIPE_ID_MAX))
        return ERR_INVALID;
    return st->ops->customer_get_by_stripe_id(st, stripe_customer_id, out);
}

enum err store_customer_insert(struct store *st, const struct customer *c)
{
    if (!record_ok(&store_customer_record, c))
        return ERR_INVALID;
    return st->ops->customer_insert(st, c);
}

enum err store_customer_mark_trial(struct store *st, const char *user_id)
{
    if (!arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    return st->ops->customer_mark_trial(st, user_id);
}

enum err store_subscription_upsert(struct store *st, const struct subscription *s)
{
    if (!record_ok(&store_subscription_record, s))
        return ERR_INVALID;
    return st->ops->subscription_upsert(st, s, clock_now());
}

enum err store_subscription_apply(struct store *st, const struct subscription *s, bool *applied)
{
    *applied = false;
    if (!record_ok(&store_subscription_record, s))
        return ERR_INVALID;
    return st->ops->subscription_apply(st, s, clock_now(), applied);
}

enum err store_subscription_get(struct store *st, const char *id, struct subscription *out)
{
    if (!arg_ok(id, STRIPE_ID_MAX))
        return ERR_INVALID;
    return st->ops->subscription_get(st, id, out);
}

enum err store_subscription_get_for_user(struct store *st, const char *user_id,
                                         struct subscription *out)
{
    if (!arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    return st->ops->subscription_get_for_user(st, user_id, out);
}

enum err store_invoice_upsert(struct store *st, const struct invoice *inv)
{
    if (!record_ok(&store_invoice_record, inv))
        return ERR_INVALID;
    return st->ops->invoice_upsert(st, inv);
}

enum err store_invoice_list(struct store *st, const char *user_id, int max, struct invoice *out,
                            int *n)
{
    *n = 0;
    if (!arg_ok(user_id, USER_ID_MAX) || max < 0 || (max > 0 && !out))
        return ERR_INVALID;
    if (max == 0)
        return ERR_OK;
    return st->ops->invoice_list(st, user_id, max, out, n);
}

enum err store_usage_get(struct store *st, const char *user_id, const char *quota,
                         int64_t window_start, int64_t *used)
{
    *used = 0;
    if (!arg_ok(user_id, USER_ID_MAX) || !arg_ok(quota, QUOTA_ID_MAX))
        return ERR_INVALID;
    return st->ops->usage_get(st, user_id, quota, window_start, used);
}

enum err store_usage_consume(struct store *st, const struct usage_grant *g, bool *granted,
                             int64_t *used_after)
{
    *granted = false;
    *used_after = 0;
    if (!arg_ok(g->user_id, USER_ID_MAX) || !arg_ok(g->quota, QUOTA_ID_MAX) || g->n <= 0)
        return ERR_INVALID;
    return st->ops->usage_consume(st, g, granted, used_after);
}

enum err store_event_get(struct store *st, const char *id, struct webhook_event *out)
{
    if (!arg_ok(id, STRIPE_ID_MAX))
        return ERR_INVALID;
    return st->ops->event_get(st, id, out);
}

/* A fixed-size string field: terminated inside its array (it may be empty). */
#define FITS(arr) (memchr((arr), '\0', sizeof(arr)) != NULL)

/* The event names itself (id, type) and carries its raw body: enough to record it. */
static bool event_envelope_ok(const struct store_event_in *in)
{
    const struct billing_event *ev = in->ev;

    return ev && in->raw && arg_ok(ev->id, sizeof(ev->id)) && arg_ok(ev->type, sizeof(ev->type));
}

/*
 * Enough to apply it too: every string fits its field. The user ids may still be "" (the
 * backend resolves them through the customer); the rest is checked as store_*_upsert would.
 */
static bool event_in_ok(const struct store_event_in *in)
{
    const struct billing_event *ev = in->ev;

    if (!event_envelope_ok(in))
        return false;
    if (!FITS(ev->customer_id) || !FITS(ev->user_id) || !FITS(ev->session_subscription))
        return false;
    if (ev->has_sub && (!record_check(&store_subscription_record, &ev->sub, false) ||
                        !arg_ok(ev->sub.id, sizeof(ev->sub.id))))
        return false;
    if (ev->kind == EVENT_INVOICE && (!record_check(&store_invoice_record, &ev->invoice, false) ||
                                      !arg_ok(ev->invoice.id, sizeof(ev->invoice.id))))
        return false;
    return true;
}

enum err store_event_record_apply(struct store *st, const struct store_event_in *in,
                                  enum store_event_result *result, char *errbuf, size_t errlen)
{
    char why[sizeof(((struct webhook_event *)0)->last_error)] = "";
    int64_t now = clock_now();
    enum err err;

    *result = STORE_EVENT_DUPLICATE;
    store_errf(errbuf, errlen, "%s", "");
    if (!event_in_ok(in)) {
        store_errf(errbuf, errlen, "event: a field is missing or too long");
        return ERR_INVALID;
    }
    err = st->ops->event_record_apply(st, in, now, result, why, sizeof(why));
    if (!err)
        return ERR_OK;
    if (!why[0])
        (void)str_copy(why, sizeof(why), err_name(err)); /* fits */
    store_errf(errbuf, errlen, "%s", why);
    if (st->ops->event_record_failed(st, in, now, why) != ERR_OK)
        log_error("cannot record event '%s' as failed", in->ev->id);
    return err;
}

enum err store_event_record_failed(struct store *st, const struct store_event_in *in,
                                   const char *why)
{
    if (!event_envelope_ok(in) || !why)
        return ERR_INVALID;
    return st->ops->event_record_failed(st, in, clock_now(), why);
}

enum err store_event_list(struct store *st, bool failed_only, int max, struct webhook_event *out,
                          int *n)
{
    *n = 0;
    if (max < 0 || (max > 0 && !out))
        return ERR_INVALID;
    if (max == 0)
        return ERR_OK;
    return st->ops->event_list(st, failed_only, max, out, n);
}

enum err store_event_get_raw(struct store *st, const char *id, struct webhook_event *out,
                             char **raw, size_t *raw_len)
{
    *raw = NULL;
    *raw_len = 0;
    if (!arg_ok(id, STRIPE_ID_MAX))
        return ERR_INVALID;
    return st->ops->event_get_raw(st, id, out, raw, raw_len);
}

#define IDEMPOTENCY_KEY_MAX 512 /* bytes of a scoped key, terminator included */

enum err store_usage_consume_once(struct store *st, const struct usage_grant *g,
                                  const struct store_idempotency *k, store_reply_fn render,
                                  void *ctx, struct store_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (!arg_ok(g->user_id, USER_ID_MAX) || !arg_ok(g->quota, QUOTA_ID_MAX) || g->n <= 0 ||
        !render || !arg_ok(k->key, IDEMPOTENCY_KEY_MAX) || !arg_ok(k->scope, QUOTA_ID_MAX) ||
        !arg_ok(k->request_hash, IDEMPOTENCY_KEY_MAX))
        return ERR_INVALID;
    return st->ops->usage_consume_once(st, g, k, render, ctx, out);
}
