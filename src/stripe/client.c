/*
 * client.c: the Stripe transport. Idle curl easy handles wait in a small pool guarded by a
 * mutex: each keeps its connection alive, so a worker thread takes one, uses it alone, and
 * puts it back. The Authorization header is built per call and wiped before it is freed.
 */
#include "stripe/client.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/version.h"
#include "base/xalloc.h"
#include "stripe/retry.h"

#define URL_BUF_MAX ((size_t)32 * 1024)

struct stripe_client {
    char *api_base;
    char *api_version;
    struct secret key;
    int max_retries;
    int64_t connect_timeout_ms;
    int64_t timeout_ms;
    size_t max_response;
    stripe_sleep_fn sleep;
    stripe_random_fn random;
    void *hook_ctx;
    stripe_trace_fn trace;
    void *trace_ctx;
    pthread_mutex_t mu; /* guards idle and n_idle */
    CURL *idle[STRIPE_POOL_MAX];
    size_t n_idle;
};

/* One call in flight: the request as sent and the answer of the latest attempt. */
struct call {
    const struct stripe_request *rq;
    struct buf url;
    char idem_key[STRIPE_IDEMPOTENCY_KEY_MAX];  /* the key sent now */
    char first_key[STRIPE_IDEMPOTENCY_KEY_MAX]; /* the chain's start: the caller's or a UUID */
    int links;                                  /* keys walked on to past saved failures */
    bool unknown; /* an attempt had an unknown outcome: a 5xx not replayed, or no answer */
    struct curl_slist *headers;
    struct buf body;
    char request_id[STRIPE_REQ_ID_MAX];
    char curl_err[CURL_ERROR_SIZE];
    struct stripe_attempt att;
    int64_t date;       /* the answer's Date header, Unix seconds; 0 when none */
    int64_t elapsed_us; /* of the last attempt */
    bool body_too_large;
};

static const char *const method_names[] = {
    [STRIPE_GET] = "GET",
    [STRIPE_POST] = "POST",
    [STRIPE_DELETE] = "DELETE",
};

/* Network failures worth another try: the request may not have reached Stripe, or its answer
 * was lost; the idempotency key makes a POST safe to repeat. */
static const CURLcode retryable_codes[] = {
    CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,   CURLE_OPERATION_TIMEDOUT,
    CURLE_SEND_ERROR,           CURLE_RECV_ERROR,        CURLE_GOT_NOTHING,
    CURLE_PARTIAL_FILE,         CURLE_SSL_CONNECT_ERROR, CURLE_HTTP2,
    CURLE_HTTP2_STREAM,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        abort();
    }
}

static void default_sleep(void *ctx, int64_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

    (void)ctx;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t default_random(void *ctx)
{
    uint64_t v;

    (void)ctx;
    if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1) {
        log_error("the system random source failed");
        abort(); /* as out-of-memory: nothing sensible is left to do */
    }
    return v;
}

void stripe_client_params_init(struct stripe_client_params *p)
{
    memset(p, 0, sizeof(*p));
    p->api_base = STRIPE_API_BASE_DEFAULT;
    p->api_version = STRIPE_API_VERSION_DEFAULT;
    p->max_retries = STRIPE_MAX_RETRIES_DEFAULT;
    p->connect_timeout_ms = 5000;
    p->timeout_ms = 30000;
    p->max_response = (size_t)1 << 20;
}

/* A key goes into a header: printable ASCII without spaces, or it could split the header. */
static bool key_is_sane(const struct secret *key)
{
    size_t n = 0;
    const unsigned char *b = key && secret_is_set(key) ? secret_bytes(key, &n) : NULL;

    if (!b || n == 0 || n > 512)
        return false;
    for (size_t i = 0; i < n; i++)
        if (b[i] <= 0x20 || b[i] >= 0x7f)
            return false;
    return true;
}

static bool base_is_sane(const char *base)
{
    return base && (str_has_prefix(base, "https://") || str_has_prefix(base, "http://")) &&
           strlen(base) < 1024;
}

