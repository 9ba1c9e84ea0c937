/* test_http.c: the route matcher, the error-to-HTTP table and the edge's strict checks. */
#include <string.h>

#include "http/errors.h"
#include "http/router.h"
#include "http/strict.h"
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
    { "GET", "/a", 0, 0, h_a },  { "POST", "/a", 0, 0, h_b }, { "PUT", "/a", 0, 0, h_b },
    { "GET", "/b", 0, 0, h_b },  { "POST", "/d", 0, 0, h_a }, { "GET", "/e", 0, 0, h_a },
    { "HEAD", "/e", 0, 0, h_b }, /* a HEAD of its own wins, and is listed once */
};

static const struct {
    const char *method, *path;
    enum err want;
    route_handler_fn handler;
    const char *allow;
} match_rows[] = {
    { "GET", "/a", ERR_OK, h_a, "" },
    { "POST", "/a", ERR_OK, h_b, "" },
    { "DELETE", "/a", ERR_METHOD, NULL, "GET, HEAD, POST, PUT" },
    { "POST", "/b", ERR_METHOD, NULL, "GET, HEAD" },
    { "GET", "/c", ERR_NOT_FOUND, NULL, "" },
    { "GET", "/a/", ERR_NOT_FOUND, NULL, "" },
    { "GET", "/A", ERR_NOT_FOUND, NULL, "" },
    { "get", "/a", ERR_METHOD, NULL, "GET, HEAD, POST, PUT" },
    { "HEAD", "/a", ERR_OK, h_a, "" }, /* a HEAD runs the path's GET */
    { "HEAD", "/b", ERR_OK, h_b, "" },
    { "HEAD", "/d", ERR_METHOD, NULL, "POST" }, /* no GET: no HEAD either */
    { "head", "/a", ERR_METHOD, NULL, "GET, HEAD, POST, PUT" },
    { "HEAD", "/e", ERR_OK, h_b, "" },
    { "POST", "/e", ERR_METHOD, NULL, "GET, HEAD" },
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
    { ERR_REFUSED, 502, "api_error" }, /* unhandled, as a Stripe 400 always was */
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

/* n = 0: strlen. */
static const struct {
    const char *s;
    size_t n;
    bool want;
} text_rows[] = {
    { "", 0, true },
    { "plain ascii", 0, true },
    { "caf\xc3\xa9", 0, true },       /* U+00E9 */
    { "\xe2\x82\xac", 0, true },      /* U+20AC */
    { "\xf0\x9f\x98\x80", 0, true },  /* U+1F600 */
    { "\xf4\x8f\xbf\xbf", 0, true },  /* U+10FFFF, the last */
    { "\xff", 0, false },             /* never in UTF-8: check?user_id=%ff */
    { "\x80", 0, false },             /* a lone continuation byte */
    { "\xc3", 0, false },             /* cut short */
    { "\xe2\x82", 0, false },         /* cut short */
    { "\xc0\xaf", 0, false },         /* overlong '/' */
    { "\xe0\x80\xaf", 0, false },     /* overlong '/' */
    { "\xed\xa0\x80", 0, false },     /* a surrogate, U+D800 */
    { "\xf4\x90\x80\x80", 0, false }, /* past U+10FFFF */
    { "\xc3(", 0, false },            /* a bad continuation */
    { "a\0b", 3, false },             /* a NUL (decoded %00) */
};

static const struct {
    const char *raw;
    bool want;
} target_rows[] = {
    { "/healthz", true },  { "/healthz%00.json", false },
    { "/a?x=%00", false }, { "/a?x=%000", false },
    { "/a?x=%0A", true }, /* other escapes are the handlers' business */
    { "/a%2500", true },  /* "%25" is '%': the target decodes to "/a%00", no NUL */
    { "/a%", true },       { "/a%0", true },
};

int main(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(text_rows); i++) {
        size_t n = text_rows[i].n ? text_rows[i].n : strlen(text_rows[i].s);
        T_EQ_I64(strict_text_is_clean(text_rows[i].s, n), text_rows[i].want, "text row %zu", i);
    }
    for (size_t i = 0; i < ARRAY_SIZE(target_rows); i++)
        T_EQ_I64(strict_target_is_clean(target_rows[i].raw), target_rows[i].want, "target '%s'",
                 target_rows[i].raw);
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
    T_EQ_STR(err_http(ERR_REFUSED)->code, err_http(ERR_UPSTREAM)->code,
             "a refusal nobody handled reads as the upstream failure it was before");
    return t_done();
}
