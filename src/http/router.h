/* router.h: matching a method and path against a static route table (api/routes.c has it). */
#ifndef SUBGATE_HTTP_ROUTER_H
#define SUBGATE_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "base/err.h"
#include "http/request.h"

typedef enum err (*route_handler_fn)(struct request *req, struct response *resp);

enum route_flags {
    ROUTE_JSON_BODY = 1 << 0, /* the handler reads a JSON body: Content-Type is checked first */
    ROUTE_RAW_BODY = 1 << 1,  /* the handler reads the raw bytes (webhooks) */
    ROUTE_SLOW = 1 << 2,    /* it calls Stripe: run on the bounded pool, off the serving threads */
    ROUTE_BROWSER = 1 << 3, /* a user's page may call it from another origin (CORS_ORIGINS) */
    ROUTE_WRITE = 1 << 4,   /* a hot write: run on the write pool, so that writes form batches */
};

struct route {
    const char *method;
    const char *path; /* exact; the full path including any prefix */
    int auth;         /* the application's caller kind; opaque here */
    unsigned flags;   /* enum route_flags */
    route_handler_fn handler;
};

/*
 * Finds the route for method and path. A HEAD with no HEAD route of its own finds the path's
 * GET route (the library sends that answer's head only, Content-Length included).
 * ERR_NOT_FOUND when no route has the path, ERR_METHOD when some do but not with this method;
 * then *allow lists the methods that would work ("GET, HEAD, POST"), written into
 * allow[allow_len].
 */
MUST_CHECK enum err router_match(const struct route *routes, size_t n, const char *method,
                                 const char *path, const struct route **out, char *allow,
                                 size_t allow_len);

/*
 * Matches path against a template in which each '*' stands for one non-empty path segment
 * (the emulator's "/v1/customers/" then '*'); that segment is copied into id[idlen]. False
 * when they differ or the segment does not fit.
 */
bool router_path_match(const char *pattern, const char *path, char *id, size_t idlen);

#endif /* SUBGATE_HTTP_ROUTER_H */
