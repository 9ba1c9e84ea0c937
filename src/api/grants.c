/*
 * grants.c: tiers granted outside Stripe (issue #15 item 3): a service grants a tier to a user
 * (an Enterprise contract, a comp, support), optionally from a start and until an end, lists a
 * user's grants and revokes one. The user's effective tier is the best of Stripe's and the
 * grants in force (grants_effective_tier, used by every read of the tier).
 */
#include "api/grants.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "api/api.h"
#include "api/handlers.h"
#include "base/clock.h"
#include "base/hmac.h"
#include "base/log.h"
#include "base/str.h"
#include "billing/entitlement.h"
#include "billing/tiers.h"
#include "config/config.h"
#include "store/store.h"

#define GRANTS_LIST_MAX 100 /* newest first; has_more says there are older ones */

/* a is better than b: the higher rank, then the later end (0: none, the latest). */
static bool better_grant(const struct grant_record *a, const struct grant_record *b,
                         const void *ctx)
{
    const struct tier_catalog *cat = ctx;
    const struct tier *ta = tier_catalog_find(cat, a->tier), *tb = tier_catalog_find(cat, b->tier);

    if (!ta || !tb)
        return ta != NULL;
    if (ta->rank != tb->rank)
        return ta->rank > tb->rank;
    return (a->ends_at == 0 ? INT64_MAX : a->ends_at) > (b->ends_at == 0 ? INT64_MAX : b->ends_at);
}

enum err grants_effective_tier(const struct api *api, const char *user, int64_t now,
                               const struct tier **tier, struct grant_record *grant, bool *granted)
{
    const struct config *cfg = api->cfg;
    int64_t ttl = cfg->entitlement_cache_users ? cfg->entitlement_cache_ttl_ms : 0;
    struct grant_query q = { .user_id = user,
                             .now = now,
                             .better = better_grant,
                             .ctx = api->tiers };
    const struct tier *t;
    enum err err = store_grant_best(api->store, ttl, &q);

    *granted = false;
    if (err || !q.found)
        return err;
    *grant = q.best;
    t = tier_catalog_find(api->tiers, grant->tier);
    if (t && (!*tier || t->rank > (*tier)->rank)) {
        *tier = t;
        *granted = true;
    }
    return ERR_OK;
}

static json_t *time_or_null(int64_t t)
{
    return t ? json_integer(t) : json_null();
}

json_t *grants_json(const struct grant_record *g, int64_t now)
{
    bool active = grant_in_force(g, now);

    return json_pack("{s:s, s:s, s:s, s:I, s:o, s:s, s:I, s:o, s:b}", "id", g->id, "user_id",
                     g->user_id, "tier", g->tier, "starts_at", (json_int_t)g->starts_at, "ends_at",
                     time_or_null(g->ends_at), "reason", g->reason, "created_at",
                     (json_int_t)g->created_at, "revoked_at", time_or_null(g->revoked_at), "active",
                     active);
}

/* The grant's id: from the caller's Idempotency-Key (a retry finds the same grant), else random. */
static enum err grant_id(struct request *req, const char *user, char id[GRANT_ID_MAX])
{
    const char *key = request_header(req, "Idempotency-Key");
    char hex[HMAC_SHA256_HEX_LEN + 1];
    unsigned char raw[12];

    if (key && (!key[0] || strlen(key) > 255))
        return request_fail(req, ERR_INVALID, "idempotency_key_invalid", NULL,
                            "Idempotency-Key must be 1 to 255 characters");
    if (key) {
        struct hmac_part parts[] = { { user, strlen(user) }, { "", 1 }, { key, strlen(key) } };
        if (hmac_sha256_hex("subgate grant", strlen("subgate grant"), parts, ARRAY_SIZE(parts),
                            hex) != ERR_OK)
            return request_fail(req, ERR_INTERNAL, NULL, NULL, "cannot make the grant's id");
        snprintf(id, GRANT_ID_MAX, "grant_%.24s", hex);
        return ERR_OK;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return request_fail(req, ERR_INTERNAL, NULL, NULL, "cannot make the grant's id");
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    snprintf(id, GRANT_ID_MAX, "grant_%.40s", hex);
    return ERR_OK;
}

/* The checked body of POST /grants into *g. */
static enum err grant_input(struct request *req, int64_t now, struct grant_record *g)
{
    static const char *const fields[] = {
        "user_id", "tier", "starts_at", "ends_at", "reason", NULL
    };
    const struct api *api = req->app;
    const char *user = NULL, *tier = NULL, *reason = NULL;
    const struct tier *t;
    enum err err;

