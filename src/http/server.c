/*
 * server.c: libmicrohttpd adapter. libmicrohttpd 0.9.75 has no body limit, so the cap is ours:
 * refused early on Content-Length, counted otherwise. A response queued in the first
 * access-handler call loses keep-alive, so normal responses wait for the next call.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/rand.h>

#include "base/clock.h"
#include "base/fiber.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "http/access_log.h"
#include "http/client_slots.h"
#include "http/errors.h"
#include "http/offload.h"
#include "http/strict.h"
#include "metrics/metrics.h"

/*
 * A connection has HEADER_DEADLINE_MS from its accept to deliver its first request's headers,
 * and each later request from its request line to its last header, however it dribbles them
 * (the library's own timeout only counts silence); it may idle IDLE_TIMEOUT_S between
 * keep-alive requests.
 */
#define HEADER_DEADLINE_MS INT64_C(10000)
#define IDLE_TIMEOUT_S     60u
#define FD_RESERVE_MIN     128 /* descriptors kept for the store, Stripe, logs and files */

/*
 * Buckets of the per-client count of slow requests (16 KiB, whatever the number of clients):
 * clients that share one share its count, which stays rare with at most
 * STRIPE_CONCURRENCY + STRIPE_QUEUE_MAX requests (72 by default) holding slots at once.
 */
#define CLIENT_SLOT_BUCKETS 4096

/*
 * 0.9.75 cannot send a response queued in the middle of an upload, so a chunked body past the
 * cap is read and dropped, and the 413 goes out when it ends; past this many dropped bytes
 * the connection is closed instead.
 */
#define DISCARD_MAX_BYTES ((size_t)4 << 20)

/*
 * Each connection's memory pool holds the request head (and the library's parse of it): a head
 * past it is answered 431. The library zeroes the whole pool for every request on a kept-alive
 * connection, which at its default of 32 KiB was 8% of a static answer's CPU; 16 KiB still takes
 * heads of about 15 KiB (nginx takes header lines of 8 KiB by default).
 */
#define HEAD_POOL_BYTES ((size_t)16 << 10)

/*
 * The most query parameters a request may have: no route takes more than four. Each takes a
 * record of about 56 bytes from the head's pool, which 0.9.75 fills at about 200 of them, and
 * then closes the connection without an answer (its own 431 no longer fits either).
 */
#define QUERY_ARGS_MAX    64
#define STRINGIFY_(x)     #x
#define STRINGIFY(x)      STRINGIFY_(x)
#define MANY_ARGS_MESSAGE "the query has more than " STRINGIFY(QUERY_ARGS_MAX) " parameters"

/* What the URI callback returns for a target that encodes a NUL: the first call answers 400. */
static char target_has_nul;

/*
 * An open connection, in the server's list from accept to close. Its serving thread (owner)
 * alone writes head_ms and in_head; the watcher reads them (see watcher_main).
 */
struct watch {
    struct watch *prev, *next;
    struct MHD_Connection *conn;
    pthread_t owner; /* the serving thread that accepted it and serves it */
    int fd;
    _Atomic int64_t head_ms; /* monotonic: accept, or the current request line */
    _Atomic bool in_head;    /* a request's head is being read */
    bool linked;             /* in the server's list */
    bool shut;               /* shut down (deadline, or answered here): the library closes it */
    bool many_args;          /* owner only: the current request's query has too many parameters */
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct offload *slow;      /* the pool for requests that call Stripe; NULL without one */
    struct offload *write;     /* the pool for requests that write; NULL without one */
    struct offload *then;      /* request_then's work of writes run as fibers; NULL: none */
    struct client_slots *cap;  /* each client's requests on that pool; NULL: no cap */
    pthread_mutex_t watch_mu;  /* guards watched, the watches and watcher_stop */
    pthread_cond_t watch_cond; /* wakes the watcher to stop */
    struct watch *watched;     /* the open connections */
    pthread_t watcher;
    bool watcher_started;
    bool watcher_stop;
    struct http_server_params p;
    _Atomic int in_flight; /* requests begun and not yet completed */
    _Atomic int64_t open;  /* connections open now, for /metrics */
    _Atomic uint64_t seq;  /* request counter, part of the request id */
    uint32_t id_salt;      /* random per process, so ids differ across restarts */
    uint16_t port;         /* the bound port (the one asked for, or the one given for 0) */
};

/* Where a request sent to the slow pool is: its connection is suspended while it runs. */
enum slow_state {
    SLOW_NONE,    /* served on the serving thread, as usual */
    SLOW_RUNNING, /* on the pool */
    SLOW_DONE,    /* its response is ready: sent at the next access-handler call */
};

