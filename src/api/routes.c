/* routes.c: THE route table of subgate (SPEC §3 and §6), and the dispatcher that walks it. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/handlers.h"
#include "base/clock.h"
#include "base/str.h"
#include "config/config.h"
#include "http/router.h"
#include "metrics/metrics.h"

#define P "/api/v1/payments"
#define A "/api/v1/access"
/* CORS: the routes a user's page calls; never the service or Stripe ones. */
#define B ROUTE_BROWSER

#define CORS_ALLOW_HEADERS  "Authorization, Content-Type, Idempotency-Key"
#define CORS_EXPOSE_HEADERS "Request-Id, Idempotent-Replayed, Retry-After"
#define CORS_MAX_AGE        "600" /* seconds a browser may keep a preflight's answer */

/* clang-format off */
static const struct route routes[] = {
    { "GET",  "/healthz",                   AUTH_NONE, 0,               ops_healthz },
    { "GET",  "/readyz",                    AUTH_NONE, 0,               ops_readyz },
    { "GET",  "/metrics",                   AUTH_NONE, 0,               ops_metrics },
    { "GET",  "/openapi.json",              AUTH_NONE, 0,               ops_openapi },
    { "GET",  "/.well-known/jwks.json",     AUTH_NONE, 0,               tokens_jwks },
    { "GET",  P "/pricing",                 AUTH_NONE, B,               payments_pricing },
    { "GET",  P "/subscription",            AUTH_USER, B,               payments_subscription },
    { "GET",  P "/invoices",                AUTH_USER, B,               payments_invoices },
    { "POST", P "/create-checkout-session", AUTH_USER, B | ROUTE_JSON_BODY | ROUTE_SLOW, payments_create_checkout_session },
    { "POST", P "/customer-portal",         AUTH_USER, B | ROUTE_JSON_BODY | ROUTE_SLOW, payments_customer_portal },
    { "POST", P "/cancel-subscription",     AUTH_USER, B | ROUTE_SLOW,  payments_cancel_subscription },
    { "POST", P "/webhook",                 AUTH_STRIPE, ROUTE_RAW_BODY | ROUTE_WRITE, payments_webhook },
    { "POST", P "/checkout-success",        AUTH_USER, B | ROUTE_JSON_BODY | ROUTE_SLOW, payments_checkout_success },
    { "POST", P "/change-plan",             AUTH_USER, B | ROUTE_JSON_BODY | ROUTE_SLOW, payments_change_plan },
    { "POST", P "/preview-plan-change",     AUTH_USER, B | ROUTE_JSON_BODY | ROUTE_SLOW, payments_preview_plan_change },
    { "POST", P "/cancel-plan-change",      AUTH_USER, B | ROUTE_SLOW,  payments_cancel_plan_change },
    { "POST", P "/resume-subscription",     AUTH_USER, B | ROUTE_SLOW,  payments_resume_subscription },
    { "GET",  P "/usage",                   AUTH_USER, B,               access_usage },
    { "GET",  A "/check",                   AUTH_USER_OR_SERVICE, B,    access_check },
    { "POST", A "/consume",                 AUTH_USER_OR_SERVICE, ROUTE_JSON_BODY | ROUTE_WRITE, access_consume },
    { "POST", A "/track",                   AUTH_USER_OR_SERVICE, ROUTE_JSON_BODY | ROUTE_WRITE, access_track },
    { "POST", A "/refund",                  AUTH_USER_OR_SERVICE, ROUTE_JSON_BODY | ROUTE_WRITE, access_refund },
    { "GET",  A "/usage",                   AUTH_USER_OR_SERVICE, 0,    access_usage_read },
    { "GET",  A "/gate",                    AUTH_NONE, 0,               access_gate },
    { "POST", A "/grants",                  AUTH_SERVICE, ROUTE_JSON_BODY, access_grant_create },
    { "GET",  A "/grants",                  AUTH_SERVICE, 0,            access_grant_list },
    { "POST", A "/grants/revoke",           AUTH_SERVICE, ROUTE_JSON_BODY, access_grant_revoke },
    { "GET",  A "/ledger",                  AUTH_USER_OR_SERVICE, B,    access_ledger },
    { "POST", A "/quota-grants",            AUTH_SERVICE, ROUTE_JSON_BODY, access_quota_grant },
    { "POST", A "/entitlement-token",       AUTH_USER_OR_SERVICE, B,    tokens_entitlement },
    { "POST", A "/gate",                    AUTH_NONE, 0,               access_gate },
    { "GET",  "/billing",                   AUTH_NONE, 0,               page_redirect },
    { "HEAD", "/billing",                   AUTH_NONE, 0,               page_redirect },
    { "GET",  "/billing/",                  AUTH_NONE, 0,               page_file },
    { "HEAD", "/billing/",                  AUTH_NONE, 0,               page_file },
    { "GET",  "/billing/billing.css",       AUTH_NONE, 0,               page_file },
    { "HEAD", "/billing/billing.css",       AUTH_NONE, 0,               page_file },
    { "GET",  "/billing/billing.js",        AUTH_NONE, 0,               page_file },
    { "HEAD", "/billing/billing.js",        AUTH_NONE, 0,               page_file },
    { "GET",  "/billing/subgate.js",        AUTH_NONE, 0,               page_file },
    { "HEAD", "/billing/subgate.js",        AUTH_NONE, 0,               page_file },
    { "GET",  "/billing/theme.css",         AUTH_NONE, 0,               page_file },
    { "HEAD", "/billing/theme.css",         AUTH_NONE, 0,               page_file },
};