    memset(g, 0, sizeof(*g));
    g->starts_at = now;
    if ((err = request_json_only(req, fields)) ||
        (err = request_json_string(req, "user_id", true, &user)) ||
        (err = request_json_string(req, "tier", true, &tier)) ||
        (err = request_json_string(req, "reason", false, &reason)) ||
        (err = request_json_int(req, "starts_at", false, 0, BILLING_TIME_MAX, &g->starts_at)) ||
        (err = request_json_int(req, "ends_at", false, 1, BILLING_TIME_MAX, &g->ends_at)))
        return err;
    if (!user[0] || !str_copy(g->user_id, sizeof(g->user_id), user))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "user_id",
                            "user_id must be a non-empty string of at most %d bytes",
                            USER_ID_MAX - 1);
    t = tier_catalog_find(api->tiers, tier);
    if (!t)
        return request_fail(req, ERR_INVALID, "parameter_invalid", "tier", "unknown tier '%s'",
                            tier);
    if (t == tier_catalog_default(api->tiers))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "tier",
                            "tier '%s' is every user's without a grant", tier);
    (void)str_copy(g->tier, sizeof(g->tier), t->id); /* same size */
    if (reason && !str_copy(g->reason, sizeof(g->reason), reason))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "reason",
                            "reason must be at most %d bytes", GRANT_REASON_MAX - 1);
    if (g->ends_at && (g->ends_at <= g->starts_at || g->ends_at <= now))
        return request_fail(req, ERR_INVALID, "parameter_invalid", "ends_at",
                            "ends_at must be after starts_at and in the future");
    g->created_at = now;
    return ERR_OK;
}

/*
 * The same grant asked again (same key): the same user, tier, reason and times. A start left
 * out defaults to now, which moves on between retries: only a start given is compared.
 */
static bool same_grant(const struct grant_record *a, const struct grant_record *b, bool start_given)
{
    return strcmp(a->user_id, b->user_id) == 0 && strcmp(a->tier, b->tier) == 0 &&
           (!start_given || a->starts_at == b->starts_at) && a->ends_at == b->ends_at &&
           strcmp(a->reason, b->reason) == 0;
}

enum err access_grant_create(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    int64_t now = clock_now();
    struct grant_record g, had;
    enum err err;

    if ((err = grant_input(req, now, &g)) || (err = grant_id(req, g.user_id, g.id)))
        return err;
    err = store_grant_insert(api->store, &g);
    if (err == ERR_CONFLICT && store_grant_get(api->store, g.id, &had) == ERR_OK) {
        json_t *start = json_object_get(req->json, "starts_at");
        if (!same_grant(&had, &g, start && !json_is_null(start)))
            return request_fail(req, ERR_CONFLICT, "idempotency_key_reused", NULL,
                                "this Idempotency-Key made another grant ('%s')", had.id);
        if (!response_add_header(resp, "Idempotent-Replayed", "true"))
            log_warn("cannot add the Idempotent-Replayed header");
        response_json(resp, 200, grants_json(&had, now));
        return ERR_OK;
    }
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot store the grant");
    log_info("granted tier '%s' to user '%s' as '%s' (%s)", g.tier, g.user_id, g.id,
             g.reason[0] ? g.reason : "no reason given");
    response_json(resp, 200, grants_json(&g, now));
    return ERR_OK;
}

enum err access_grant_list(struct request *req, struct response *resp)
{
    static const char *const allowed[] = { "user_id", NULL };
    const struct api *api = req->app;
    const char *user = request_query(req, "user_id");
    struct grant_record list[GRANTS_LIST_MAX + 1]; /* one more: are there older ones? */
    int64_t now = clock_now();
    json_t *data;
    int n = 0;
    bool more;
    enum err err = request_query_only(req, allowed);

    if (err)
        return err;
    if (!user || !user[0] || strlen(user) >= USER_ID_MAX)
        return request_fail(req, ERR_INVALID, user ? "parameter_invalid" : "parameter_missing",
                            "user_id", "user_id must be a non-empty string of at most %d bytes",
                            USER_ID_MAX - 1);
    if ((err = store_grant_list(api->store, user, GRANTS_LIST_MAX + 1, list, &n)))
        return request_fail(req, err, NULL, NULL, "cannot read the grants");
    more = n > GRANTS_LIST_MAX;
    if (more)
        n = GRANTS_LIST_MAX;
    data = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(data, grants_json(&list[i], now));
    response_json(resp, 200,
                  json_pack("{s:o, s:i, s:b}", "data", data, "count", n, "has_more", more));
    return ERR_OK;
}

enum err access_grant_revoke(struct request *req, struct response *resp)
{
    static const char *const fields[] = { "id", NULL };
    const struct api *api = req->app;
    const char *id = NULL;
    struct grant_record g;
    bool revoked = false;
    enum err err;

    if ((err = request_json_only(req, fields)) || (err = request_json_string(req, "id", true, &id)))
        return err;
    if (!id[0])
        return request_fail(req, ERR_INVALID, "parameter_invalid", "id", "id must not be empty");
    /* an id longer than any made is one no grant has: unknown, as the README says */
    err = strlen(id) >= GRANT_ID_MAX
              ? ERR_NOT_FOUND
              : store_grant_revoke(api->store, id, clock_now(), &revoked, &g);
    if (err == ERR_NOT_FOUND)
        return request_fail(req, err, "resource_missing", "id", "no grant '%s'", id);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot revoke the grant");
    if (revoked)
        log_info("revoked grant '%s' of tier '%s' to user '%s'", g.id, g.tier, g.user_id);
    response_json(resp, 200, grants_json(&g, clock_now()));
    return ERR_OK;
}
