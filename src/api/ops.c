/* ops.c: operational endpoints: liveness and readiness (SPEC §6). */
#include <jansson.h>

#include "api/api.h"
#include "api/handlers.h"
#include "base/buf.h"
#include "base/clock.h"
#include "metrics/metrics.h"
#include "store/store.h"

#define METRICS_MAX (1 << 20) /* bytes of the exposition: far more than it takes */

enum err ops_metrics(struct request *req, struct response *resp)
{
    struct buf b;

    buf_init(&b, METRICS_MAX);
    if (metrics_render(&b) != ERR_OK) {
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
