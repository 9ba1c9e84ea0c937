/*
 * access.c: access and metering (SPEC §3 GET /usage and §4): usage, check, consume, track and
 * the nginx auth_request gate. The rules are billing/gate.h; this file reads the clock and the
 * store and renders the answers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/grants.h"
#include "api/handlers.h"
#include "base/clock.h"
#include "base/hmac.h"
#include "base/log.h"
#include "base/str.h"
#include "billing/entitlement.h"
#include "billing/gate.h"
#include "billing/records.h"
#include "billing/tiers.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "store/store.h"

#define DAY_S           INT64_C(86400)
#define IDEM_HEADER_MAX 255 /* bytes of an Idempotency-Key, as Stripe allows */
#define HEADER_NUM_MAX  24

/* Caller, user and effective tier */

/* A service names the user; a user token may only ask about itself. */
static bool caller_is_service(const struct request *req)
{
    return req->user[0] == '\0';
}

static enum err user_id_check(struct request *req, const char *user)
{
    if (!user || !user[0] || strlen(user) >= USER_ID_MAX)
        return request_fail(req, ERR_INVALID, user ? "parameter_invalid" : "parameter_missing",
                            "user_id", "user_id must be a non-empty string of at most %d bytes",
                            USER_ID_MAX - 1);
    return ERR_OK;
}

/* The user a check is about: the named one for a service, the token's own for a user. */
static enum err subject_of(struct request *req, const char *named, const char **out)
{
    if (caller_is_service(req)) {
        *out = named;
        return user_id_check(req, named);
    }
    if (named && strcmp(named, req->user) != 0)
        return request_fail(req, ERR_FORBIDDEN, "forbidden", "user_id",
                            "a user token may only ask about its own user");
    *out = req->user;
    return ERR_OK;
}

static enum err service_only(struct request *req)
{
    if (!caller_is_service(req))
        return request_fail(req, ERR_FORBIDDEN, "service_key_required", NULL,
                            "a service key is needed here: users cannot change usage");
    return ERR_OK;
}

/*
 * The user's effective tier at now (SPEC §4): the subscribed one while it grants, else free;
 * and *period, the current period of the subscription while it grants (zero: none), which
 * billing period quotas follow.
 */
/* Raises *out to the best grant of user in force at now (grants.h). */
static enum err granted_tier(struct request *req, const char *user, int64_t now,
                             const struct tier **out)
{
    struct grant_record g;
    bool granted = false;
    enum err err = grants_effective_tier(req->app, user, now, out, &g, &granted);

    return err ? request_fail(req, err, NULL, NULL, "cannot read the grants") : ERR_OK;
}

static enum err tier_of_user(struct request *req, const char *user, int64_t now,
                             const struct tier **out, struct quota_period *period)
{
    const struct api *api = req->app;
    struct subscription sub;
    struct entitlement e;
    enum err err = store_subscription_get_for_user(api->store, user, &sub);

    *out = tier_catalog_default(api->tiers);
    *period = (struct quota_period){ 0 };
    if (err == ERR_NOT_FOUND)
        return granted_tier(req, user, now, out);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the subscription");
    e = entitlement_of(&sub, now, api->cfg->past_due_grace_days * DAY_S);
    if (e.grants)
        *period = (struct quota_period){ sub.current_period_start, sub.current_period_end };
    if (e.grants && tier_catalog_find(api->tiers, sub.tier))
        *out = tier_catalog_find(api->tiers, sub.tier);
    else if (e.grants)
        log_warn("subscription '%s' has tier '%s', not in the catalogue: treated as free", sub.id,
                 sub.tier);
    return granted_tier(req, user, now, out);
}

/* Quota state */

/* A limit or what remains of it: a number, or null for unlimited. */
static void jw_limit(struct jw *w, const char *key, int64_t v)
{
    if (v < 0)
        jw_null(w, key);
    else
        jw_i64(w, key, v);
}

/* The members of a quota's state, in the order every answer shows them. */
static void quota_members(struct jw *w, const struct tier_quota *q,
                          const struct gate_quota_state *s)
{
    jw_i64(w, "used", s->used);
    jw_limit(w, "limit", s->limit);
    if (s->extra || s->balance) { /* only with units granted (issue #15) */
        jw_i64(w, "extra", s->extra);
        jw_i64(w, "balance", s->balance);
    }
    jw_limit(w, "remaining", s->remaining);
    jw_str(w, "window", quota_window_name(q->window));
    if (s->counted != q->window)
        jw_str(w, "window_fallback", quota_window_name(s->counted));
    jw_i64(w, "window_start", s->window_start);
    jw_i64(w, "resets_at", s->resets_at);
}

