/*
 * ledger.c: the usage ledger, read per user (GET /access/ledger), and extra units of a quota
 * granted by a service (POST /access/quota-grants), for one window or as a balance (issue #15).
 * Every consume, track, refund and grant is an entry, written in the transaction of its change
 * (store/usage.c, store/ledger.c), so a dispute about minutes can be answered entry by entry.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "api/handlers.h"
#include "base/base.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/gate.h"
#include "billing/quota.h"
#include "billing/tiers.h"
#include "store/store.h"

#define LEDGER_PAGE_DEFAULT 50
#define LEDGER_PAGE_MAX     200
#define IDEM_KEY_MAX        255 /* bytes of an Idempotency-Key, as Stripe allows */

/* An integer query parameter in [min, max], or def when absent. */
static enum err query_int(struct request *req, const char *name, int64_t min, int64_t max,
                          int64_t def, int64_t *out)
{
    const char *v = request_query(req, name);

    *out = def;
    if (v && parse_i64(v, strlen(v), min, max, out) != ERR_OK)
        return request_fail(req, ERR_INVALID, "parameter_invalid", name,
                            "%s must be an integer from %" PRId64 " to %" PRId64, name, min, max);
    return ERR_OK;
}

static json_t *text_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

json_t *ledger_entry_json(const struct ledger_entry *e)
{
    bool bal = e->window_start == QUOTA_BALANCE;

    return json_pack(
        "{s:I, s:s, s:s, s:s, s:I, s:s, s:o, s:I, s:I, s:o, s:o, s:o, s:I, s:I}", "id",
        (json_int_t)e->id, "user_id", e->user_id, "quota", e->quota, "kind", e->kind, "amount",
        (json_int_t)e->amount, "scope", bal ? "balance" : "window", "window_start",
        bal ? json_null() : json_integer(e->window_start), "used_after", (json_int_t)e->used_after,
        "balance_change", (json_int_t)e->balance, "idempotency_key", text_or_null(e->idem_key),
        "request_id", text_or_null(e->request_id), "reason", text_or_null(e->reason), "created_at",
        (json_int_t)(e->created_ms / 1000), "created_at_ms", (json_int_t)e->created_ms);
}

/* GET /access/ledger?user_id=&quota=&limit=&before= : newest first, a page at a time. */
enum err access_ledger(struct request *req, struct response *resp)
{
    static const char *const allowed[] = { "user_id", "quota", "limit", "before", NULL };
    const struct api *api = req->app;
    struct ledger_entry *page = NULL;
    const char *user = NULL, *quota = request_query(req, "quota");
    int64_t limit = 0, before = 0;
    json_t *data;
    int n = 0;
    enum err err;

    if ((err = request_query_only(req, allowed)) ||
        (err = access_subject_of(req, request_query(req, "user_id"), &user)) ||
        (err = query_int(req, "limit", 1, LEDGER_PAGE_MAX, LEDGER_PAGE_DEFAULT, &limit)) ||
        (err = query_int(req, "before", 1, INT64_MAX, 0, &before)))
        return err;
    if (quota && tier_catalog_quota_index(api->tiers, quota) < 0)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "quota", "unknown quota '%s'",
                            quota);
    page = xcalloc((size_t)limit + 1, sizeof(*page));
    err = store_ledger_list(api->store, user, quota, before, (int)limit + 1, page, &n);
    if (err) {
        free(page);
        return request_fail(req, err, NULL, NULL, "cannot read the ledger of '%s'", user);
    }
    data = json_array();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(data, ledger_entry_json(&page[i]));
    response_json(resp, 200,
                  json_pack("{s:s, s:s, s:o, s:b, s:o}", "object", "list", "user_id", user, "data",
                            data, "has_more", n > limit, "next_before",
                            n > limit ? json_integer(page[limit - 1].id) : json_null()));
    free(page);
    return ERR_OK;
}

/* The Idempotency-Key header into key ("" when absent); 1-255 printable bytes. */
static enum err idem_key(struct request *req, char key[LEDGER_KEY_MAX])
{
    const char *k = request_header(req, "Idempotency-Key");
    bool ok = k && k[0] && strlen(k) <= IDEM_KEY_MAX;

    key[0] = '\0';
    if (!k)
        return ERR_OK;
    for (const char *p = k; ok && *p; p++)
        ok = *p >= 0x21 && *p <= 0x7e;
    if (!ok)
        return request_fail(req, ERR_INVALID, "idempotency_key_invalid", NULL,
                            "Idempotency-Key must be 1 to %d printable characters", IDEM_KEY_MAX);
    (void)str_copy(key, LEDGER_KEY_MAX, k); /* checked: fits */
    return ERR_OK;
}