enum err stripe_client_new(const struct stripe_client_params *p, struct stripe_client **out,
                           char *errbuf, size_t errlen)
{
    struct stripe_client *c;
    size_t n = 0;

    *out = NULL;
    if (!key_is_sane(p->secret_key)) {
        snprintf(errbuf, errlen, "STRIPE_SECRET_KEY: missing or not a printable token");
        return ERR_INVALID;
    }
    if (!base_is_sane(p->api_base)) {
        snprintf(errbuf, errlen, "STRIPE_API_BASE: '%s' is not an http(s) URL",
                 p->api_base ? p->api_base : "");
        return ERR_INVALID;
    }
    pthread_once(&curl_once, curl_init_once);
    c = xcalloc(1, sizeof(*c));
    c->api_base = xstrdup(p->api_base);
    n = strlen(c->api_base);
    while (n > 0 && c->api_base[n - 1] == '/')
        c->api_base[--n] = '\0';
    c->api_version = xstrdup(p->api_version ? p->api_version : STRIPE_API_VERSION_DEFAULT);
    const unsigned char *kb = secret_bytes(p->secret_key, &n);
    secret_set(&c->key, kb, n);
    c->max_retries = p->max_retries < 0 ? 0 : p->max_retries;
    c->connect_timeout_ms = p->connect_timeout_ms;
    c->timeout_ms = p->timeout_ms;
    c->max_response = p->max_response;
    c->sleep = p->sleep ? p->sleep : default_sleep;
    c->random = p->random ? p->random : default_random;
    c->hook_ctx = p->hook_ctx;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return ERR_OK;
}

void stripe_client_free(struct stripe_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_idle; i++)
        curl_easy_cleanup(c->idle[i]);
    pthread_mutex_destroy(&c->mu);
    secret_release(&c->key);
    free(c->api_base);
    free(c->api_version);
    free(c);
}

void stripe_client_set_trace(struct stripe_client *c, stripe_trace_fn fn, void *ctx)
{
    c->trace = fn;
    c->trace_ctx = ctx;
}

static CURL *handle_take(struct stripe_client *c)
{
    CURL *h = NULL;

    pthread_mutex_lock(&c->mu);
    if (c->n_idle > 0)
        h = c->idle[--c->n_idle];
    pthread_mutex_unlock(&c->mu);
    if (!h)
        h = curl_easy_init();
    if (!h) {
        log_error("out of memory: cannot create a curl handle");
        abort();
    }
    return h;
}

