/* test_http.c: the route matcher and the error-to-HTTP table. */
#include "http/errors.h"
#include "http/router.h"
#include "t.h"

static enum err h_a(struct request *req, struct response *resp)
{
    (void)req;
    (void)resp;
    return ERR_OK;
}

static enum err h_b(struct request *req, struct response *resp)
{
    (void)req;
    (void)resp;
    return ERR_INVALID;
}

static const struct route routes[] = {
    { "GET", "/a", 0, 0, h_a },
    { "POST", "/a", 0, 0, h_b },
    { "PUT", "/a", 0, 0, h_b },
    { "GET", "/b", 0, 0, h_b },
};

static const struct {
    const char *method, *path;
    enum err want;
    route_handler_fn handler;
    const char *allow;
} match_rows[] = {
    { "GET", "/a", ERR_OK, h_a, "" },
    { "POST", "/a", ERR_OK, h_b, "" },
    { "DELETE", "/a", ERR_METHOD, NULL, "GET, POST, PUT" },
    { "POST", "/b", ERR_METHOD, NULL, "GET" },
    { "GET", "/c", ERR_NOT_FOUND, NULL, "" },
    { "GET", "/a/", ERR_NOT_FOUND, NULL, "" },
    { "GET", "/A", ERR_NOT_FOUND, NULL, "" },
    { "get", "/a", ERR_METHOD, NULL, "GET, POST, PUT" },
};

static const struct {
    enum err e;
    int status;
    const char *type;
} status_rows[] = {
    { ERR_INVALID, 400, "invalid_request_error" },
    { ERR_UNAUTHORIZED, 401, "authentication_error" },
    { ERR_QUOTA, 402, "invalid_request_error" },
    { ERR_FORBIDDEN, 403, "permission_error" },
    { ERR_NOT_FOUND, 404, "invalid_request_error" },
    { ERR_METHOD, 405, "invalid_request_error" },
    { ERR_CONFLICT, 409, "invalid_request_error" },
    { ERR_TOO_LARGE, 413, "invalid_request_error" },
    { ERR_MEDIA_TYPE, 415, "invalid_request_error" },
    { ERR_RATE_LIMITED, 429, "rate_limit_error" },
    { ERR_STORE, 500, "api_error" },
    { ERR_INTERNAL, 500, "api_error" },
    { ERR_UPSTREAM, 502, "api_error" },
    { ERR_UNAVAILABLE, 503, "api_error" },
    { ERR_OK, 500, "api_error" }, /* success is never rendered as an error */
    { (enum err)999, 500, "api_error" },
};

static const struct {
    const char *pattern, *path;
    bool want;
    const char *id;
} path_rows[] = {
    { "/v1/customers/*", "/v1/customers/cus_123", true, "cus_123" },
    { "/v1/customers/*", "/v1/customers/", false, "" },
    { "/v1/customers/*", "/v1/customers/cus_1/x", false, "" },
    { "/v1/t/*/advance", "/v1/t/clock_9/advance", true, "clock_9" },
    { "/v1/t/*/advance", "/v1/t/clock_9/advancex", false, "" },
    { "/v1/x", "/v1/x", true, "" },
    { "/v1/customers/*", "/v1/customers/0123456789abcdef0123456789abcdef", false,
      "" }, /* too long */
};

int main(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(path_rows); i++) {
        char id[32] = "";
        bool ok = router_path_match(path_rows[i].pattern, path_rows[i].path, id, sizeof(id));
        T_EQ_I64(ok, path_rows[i].want, "'%s' against '%s'", path_rows[i].path,
                 path_rows[i].pattern);
        if (ok)
            T_EQ_STR(id, path_rows[i].id, "segment of '%s'", path_rows[i].path);
    }
    for (size_t i = 0; i < ARRAY_SIZE(match_rows); i++) {
        const struct route *r = NULL;
        char allow[64];
        enum err e = router_match(routes, ARRAY_SIZE(routes), match_rows[i].method,
                                  match_rows[i].path, &r, allow, sizeof(allow));
        T_EQ_I64(e, match_rows[i].want, "%s %s matches as expected", match_rows[i].method,
                 match_rows[i].path);
        if (match_rows[i].want == ERR_OK)
            T_OK(r && r->handler == match_rows[i].handler, "%s %s picks its handler",
                 match_rows[i].method, match_rows[i].path);
        if (match_rows[i].want == ERR_METHOD)
            T_EQ_STR(allow, match_rows[i].allow, "Allow for %s %s", match_rows[i].method,
                     match_rows[i].path);
    }
    for (size_t i = 0; i < ARRAY_SIZE(status_rows); i++) {
        const struct err_http *h = err_http(status_rows[i].e);
        T_EQ_I64(h->status, status_rows[i].status, "status of %s", err_name(status_rows[i].e));
        T_EQ_STR(h->type, status_rows[i].type, "type of %s", err_name(status_rows[i].e));
        T_OK(h->code[0] != '\0', "%s has a default code", err_name(status_rows[i].e));
    }
    return t_done();
}
