/*
 * store.c: opens the backend that DATABASE_URL names, the record layouts every backend binds
 * and reads by, and the argument checks the wrappers (rows.c, apply.c, usage.c, migrate.c) make
 * once for every backend.
 */
#include "store/store.h"

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "billing/status.h"
#include "metrics/metrics.h"
#include "store/backend.h"
#include "store/entcache.h"

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
#define STATUS(rec, f, req) { #f, FIELD_SUB_STATUS, offsetof(struct rec, f), 0, req }
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
    STATUS(subscription, status, true),
    I64(subscription, current_period_start),
    I64(subscription, current_period_end),
    BOOL(subscription, cancel_at_period_end),
    I64(subscription, cancel_at),
    I64(subscription, canceled_at),
    I64(subscription, trial_end),
    I64(subscription, past_due_since),
    I64(subscription, stripe_updated),
    I64(subscription, created),
    TEXT(subscription, schedule_id, false),
    TEXT(subscription, pending_price_id, false),
    I64(subscription, pending_expires_at),
    TEXT(subscription, latest_invoice, false),
};

static const struct store_field grant_fields[] = {
    TEXT(grant_record, id, true),
    TEXT(grant_record, user_id, true),
    TEXT(grant_record, tier, true),
    I64(grant_record, starts_at),
    I64(grant_record, ends_at),
    TEXT(grant_record, reason, false),
    I64(grant_record, created_at),
    I64(grant_record, revoked_at),
    I64(grant_record, announced_at),
};

static const struct store_field schedule_fields[] = {
    TEXT(schedule_record, id, true),
    TEXT(schedule_record, subscription_id, false),
    TEXT(schedule_record, status, true),
    TEXT(schedule_record, next_price_id, false),
    I64(schedule_record, next_at),
    I64(schedule_record, stripe_updated),
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

static const struct store_field outcome_fields[] = {
    BOOL(usage_outcome, granted),
    I64(usage_outcome, used),
    { "quota_limit", FIELD_I64, offsetof(struct usage_outcome, limit), 0, false },
    I64(usage_outcome, remaining),
    I64(usage_outcome, window_start),
    I64(usage_outcome, resets_at),
    TEXT(usage_outcome, tier, false),
    I64(usage_outcome, extra),
    I64(usage_outcome, balance),
};

static const struct store_field checkout_fields[] = {
    TEXT(checkout_record, id, true),
    TEXT(checkout_record, user_id, true),
    TEXT(checkout_record, fingerprint, true),
    TEXT(checkout_record, idem_key, true),
    TEXT(checkout_record, url, false),
    I64(checkout_record, trial_days),
    TEXT(checkout_record, status, true),
    I64(checkout_record, created),
    I64(checkout_record, expires_at),
};

static const struct store_field duplicate_fields[] = {
    TEXT(duplicate_record, id, true),
    TEXT(duplicate_record, user_id, true),
    TEXT(duplicate_record, kept_id, true),
    TEXT(duplicate_record, status, true),
    I64(duplicate_record, refunded),
    INT(duplicate_record, attempts),
    TEXT(duplicate_record, last_error, false),
    I64(duplicate_record, detected_at),
    I64(duplicate_record, resolved_at),
};

static const struct store_field outbox_fields[] = {
    TEXT(outbox_event, id, true),
    TEXT(outbox_event, type, true),
    TEXT(outbox_event, payload, true),
    I64(outbox_event, created_at),
    I64(outbox_event, next_attempt_at),
    INT(outbox_event, attempts),
    TEXT(outbox_event, status, true),
    TEXT(outbox_event, last_error, false),
    I64(outbox_event, delivered_at),
    TEXT(outbox_event, claimed_by, false),
    I64(outbox_event, claim_until),
    TEXT(outbox_event, dedupe_key, true),
};

static const struct store_field ledger_fields[] = {
    TEXT(ledger_entry, user_id, true),
    TEXT(ledger_entry, quota, true),
    TEXT(ledger_entry, kind, true),
    I64(ledger_entry, amount),
    I64(ledger_entry, window_start),
    I64(ledger_entry, used_after),
    I64(ledger_entry, balance),
    TEXT(ledger_entry, idem_key, false),
    TEXT(ledger_entry, request_id, false),
    TEXT(ledger_entry, reason, false),
    I64(ledger_entry, created_ms),
    I64(ledger_entry, id),
};

static const struct store_field extra_fields[] = {
    TEXT(quota_extra, user_id, true),
    TEXT(quota_extra, quota, true),
    I64(quota_extra, window_start),
    I64(quota_extra, units),
    I64(quota_extra, taken),
};

static const struct store_field usage_row_fields[] = {
    TEXT(usage_row, quota, true),
    I64(usage_row, window_start),
    I64(usage_row, used),
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
const struct store_record store_outcome_record =
    RECORD("usage outcome", usage_outcome, outcome_fields);
const struct store_record store_checkout_record =
    RECORD("checkout session", checkout_record, checkout_fields);
const struct store_record store_duplicate_record =
    RECORD("duplicate subscription", duplicate_record, duplicate_fields);
const struct store_record store_outbox_record = RECORD("outbox event", outbox_event, outbox_fields);
const struct store_record store_schedule_record =
    RECORD("subscription schedule", schedule_record, schedule_fields);
const struct store_record store_grant_record = RECORD("grant", grant_record, grant_fields);
const struct store_record store_ledger_record = RECORD("ledger entry", ledger_entry, ledger_fields);
const struct store_record store_extra_record = RECORD("quota extra", quota_extra, extra_fields);
const struct store_record store_usage_row_record =
    RECORD("usage counter", usage_row, usage_row_fields);

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
        if (b->open) {
            enum err err = b->open(url + strlen(b->prefix), pool_size, out, errbuf, errlen);
            if (err == ERR_OK) {
                (*out)->group = store_group_new();
                (*out)->grants = store_grants_new();
                store_maint_start(*out);
            }
            return err;
        }
        store_errf(errbuf, errlen, "cannot open database '%s...': %s", b->prefix, b->unavailable);
        return ERR_UNAVAILABLE;
    }
    store_errf(errbuf, errlen,
               "cannot open database: unsupported scheme '%.*s' (want sqlite:PATH or "
               "postgres://...)",
               scheme_len(url), url);
    return ERR_INVALID;
}