/* "quotas": {id: state, ...} for every quota of the catalogue. */
static void quotas_member(struct jw *w, const struct tier_catalog *cat,
                          const struct gate_quota_state *states)
{
    jw_object(w, "quotas");
    for (size_t i = 0; i < cat->quota_count; i++) {
        jw_object(w, cat->quotas[i].id);
        quota_members(w, &cat->quotas[i], &states[i]);
        jw_end(w);
    }
    jw_end(w);
}

/* The state of every quota of the catalogue for user in the windows holding now: one read. */
static enum err quota_states(struct request *req, const char *user, const struct tier *t,
                             struct quota_period period, int64_t now, struct gate_quota_state *out)
{
    const struct api *api = req->app;
    const struct tier_catalog *cat = api->tiers;
    const char *ids[TIER_QUOTA_MAX];
    int64_t starts[TIER_QUOTA_MAX];
    struct usage_read got[TIER_QUOTA_MAX];
    enum err err;

    for (size_t i = 0; i < cat->quota_count; i++) {
        ids[i] = cat->quotas[i].id;
        starts[i] = quota_span_of(cat->quotas[i].window, period, now).start;
    }
    err = store_usage_read_many(api->store, user, cat->quota_count, ids, starts, got);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot read the usage of '%s'", user);
    for (size_t i = 0; i < cat->quota_count; i++) {
        out[i] = gate_quota_state_of(cat->quotas[i].window, period, t->limits[i], got[i].used, now);
        if (t->limits[i] >= 0)
            gate_quota_state_extra(&out[i], got[i].extra, got[i].balance);
    }
    return ERR_OK;
}

/* GET /usage */

/* The original app's fields for one quota: NAME_used/NAME_limit and its can_ flag. */
struct legacy_quota {
    const char *quota;
    const char *used_key;
    const char *limit_key;
    const char *resets_key;
    const char *can_key;
};

static const struct legacy_quota legacy[] = {
    { "ai_minutes", "ai_minutes_used", "ai_minutes_limit", "ai_minutes_resets_at", "can_use_ai" },
    { "scenarios", "scenarios_completed", "scenarios_limit", "scenarios_resets_at",
      "can_start_scenario" },
};

static void legacy_set(struct jw *w, const struct legacy_quota *l, const struct gate_quota_state *s)
{
    jw_bool(w, l->can_key, s ? s->remaining != 0 : true);
    if (!s) {
        jw_null(w, l->used_key);
        jw_null(w, l->limit_key);
        jw_null(w, l->resets_key);
        return;
    }
    jw_i64(w, l->used_key, s->used);
    jw_limit(w, l->limit_key, s->limit);
    jw_i64(w, l->resets_key, s->resets_at);
}

static void legacy_fill(struct jw *w, const struct tier_catalog *cat,
                        const struct gate_quota_state *states)
{
    for (size_t i = 0; i < ARRAY_SIZE(legacy); i++) {
        int q = tier_catalog_quota_index(cat, legacy[i].quota);
        legacy_set(w, &legacy[i], q < 0 ? NULL : &states[q]);
    }
}

enum err access_usage(struct request *req, struct response *resp)
{
    static const char *const none[] = { NULL };
    const struct api *api = req->app;
    struct gate_quota_state states[TIER_QUOTA_MAX] = { 0 };
    const struct tier *t = NULL;
    struct quota_period period;
    int64_t now = clock_now();
    struct jw w;
    enum err err;

    if ((err = request_query_only(req, none)) ||
        (err = tier_of_user(req, req->user, now, &t, &period)) ||
        (err = quota_states(req, req->user, t, period, now, states)))
        return err;
    jw_begin(&w);
    jw_str(&w, "tier", t->id);
    quotas_member(&w, api->tiers, states);
    legacy_fill(&w, api->tiers, states);
    response_jw(resp, 200, &w);
    return ERR_OK;
}

/* GET /access/check */