/* A request as the server holds it: the application's part first (con_cls points here). */
struct server_request {
    struct request req;
    struct http_server *s;
    struct response resp; /* a slow request's response, once done */
    _Atomic int slow;     /* enum slow_state */
    unsigned int slot;    /* its client's bucket in s->cap, when has_slot */
    bool has_slot;        /* it holds a slot there: given back when its slow work ends */
};

/* "req_", the server's salt and the sequence number's low 32 bits, 8 lowercase hex digits each. */
static void request_new_id(struct http_server *s, struct request *req)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v = ((uint64_t)s->id_salt << 32) | (atomic_fetch_add(&s->seq, 1) & 0xffffffffu);
    char *p = req->id;

    _Static_assert(sizeof(req->id) >= 4 + 16 + 1, "room for the id");
    memcpy(p, "req_", 4);
    for (int i = 0; i < 16; i++)
        p[4 + i] = hex[(v >> (60 - 4 * i)) & 0xf];
    p[20] = '\0';
}

static struct request *request_begin(struct http_server *s, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
    struct server_request *sr = xcalloc(1, sizeof(*sr));
    struct request *req = &sr->req;

    sr->s = s;
    req->method = method;
    req->path = url;
    req->conn = conn;
    req->app = s->p.app;
    req->start_ms = clock_mono_ms();
    buf_init(&req->body, s->p.max_body);
    request_new_id(s, req);
    atomic_fetch_add(&s->in_flight, 1);
    return req;
}

/* Adds the handler's extra "Name: value\n" lines (response_add_header) to r, then frees them. */
static void add_extra_headers(struct MHD_Response *r, struct response *resp)
{
    char *line = resp->headers;

    while (line && *line) {
        char *end = strchr(line, '\n');
        char *colon = strchr(line, ':');
        if (!end || !colon || colon > end)
            break;
        *end = '\0';
        *colon = '\0';
        MHD_add_response_header(r, line, colon + 2);
        line = end + 1;
    }
    free(resp->headers);
    resp->headers = NULL;
}