/* clang-format on */

/* "METHOD /path" of every route, the label of its metrics series. */
static char route_labels[ARRAY_SIZE(routes)][96];
static const char *route_label_ptrs[ARRAY_SIZE(routes)];

const char *const *api_route_labels(size_t *n)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        snprintf(route_labels[i], sizeof(route_labels[i]), "%s %s", routes[i].method,
                 routes[i].path);
        route_label_ptrs[i] = route_labels[i];
    }
    *n = ARRAY_SIZE(routes);
    return route_label_ptrs;
}

/* The request's Origin when it is one of CORS_ORIGINS, else NULL (then no CORS header). */
static const char *cors_origin(const struct request *req)
{
    const struct api *api = req->app;
    const char *origin = request_header(req, "Origin");

    for (size_t i = 0; origin && i < api->cfg->cors_origin_count; i++)
        if (str_eq_nocase(origin, strlen(origin), api->cfg->cors_origins[i]))
            return origin;
    return NULL;
}

/* The headers every CORS answer carries: the origin itself, never '*'. */
static void cors_allow(struct response *resp, const char *origin)
{
    (void)response_add_header(resp, "Access-Control-Allow-Origin", origin);
    (void)response_add_header(resp, "Vary", "Origin");
}

/*
 * Answers a preflight (OPTIONS with Origin and Access-Control-Request-Method): 204 when the
 * origin is configured and the path has a ROUTE_BROWSER route with the asked method; 403 with no
 * CORS header otherwise (service and Stripe routes, other origins, other methods).
 */
static enum err cors_preflight(struct request *req, struct response *resp, const char *want)
{
    char methods[64] = "";
    bool known = false, wanted = false;
    const char *origin;

    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        const struct route *r = &routes[i];
        size_t used = strlen(methods);

        if (strcmp(r->path, req->path) != 0)
            continue;
        known = true;
        req->route = r->path; /* for the log line */
        if (!(r->flags & ROUTE_BROWSER))
            continue;
        snprintf(methods + used, sizeof(methods) - used, "%s%s", used ? ", " : "", r->method);
        wanted = wanted || strcmp(r->method, want) == 0;
    }
    if (!known)
        return request_fail(req, ERR_NOT_FOUND, NULL, NULL, "no route for '%s'", req->path);
    if (!methods[0])
        return request_fail(req, ERR_FORBIDDEN, "cors_not_allowed", NULL,
                            "'%s' is for services, not browsers: no cross-origin calls", req->path);
    origin = cors_origin(req);
    if (!origin)
        return request_fail(req, ERR_FORBIDDEN, "cors_origin_not_allowed", NULL,
                            "origin '%.200s' is not in CORS_ORIGINS",
                            request_header(req, "Origin"));
    if (!wanted)
        return request_fail(req, ERR_FORBIDDEN, "cors_method_not_allowed", NULL,
                            "method %.20s is not allowed on '%s' (allowed: %s)", want, req->path,
                            methods);
    response_static(resp, 204, NULL, NULL, 0);
    cors_allow(resp, origin);
    (void)response_add_header(resp, "Access-Control-Allow-Methods", methods);
    (void)response_add_header(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
    (void)response_add_header(resp, "Access-Control-Max-Age", CORS_MAX_AGE);
    return ERR_OK;
}