enum err access_check(struct request *req, struct response *resp)
{
    static const char *const allowed[] = { "feature", "user_id", NULL };
    const struct api *api = req->app;
    const char *feature = request_query(req, "feature");
    const char *user = NULL;
    const struct tier *t = NULL;
    struct quota_period period;
    struct gate_decision d;
    struct jw w;
    enum err err;

    if ((err = request_query_only(req, allowed)))
        return err;
    if (!feature || !feature[0])
        return request_fail(req, ERR_INVALID, "parameter_missing", "feature",
                            "the feature query parameter is required");
    if ((err = subject_of(req, request_query(req, "user_id"), &user)) ||
        (err = tier_of_user(req, user, clock_now(), &t, &period)))
        return err;
    d = gate_decide(api->tiers, t, feature);
    if (d.reason == GATE_UNKNOWN_FEATURE)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "feature",
                            "unknown feature '%s': no tier has it", feature);
    jw_begin(&w);
    jw_bool(&w, "allowed", d.allowed);
    jw_str(&w, "user_id", user);
    jw_str(&w, "feature", feature);
    jw_str(&w, "tier", t->id);
    jw_str(&w, "required_tier", d.required ? d.required->id : NULL);
    jw_str(&w, "reason", gate_reason_name(d.reason));
    response_jw(resp, 200, &w);
    return ERR_OK;
}

/* POST /access/consume, /access/track and /access/refund */

enum meter_kind {
    METER_CONSUME,
    METER_TRACK,
    METER_REFUND,
};

/* A checked metering request; strings borrowed from req->json. */
struct meter_in {
    const char *user_id;
    const char *quota_id;
    int64_t amount;
    bool track;  /* record without refusing */
    bool refund; /* give units back (never below zero) */
};

/* What the answer shows besides the outcome. */
struct meter_ctx {
    const struct meter_in *in;
    const struct tier *tier;
    const struct tier_quota *quota;
    int64_t limit; /* the tier's, whatever the grant's */
    int64_t now;
    struct quota_period period; /* the live subscription's, for a billing period quota */
    struct quota_span span;     /* the quota's window holding now */
};

static enum err meter_input(struct request *req, enum meter_kind kind, struct meter_in *in)
{
    static const char *const fields[] = { "user_id", "quota", "amount", NULL };
    const struct api *api = req->app;
    enum err err;

    in->amount = 0;
    in->track = kind == METER_TRACK;
    in->refund = kind == METER_REFUND;
    if ((err = service_only(req)) || (err = request_json_only(req, fields)) ||
        (err = request_json_string(req, "user_id", true, &in->user_id)) ||
        (err = user_id_check(req, in->user_id)) ||
        (err = request_json_string(req, "quota", true, &in->quota_id)) ||
        (err = request_json_int(req, "amount", true, 1, GATE_AMOUNT_MAX, &in->amount)))
        return err;
    if (tier_catalog_quota_index(api->tiers, in->quota_id) < 0)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "quota", "unknown quota '%s'",
                            in->quota_id);
    return ERR_OK;
}

static json_t *refusal_json(const struct meter_ctx *m, const struct usage_outcome *o)
{
    char msg[256];
    json_t *body, *e;
    int n = snprintf(msg, sizeof(msg),
                     "quota '%s' exceeded: %" PRId64 " of %" PRId64 " used this %s, %" PRId64
                     " more asked",
                     m->quota->id, o->used, quota_allowance(o->limit, o->extra),
                     quota_window_name(m->span.counted), m->in->amount);

    if (o->balance > 0 && n > 0 && (size_t)n < sizeof(msg)) /* the balance was too small */
        snprintf(msg + n, sizeof(msg) - (size_t)n, ", %" PRId64 " in the balance", o->balance);
    body = error_json(ERR_QUOTA, "quota_exceeded", "amount", msg);
    e = json_object_get(body, "error");
    json_object_set_new(e, "used", json_integer(o->used));
    json_object_set_new(e, "limit", json_integer(o->limit));
    if (o->extra || o->balance) {
        json_object_set_new(e, "extra", json_integer(o->extra));
        json_object_set_new(e, "balance", json_integer(o->balance));
    }
    json_object_set_new(e, "remaining", json_integer(o->remaining));
    json_object_set_new(e, "resets_at", json_integer(o->resets_at));
    json_object_set_new(e, "tier", json_string(o->tier));
    return body;
}