static enum MHD_Result send_response(struct request *req, struct response *resp)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(
        resp->len, resp->body, resp->body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    resp->body = NULL; /* the library owns it now, or it was lent */
    add_extra_headers(r, resp);
    if (resp->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    if (resp->allow[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
    MHD_add_response_header(r, "Request-Id", req->id);
    if (!MHD_get_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL)) /* the handler's wins */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    ret = MHD_queue_response(req->conn, (unsigned int)resp->status, r);
    req->answered = true;
    MHD_destroy_response(r);
    access_log_write(req, resp->status);
    return ret;
}

static enum MHD_Result send_error(struct request *req, enum err e, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

static enum MHD_Result send_error(struct request *req, enum err e, const char *fmt, ...)
{
    struct response resp = { 0 };
    va_list ap;

    req->error.err = e;
    va_start(ap, fmt);
    vsnprintf(req->error.message, sizeof(req->error.message), fmt, ap);
    va_end(ap);
    response_error(&resp, req);
    if (((struct server_request *)req)->s->p.decorate)
        ((struct server_request *)req)->s->p.decorate(req->app, req, &resp);
    return send_response(req, &resp);
}

static bool content_length_too_big(struct request *req, size_t max)
{
    const char *cl = request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t n;

    if (!cl)
        return false;
    if (parse_i64(cl, strlen(cl), 0, INT64_MAX, &n) != ERR_OK)
        return false; /* libmicrohttpd itself rejects a malformed Content-Length */
    return (uint64_t)n > max;
}

/* Sends what dispatch left in resp: its response, a 500 when it set none, or nothing (drop). */
static enum MHD_Result answer(struct request *req, struct response *resp_in)
{
    struct response resp = *resp_in;

    memset(resp_in, 0, sizeof(*resp_in));
    if (resp.status == 0) {
        log_error("dispatch left no status for %s %s", req->method, req->route ? req->route : "?");
        if (!resp.body_static)
            free(resp.body);
        free(resp.headers);
        return send_error(req, ERR_INTERNAL, "internal error");
    }
    if (resp.drop) {
        /* MHD_NO from the access handler closes the connection without an answer */
        if (!resp.body_static)
            free(resp.body);
        free(resp.headers);
        access_log_write(req, 0);
        return MHD_NO;
    }
    return send_response(req, &resp);
}

/* Gives back the request's slot in its client's count, if it holds one. */
static void slot_give(struct server_request *sr)
{
    if (!sr->has_slot)
        return;
    sr->has_slot = false;
    client_slots_give(sr->s->cap, sr->slot);
}

/*
 * On a pool thread, once a request's work is over: wakes its connection to send the answer. Its
 * slot is given back here, before the resume that may free sr: the work is over, whether the
 * client still waits for the answer or has gone (a suspended connection sees no close before
 * this resume, and every job queued runs, even at shutdown).
 */
static void slow_done(struct server_request *sr)
{
    slot_give(sr);
    atomic_store(&sr->slow, SLOW_DONE);
    MHD_resume_connection(sr->req.conn);
}

/* Runs what the handler left for after it (request_then), if anything. */
static void then_run(struct request *req)
{
    void (*fn)(struct request *, void *) = req->then;

    req->then = NULL;
    if (fn)
        fn(req, req->then_arg);
}

/* On the then pool: a fiber's request's work after its handler, then its answer. */
static void run_then(void *arg)
{
    struct server_request *sr = arg;

    then_run(&sr->req);
    slow_done(sr);
}

/*
 * On a pool thread: runs the request, and what its handler left for after it (request_then) on
 * the then pool when this is a fiber, else here; then its answer goes.
 */
static void run_slow(void *arg)
{
    struct server_request *sr = arg;
    struct http_server *s = sr->s;

    s->p.dispatch(s->p.app, &sr->req, &sr->resp);
    if (sr->req.then && s->then && fiber_self()) { /* it may wait on Stripe: not on the fibers */
        if (offload_submit(s->then, run_then, sr))
            return;
        log_warn("%s %s: %d requests already wait to finish after their write: finished on the "
                 "write thread",
                 sr->req.method, sr->req.path, s->p.write_queue);
    }
    then_run(&sr->req);
    slow_done(sr);
}

/*
 * Answers a slow request at once with req->error, nothing done: through the suspended
 * connection's resume, as the pool would, so the answer keeps the connection alive.
 */
static enum MHD_Result refuse_now(struct http_server *s, struct server_request *sr)
{
    struct request *req = &sr->req;

    response_error(&sr->resp, req);
    if (req->error.err == ERR_RATE_LIMITED)
        (void)response_add_header(&sr->resp, "Retry-After", "1"); /* a constant: fits */
    if (s->p.decorate)
        s->p.decorate(s->p.app, req, &sr->resp);
    atomic_store(&sr->slow, SLOW_DONE);
    MHD_resume_connection(req->conn);
    return MHD_YES;
}

static enum MHD_Result refuse_slow(struct http_server *s, struct server_request *sr, enum err e,
                                   const char *code, const char *message)
{
    struct request *req = &sr->req;

    req->error.err = e;
    (void)str_copy(req->error.code, sizeof(req->error.code), code); /* short literals */
    (void)str_copy(req->error.message, sizeof(req->error.message), message);
    return refuse_now(s, sr);
}

/* Takes a slot in the count of the request's client; false when it has its cap in flight. */
static bool slot_take(struct http_server *s, struct server_request *sr, const char *key, size_t len)
{
    if (!s->cap)
        return true;
    sr->has_slot = client_slots_take(s->cap, key, key ? len : 0, &sr->slot);
    return sr->has_slot;
}

/*
 * Sends the request to the slow pool, its connection suspended (first, so the pool's resume
 * never comes before it). A request admit refuses is answered at once, a client past its cap
 * 429, a full queue 503.
 */
static enum MHD_Result offload(struct http_server *s, struct server_request *sr)
{
    struct request *req = &sr->req;
    const char *key = NULL;
    size_t len = 0;

    MHD_suspend_connection(req->conn);
    atomic_store(&sr->slow, SLOW_RUNNING);
    if (s->p.admit && !s->p.admit(s->p.app, req, &key, &len))
        return refuse_now(s, sr);
    if (!slot_take(s, sr, key, len)) {
        metrics_queue_refused(METRICS_QUEUE_CLIENT_CAP);
        return refuse_slow(s, sr, ERR_RATE_LIMITED, "rate_limited",
                           "this client has too many requests waiting for Stripe: try again when "
                           "one of them is answered");
    }
    if (offload_submit(s->slow, run_slow, sr))
        return MHD_YES;
    slot_give(sr);
    metrics_queue_refused(METRICS_QUEUE_FULL);
    log_warn("%s %s: %d requests already wait for Stripe: 503", req->method, req->path,
             s->p.slow_queue);
    return refuse_slow(s, sr, ERR_UNAVAILABLE, "busy",
                       "too many requests are waiting for Stripe: try again in a few seconds");
}

/* Sends a write to the write pool, its connection suspended; a full queue is answered 503. */
static enum MHD_Result offload_write(struct http_server *s, struct server_request *sr)
{
    struct request *req = &sr->req;

    MHD_suspend_connection(req->conn);
    atomic_store(&sr->slow, SLOW_RUNNING);
    if (offload_submit(s->write, run_slow, sr))
        return MHD_YES;
    metrics_write_refused();
    log_warn("%s %s: %d writes already wait for the database: 503", req->method, req->path,
             s->p.write_queue);
    return refuse_slow(s, sr, ERR_UNAVAILABLE, "busy",
                       "too many writes are waiting for the database: try again in a few seconds");
}

static enum MHD_Result dispatch(struct http_server *s, struct request *req)
{
    struct server_request *sr = (struct server_request *)req;
    struct response resp = { 0 };

    if (req->body_too_large)
        return send_error(req, ERR_TOO_LARGE, "request body is larger than %zu bytes",
                          s->p.max_body);
    switch ((enum slow_state)atomic_load(&sr->slow)) {
    case SLOW_RUNNING:
        return MHD_YES; /* woken before its time: keep waiting */
    case SLOW_DONE:
        atomic_store(&sr->slow, SLOW_NONE);
        return answer(req, &sr->resp);
    case SLOW_NONE:
        break;
    }
    switch (s->p.pool_of ? s->p.pool_of(s->p.app, req) : HTTP_POOL_NONE) {
    case HTTP_POOL_SLOW:
        if (s->slow)
            return offload(s, sr);
        break;
    case HTTP_POOL_WRITE:
        if (s->write)
            return offload_write(s, sr);
        break;
    case HTTP_POOL_NONE:
        break;
    }
    s->p.dispatch(s->p.app, req, &resp);
    then_run(req);
    return answer(req, &resp);
}

/*
 * Appends a chunk of the body. Past the cap, the rest is read and dropped so that the 413 can
 * be answered when the body ends (dispatch); past DISCARD_MAX_BYTES more, the connection is
 * closed without an answer.
 */
static enum MHD_Result take_upload(struct http_server *s, struct request *req, const char *upload,
                                   size_t *upload_size)
{
    size_t n = *upload_size;

    (void)s;
    *upload_size = 0;
    if (req->answered)
        return MHD_YES;
    if (!req->body_too_large && buf_append(&req->body, upload, n) == ERR_OK)
        return MHD_YES;
    if (!req->body_too_large) {
        req->body_too_large = true;
        buf_release(&req->body);
    }
    req->discarded += n;
    if (req->discarded <= DISCARD_MAX_BYTES)
        return MHD_YES;
    access_log_write(req, 0);
    return MHD_NO;
}

/* The watch of a connection (its socket context), or NULL. */
static struct watch *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

/*
 * Headers that name one credential or one request (X-Original-URI: the path the gate decides
 * for): two of them are ambiguous, so refused.
 */
static const char *const single_headers[] = { "Authorization", "Idempotency-Key", "X-Original-URI",
                                              NULL };

/* What the head's checks need from its headers, gathered in one pass over them. */
struct head_headers {
    const char *length;   /* the first Content-Length, or NULL */
    bool lengths_differ;  /* another Content-Length says something else */
    const char *coding;   /* the last Transfer-Encoding, or NULL */
    unsigned codings;     /* how many Transfer-Encoding headers */
    const char *repeated; /* the first single header seen twice, or NULL */
    unsigned seen;        /* bit i: single_headers[i] seen */
};

static bool header_is(const char *key, size_t key_size, const char *name)
{
    return key_size == strlen(name) && strcasecmp(key, name) == 0;
}

static enum MHD_Result on_head_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    struct head_headers *h = cls;
    const char *v = value ? value : "";

    (void)kind;
    (void)value_size;
    if (header_is(key, key_size, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (!h->length)
            h->length = v;
        else if (strcmp(h->length, v) != 0)
            h->lengths_differ = true;
    } else if (header_is(key, key_size, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        h->coding = v;
        h->codings++;
    }
    for (unsigned i = 0; single_headers[i]; i++) {
        if (!header_is(key, key_size, single_headers[i]))
            continue;
        if ((h->seen & (1u << i)) && !h->repeated)
            h->repeated = single_headers[i];
        h->seen |= 1u << i;
    }
    return MHD_YES;
}

/*
 * The body's framing is unambiguous: no Transfer-Encoding, or one that is exactly "chunked"
 * (the only coding the library decodes) and no Content-Length beside it. The library reads a
 * body of any other coding until the client closes, so that request was never answered; and
 * with both headers it used chunked and kept the connection, where a proxy in front that
 * believed the Content-Length would read the rest as another request (RFC 9112 section 6.3).
 */
static const char *framing_problem(const struct head_headers *h)
{
    if (h->codings == 0)
        return NULL;
    if (h->codings > 1 || !str_eq_nocase(h->coding, strlen(h->coding), "chunked"))
        return "the only Transfer-Encoding taken is one 'chunked'";
    if (h->length)
        return "the request has both Transfer-Encoding and Content-Length: send one";
    return NULL;
}

/* Stops at the first query key or value that is not clean UTF-8 (a decoded NUL included). */
static enum MHD_Result on_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size)
{
    bool *clean = cls;

    (void)kind;
    if (strict_text_is_clean(key, key_size) && (!value || strict_text_is_clean(value, value_size)))
        return MHD_YES;
    *clean = false;
    return MHD_NO;
}

/*
 * The request head's checks, on the first call, before any body is read: what the library
 * lets through is refused here with 400 (a target encoding NUL, HTTP/1.1 or a later 1.x
 * without Host, differing Content-Length headers, a Transfer-Encoding other than one "chunked"
 * or beside a Content-Length, two Authorization, Idempotency-Key or X-Original-URI headers, a
 * query of more than QUERY_ARGS_MAX parameters or not UTF-8), and a Content-Length past the cap
 * with 413.
 */
static enum MHD_Result check_head(struct http_server *s, struct request *req, const char *version,
                                  bool target_clean)
{
    struct head_headers h = { 0 };
    const struct watch *w = watch_of(req->conn);
    const char *framing;
    bool query_clean = true;

    if (!target_clean)
        return send_error(req, ERR_INVALID, "the request target holds a NUL byte (raw or %%00)");
    /* the library takes HTTP/1.2 and later minor versions as 1.1 (RFC 9110 section 2.5) */
    if (strcmp(version, MHD_HTTP_VERSION_1_0) != 0 && !request_header(req, MHD_HTTP_HEADER_HOST))
        return send_error(req, ERR_INVALID, "an HTTP/1.1 request must have a Host header");
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, on_head_header, &h);
    if (h.lengths_differ)
        return send_error(req, ERR_INVALID, "the request has differing Content-Length headers");
    if ((framing = framing_problem(&h)) != NULL)
        return send_error(req, ERR_INVALID, "%s", framing);
    if (h.repeated)
        return send_error(req, ERR_INVALID, "the request has more than one %s header: send one",
                          h.repeated);
    if (w && w->many_args)
        return send_error(req, ERR_INVALID, "%s", MANY_ARGS_MESSAGE);
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, on_query_arg, &query_clean);
    if (!query_clean)
        return send_error(req, ERR_INVALID, "a query parameter is not valid UTF-8");
    if (content_length_too_big(req, s->p.max_body)) {
        req->body_too_large = true;
        return send_error(req, ERR_TOO_LARGE, "request body is larger than %zu bytes",
                          s->p.max_body);
    }
    return MHD_YES;
}

/*
 * A raw NUL in the request line reaches us as a target cut short. The library parses the line
 * in place in its read buffer and hands over the target ended by the NUL that replaced the
 * space before the version: when what follows is not "HTTP/", a NUL cut the target.
 */
static bool target_is_whole(const char *uri)
{
    const char *after = uri + strlen(uri) + 1;

    return strncmp(after, "HTTP/", 5) == 0;
}

/* Whether the raw target's query has more than max parameters ('&'-separated pieces). */
static bool query_args_over(const char *uri, unsigned max)
{
    const char *q = strchr(uri, '?');
    unsigned n = 1;

    if (!q)
        return false;
    for (q++; *q && n <= max; q++)
        n += *q == '&';
    return n > max;
}

/*
 * Called once the request line is read, before the headers: starts the header deadline of a
 * keep-alive connection's next request, notes a query of too many parameters (check_head
 * answers it, or answer_in_place when the library's pool fills first), and notes a raw target
 * that holds or encodes a NUL (the library would hand on the path cut short). Its return value
 * is the first access-handler call's *con_cls.
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct watch *w = watch_of(conn);

    (void)cls;
    if (w && !atomic_load(&w->in_head)) {
        atomic_store(&w->head_ms, clock_mono_ms());
        atomic_store(&w->in_head, true);
    }
    if (w)
        w->many_args = query_args_over(uri, QUERY_ARGS_MAX);
    return strict_target_is_clean(uri) && target_is_whole(uri) ? NULL : &target_has_nul;
}

static void watch_unlink(struct http_server *s, struct watch *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        s->watched = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->linked = false;
}

/* Library callback: a connection was accepted (watched until it closes) or closed. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    struct watch *w = *socket_context;
    const union MHD_ConnectionInfo *info;
    int64_t step = toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;

    metrics_set_connections(atomic_fetch_add(&s->open, step) + step);
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!w)
            return;
        pthread_mutex_lock(&s->watch_mu);
        watch_unlink(s, w);
        pthread_mutex_unlock(&s->watch_mu);
        free(w);
        *socket_context = NULL;
        return;
    }
    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return;
    w = xcalloc(1, sizeof(*w));
    w->conn = conn;
    w->owner = pthread_self();
    w->fd = info->connect_fd;
    atomic_init(&w->head_ms, clock_mono_ms());
    atomic_init(&w->in_head, true);
    w->linked = true;
    pthread_mutex_lock(&s->watch_mu);
    w->next = s->watched;
    if (w->next)
        w->next->prev = w;
    s->watched = w;
    pthread_mutex_unlock(&s->watch_mu);
    *socket_context = w;
}

/* A request's headers are in: the connection is no longer held to the header deadline. */
static void connection_headers_arrived(struct MHD_Connection *conn)
{
    struct watch *w = watch_of(conn);

    if (w)
        atomic_store(&w->in_head, false);
}

/*
 * Once a second, shuts down the connections past the header deadline. shutdown() leaves the
 * descriptor to the library, which sees the end of the stream and closes the connection; a
 * watch leaves the list (under the lock) before the library closes its descriptor, so the
 * descriptor shut down here is always still that connection's.
 */
static void *watcher_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec until;

    pthread_mutex_lock(&s->watch_mu);
    while (!s->watcher_stop) {
        int64_t now = clock_mono_ms();

        for (struct watch *w = s->watched; w; w = w->next) {
            if (!w->shut && atomic_load(&w->in_head) &&
                now - atomic_load(&w->head_ms) >= HEADER_DEADLINE_MS) {
                shutdown(w->fd, SHUT_RDWR);
                w->shut = true;
            }
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&s->watch_cond, &s->watch_mu, &until);
    }
    pthread_mutex_unlock(&s->watch_mu);
    return NULL;
}