/* Keeps the handle (and its live connection) for the next call, or closes it. */
static void handle_put(struct stripe_client *c, CURL *h)
{
    pthread_mutex_lock(&c->mu);
    if (c->n_idle < STRIPE_POOL_MAX) {
        c->idle[c->n_idle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    curl_easy_cleanup(h); /* NULL is a no-op */
}

/* Writes a random UUIDv4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") into out. */
static void uuid4(struct stripe_client *c, char out[STRIPE_IDEMPOTENCY_KEY_MAX])
{
    unsigned char b[16];
    uint64_t hi = c->random(c->hook_ctx), lo = c->random(c->hook_ctx);

    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, STRIPE_IDEMPOTENCY_KEY_MAX,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

/* The first 16 bytes of sha256(s) in hex. */
static void sha256_hex32(const char *s, char hex[33])
{
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)s, strlen(s), md);
    for (size_t i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

void stripe_idempotency_key_for(const char *operation, const char *subject,
                                char out[STRIPE_IDEMPOTENCY_KEY_MAX])
{
    char hex[33];

    assert(strlen(operation) <= 22 &&
           strspn(operation, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(operation));
    sha256_hex32(subject, hex);
    snprintf(out, STRIPE_IDEMPOTENCY_KEY_MAX, "subgate-%s-%s", operation, hex);
}

void stripe_idempotency_key_link(const char *key, int n, char out[STRIPE_IDEMPOTENCY_KEY_MAX])
{
    char hex[33];
    int len;

    assert(n >= 1 && n <= STRIPE_KEY_LINKS_MAX);
    len = snprintf(out, STRIPE_IDEMPOTENCY_KEY_MAX, "%s~%d", key, n);
    if (len >= 0 && len < STRIPE_IDEMPOTENCY_KEY_MAX)
        return;
    sha256_hex32(key, hex); /* a long key: hashed, so two keys sharing a prefix never meet */
    snprintf(out, STRIPE_IDEMPOTENCY_KEY_MAX, "subgate-link-%s~%d", hex, n);
}

static struct curl_slist *header_add(struct curl_slist *list, const char *line)
{
    struct curl_slist *l = curl_slist_append(list, line);

    if (!l) {
        log_error("out of memory: cannot add a request header");
        abort();
    }
    return l;
}

/* Frees the header list after wiping every line: one of them carries the key. */
static void headers_free(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

static struct curl_slist *headers_build(const struct stripe_client *c, const struct call *k)
{
    struct curl_slist *list = NULL;
    struct buf line;
    size_t n = 0;
    const unsigned char *key = secret_bytes(&c->key, &n);
    char tmp[128];

    buf_init(&line, 1024);
    (void)!buf_puts(&line, "Authorization: Bearer "); /* the key is capped at 512 bytes */
    (void)!buf_append(&line, key, n);
    list = header_add(list, buf_str(&line));
    explicit_bzero(line.data, line.len);
    buf_release(&line);
    snprintf(tmp, sizeof(tmp), "Stripe-Version: %s", c->api_version);
    list = header_add(list, tmp);
    list = header_add(list, "Accept: application/json");
    list = header_add(list, "Expect:"); /* no 100-continue round trip */
    if (k->rq->method == STRIPE_POST) {
        snprintf(tmp, sizeof(tmp), "Idempotency-Key: %s", k->idem_key);
        list = header_add(list, tmp);
        list = header_add(list, "Content-Type: application/x-www-form-urlencoded");
    }
    return list;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct call *k = ud;
    size_t n = size * nmemb;

    if (buf_append(&k->body, p, n) != ERR_OK) {
        k->body_too_large = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Remembers the response headers the retry policy and the error report need. */
static void take_header(struct call *k, const char *name, size_t nlen, const char *v, size_t vlen)
{
    int64_t secs;
    char val[16];

    if (str_eq_nocase(name, nlen, "request-id")) {
        (void)str_copyn(k->request_id, sizeof(k->request_id), v, vlen); /* log detail only */
    } else if (str_eq_nocase(name, nlen, "stripe-should-retry")) {
        (void)str_copyn(val, sizeof(val), v, vlen); /* a longer value is no known value */
        k->att.should_retry = stripe_should_retry_parse(val);
    } else if (str_eq_nocase(name, nlen, "idempotent-replayed")) {
        k->att.replayed = str_eq_nocase(v, vlen, "true");
    } else if (str_eq_nocase(name, nlen, "date")) {
        char date[64];
        time_t t = str_copyn(date, sizeof(date), v, vlen) ? curl_getdate(date, NULL) : -1;
        k->date = t > 0 ? (int64_t)t : 0; /* Stripe's clock: it orders Stripe's answers */
    } else if (str_eq_nocase(name, nlen, "retry-after") &&
               parse_i64(v, vlen, 0, INT64_MAX / 1000, &secs) == ERR_OK) {
        k->att.retry_after_s = secs; /* an HTTP-date Retry-After is ignored */
    }
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct call *k = ud;
    size_t n = size * nmemb;
    const char *colon = memchr(p, ':', n);
    const char *v;
    size_t vlen;

    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after a 100): start over */
        k->att.should_retry = STRIPE_SHOULD_RETRY_ABSENT;
        k->att.retry_after_s = -1;
        k->att.replayed = false;
        k->request_id[0] = '\0';
        k->date = 0;
        return n;
    }
    if (!colon)
        return n;
    v = colon + 1;
    vlen = n - (size_t)(v - p);
    str_trim(&v, &vlen);
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    take_header(k, p, (size_t)(colon - p), v, vlen);
    return n;
}

static void setup_method(CURL *h, const struct call *k)
{
    const struct form *f = k->rq->form;

    if (k->rq->method == STRIPE_POST) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, f ? form_str(f) : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(f ? form_len(f) : 0));
    } else if (k->rq->method == STRIPE_DELETE) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
}

/* Sets every option afresh: curl_easy_reset keeps the live connection, not the options. */
static void setup(const struct stripe_client *c, CURL *h, struct call *k)
{
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, buf_str(&k->url));
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, k->headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "subgate/" SUBGATE_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, k);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, k->curl_err);
    setup_method(h, k);
}

static bool code_is_retryable(CURLcode rc)
{
    for (size_t i = 0; i < ARRAY_SIZE(retryable_codes); i++)
        if (retryable_codes[i] == rc)
            return true;
    return false;
}

