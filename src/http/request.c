/* request.c: request accessors, JSON body parsing and typed field readers, error responses. */
#include "http/request.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "base/str.h"
#include "base/xalloc.h"
#include "http/errors.h"

const char *request_header(const struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *request_query(const struct request *req, const char *name)
{
    const char *v = NULL;

    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v,
                                      NULL) != MHD_YES)
        return NULL;
    return v ? v : "";
}

struct query_each {
    request_query_fn fn;
    void *ctx;
};

static enum MHD_Result each_query_pair(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    const struct query_each *qe = cls;

    (void)kind;
    return qe->fn(qe->ctx, key, value ? value : "") ? MHD_YES : MHD_NO;
}

void request_query_each(const struct request *req, request_query_fn fn, void *ctx)
{
    struct query_each qe = { fn, ctx };

    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, each_query_pair, &qe);
}

bool request_peer_is_loopback(const struct request *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)(const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    }
    return false;
}

struct query_check {
    const char *const *allowed;
    const char *bad;    /* first key not allowed, */
    bool twice;         /* or first allowed key given twice */
    unsigned long seen; /* bit i: allowed[i] seen */
};

static enum MHD_Result check_query_key(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    struct query_check *qc = cls;
    unsigned i = 0;

    (void)kind;
    (void)value;
    for (const char *const *a = qc->allowed; *a; a++, i++) {
        if (strcmp(*a, key) != 0)
            continue;
        if (i >= sizeof(qc->seen) * CHAR_BIT)
            return MHD_YES; /* past the bits of seen: not checked for repeats */
        if (!(qc->seen & (1ul << i))) {
            qc->seen |= 1ul << i;
            return MHD_YES;
        }
        qc->twice = true;
        break;
    }
    qc->bad = key;
    return MHD_NO;
}

enum err request_query_only(struct request *req, const char *const *allowed)
{
    struct query_check qc = { allowed, NULL, false, 0 };

    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_query_key, &qc);
    if (qc.twice)
        return request_fail(req, ERR_INVALID, "parameter_invalid", qc.bad,
                            "query parameter '%s' is given more than once: send it once", qc.bad);
    if (qc.bad)
        return request_fail(req, ERR_INVALID, "parameter_unknown", qc.bad,
                            "unknown query parameter '%s'", qc.bad);
    return ERR_OK;
}

void request_then(struct request *req, void (*fn)(struct request *req, void *arg), void *arg)
{
    req->then = fn;
    req->then_arg = arg;
}

enum err request_fail(struct request *req, enum err e, const char *code, const char *param,
                      const char *fmt, ...)
{
    va_list ap;

    req->error.err = e;
    str_copy(req->error.code, sizeof(req->error.code), code ? code : "");
    str_copy(req->error.param, sizeof(req->error.param), param ? param : "");
    va_start(ap, fmt);
    vsnprintf(req->error.message, sizeof(req->error.message), fmt, ap);
    va_end(ap);
    return e;
}

/*
 * The body is read as UTF-8 (RFC 8259 section 8.1), so a charset parameter may only say so: a
 * body declared in another charset was read as if it were UTF-8, and its request carried out.
 */
static bool charset_is_utf8(const char *params)
{
    while (*params == ';') {
        const char *name = params + 1, *eq, *value;
        size_t n = strcspn(name, "=;"), vn;

        eq = name + n;
        params = name + strcspn(name, ";");
        str_trim(&name, &n);
        if (*eq != '=' || !str_eq_nocase(name, n, "charset"))
            continue;
        value = eq + 1;
        vn = (size_t)(params - value);
        str_trim(&value, &vn);
        if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') {
            value++;
            vn -= 2;
        }
        if (!str_eq_nocase(value, vn, "utf-8"))
            return false;
    }
    return true;
}

static bool is_json_type(const char *ct)
{
    size_t n;
    const char *type = ct;

    if (!ct)
        return false;
    n = strcspn(ct, ";");
    str_trim(&type, &n);
    return str_eq_nocase(type, n, "application/json") && charset_is_utf8(ct + strcspn(ct, ";"));
}