void store_cache_start(struct store *st, const struct store_cache_params *p)
{
    assert(!st->cache);
    if (!p->users)
        return;
    st->cache = entcache_new(p->users, p->ttl_ms);
    st->usage_cache = entcache_new(p->users, p->ttl_ms);
    if (p->listen)
        st->watch = st->ops->watch_start(st, st->cache, st->usage_cache);
}

void store_cache_forget(struct store *st, const char *user_id)
{
    if (st->cache && user_id[0])
        entcache_invalidate(st->cache, user_id);
}

void store_usage_forget(struct store *st, const char *user_id)
{
    if (st->usage_cache && user_id[0])
        entcache_invalidate(st->usage_cache, user_id);
}

void store_cache_clear(struct store *st)
{
    if (st->cache)
        entcache_clear(st->cache);
}

void store_close(struct store *st)
{
    if (!st)
        return;
    store_maint_stop(st);
    st->ops->watch_stop(st->watch); /* before the cache it tells goes */
    entcache_free(st->cache);
    entcache_free(st->usage_cache);
    store_group_free(st->group);
    store_grants_free(st->grants);
    st->ops->close(st);
}

const char *store_backend_name(const struct store *st)
{
    return st->ops->name;
}

void store_note_write(struct store *st, enum store_run_kind kind, enum err err)
{
    if (err == ERR_STORE || err == ERR_UNAVAILABLE)
        metrics_storage_error();
    if (kind == STORE_RUN_READ || (err != ERR_OK && err != ERR_UNAVAILABLE))
        return; /* a read, or the request's own fault (a conflict, a refusal): says nothing */
    __atomic_store_n(&st->write_failing, err == ERR_UNAVAILABLE, __ATOMIC_RELAXED);
}

enum err store_run_msg(struct store *st, enum store_run_kind kind, store_tx_fn fn, void *arg,
                       char *errbuf, size_t errlen)
{
    enum err err = store_group_run(st, kind, fn, arg, errbuf, errlen);

    store_note_write(st, kind, err);
    return err;
}