/*
 * The answer to a consume, track or refund, from its outcome (new or replayed). A granted one
 * is written with its keys sorted (its shape since the first version): the flag named for
 * the kind sorts between "amount" and "limit" (granted) or "quota" and "remaining" (the others).
 */
static void meter_reply(const struct meter_ctx *m, const struct usage_outcome *o,
                        struct response *resp)
{
    const char *flag = m->in->refund ? "refunded" : m->in->track ? "recorded" : "granted";
    struct jw w;
    json_t *j;

    if (!o->granted) {
        j = refusal_json(m, o);
        resp->status = 402;
        free(resp->body);
        resp->body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        resp->len = resp->body ? strlen(resp->body) : 0;
        resp->content_type = "application/json";
        json_decref(j);
        return;
    }
    jw_begin(&w);
    jw_i64(&w, "amount", m->in->amount);
    if (o->extra || o->balance) { /* only with units granted (issue #15) */
        jw_i64(&w, "balance", o->balance);
        jw_i64(&w, "extra", o->extra);
    }
    if (flag[0] == 'g')
        jw_bool(&w, flag, true);
    jw_limit(&w, "limit", o->limit);
    jw_str(&w, "quota", m->quota->id);
    if (flag[0] == 'r')
        jw_bool(&w, flag, true);
    jw_limit(&w, "remaining", o->remaining);
    jw_i64(&w, "resets_at", o->resets_at);
    jw_str(&w, "tier", o->tier);
    jw_i64(&w, "used", o->used);
    jw_str(&w, "user_id", m->in->user_id);
    jw_str(&w, "window", quota_window_name(m->quota->window));
    if (m->span.counted != m->quota->window)
        jw_str(&w, "window_fallback", quota_window_name(m->span.counted));
    jw_i64(&w, "window_start", o->window_start);
    response_jw(resp, 200, &w);
}

/* The Idempotency-Key header: NULL when absent; ERR_INVALID when not 1-255 printable bytes. */
static enum err idem_header(struct request *req, const char **out)
{
    const char *k = request_header(req, "Idempotency-Key");

    *out = k;
    if (!k)
        return ERR_OK;
    for (const char *p = k; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            k = "";
    if (!k[0] || strlen(k) > IDEM_HEADER_MAX)
        return request_fail(req, ERR_INVALID, "idempotency_key_invalid", NULL,
                            "Idempotency-Key must be 1 to %d printable characters",
                            IDEM_HEADER_MAX);
    return ERR_OK;
}

/* Digests the parts (NUL-separated) into hex. */
static enum err digest(const char *label, const char *const *parts, size_t n,
                       char hex[HMAC_SHA256_HEX_LEN + 1])
{
    struct hmac_part p[8];
    size_t k = 0;

    for (size_t i = 0; i < n && k + 1 < ARRAY_SIZE(p); i++) {
        p[k++] = (struct hmac_part){ parts[i], strlen(parts[i]) };
        p[k++] = (struct hmac_part){ "", 1 };
    }
    return hmac_sha256_hex(label, strlen(label), p, k, hex);
}

/*
 * The caller's Idempotency-Key scoped by its service credential and user, so two services or
 * users never share a key. The credential is the one that authenticated the request, however
 * the client spells the header ("bearer", extra spaces): a retry is a retry. It is digested as
 * "Bearer <credential>", the header's usual spelling, so keys stored before keep their scope.
 */
static enum err scoped_key(struct request *req, const char *user, const char *key,
                           char hex[HMAC_SHA256_HEX_LEN + 1])
{
    static const char label[] = "subgate idempotency key";
    const char *cred = "";
    size_t cred_len = 0;
    struct hmac_part p[] = {
        { "Bearer ", 7 },     { "", 0 }, { "", 1 }, { user, strlen(user) }, { "", 1 },
        { key, strlen(key) }, { "", 1 },
    };

    if (api_bearer_credential(req, &cred, &cred_len)) /* a service key: authenticated */
        p[1] = (struct hmac_part){ cred, cred_len };
    return hmac_sha256_hex(label, strlen(label), p, ARRAY_SIZE(p), hex);
}

static enum err keyed_meter(struct request *req, const struct usage_grant *g, const char *key,
                            const struct meter_ctx *m, struct usage_outcome *o, bool *replayed)
{
    const struct api *api = req->app;
    const char *scope = m->in->refund  ? "usage.refund"
                        : m->in->track ? "usage.track"
                                       : "usage.consume";
    char amount[HEADER_NUM_MAX], scoped[HMAC_SHA256_HEX_LEN + 1], hash[HMAC_SHA256_HEX_LEN + 1];
    const char *req_parts[] = { scope, g->quota, amount };
    struct store_idempotency k = { scoped, scope, hash, m->now };
    enum err err;

    snprintf(amount, sizeof(amount), "%" PRId64, g->n);
    if (scoped_key(req, g->user_id, key, scoped) ||
        digest("subgate request", req_parts, ARRAY_SIZE(req_parts), hash))
        return request_fail(req, ERR_INTERNAL, NULL, NULL, "cannot digest the idempotency key");
    err = m->in->refund ? store_usage_refund(api->store, g, &k, o, replayed)
                        : store_usage_consume_once(api->store, g, &k, o, replayed);
    if (err == ERR_CONFLICT)
        return request_fail(req, err, "idempotency_key_reused", NULL,
                            "Idempotency-Key '%s' was used for another request", key);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot record the usage");
    return ERR_OK;
}

static enum err plain_meter(struct request *req, const struct usage_grant *g,
                            const struct meter_ctx *m, struct usage_outcome *o)
{
    const struct api *api = req->app;
    bool replayed = false;
    enum err err = m->in->refund ? store_usage_refund(api->store, g, NULL, o, &replayed)
                                 : store_usage_meter(api->store, g, o);

    (void)m;
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot record the usage");
    return ERR_OK; /* o is settled */
}

static enum err meter(struct request *req, struct response *resp, enum meter_kind kind)
{
    const struct api *api = req->app;
    struct meter_in in = { 0 };
    struct meter_ctx m = { .in = &in, .now = clock_now() };
    struct usage_grant g = { 0 };
    struct usage_outcome o = { 0 };
    const char *key = NULL;
    bool replayed = false;
    enum err err;