static enum err route_and_run(struct request *req, struct response *resp, size_t *index)
{
    const struct route *r = NULL;
    const char *want;
    enum err err;

    *index = ARRAY_SIZE(routes); /* none: the metrics' unmatched series */
    if (strcmp(req->method, "OPTIONS") == 0 && request_header(req, "Origin") &&
        (want = request_header(req, "Access-Control-Request-Method")) != NULL)
        return cors_preflight(req, resp, want);
    err = router_match(routes, ARRAY_SIZE(routes), req->method, req->path, &r, resp->allow,
                       sizeof(resp->allow));
    if (err == ERR_NOT_FOUND)
        return request_fail(req, err, NULL, NULL, "no route for '%s'", req->path);
    if (err == ERR_METHOD)
        return request_fail(req, err, NULL, NULL, "method %s is not allowed here (allowed: %s)",
                            req->method, resp->allow);
    resp->allow[0] = '\0'; /* filled by earlier same-path routes; only a 405 carries it */
    req->route = r->path;
    *index = (size_t)(r - routes);
    err = api_authenticate(req, (enum auth_kind)r->auth);
    if (err)
        return err;
    if ((r->flags & ROUTE_JSON_BODY) && (err = request_json_body(req)) != ERR_OK)
        return err;
    return r->handler(req, resp);
}

enum http_pool api_pool_of(void *app, const struct request *req)
{
    const struct route *r = NULL;
    char allow[64];

    (void)app;
    if (req->method[0] != 'P') /* every route run on a pool is a POST: the hot GETs skip */
        return HTTP_POOL_NONE;
    if (router_match(routes, ARRAY_SIZE(routes), req->method, req->path, &r, allow,
                     sizeof(allow)) != ERR_OK)
        return HTTP_POOL_NONE;
    if (r->flags & ROUTE_SLOW)
        return HTTP_POOL_SLOW;
    if (r->flags & ROUTE_WRITE)
        return HTTP_POOL_WRITE;
    return HTTP_POOL_NONE;
}

bool api_admit(void *app, struct request *req, const char **key, size_t *len)
{
    const struct route *r = NULL;
    char allow[64];

    (void)app;
    *key = NULL;
    *len = 0;
    if (router_match(routes, ARRAY_SIZE(routes), req->method, req->path, &r, allow,
                     sizeof(allow)) != ERR_OK)
        return true; /* dispatch answers it */
    if (api_authenticate(req, (enum auth_kind)r->auth) != ERR_OK)
        return false;
    *key = req->user; /* "" for a service or no caller: the keyless client */
    *len = strlen(req->user);
    return true;
}

/* The CORS headers of an answer to a browser route from a configured origin. */
static void cors_answer(const struct request *req, size_t route, struct response *resp)
{
    const char *origin;

    if (route < ARRAY_SIZE(routes) && (routes[route].flags & ROUTE_BROWSER) &&
        (origin = cors_origin(req)) != NULL) {
        cors_allow(resp, origin); /* errors too: the page reads their bodies */
        (void)response_add_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
    }
}

void api_decorate(void *app, const struct request *req, struct response *resp)
{
    const struct route *r = NULL;
    char allow[64];

    (void)app;
    api_auth_challenge(req, resp); /* a 401 before the pool */
    if (router_match(routes, ARRAY_SIZE(routes), req->method, req->path, &r, allow,
                     sizeof(allow)) == ERR_OK)
        cors_answer(req, (size_t)(r - routes), resp);
}

void api_dispatch(void *app, struct request *req, struct response *resp)
{
    int64_t t0 = clock_mono_us();
    size_t route = 0;
    enum err err;

    (void)app; /* handlers reach it through req->app */
    err = route_and_run(req, resp, &route);
    if (err) {
        if (req->error.err != err) /* a handler returned an error without detail */
            (void)request_fail(req, err, NULL, NULL, "%s", err_name(err));
        response_error(resp, req);
    }
    api_auth_challenge(req, resp); /* every 401, the gate's too */
    cors_answer(req, route, resp);
    metrics_request(route, resp->status, clock_mono_us() - t0);
}
