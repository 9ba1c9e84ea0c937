/*
 * api.h: the application behind the HTTP server: the route table, authentication of each
 * caller kind, and the handlers. main.c builds a struct api and hands api_dispatch to the server.
 */
#ifndef SUBGATE_API_API_H
#define SUBGATE_API_API_H

#include <stdint.h>

#include "http/request.h"
#include "http/server.h"

struct config;
struct store;
struct jwt_verifier;
struct service_keys;
struct tier_catalog;
struct stripe_client;
struct gate_rules;
struct signer;

/* Everything a handler may use; all borrowed, alive for as long as the server runs. */
struct api {
    const struct config *cfg;
    struct store *store;
    const struct jwt_verifier *jwt;          /* verifies user tokens */
    const struct service_keys *service_keys; /* may hold no key */
    const struct tier_catalog *tiers;
    const struct gate_rules *gate; /* GATE_RULES_FILE or the built-in rules; NULL: none */
    struct stripe_client *stripe;  /* NULL without STRIPE_SECRET_KEY: those endpoints answer 503 */
    const struct signer *signer;   /* NULL without ENTITLEMENT_TOKEN_KEY_FILE: token routes 503 */
    char *pricing_body; /* GET /pricing, rendered once by api_prepare (it never changes) */
    size_t pricing_len;
    const char
        *theme_css; /* BILLING_THEME_FILE's bytes, served at /billing/theme.css; NULL: none */
    size_t theme_len;
    char theme_etag[40]; /* a strong ETag of theme_css, quotes included (page_prepare) */
    char *page_csp;      /* the billing page's Content-Security-Policy (page_prepare) */
};

/* Who may call a route (SPEC §2). */
enum auth_kind {
    AUTH_NONE,            /* public */
    AUTH_USER,            /* Authorization: Bearer <user JWT> */
    AUTH_SERVICE,         /* Authorization: Bearer <one of SERVICE_API_KEYS> */
    AUTH_STRIPE,          /* authenticated by the Stripe-Signature of the body alone */
    AUTH_USER_OR_SERVICE, /* either; a service leaves req->user "" and names the user itself */
};

/*
 * Renders what never changes after start (the pricing body, the billing page's headers). Call
 * once before serving.
 */
void api_prepare(struct api *api);

/* Frees what api_prepare made. */
void api_release(struct api *api);

/* The server's dispatch function: app is a struct api. */
void api_dispatch(void *app, struct request *req, struct response *resp);

/* "METHOD /path" of each route of the table, for the metrics' labels; *n how many. */
const char *const *api_route_labels(size_t *n);

/*
 * The pool that runs the request: HTTP_POOL_SLOW when its route calls Stripe (ROUTE_SLOW),
 * HTTP_POOL_WRITE for a hot write (ROUTE_WRITE; what it does with Stripe after its write goes
 * through request_then), else HTTP_POOL_NONE (the serving thread).
 */
enum http_pool api_pool_of(void *app, const struct request *req);

/*
 * Before a request that calls Stripe is queued: authenticates it as its route asks (false,
 * with req->error, when that fails: answered at once) and names its client for the per-client
 * cap: the user (req->user), so a user's tokens share one count and made-up ones get 401 at the
 * door instead of a place in the queue.
 */
bool api_admit(void *app, struct request *req, const char **key, size_t *len);

/* http_server_params.decorate: CORS headers (and a 401's challenge) on the server's own answers. */
void api_decorate(void *app, const struct request *req, struct response *resp);

#endif /* SUBGATE_API_API_H */
