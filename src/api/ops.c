/* ops.c: operational endpoints: liveness, readiness, metrics and the OpenAPI document (SPEC §6). */
#include <inttypes.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "api/handlers.h"
#include "api/openapi.h"
#include "base/buf.h"
#include "base/clock.h"
#include "metrics/metrics.h"
#include "store/store.h"

#define METRICS_MAX (1 << 20) /* bytes of the exposition: far more than it takes */

/* The store's group commit: writes, and the commits they took (a batch is one). */
static enum err render_group_commit(struct store *st, struct buf *b)
{
    struct store_group_stats s;

    store_group_stats_get(st, &s);
    return buf_appendf(b,
                       "# HELP subgate_store_writes_total Write operations run on the database.\n"
                       "# TYPE subgate_store_writes_total counter\n"
                       "subgate_store_writes_total %" PRIu64 "\n"
                       "# HELP subgate_store_commits_total Commits those writes took: a batch "
                       "of writes committed together counts once.\n"
                       "# TYPE subgate_store_commits_total counter\n"
                       "subgate_store_commits_total %" PRIu64 "\n",
                       s.units, s.commits);
}

enum err ops_metrics(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    struct buf b;

    buf_init(&b, METRICS_MAX);
    if (metrics_render(&b) != ERR_OK || render_group_commit(api->store, &b) != ERR_OK) {
        buf_release(&b);
        return request_fail(req, ERR_INTERNAL, NULL, NULL, "cannot render the metrics");
    }
    resp->status = 200;
    resp->body = buf_detach(&b, &resp->len);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return ERR_OK;
}

enum err ops_healthz(struct request *req, struct response *resp)
{
    (void)req;
    response_json(resp, 200, json_pack("{s:s}", "status", "ok"));
    return ERR_OK;
}

enum err ops_readyz(struct request *req, struct response *resp)
{
    const struct api *api = req->app;
    int version = 0;

    if (store_ping(api->store) != ERR_OK || store_schema_version(api->store, &version) != ERR_OK)
        return request_fail(req, ERR_UNAVAILABLE, "database_unavailable", NULL,
                            "the database is not reachable");
    /* A newer schema is fine: migrations are additive, and during a rolling upgrade the old
     * instances keep serving after the new ones migrated. */
    if (store_writable(api->store, clock_now()) != ERR_OK)
        return request_fail(req, ERR_UNAVAILABLE, "database_not_writable", NULL,
                            "the database does not take writes (disk full or read-only?); "
                            "reads still work");
    if (version < store_schema_version_latest(api->store))
        return request_fail(req, ERR_UNAVAILABLE, "database_not_migrated", NULL,
                            "the database schema is at version %d, this build needs %d", version,
                            store_schema_version_latest(api->store));
    response_json(resp, 200,
                  json_pack("{s:s, s:s, s:i}", "status", "ready", "database",
                            store_backend_name(api->store), "schema_version", version));
    return ERR_OK;
}

/*
 * The document is compiled in, so its ETag is fixed for the build: a cache asks again
 * (no-cache) and gets 304 while the binary is the same.
 */
static bool etag_matches(const char *if_none_match)
{
    return if_none_match &&
           (strstr(if_none_match, openapi_json_etag) || strcmp(if_none_match, "*") == 0);
}

enum err ops_openapi(struct request *req, struct response *resp)
{
    if (etag_matches(request_header(req, "If-None-Match")))
        response_static(resp, 304, NULL, NULL, 0);
    else
        response_static(resp, 200, "application/json", openapi_json, openapi_json_len);
    (void)response_add_header(resp, "ETag", openapi_json_etag); /* no line breaks: never refused */
    (void)response_add_header(resp, "Cache-Control", "no-cache");
    return ERR_OK;
}