    if ((err = meter_input(req, kind, &in)) || (err = idem_header(req, &key)) ||
        (err = tier_of_user(req, in.user_id, m.now, &m.tier, &m.period)))
        return err;
    int q = tier_catalog_quota_index(api->tiers, in.quota_id);
    m.quota = &api->tiers->quotas[q];
    m.limit = m.tier->limits[q];
    (void)str_copy(g.user_id, sizeof(g.user_id), in.user_id); /* checked: < USER_ID_MAX */
    (void)str_copy(g.quota, sizeof(g.quota), m.quota->id);    /* same size */
    m.span = quota_span_of(m.quota->window, m.period, m.now);
    g.window_start = m.span.start;
    g.n = in.amount;
    /* track never refuses (g.track), nor a refund, which gives balance units back past limit */
    g.limit = m.limit;
    g.track = kind == METER_TRACK;
    g.request_id = req->id;
    o.limit = m.limit;
    o.window_start = g.window_start;
    o.resets_at = m.span.end;
    (void)str_copy(o.tier, sizeof(o.tier), m.tier->id); /* tier ids fit by construction */
    g.idem_key = key;
    err = key ? keyed_meter(req, &g, key, &m, &o, &replayed) : plain_meter(req, &g, &m, &o);
    if (err)
        return err;
    if (replayed && !response_add_header(resp, "Idempotent-Replayed", "true"))
        log_warn("cannot add the Idempotent-Replayed header");
    if (kind == METER_CONSUME && !replayed)
        metrics_consume((size_t)q, o.granted);
    if (!o.granted) { /* answered here (with the quota's state), logged as any refusal */
        req->error.err = ERR_QUOTA;
        (void)str_copy(req->error.code, sizeof(req->error.code), "quota_exceeded");
    }
    meter_reply(&m, &o, resp);
    return ERR_OK;
}

enum err access_consume(struct request *req, struct response *resp)
{
    return meter(req, resp, METER_CONSUME);
}

enum err access_track(struct request *req, struct response *resp)
{
    return meter(req, resp, METER_TRACK);
}

/* GET /access/gate: nginx auth_request */

/* What the gate answers; nginx passes the X-Subgate-* headers on. */
struct gate_answer {
    int status; /* 200, 401 or 403 only */
    enum gate_reason reason;
    const struct tier *tier;     /* NULL before the user is known */
    const struct tier *required; /* for GATE_NOT_IN_TIER */
    const struct tier_quota *quota;
    struct gate_quota_state state; /* when quota is set */
};

static void header_i64(struct response *resp, const char *name, int64_t v)
{
    char num[HEADER_NUM_MAX];

    snprintf(num, sizeof(num), "%" PRId64, v);
    (void)response_add_header(resp, name, num); /* digits: never refused */
}

static void gate_headers(struct response *resp, const struct gate_answer *a)
{
    (void)response_add_header(resp, "X-Subgate-Reason", gate_reason_name(a->reason));
    if (a->tier) /* ids are [a-z0-9_]: never refused */
        (void)response_add_header(resp, "X-Subgate-Tier", a->tier->id);
    if (a->required)
        (void)response_add_header(resp, "X-Subgate-Required-Tier", a->required->id);
    if (!a->quota)
        return;
    (void)response_add_header(resp, "X-Subgate-Quota", a->quota->id);
    if (a->state.remaining < 0)
        (void)response_add_header(resp, "X-Subgate-Remaining", "unlimited");
    else
        header_i64(resp, "X-Subgate-Remaining", a->state.remaining);
    header_i64(resp, "X-Subgate-Resets-At", a->state.resets_at);
}

static void gate_send(struct response *resp, const struct gate_answer *a)
{
    struct jw w;

    jw_begin(&w);
    jw_bool(&w, "allowed", a->status == 200);
    jw_str(&w, "reason", gate_reason_name(a->reason));
    jw_str(&w, "tier", a->tier ? a->tier->id : NULL);
    gate_headers(resp, a);
    response_jw(resp, a->status, &w);
}

static void gate_refuse(struct gate_answer *a, int status, enum gate_reason reason)
{
    a->status = status;
    a->reason = reason;
}

/* The grant of rule r's amount for the request's user, and its outcome as asked. */
static const struct tier_quota *gate_grant(struct request *req, const struct gate_rule *r,
                                           const struct tier *t, struct quota_period p, int64_t now,
                                           struct usage_grant *g, struct usage_outcome *o)
{
    const struct api *api = req->app;
    int q = tier_catalog_quota_index(api->tiers, r->quota);
    const struct tier_quota *quota = &api->tiers->quotas[q];