/*
 * 0.9.75 answers some heads itself, badly, before any access-handler call: a malformed or
 * overflowing Content-Length (its status line and headers go into the send buffer twice), and
 * a query whose parameters fill the connection's pool (it closes without an answer, its own
 * 431 no longer fitting). Only its log line comes first, on the thread serving the connection.
 * So at that line the connection is found here (this thread's, its head being read, and
 * is_it: its Content-Length not a number, or on_uri counted too many parameters), answered
 * with the usual JSON error in one head, with a request id and its access-log line like every
 * answer, and its sending side shut: the library's own answer then fails to send, or never
 * was, and it closes the connection.
 */
static bool has_bad_length(const struct watch *w)
{
    const char *cl =
        MHD_lookup_connection_value(w->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t n;

    if (!cl)
        return false;
    n = strspn(cl, "0123456789");
    return n == 0 || n > 18 || cl[n] != '\0';
}

static bool has_many_args(const struct watch *w)
{
    return w->many_args;
}

static const char *status_text(enum err e)
{
    return e == ERR_TOO_LARGE ? "Content Too Large" : "Bad Request";
}

static void answer_in_place(struct http_server *s, bool (*is_it)(const struct watch *), enum err e,
                            const char *message)
{
    pthread_t self = pthread_self();
    struct request req;

    pthread_mutex_lock(&s->watch_mu);
    for (struct watch *w = s->watched; w; w = w->next) {
        json_t *err;
        char *body, head[320];
        int head_len;

        if (w->shut || !atomic_load(&w->in_head) || !pthread_equal(w->owner, self) || !is_it(w))
            continue;
        memset(&req, 0, sizeof(req));
        req.method = ""; /* the library does not tell it */
        req.conn = w->conn;
        req.start_ms = atomic_load(&w->head_ms);
        request_new_id(s, &req);
        (void)request_fail(&req, e, NULL, NULL, "%s", message);
        err = error_json(e, NULL, NULL, message);
        body = json_dumps(err, JSON_COMPACT);
        json_decref(err);
        head_len = snprintf(head, sizeof(head),
                            "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\nRequest-Id: %s\r\nCache-Control: no-store\r\n"
                            "Connection: close\r\n\r\n",
                            err_http(e)->status, status_text(e), body ? strlen(body) : 0, req.id);
        (void)send(w->fd, head, (size_t)head_len,
                   MSG_NOSIGNAL | MSG_DONTWAIT | (body ? MSG_MORE : 0));
        if (body)
            (void)send(w->fd, body, strlen(body), MSG_NOSIGNAL | MSG_DONTWAIT);
        free(body);
        shutdown(w->fd, SHUT_WR);
        w->shut = true;
        access_log_write(&req, err_http(e)->status);
    }
    pthread_mutex_unlock(&s->watch_mu);
}

/* The library's callback signature fixes the parameter list. */
/* NOLINTNEXTLINE(readability-function-size) */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct http_server *s = cls;
    struct request *req = *con_cls;

    if (!req || *con_cls == &target_has_nul) {
        bool target_clean = !req;

        connection_headers_arrived(conn);
        *con_cls = req = request_begin(s, conn, url, method);
        return check_head(s, req, version, target_clean);
    }
    if (*upload_size)
        return take_upload(s, req, upload, upload_size);
    if (req->answered)
        return MHD_YES; /* answered on the first call */
    return dispatch(s, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct request *req = *con_cls;

    (void)conn;
    (void)toe;
    if (!req || *con_cls == &target_has_nul) {
        *con_cls = NULL;
        return;
    }
    buf_release(&req->body);
    json_decref(req->json);
    {
        struct server_request *sr = (struct server_request *)req; /* req is its first member */
        if (!sr->resp.body_static)
            free(sr->resp.body); /* a slow answer the client left before it was sent */
        free(sr->resp.headers);
    }
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);

/*
 * The library logs each connection it refuses at a connection limit, so a flood would flood
 * the log too: such lines are written at most once a second, with the count of the others.
 */
static _Atomic int64_t limit_logged_s = -1;
static _Atomic unsigned int limit_unlogged;

static bool limit_line_is_due(unsigned int *unlogged)
{
    int64_t now_s = clock_mono_ms() / 1000;
    int64_t last = atomic_load(&limit_logged_s);

    if (now_s == last || !atomic_compare_exchange_strong(&limit_logged_s, &last, now_s)) {
        atomic_fetch_add(&limit_unlogged, 1);
        return false;
    }
    *unlogged = atomic_exchange(&limit_unlogged, 0);
    return true;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    unsigned int unlogged = 0;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (strstr(msg, "Failed to parse `Content-Length' header"))
        answer_in_place(cls, has_bad_length, ERR_INVALID,
                        "the Content-Length header is not a number");
    else if (strstr(msg, "Too large value of 'Content-Length' header"))
        answer_in_place(cls, has_bad_length, ERR_TOO_LARGE,
                        "the Content-Length header is too large");
    else if (strstr(msg, "Not enough memory in pool to allocate header record"))
        answer_in_place(cls, has_many_args, ERR_INVALID, MANY_ARGS_MESSAGE);
    else if (!strstr(msg, "connection limit"))
        log_warn("http: %s", msg);
    else if (limit_line_is_due(&unlogged))
        log_warn("http: %s (and %u more since the last such line)", msg, unlogged);
}

static bool make_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, bool *v6)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *v6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *v6 = true;
        return true;
    }
    return false;
}

