/* routes.c: THE route table of subgate (SPEC §3 and §6), and the dispatcher that walks it. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/handlers.h"
#include "base/clock.h"
#include "http/router.h"
#include "metrics/metrics.h"

#define P "/api/v1/payments"
#define A "/api/v1/access"

/* clang-format off */
static const struct route routes[] = {
    { "GET",  "/healthz",                   AUTH_NONE, 0,               ops_healthz },
    { "GET",  "/readyz",                    AUTH_NONE, 0,               ops_readyz },
    { "GET",  "/metrics",                   AUTH_NONE, 0,               ops_metrics },
    { "GET",  P "/pricing",                 AUTH_NONE, 0,               payments_pricing },
    { "GET",  P "/subscription",            AUTH_USER, 0,               payments_subscription },
    { "GET",  P "/invoices",                AUTH_USER, 0,               payments_invoices },
    { "POST", P "/create-checkout-session", AUTH_USER, ROUTE_JSON_BODY | ROUTE_SLOW, payments_create_checkout_session },
    { "POST", P "/customer-portal",         AUTH_USER, ROUTE_JSON_BODY | ROUTE_SLOW, payments_customer_portal },
    { "POST", P "/cancel-subscription",     AUTH_USER, ROUTE_SLOW,      payments_cancel_subscription },
    { "POST", P "/webhook",                 AUTH_STRIPE, ROUTE_RAW_BODY, payments_webhook },
    { "POST", P "/checkout-success",        AUTH_USER, ROUTE_JSON_BODY | ROUTE_SLOW, payments_checkout_success },
    { "GET",  P "/usage",                   AUTH_USER, 0,               access_usage },
    { "GET",  A "/check",                   AUTH_USER_OR_SERVICE, 0,    access_check },
    { "POST", A "/consume",                 AUTH_USER_OR_SERVICE, ROUTE_JSON_BODY, access_consume },
    { "POST", A "/track",                   AUTH_USER_OR_SERVICE, ROUTE_JSON_BODY, access_track },
    { "POST", A "/refund",                  AUTH_USER_OR_SERVICE, ROUTE_JSON_BODY, access_refund },
    { "GET",  A "/usage",                   AUTH_USER_OR_SERVICE, 0,    access_usage_read },
    { "GET",  A "/gate",                    AUTH_NONE, 0,               access_gate },
    { "POST", A "/gate",                    AUTH_NONE, 0,               access_gate },
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

static enum err route_and_run(struct request *req, struct response *resp, size_t *index)
{
    const struct route *r = NULL;
    enum err err;

    *index = ARRAY_SIZE(routes); /* none: the metrics' unmatched series */
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

bool api_is_slow(void *app, const struct request *req)
{
    const struct route *r = NULL;
    char allow[64];

    (void)app;
    if (req->method[0] != 'P') /* every route that calls Stripe is a POST: the hot GETs skip */
        return false;
    return router_match(routes, ARRAY_SIZE(routes), req->method, req->path, &r, allow,
                        sizeof(allow)) == ERR_OK &&
           (r->flags & ROUTE_SLOW);
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
    metrics_request(route, resp->status, clock_mono_us() - t0);
}
