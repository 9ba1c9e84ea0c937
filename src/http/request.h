/*
 * request.h: one HTTP request as the handlers see it, and the response they fill. The server
 * (server.c) owns both; everything hung on a request dies with it (rule 28).
 */
#ifndef SUBGATE_HTTP_REQUEST_H
#define SUBGATE_HTTP_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/jw.h"

#define REQUEST_ID_MAX   32
#define REQUEST_USER_MAX 256

/* The detail of a failed request, rendered as {"error": {type, code, param, message}}. */
struct api_error {
    enum err err;      /* ERR_OK while nothing failed */
    char code[64];     /* Stripe-style code ("parameter_invalid"); "" = the table's default */
    char param[64];    /* the offending parameter, "" when none */
    char message[512]; /* for the caller: never a secret */
};

struct request {
    const char *method;          /* borrowed from the HTTP library */
    const char *path;            /* without the query string */
    const char *route;           /* the matched route's template, for logs; NULL when none */
    char id[REQUEST_ID_MAX];     /* "req_" + 16 hex, echoed as Request-Id */
    char user[REQUEST_USER_MAX]; /* authenticated user id, for logs; "" when none */
    char user_email[320];        /* the user token's email claim; "" when none */
    struct buf body;             /* raw body, capped by MAX_BODY_BYTES */
    bool body_too_large;         /* the cap was hit: answer 413 */
    size_t discarded;            /* body bytes read and dropped past the cap */
    bool answered;               /* a response is queued: later calls only read what is left */
    json_t *json;                /* parsed body (request_json_body), released with the request */
    struct api_error error;      /* filled by request_fail */
    void *conn;                  /* the library's connection, for header and query look-ups */
    void *app;                   /* the application's context (api/) */
    int64_t start_ms;            /* monotonic, for the latency in the log line */
    void (*then)(struct request *req, void *arg); /* request_then's, until it runs; or NULL */
    void *then_arg;
};

struct response {
    int status;       /* 0 until set */
    char *body;       /* owned (free()) unless body_static; NULL for an empty body */
    bool body_static; /* body outlives the server (response_static): sent, never freed */
    size_t len;
    const char *content_type; /* static string */
    char allow[64];           /* "Allow" header value for 405; "" when none */
    char *headers;            /* owned (free()): extra "Name: value\n" lines, NULL when none */
    bool drop; /* close the connection without answering (fault injection); status still set */
};

/* Looks up a request header (case-insensitive); NULL when absent. Borrowed. */
const char *request_header(const struct request *req, const char *name);

/* Looks up a query parameter (decoded); NULL when absent, "" when present without a value. */
const char *request_query(const struct request *req, const char *name);

/* Calls fn with each query parameter (decoded; value "" when absent) until it returns false. */
typedef bool (*request_query_fn)(void *ctx, const char *key, const char *value);
void request_query_each(const struct request *req, request_query_fn fn, void *ctx);

/* True when the peer's address is loopback (127.0.0.0/8 or ::1). */
bool request_peer_is_loopback(const struct request *req);

/*
 * Fails with ERR_INVALID (param named) when the query string has a parameter that is not in
 * the NULL-terminated list allowed (at most 32 names), or one of them twice: which of two
 * values is meant is ambiguous (a proxy in front may take the last), so neither is taken.
 */
MUST_CHECK enum err request_query_only(struct request *req, const char *const *allowed);

/*
 * Records the failure detail on the request and returns e, so a handler can write
 * `return request_fail(req, ERR_INVALID, "parameter_invalid", "tier", "unknown tier '%s'", t);`.
 * code and param may be NULL.
 */
enum err request_fail(struct request *req, enum err e, const char *code, const char *param,
                      const char *fmt, ...) PRINTF_LIKE(5, 6);

/*
 * Parses the body as a JSON object into req->json (owned by the request). Malformed JSON says
 * where (line, column); a body that is not an object, duplicate keys, or a wrong Content-Type
 * (ERR_MEDIA_TYPE) fail with the detail recorded.
 */
MUST_CHECK enum err request_json_body(struct request *req);

/* The parsing half of request_json_body, without the header check: pure, for tests and fuzzing. */
MUST_CHECK enum err request_parse_json(struct request *req);

/*
 * Typed field readers for req->json. A missing optional field leaves *out untouched and
 * returns ERR_OK; a missing required one or a wrong type fails naming the field.
 */
MUST_CHECK enum err request_json_string(struct request *req, const char *field, bool required,
                                        const char **out);
MUST_CHECK enum err request_json_int(struct request *req, const char *field, bool required,
                                     int64_t min, int64_t max, int64_t *out);

/* Fails naming the first field of req->json that is not in the NULL-terminated list allowed. */
MUST_CHECK enum err request_json_only(struct request *req, const char *const *allowed);

/*
 * Asks for fn(req, arg) to run once the handler has returned, and before its answer is sent:
 * work that may wait on Stripe after a write. On a serving thread or a pool's thread it runs
 * there at once; a request running as a fiber (the write pool on SQLite, where one thread runs
 * every write) has it run on a thread of its own pool meanwhile, so that Stripe holds no other
 * write. fn owns arg (frees it). At most once per request.
 */
void request_then(struct request *req, void (*fn)(struct request *req, void *arg), void *arg);

/* Sets a response whose body lives as long as the server and is never freed (lent). */
void response_static(struct response *resp, int status, const char *content_type, const char *body,
                     size_t len);

/* Sets a JSON response; steals body (a json_t reference). */
void response_json(struct response *resp, int status, json_t *body);

/*
 * Sets a JSON response from a writer (base/jw.h), finishing it: the same bytes response_json
 * sends for the same object, with no tree. A string the writer refused makes it a 500.
 */
void response_jw(struct response *resp, int status, struct jw *w);

/*
 * Adds a response header (Location, Idempotent-Replayed...). name and value must not contain
 * line breaks; a header with one is refused (returns false) and not added.
 */
bool response_add_header(struct response *resp, const char *name, const char *value);

/* Renders req->error as the Stripe-shaped error body with the status of its err. */
void response_error(struct response *resp, const struct request *req);

/*
 * The one Stripe-shaped error body: {"error": {type, code, param, message}}, with type (and code,
 * when code is NULL or "") from err's row in http/errors.c; param is left out when NULL or "".
 * Returns a new reference: callers may add fields to the "error" object before sending it.
 */
json_t *error_json(enum err err, const char *code, const char *param, const char *message);

#endif /* SUBGATE_HTTP_REQUEST_H */