/* "127.0.0.1:8080" or "[::1]:8080", for messages. */
static void addr_name(const struct http_server_params *p, char *out, size_t len)
{
    if (strchr(p->host, ':'))
        snprintf(out, len, "[%s]:%u", p->host, p->port);
    else
        snprintf(out, len, "%s:%u", p->host, p->port);
}

/*
 * Binds and listens exclusively: SO_REUSEADDR lets a restart bind over connections left in
 * TIME_WAIT, but without SO_REUSEPORT a second process on a taken address fails here instead
 * of silently taking a share of the traffic.
 */
static enum err listen_socket_open(const struct http_server_params *p, int *fd_out,
                                   uint16_t *port_out, char *errbuf, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    bool v6 = false;
    char name[80];
    int one = 1, fd, e;

    addr_name(p, name, sizeof(name));
    if (!make_addr(p->host, p->port, &ss, &v6)) {
        snprintf(errbuf, errlen, "cannot listen on %s: not a numeric IPv4 or IPv6 address", name);
        return ERR_INVALID;
    }
    sslen = v6 ? (socklen_t)sizeof(struct sockaddr_in6) : (socklen_t)sizeof(struct sockaddr_in);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(errbuf, errlen, "cannot listen on %s: %s", name, strerror(e));
        return ERR_UNAVAILABLE;
    }
    *port_out =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return ERR_OK;
}