enum err store_run(struct store *st, enum store_run_kind kind, store_tx_fn fn, void *arg)
{
    return store_run_msg(st, kind, fn, arg, NULL, 0);
}

struct health_arg {
    const struct store_ops *ops;
    int64_t now;
};

static enum err health_tx(struct store_tx *tx, void *arg)
{
    struct health_arg *a = arg;

    return a->ops->health_touch(tx, a->now);
}

enum err store_writable(struct store *st, int64_t now)
{
    struct health_arg a = { st->ops, now };

    if (!__atomic_load_n(&st->write_failing, __ATOMIC_RELAXED))
        return ERR_OK;
    return store_run(st, STORE_RUN_SINGLE, health_tx, &a); /* clears the flag when it works */
}

bool store_arg_ok(const char *s, size_t size)
{
    return s && s[0] != '\0' && strnlen(s, size) < size;
}

static bool field_ok(const struct store_field *f, const char *p, bool required)
{
    enum sub_status st;

    switch (f->kind) {
    case FIELD_TEXT:
        return memchr(p, '\0', f->size) != NULL && !(required && f->required && p[0] == '\0');
    case FIELD_SUB_STATUS:
        memcpy(&st, p, sizeof(st));
        return !(required && f->required && st == SUB_STATUS_MISSING);
    case FIELD_I64:
    case FIELD_INT:
    case FIELD_BOOL:
        break;
    }
    return true;
}

bool store_record_check(const struct store_record *r, const void *rec, bool required)
{
    for (size_t i = 0; i < r->count; i++) {
        const struct store_field *f = &r->fields[i];
        if (!field_ok(f, (const char *)rec + f->off, required))
            return false;
    }
    return true;
}

struct store_value store_field_value(const struct store_field *f, const void *rec)
{
    const char *p = (const char *)rec + f->off;
    struct store_value v = { false, NULL, 0 };
    enum sub_status st;
    int i;
    bool b;

    switch (f->kind) {
    case FIELD_TEXT:
        v.is_text = true;
        v.text = p;
        break;
    case FIELD_SUB_STATUS:
        memcpy(&st, p, sizeof(st));
        v.is_text = true;
        v.text = sub_status_name(st);
        break;
    case FIELD_I64:
        memcpy(&v.i64, p, sizeof(v.i64));
        break;
    case FIELD_INT:
        memcpy(&i, p, sizeof(i));
        v.i64 = i;
        break;
    case FIELD_BOOL:
        memcpy(&b, p, sizeof(b));
        v.i64 = b;
        break;
    }
    return v;
}

void store_field_from_i64(const struct store_field *f, void *rec, int64_t v)
{
    char *p = (char *)rec + f->off;
    int i = v < INT_MIN ? INT_MIN : v > INT_MAX ? INT_MAX : (int)v;
    bool b = v != 0;

    if (f->kind == FIELD_I64)
        memcpy(p, &v, sizeof(v));
    else if (f->kind == FIELD_INT)
        memcpy(p, &i, sizeof(i));
    else if (f->kind == FIELD_BOOL)
        memcpy(p, &b, sizeof(b));
}

bool store_field_from_text(const struct store_field *f, void *rec, const char *text)
{
    char *p = (char *)rec + f->off;
    const char *t = text ? text : "";
    enum sub_status st;
    int64_t v = 0;
    bool ok = true;

    switch (f->kind) {
    case FIELD_TEXT:
        return str_copy(p, f->size, t);
    case FIELD_SUB_STATUS:
        st = sub_status_parse(t);
        memcpy(p, &st, sizeof(st));
        return true;
    case FIELD_BOOL:
        v = t[0] == 't' || t[0] == '1';
        break;
    case FIELD_I64:
    case FIELD_INT:
        ok = !t[0] || parse_i64(t, strlen(t), INT64_MIN, INT64_MAX, &v) == ERR_OK;
        v = ok ? v : 0;
        break;
    }
    store_field_from_i64(f, rec, v);
    return ok;
}