/* One HTTP exchange; fills k->att, k->body and k->request_id. */
static void attempt_once(const struct stripe_client *c, CURL *h, struct call *k)
{
    CURLcode rc;
    long status = 0;

    buf_reset(&k->body);
    k->body_too_large = false;
    k->curl_err[0] = '\0';
    k->request_id[0] = '\0';
    memset(&k->att, 0, sizeof(k->att));
    k->att.retry_after_s = -1;
    setup(c, h, k);
    k->elapsed_us = clock_mono_us();
    rc = curl_easy_perform(h);
    k->elapsed_us = clock_mono_us() - k->elapsed_us;
    if (rc != CURLE_OK) {
        k->att.retryable_io = code_is_retryable(rc);
        if (!k->curl_err[0])
            (void)str_copy(k->curl_err, sizeof(k->curl_err), curl_easy_strerror(rc));
        return; /* status stays 0: no usable answer */
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    k->att.status = (int)status;
}

static void trace_attempt(const struct stripe_client *c, const struct call *k, int attempt)
{
    const struct form *f = k->rq->form;
    struct stripe_trace t = {
        .method = method_names[k->rq->method],
        .path = k->rq->path,
        .form = f ? form_str(f) : "",
        .idempotency_key = k->idem_key,
        .status = k->att.status,
        .attempt = attempt,
        .elapsed_us = k->elapsed_us,
    };

    if (c->trace)
        c->trace(c->trace_ctx, &t);
}

/* Turns the last attempt into the result: the parsed body, or the error. */
static enum err finish(const struct stripe_client *c, const struct call *k, json_t **out,
                       struct stripe_error *se)
{
    enum err err;

    se->http_status = k->att.status;
    (void)str_copy(se->request_id, sizeof(se->request_id), k->request_id); /* ids are short */
    if (k->body_too_large) {
        snprintf(se->message, sizeof(se->message), "stripe's answer is larger than %zu bytes",
                 c->max_response);
        return ERR_UPSTREAM;
    }
    if (k->att.status == 0) {
        snprintf(se->message, sizeof(se->message), "cannot reach stripe at '%s': %s (%d attempts)",
                 c->api_base, k->curl_err, se->attempts);
        return ERR_UNAVAILABLE;
    }
    if (k->att.status >= 200 && k->att.status < 300)
        return stripe_json_parse(buf_str(&k->body), k->body.len, out, se);
    stripe_error_from_answer(k->att.status, buf_str(&k->body), k->body.len, se);
    err = stripe_error_to_err(se);
    if (k->att.status == 401 || k->att.status == 403)
        snprintf(se->message, sizeof(se->message),
                 "stripe refused our API key (HTTP %d): check STRIPE_SECRET_KEY", k->att.status);
    return err;
}

static void log_failure(const struct call *k, enum err err, const struct stripe_error *se)
{
    log_warn("stripe %s %s failed (%s, HTTP %d, %d attempt(s), request %s): %s",
             method_names[k->rq->method], k->rq->path, err_name(err), se->http_status, se->attempts,
             se->request_id[0] ? se->request_id : "none", se->message);
}

static enum err call_prepare(struct stripe_client *c, struct call *k, struct stripe_error *se)
{
    const struct form *f = k->rq->form;
    bool query = f && k->rq->method != STRIPE_POST && form_len(f) > 0;
    const char *key = k->rq->idempotency_key;

    if (k->rq->method == STRIPE_POST && !key)
        uuid4(c, k->idem_key);
    else if (k->rq->method == STRIPE_POST && !str_copy(k->idem_key, sizeof(k->idem_key), key)) {
        snprintf(se->message, sizeof(se->message), "stripe %s: idempotency key is too long",
                 k->rq->path);
        return ERR_INTERNAL;
    }
    if (f && form_err(f) != ERR_OK) {
        snprintf(se->message, sizeof(se->message), "stripe %s: request form is too large",
                 k->rq->path);
        return ERR_INTERNAL;
    }
    if (buf_appendf(&k->url, "%s%s%s%s", c->api_base, k->rq->path, query ? "?" : "",
                    query ? form_str(f) : "") != ERR_OK) {
        snprintf(se->message, sizeof(se->message), "stripe %s: URL is too long", k->rq->path);
        return ERR_INTERNAL;
    }
    (void)str_copy(k->first_key, sizeof(k->first_key), k->idem_key); /* same size */
    k->headers = headers_build(c, k);
    return ERR_OK;
}

/*
 * Whether the call may go on past the failure Stripe saved under its key, with the key's next
 * link. Stripe saves a request's answer once the endpoint begins, 500s included, and replays it
 * to the key for 24 hours; our keys are stable (per user, per ask, per state and target), so one
 * saved 500 would fail every request of the user for a day. Every caller holding a key walks the
 * same chain, so double clicks, tabs and instances still meet at one key, the first link that
 * is not a saved failure, and share its object, as they shared the first key's.
 *
 * What a saved 500 hides is whether its request took effect (Stripe's indeterminate 500): the
 * next link then does it again. That makes one object per intent in two cases only:
 * - the failure was saved before this call and nothing this call sent has an unknown outcome.
 *   A key derived from state read from Stripe (plan-upgrade: the subscription, its price, its
 *   latest invoice and period) differs once its request took effect, so meeting its saved 500
 *   says the request did nothing. A key per object (session-expire, schedule-release,
 *   duplicate-refund) repeats what Stripe then refuses (not open, released, refunded already),
 *   which the callers take as done. A random key is never met by a replay at its first attempt.
 * - the caller says a second object is harmless (repeat_is_harmless), as resources.c does for
 *   the two creates: a second customer is never stored (the store keeps one per user, the first
 *   insert wins and the others read it; `sync --import` skips a customer whose user has one),
 *   and a second checkout session's URL reaches nobody (only the answer's session is recorded
 *   and handed out; subgate never lists sessions at Stripe to hand one out), so it cannot be
 *   paid, and it expires.
 * An upgrade after a 5xx of its own stops at the saved failure: its next link could make a
 * second proration invoice while the first waits for payment. The user's next request reads
 * the subscription again and so starts from a key of its state.
 */
static bool key_may_walk(const struct call *k)
{
    return k->rq->method == STRIPE_POST && k->links < STRIPE_KEY_LINKS_MAX &&
           (!k->unknown || k->rq->repeat_is_harmless);
}

static void key_walk(const struct stripe_client *c, struct call *k)
{
    char next[STRIPE_IDEMPOTENCY_KEY_MAX];

    stripe_idempotency_key_link(k->first_key, ++k->links, next);
    log_warn("stripe %s %s: HTTP %d saved under idempotency key '%s', going on with '%s'",
             method_names[k->rq->method], k->rq->path, k->att.status, k->idem_key, next);
    (void)str_copy(k->idem_key, sizeof(k->idem_key), next); /* same size */
    headers_free(k->headers);
    k->headers = headers_build(c, k);
}

/*
 * Attempts until one succeeds or the policy stops; returns the number made. A saved failure is
 * not retried (its key would replay it): the call walks on to another key, or stops.
 */
static int attempts_run(struct stripe_client *c, CURL *h, struct call *k)
{
    int retries = 0;

    for (int attempt = 1;; attempt++) {
        attempt_once(c, h, k);
        trace_attempt(c, k, attempt);
        if (stripe_attempt_is_saved_failure(&k->att)) {
            if (!key_may_walk(k))
                return attempt;
            key_walk(c, k);
            continue;
        }
        if (k->att.status == 0 || k->att.status >= 500)
            k->unknown = true;
        if (!stripe_retry_should(&k->att, retries + 1, c->max_retries))
            return attempt;
        retries++;
        int64_t ms = stripe_retry_delay_ms(retries, k->att.retry_after_s, c->random(c->hook_ctx));
        log_info("stripe %s %s: %s, retry %d in %" PRId64 " ms", method_names[k->rq->method],
                 k->rq->path, k->att.status ? "HTTP error" : k->curl_err, retries, ms);
        c->sleep(c->hook_ctx, ms);
    }
}

enum err stripe_client_call(struct stripe_client *c, const struct stripe_request *rq, json_t **out,
                            struct stripe_error *se)
{
    struct call k = { .rq = rq };
    CURL *h = NULL;
    enum err err;

    *out = NULL;
    memset(se, 0, sizeof(*se));
    buf_init(&k.url, URL_BUF_MAX);
    buf_init(&k.body, c->max_response);
    err = call_prepare(c, &k, se);
    if (err)
        goto out;
    h = handle_take(c);
    se->attempts = attempts_run(c, h, &k);
    se->answered_at = k.date;
    err = finish(c, &k, out, se);
    handle_put(c, h);
    if (err)
        log_failure(&k, err, se);
out:
    headers_free(k.headers);
    buf_release(&k.url);
    buf_release(&k.body);
    return err;
}