/*
 * Raises the soft descriptor limit to the hard one and sizes the connection limits from it:
 * the global limit keeps a reserve of descriptors for everything else, and one address may
 * take three quarters of it, so the last quarter is headroom for the others.
 */
static void connection_limits(unsigned int *total, unsigned int *per_addr)
{
    struct rlimit rl;
    rlim_t fds = 1024, reserve;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rlim_t want = rl.rlim_max == RLIM_INFINITY ? 65536 : rl.rlim_max;
            struct rlimit raised = { want, rl.rlim_max };
            if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
                rl.rlim_cur = want;
        }
        fds = rl.rlim_cur == RLIM_INFINITY ? 65536 : rl.rlim_cur;
    }
    if (fds > 1000000)
        fds = 1000000;
    reserve = fds / 8 > FD_RESERVE_MIN ? fds / 8 : FD_RESERVE_MIN;
    *total = fds > reserve + 64 ? (unsigned int)(fds - reserve) : 64u;
    *per_addr = *total / 4 * 3;
    if (*total < 2048)
        log_warn("http: only %u connections (%u per address): the descriptor limit is %llu", *total,
                 *per_addr, (unsigned long long)fds);
}

/* Frees s once the library has let go of it (every watch is freed by then). */
static void server_free(struct http_server *s)
{
    pthread_cond_destroy(&s->watch_cond);
    pthread_mutex_destroy(&s->watch_mu);
    client_slots_free(s->cap);
    free(s);
}

