/* test_access_log.c: the request log line: level by status, the error code, an unknown path. */
#include <string.h>

#include "http/access_log.h"
#include "t.h"

static const char LONG_PATH[] =
    "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    "/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

static const struct {
    const char *route; /* NULL: no route matched */
    const char *path;
    int status;
    enum err err;
    const char *code;  /* request_fail's code, "" for the table's default */
    const char *want;  /* a substring the line has */
    const char * not ; /* a substring it lacks, NULL for none */
} cases[] = {
    { "/healthz", "/healthz", 200, ERR_OK, "", "\"level\":\"info\"", "\"code\"" },
    { "/x", "/x", 401, ERR_UNAUTHORIZED, "invalid_token", "\"level\":\"warn\"", "\"path\"" },
    { "/x", "/x", 401, ERR_UNAUTHORIZED, "invalid_token", "\"code\":\"invalid_token\"", NULL },
    { "/x", "/x", 500, ERR_STORE, "", "\"level\":\"error\"", NULL },
    { "/x", "/x", 500, ERR_STORE, "", "\"code\":\"storage_error\"", NULL },
    { "/x", "/x", 502, ERR_UPSTREAM, "stripe_error", "\"code\":\"stripe_error\"", NULL },
    { "/x", "/x", 200, ERR_INVALID, "parameter_invalid", "\"level\":\"info\"", "\"code\"" },
    { "/x", "/x", 404, ERR_NOT_FOUND, "", "\"code\":\"resource_missing\"", "\"path\"" },
    { NULL, "/no/such", 404, ERR_NOT_FOUND, "", "\"path\":\"/no/such\"", NULL },
    { NULL, "/a\x01\x1b[1m\"\\b", 404, ERR_NOT_FOUND, "",
      "\"path\":\"/a\\u0001\\u001b[1m\\u0022\\u005cb\"", NULL },
    { NULL, "/v1/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl/x", 404, ERR_NOT_FOUND, "",
      "\"path\":\"/v1/[redacted]/x\"", "eyJ" },
    { NULL, "/k/svc_integration_key_0123456789", 404, ERR_NOT_FOUND, "",
      "\"path\":\"/k/[redacted]\"", "0123456789" },
    { NULL, "/api/v1/payments/create-checkout-session-typo", 404, ERR_NOT_FOUND, "",
      "\"path\":\"/api/v1/payments/create-checkout-session-typo\"", NULL },
    { NULL, "/api/v2/payments/create-checkout-session2", 404, ERR_NOT_FOUND, "",
      "\"path\":\"/api/v2/payments/create-checkout-session2\"", NULL },
    { NULL, "/k/abcd1234efgh5678", 404, ERR_NOT_FOUND, "", "\"path\":\"/k/[redacted]\"", "1234" },
    { NULL, "/k/abcd1234efgh567", 404, ERR_NOT_FOUND, "", "\"path\":\"/k/abcd1234efgh567\"", NULL },
    { NULL, LONG_PATH, 404, ERR_NOT_FOUND, "", "cccc...\"", NULL },
};

/* The logged path's length, without its quotes and the "..." mark. */
static size_t logged_path_len(const char *line)
{
    const char *p = strstr(line, "\"path\":\"");
    const char *end = p ? strstr(p + 8, "...\"") : NULL;

    return p && end ? (size_t)(end - (p + 8)) : 0;
}

int main(void)
{
    char buf[ACCESS_LOG_LINE_MAX + 1];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct request req = { .method = "GET", .route = cases[i].route, .path = cases[i].path };
        size_t n;
        req.error.err = cases[i].err;
        (void)snprintf(req.error.code, sizeof(req.error.code), "%s", cases[i].code);
        n = access_log_format(&req, cases[i].status, buf);
        buf[n] = '\0';
        T_OK(n > 0 && buf[n - 1] == '\n', "case %zu: one line", i);
        T_OK(strstr(buf, cases[i].want) != NULL, "case %zu: has %s", i, cases[i].want);
        if (cases[i].not )
            T_OK(strstr(buf, cases[i].not ) == NULL, "case %zu: lacks %s", i, cases[i].not );
        if (!strstr(buf, cases[i].want) || (cases[i].not &&strstr(buf, cases[i].not )))
            printf("#   line: %s", buf);
    }
    {
        struct request req = { .method = "GET", .path = LONG_PATH };
        size_t n = access_log_format(&req, 404, buf);
        buf[n] = '\0';
        T_EQ_I64(logged_path_len(buf), ACCESS_LOG_PATH_MAX, "a long path is cut at %d bytes",
                 ACCESS_LOG_PATH_MAX);
    }
    return t_done();
}