    *o = (struct usage_outcome){ .limit = t->limits[q] };
    *g = (struct usage_grant){ .n = r->amount, .limit = o->limit, .request_id = req->id };
    (void)str_copy(g->user_id, sizeof(g->user_id), req->user); /* same size */
    (void)str_copy(g->quota, sizeof(g->quota), quota->id);     /* same size */
    g->window_start = quota_span_of(quota->window, p, now).start;
    return quota;
}

/* The answer's quota state from grant g's outcome o; refuses when o was not granted. */
static void gate_outcome(const struct tier_quota *quota, struct quota_period p, int64_t now,
                         const struct usage_grant *g, const struct usage_outcome *o,
                         struct gate_answer *a)
{
    a->quota = quota;
    a->state = gate_quota_state_of(quota->window, p, g->limit, o->used, now);
    if (g->limit >= 0)
        gate_quota_state_extra(&a->state, o->extra, o->balance);
    if (!o->granted)
        gate_refuse(a, 403, GATE_QUOTA_EXCEEDED);
}

/*
 * Consumes the amount of every quota rule of m, all or nothing (one transaction): when one
 * quota is used up, the units the others would take are not taken. The answer shows the
 * refused quota, or the last one.
 */
static void gate_consume(struct request *req, const struct gate_match *m, struct quota_period p,
                         int64_t now, struct gate_answer *a)
{
    const struct api *api = req->app;
    struct usage_grant g[GATE_FORMS_MAX];
    struct usage_outcome o[GATE_FORMS_MAX];
    const struct tier_quota *quotas[GATE_FORMS_MAX];
    size_t n = 0, refused;
    enum err err;

    _Static_assert(GATE_FORMS_MAX <= STORE_METER_ALL_MAX, "every rule of a match at once");
    for (size_t i = 0; i < m->count && n < GATE_FORMS_MAX; i++) {
        if (!m->rules[i]->quota[0])
            continue;
        quotas[n] = gate_grant(req, m->rules[i], a->tier, p, now, &g[n], &o[n]);
        n++;
    }
    if (n == 0)
        return;
    err = n == 1 ? store_usage_meter(api->store, &g[0], &o[0])
                 : store_usage_meter_all(api->store, g, o, n, &refused);
    if (err) {
        gate_refuse(a, 403, GATE_ERROR);
        return;
    }
    if (n == 1)
        refused = o[0].granted ? 1 : 0;
    if (refused < n)
        gate_outcome(quotas[refused], p, now, &g[refused], &o[refused], a);
    else
        gate_outcome(quotas[n - 1], p, now, &g[n - 1], &o[n - 1], a);
}

/* Refuses a signed-in user of tier a->tier when a rule of m needs a feature the tier lacks. */
static bool gate_features_allow(const struct api *api, const struct gate_match *m,
                                struct gate_answer *a)
{
    for (size_t i = 0; i < m->count; i++) {
        const struct gate_rule *r = m->rules[i];
        struct gate_decision d;
        if (!r->feature[0])
            continue;
        d = gate_decide(api->tiers, a->tier, r->feature);
        if (!d.allowed) {
            a->required = d.required;
            gate_refuse(a, 403, d.reason);
            return false;
        }
    }
    return true;
}

/*
 * Decides for a signed-in user under every rule of m (one unless the path can be routed in
 * several ways, see gate_match_uri): each feature is needed, and the quotas are consumed all or
 * nothing: a refused request spends nothing.
 */
static void gate_user(struct request *req, const struct gate_match *m, struct gate_answer *a)
{
    struct quota_period period;
    int64_t now = clock_now();

    if (tier_of_user(req, req->user, now, &a->tier, &period) != ERR_OK) {
        gate_refuse(a, 403, GATE_ERROR);
        return;
    }
    if (gate_features_allow(req->app, m, a))
        gate_consume(req, m, period, now, a);
}

enum err access_gate(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    const char *uri = request_header(req, "X-Original-URI");
    struct gate_answer a = { .status = 200, .reason = GATE_ALLOWED };
    struct gate_match m = { 0 };

    if (!uri || (api->gate && gate_match_uri(api->gate, uri, &m) != ERR_OK))
        gate_refuse(&a, 403, GATE_BAD_PATH);
    else if (m.count == 0)
        gate_refuse(&a, 403, GATE_NO_RULE);
    else if (api_authenticate(req, AUTH_USER) != ERR_OK)
        gate_refuse(&a, 401, GATE_UNAUTHENTICATED);
    else
        gate_user(req, &m, &a);
    gate_send(resp, &a);
    return ERR_OK;
}

enum err access_refund(struct request *req, struct response *resp)
{
    return meter(req, resp, METER_REFUND);
}

/* GET /access/usage: a user's quotas without spending them (a service names the user). */
enum err access_usage_read(struct request *req, struct response *resp)
{
    static const char *const allowed[] = { "user_id", NULL };
    const struct api *api = req->app;
    struct gate_quota_state states[TIER_QUOTA_MAX] = { 0 };
    const struct tier *t = NULL;
    const char *user = NULL;
    struct quota_period period;
    int64_t now = clock_now();
    struct jw w;
    enum err err;

    if ((err = request_query_only(req, allowed)) ||
        (err = subject_of(req, request_query(req, "user_id"), &user)) ||
        (err = tier_of_user(req, user, now, &t, &period)) ||
        (err = quota_states(req, user, t, period, now, states)))
        return err;
    jw_begin(&w);
    jw_str(&w, "user_id", user);
    jw_str(&w, "tier", t->id);
    quotas_member(&w, api->tiers, states);
    response_jw(resp, 200, &w);
    return ERR_OK;
}

enum err access_subject_of(struct request *req, const char *named, const char **user)
{
    return subject_of(req, named, user);
}

/* The subject (a service names it), its tier and quota states at now, as GET /usage reads them. */
enum err access_state_of(struct request *req, const char *named, int64_t now, const char **user,
                         const struct tier **t, struct gate_quota_state *states)
{
    struct quota_period period;
    enum err err;

    if ((err = subject_of(req, named, user)) || (err = tier_of_user(req, *user, now, t, &period)))
        return err;
    return quota_states(req, *user, *t, period, now, states);
}