/* Starts the server's pools (http_server_params); false, with the reason, when one cannot. */
static bool pools_start(struct http_server *s, char *errbuf, size_t errlen)
{
    const struct http_server_params *p = &s->p;

    if (p->pool_of && !(s->slow = offload_new(p->slow_workers, p->slow_queue))) {
        snprintf(errbuf, errlen, "cannot start the threads for requests that call Stripe");
        return false;
    }
    if (p->pool_of && p->write_workers > 0 &&
        !(s->write = offload_new_fibers(p->write_workers, p->write_queue, p->write_fiber_stack))) {
        snprintf(errbuf, errlen, "cannot start the threads for requests that write");
        offload_free(s->slow);
        return false;
    }
    /* a write's work after it may wait on Stripe: on threads as many as the Stripe pool's */
    if (s->write && offload_is_fibers(s->write) &&
        !(s->then = offload_new(p->slow_workers, p->write_queue))) {
        snprintf(errbuf, errlen, "cannot start the threads for work after writes");
        offload_free(s->slow);
        offload_free(s->write);
        return false;
    }
    return true;
}

enum err http_server_start(const struct http_server_params *p, struct http_server **out,
                           char *errbuf, size_t errlen)
{
    struct http_server *s;
    /*
     * poll, not epoll: with epoll, 0.9.75 misses a client's FIN on a connection that has sent
     * part of a request, and such sockets sit in CLOSE-WAIT until the timeout.
     */
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                         MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    unsigned int total, per_addr;
    uint16_t port = 0;
    int fd = -1;
    enum err e;

    connection_limits(&total, &per_addr);
    e = listen_socket_open(p, &fd, &port, errbuf, errlen);
    if (e != ERR_OK)
        return e;
    s = xcalloc(1, sizeof(*s));
    s->p = *p;
    s->port = port;
    if (p->pool_of && p->slow_per_client > 0)
        s->cap = client_slots_new(CLIENT_SLOT_BUCKETS, p->slow_per_client);
    if (!pools_start(s, errbuf, errlen)) {
        close(fd);
        client_slots_free(s->cap);
        free(s);
        return ERR_INTERNAL;
    }
    if (RAND_bytes((unsigned char *)&s->id_salt, sizeof(s->id_salt)) != 1)
        s->id_salt = (uint32_t)getpid();
    if (strchr(p->host, ':'))
        flags |= MHD_USE_IPv6;
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_cond_init(&s->watch_cond, NULL);
    /* The logger goes first, or the library logs its own way until it is set. */
    s->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)p->threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_CONNECTION_LIMIT, total,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_addr, MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        HEAD_POOL_BYTES, MHD_OPTION_END);
    if (!s->daemon) {
        char name[80];

        addr_name(p, name, sizeof(name));
        snprintf(errbuf, errlen, "cannot serve on %s: the HTTP library did not start", name);
        close(fd);
        offload_free(s->slow);
        offload_free(s->write);
        offload_free(s->then);
        server_free(s);
        return ERR_UNAVAILABLE;
    }
    s->watcher_started = pthread_create(&s->watcher, NULL, watcher_main, s) == 0;
    if (!s->watcher_started)
        log_warn("http: no header deadline: the watcher thread did not start");
    *out = s;
    return ERR_OK;
}

uint16_t http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s, int64_t grace_ms)
{
    int64_t deadline = clock_mono_ms() + grace_ms;
    MHD_socket fd;

    if (!s)
        return;
    fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    while (atomic_load(&s->in_flight) > 0 && clock_mono_ms() < deadline)
        usleep(10 * 1000);
    if (atomic_load(&s->in_flight) > 0)
        log_warn("stopping with %d request(s) still in flight", atomic_load(&s->in_flight));
    if (s->watcher_started) {
        pthread_mutex_lock(&s->watch_mu);
        s->watcher_stop = true;
        pthread_cond_signal(&s->watch_cond);
        pthread_mutex_unlock(&s->watch_mu);
        pthread_join(s->watcher, NULL);
    }
    offload_free(s->slow); /* what runs there finishes and resumes its connection first */
    offload_free(s->write);
    offload_free(s->then); /* after the writes, which may queue work here */
    MHD_stop_daemon(s->daemon);
    server_free(s);
}