/* The checked body of POST /access/quota-grants into e (window_start still to set). */
static enum err quota_grant_input(struct request *req, struct ledger_entry *e, bool *balance,
                                  const char **user)
{
    static const char *const fields[] = { "user_id", "quota", "units", "scope", "reason", NULL };
    const struct api *api = req->app;
    const char *named = NULL, *quota = NULL, *scope = NULL, *reason = NULL;
    enum err err;

    if ((err = request_json_only(req, fields)) ||
        (err = request_json_string(req, "user_id", true, &named)) ||
        (err = access_subject_of(req, named, user)) ||
        (err = request_json_string(req, "quota", true, &quota)) ||
        (err = request_json_int(req, "units", true, 1, GATE_AMOUNT_MAX, &e->amount)) ||
        (err = request_json_string(req, "scope", true, &scope)) ||
        (err = request_json_string(req, "reason", false, &reason)))
        return err;
    if (tier_catalog_quota_index(api->tiers, quota) < 0)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "quota", "unknown quota '%s'",
                            quota);
    if (strcmp(scope, "window") != 0 && strcmp(scope, "balance") != 0)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "scope",
                            "scope must be 'window' (this window only) or 'balance' (kept "
                            "until used, drawn on once a window's allowance is spent)");
    if (reason && !str_copy(e->reason, sizeof(e->reason), reason))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "reason",
                            "reason must be at most %d bytes", GRANT_REASON_MAX - 1);
    *balance = scope[0] == 'b';
    (void)str_copy(e->user_id, sizeof(e->user_id), *user); /* checked: < USER_ID_MAX */
    (void)str_copy(e->quota, sizeof(e->quota), quota);     /* a catalogue id: fits */
    (void)str_copy(e->kind, sizeof(e->kind), "grant");
    return idem_key(req, e->idem_key);
}

/* The answer: the grant's entry, and the quota's state after it. */
static void quota_grant_reply(struct response *resp, const struct ledger_entry *e,
                              const struct tier_quota *q, const struct gate_quota_state *s)
{
    json_t *body = ledger_entry_json(e);

    json_object_set_new(body, "object", json_string("quota_grant"));
    json_object_set_new(body, "usage",
                        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "quota", q->id,
                                  "used", (json_int_t)s->used, "limit", (json_int_t)s->limit,
                                  "extra", (json_int_t)s->extra, "balance", (json_int_t)s->balance,
                                  "remaining", (json_int_t)s->remaining, "window_start",
                                  (json_int_t)s->window_start, "resets_at",
                                  (json_int_t)s->resets_at));
    response_json(resp, 200, body);
}

/* POST /access/quota-grants: extra units of a quota for the user's current window, or a balance. */
enum err access_quota_grant(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    struct gate_quota_state states[TIER_QUOTA_MAX] = { 0 };
    struct ledger_entry e = { .created_ms = clock_now_ms() }, got;
    struct quota_extra after;
    const struct tier *t = NULL;
    const char *user = NULL;
    int64_t now = clock_now();
    bool balance = false, replayed = false;
    int q;
    enum err err;

    e.request_id[0] = '\0';
    if ((err = quota_grant_input(req, &e, &balance, &user)) ||
        (err = access_state_of(req, user, now, &user, &t, states)))
        return err;
    (void)str_copy(e.request_id, sizeof(e.request_id), req->id); /* same size */
    q = tier_catalog_quota_index(api->tiers, e.quota);
    if (t->limits[q] < 0)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "quota",
                            "quota '%s' is unlimited in tier '%s': extra units would change "
                            "nothing",
                            e.quota, t->id);
    e.window_start = balance ? QUOTA_BALANCE : states[q].window_start;
    err = store_quota_grant(api->store, &(struct quota_grant_in){ &e, t->limits[q] }, &got, &after,
                            &replayed);
    if (err == ERR_CONFLICT)
        return request_fail(req, err, "idempotency_key_reused", NULL,
                            "Idempotency-Key '%s' was used for another grant", e.idem_key);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot store the grant");
    if (replayed && !response_add_header(resp, "Idempotent-Replayed", "true"))
        log_warn("cannot add the Idempotent-Replayed header");
    if (!replayed)
        log_info("granted %" PRId64 " '%s' units to user '%s' (%s, ledger entry %" PRId64 ")",
                 got.amount, got.quota, got.user_id, balance ? "balance" : "this window", got.id);
    if ((err = access_state_of(req, user, now, &user, &t, states)))
        return err;
    quota_grant_reply(resp, &got, &api->tiers->quotas[q], &states[q]);
    return ERR_OK;
}
