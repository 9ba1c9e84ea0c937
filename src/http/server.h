/*
 * server.h: the HTTP server, an adapter over libmicrohttpd (thread pool + poll). It reads and
 * caps bodies, gives each request an id, hands complete requests to one dispatch function,
 * sends the response and writes one JSON log line per request.
 */
#ifndef SUBGATE_HTTP_SERVER_H
#define SUBGATE_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "http/request.h"

struct http_server; /* opaque */

/* Called once per complete request, on a worker thread; must set resp->status. */
typedef void (*http_dispatch_fn)(void *app, struct request *req, struct response *resp);

/* Where a request runs: on the serving thread, or on one of the server's pools. */
enum http_pool {
    HTTP_POOL_NONE,  /* the serving thread */
    HTTP_POOL_SLOW,  /* it calls Stripe */
    HTTP_POOL_WRITE, /* a hot write; what it does with Stripe after, in request_then */
};

struct http_server_params {
    const char *host; /* numeric address to bind ("127.0.0.1", "::1", "0.0.0.0") */
    uint16_t port;    /* 0 = any free port (see http_server_port) */
    int threads;      /* worker threads, >= 1 */
    size_t max_body;  /* bodies past this many bytes are refused with 413 */
    http_dispatch_fn dispatch;
    void *app; /* passed to dispatch */
    /*
     * Which pool, if any, runs the request (pool_of may be NULL: none). HTTP_POOL_SLOW: a pool
     * of slow_workers threads with at most slow_queue waiting, their connections suspended
     * meanwhile; past that they are answered 503 with Retry-After.
     */
    enum http_pool (*pool_of)(void *app, const struct request *req);
    int slow_workers;
    int slow_queue;
    /*
     * Before a slow request is queued, admit(app, req, &key, &len) (may be NULL: every request
     * is admitted, as the keyless client) checks it: false refuses it at once with req->error
     * (a bad credential: the work never waits for the pool); true names its client by key (NULL
     * or len 0: the requests without one are one client). At most slow_per_client (0: no cap)
     * of one client's slow requests are queued or running at once; past that its next is
     * answered 429 at once, so no client fills the queue for the others.
     */
    int slow_per_client;
    bool (*admit)(void *app, struct request *req, const char **key, size_t *len);
    /*
     * HTTP_POOL_WRITE: a pool of write_workers threads with at most write_queue waiting, their
     * connections suspended meanwhile, so that the serving threads go on reading requests while
     * writes wait for their batch's commit (group commit forms batches from the writes in
     * flight); past that they are answered 503 with Retry-After. write_workers 0: no such pool,
     * those requests are served on the serving thread.
     */
    int write_workers;
    int write_queue;
    size_t write_fiber_stack; /* > 0: the write_workers are fibers of one thread (offload.h) */
    /*
     * Adds the application's headers (CORS) to an answer the server makes itself: a refused
     * head, a body past the cap, a full slow queue. May be NULL.
     */
    void (*decorate)(void *app, const struct request *req, struct response *resp);
};

/* Binds and starts serving. On failure writes one line into errbuf. */
MUST_CHECK enum err http_server_start(const struct http_server_params *p, struct http_server **out,
                                      char *errbuf, size_t errlen);

/* The bound port (useful when 0 was asked for). */
uint16_t http_server_port(const struct http_server *s);

/*
 * Stops accepting connections, waits up to grace_ms for requests in flight to finish, then
 * stops and frees the server. NULL is a no-op.
 */
void http_server_stop(struct http_server *s, int64_t grace_ms);

#endif /* SUBGATE_HTTP_SERVER_H */
