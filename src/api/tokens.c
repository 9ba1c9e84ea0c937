/*
 * tokens.c: entitlement tokens (issue #15): GET /.well-known/jwks.json publishes subgate's
 * signing keys (auth/signer.h); POST /access/entitlement-token signs what GET /access/usage
 * answers (tier, features, quotas) for ENTITLEMENT_TOKEN_TTL seconds, so an app can check a
 * user's entitlements locally without calling subgate.
 */
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "api/handlers.h"
#include "auth/signer.h"
#include "base/buf.h"
#include "base/clock.h"
#include "billing/gate.h"
#include "billing/quota.h"
#include "billing/tiers.h"
#include "config/config.h"

#define JWKS_CACHE  "public, max-age=300" /* rotation: apps refetch on an unknown kid anyway */
#define TOKEN_MAX   ((size_t)16 * 1024)
#define CLAIMS_FLAG (JSON_COMPACT | JSON_SORT_KEYS)

static enum err signer_of(struct request *req, const struct signer **out)
{
    const struct api *api = req->app;

    *out = api->signer;
    if (!*out)
        return request_fail(req, ERR_UNAVAILABLE, "entitlement_tokens_not_configured", NULL,
                            "entitlement tokens need ENTITLEMENT_TOKEN_KEY_FILE");
    return ERR_OK;
}

enum err tokens_jwks(struct request *req, struct response *resp)
{
    static const char *const none[] = { NULL };
    const struct signer *s = NULL;
    const char *jwks;
    size_t len = 0;
    enum err err;

    if ((err = request_query_only(req, none)) || (err = signer_of(req, &s)))
        return err;
    jwks = signer_jwks(s, &len);
    response_static(resp, 200, "application/json", jwks, len);
    (void)response_add_header(resp, "Cache-Control", JWKS_CACHE); /* constant: never refused */
    return ERR_OK;
}

/* A limit or what remains of it: a number, or null for unlimited (as GET /usage shows it). */
static json_t *limit_json(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *quotas_json(const struct tier_catalog *cat, const struct gate_quota_state *states)
{
    json_t *q = json_object();

    for (size_t i = 0; i < cat->quota_count; i++) {
        const struct gate_quota_state *s = &states[i];
        json_t *one =
            json_pack("{s:I, s:o, s:o, s:s, s:I, s:I}", "used", (json_int_t)s->used, "limit",
                      limit_json(s->limit), "remaining", limit_json(s->remaining), "window",
                      quota_window_name(cat->quotas[i].window), "window_start",
                      (json_int_t)s->window_start, "resets_at", (json_int_t)s->resets_at);
        if (s->counted != cat->quotas[i].window) /* as GET /usage says it */
            json_object_set_new(one, "window_fallback", json_string(quota_window_name(s->counted)));
        if (s->extra || s->balance) { /* units granted: as GET /usage shows them */
            json_object_set_new(one, "extra", json_integer(s->extra));
            json_object_set_new(one, "balance", json_integer(s->balance));
        }
        json_object_set_new(q, cat->quotas[i].id, one);
    }
    return q;
}

static json_t *claims_json(const struct api *api, const char *user, const struct tier *t,
                           const struct gate_quota_state *states, int64_t now)
{
    json_t *features = json_array();
    int64_t exp = now + api->cfg->ent_token_ttl_s;
    json_t *c;

    for (size_t i = 0; i < t->feature_count; i++)
        json_array_append_new(features, json_string(t->features[i]));
    c = json_pack("{s:s, s:s, s:I, s:I, s:s, s:o, s:o}", "iss", api->cfg->ent_token_issuer, "sub",
                  user, "iat", (json_int_t)now, "exp", (json_int_t)exp, "tier", t->id, "features",
                  features, "quotas", quotas_json(api->tiers, states));
    if (c && api->cfg->ent_token_audience)
        json_object_set_new(c, "aud", json_string(api->cfg->ent_token_audience));
    return c;
}

/* The body's user_id: optional (a user asks for itself), and a body is optional too. */
static enum err named_user(struct request *req, const char **out)
{
    static const char *const fields[] = { "user_id", NULL };
    enum err err;

    *out = NULL;
    if (req->body.len == 0)
        return ERR_OK;
    if ((err = request_json_body(req)) || (err = request_json_only(req, fields)))
        return err;
    return request_json_string(req, "user_id", false, out);
}

static enum err sign_claims(struct request *req, const struct signer *s, json_t *claims,
                            struct buf *out)
{
    char *text = claims ? json_dumps(claims, CLAIMS_FLAG) : NULL;
    enum err err = text ? signer_sign(s, text, strlen(text), out) : ERR_INVALID;

    free(text);
    if (err)
        return request_fail(req, ERR_INTERNAL, NULL, NULL, "cannot sign the entitlement token");
    return ERR_OK;
}

enum err tokens_entitlement(struct request *req, struct response *resp)
{
    static const char *const none[] = { NULL };
    const struct api *api = req->app;
    struct gate_quota_state states[TIER_QUOTA_MAX] = { 0 };
    const struct signer *s = NULL;
    const struct tier *t = NULL;
    const char *named = NULL, *user = NULL;
    int64_t now = clock_now();
    int64_t exp = now + api->cfg->ent_token_ttl_s;
    json_t *claims = NULL;
    struct buf tok;
    enum err err;

    buf_init(&tok, TOKEN_MAX);
    if ((err = request_query_only(req, none)) || (err = signer_of(req, &s)) ||
        (err = named_user(req, &named)) ||
        (err = access_state_of(req, named, now, &user, &t, states)))
        goto out;
    claims = claims_json(api, user, t, states, now);
    if ((err = sign_claims(req, s, claims, &tok)))
        goto out;
    response_json(resp, 200,
                  json_pack("{s:s, s:I, s:s}", "token", buf_str(&tok), "expires_at",
                            (json_int_t)exp, "kid", signer_kid(s)));
    (void)response_add_header(resp, "Cache-Control", "no-store"); /* constant: never refused */
out:
    json_decref(claims);
    buf_release(&tok);
    return err;
}