enum err request_json_body(struct request *req)
{
    if (!is_json_type(request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return request_fail(
            req, ERR_MEDIA_TYPE, NULL, NULL,
            "Content-Type must be application/json (in UTF-8, if a charset is named)");
    return request_parse_json(req);
}

enum err request_parse_json(struct request *req)
{
    json_error_t jerr;

    json_decref(req->json);
    req->json = json_loadb(buf_str(&req->body), req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req->json)
        return request_fail(req, ERR_INVALID, "json_invalid", NULL,
                            "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                            jerr.text);
    if (!json_is_object(req->json))
        return request_fail(req, ERR_INVALID, "json_invalid", NULL,
                            "the body must be a JSON object");
    return ERR_OK;
}

enum err request_json_only(struct request *req, const char *const *allowed)
{
    const char *key;
    json_t *value;

    json_object_foreach(req->json, key, value)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, key) != 0)
            a++;
        if (!*a)
            return request_fail(req, ERR_INVALID, "parameter_unknown", key, "unknown field '%s'",
                                key);
    }
    return ERR_OK;
}

enum err request_json_string(struct request *req, const char *field, bool required,
                             const char **out)
{
    json_t *v = json_object_get(req->json, field);

    if (!v || json_is_null(v)) {
        if (required)
            return request_fail(req, ERR_INVALID, "parameter_missing", field,
                                "missing required field '%s'", field);
        return ERR_OK;
    }
    if (!json_is_string(v))
        return request_fail(req, ERR_INVALID, "parameter_invalid", field, "'%s' must be a string",
                            field);
    *out = json_string_value(v);
    return ERR_OK;
}

enum err request_json_int(struct request *req, const char *field, bool required, int64_t min,
                          int64_t max, int64_t *out)
{
    json_t *v = json_object_get(req->json, field);

    if (!v || json_is_null(v)) {
        if (required)
            return request_fail(req, ERR_INVALID, "parameter_missing", field,
                                "missing required field '%s'", field);
        return ERR_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return request_fail(req, ERR_INVALID, "parameter_invalid", field,
                            "'%s' must be an integer from %lld to %lld", field, (long long)min,
                            (long long)max);
    *out = (int64_t)json_integer_value(v);
    return ERR_OK;
}

void response_static(struct response *resp, int status, const char *content_type, const char *body,
                     size_t len)
{
    if (!resp->body_static)
        free(resp->body);
    resp->status = status;
    /* never written or freed: body_static says so */
    resp->body = (char *)(uintptr_t)body; /* NOLINT(performance-no-int-to-ptr) */
    resp->len = len;
    resp->body_static = true;
    resp->content_type = content_type;
}

void response_json(struct response *resp, int status, json_t *body)
{
    if (!resp->body_static)
        free(resp->body);
    resp->body_static = false;
    resp->status = status;
    resp->body = json_dumps(body, JSON_COMPACT);
    resp->len = resp->body ? strlen(resp->body) : 0;
    resp->content_type = "application/json";
    json_decref(body);
}

void response_jw(struct response *resp, int status, struct jw *w)
{
    size_t len;
    char *body = jw_finish(w, &len);

    if (!body) {
        response_json(resp, 500,
                      error_json(ERR_INTERNAL, NULL, NULL, "an answer could not be written"));
        return;
    }
    if (!resp->body_static)
        free(resp->body);
    resp->body_static = false;
    resp->status = status;
    resp->body = body;
    resp->len = len;
    resp->content_type = "application/json";
}

bool response_add_header(struct response *resp, const char *name, const char *value)
{
    size_t old = resp->headers ? strlen(resp->headers) : 0;
    size_t n = strlen(name) + strlen(value) + 3;

    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return false;
    resp->headers = xrealloc(resp->headers, old + n + 1);
    snprintf(resp->headers + old, n + 1, "%s: %s\n", name, value);
    return true;
}

json_t *error_json(enum err err, const char *code, const char *param, const char *message)
{
    const struct err_http *h = err_http(err);
    json_t *e = json_object();
    json_t *msg = json_string(message); /* NULL unless valid UTF-8: messages may quote input */

    json_object_set_new(e, "type", json_string(h->type));
    json_object_set_new(e, "code", json_string(code && code[0] ? code : h->code));
    if (param && param[0])
        json_object_set_new(e, "param", json_string(param));
    json_object_set_new(e, "message", msg ? msg : json_string("invalid request"));
    return json_pack("{s:o}", "error", e);
}

void response_error(struct response *resp, const struct request *req)
{
    const struct api_error *e = &req->error;

    response_json(resp, err_http(e->err)->status,
                  error_json(e->err, e->code, e->param, e->message));
    if (e->err == ERR_UNAVAILABLE)
        (void)response_add_header(resp, "Retry-After", "5"); /* a constant: cannot be refused */
}
