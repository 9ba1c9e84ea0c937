/*
 * test_stripe_client.c: the Stripe transport against a scripted fake Stripe on loopback. The
 * fake is a few raw sockets rather than http/server.h because it must set Stripe's response
 * headers (Stripe-Should-Retry, Retry-After), drop connections unanswered, and count them.
 * Sleep and randomness are injected: nothing here waits on the wall clock.
 */
#include "t.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/secret.h"
#include "base/str.h"
#include "stripe/client.h"
#include "stripe/resources.h"
#include "stripe/retry.h"

#define KEY       "sk_test_unit_0123456789"
#define SEEN_MAX  128
#define CONNS_MAX 64
#define CUS_BODY  "{\"id\":\"cus_1\",\"object\":\"customer\",\"email\":\"a@b.c\"}"

/* One scripted answer; the fake answers 200 with CUS_BODY once the script runs out. */
struct step {
    int status;
    const char *should_retry; /* Stripe-Should-Retry value, NULL: absent */
    const char *retry_after;  /* Retry-After value, NULL: absent */
    const char *body;
    bool drop;     /* close the connection without answering */
    bool replayed; /* with Idempotent-Replayed: true (an answer Stripe saved for the key) */
};

/* One request as the fake received it. */
struct seen {
    char method[8];
    char target[1024]; /* path and query */
    char body[2048];
    char auth[128];
    char version[32];
    char idem[80];
    char agent[64];
    char ctype[80];
    int conn; /* which connection (1, 2, ...) carried it */
};

struct fake {
    int lfd;
    uint16_t port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    const struct step *script;
    size_t n_script, next;
    struct seen seen[SEEN_MAX];
    size_t n_seen;
    int conns;
    int fds[CONNS_MAX];
    pthread_t threads[CONNS_MAX];
    atomic_bool stopping;
};

struct conn_arg {
    struct fake *f;
    int fd;
    int n;
};

/* Reads one request into s; false at end of stream or on garbage. */
static bool read_request(int fd, struct seen *s)
{
    char buf[8192];
    size_t len = 0;
    char *end = NULL;

    while (!end) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return false;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (!end && len == sizeof(buf) - 1)
            return false;
    }
    *end = '\0';
    size_t have = len - (size_t)(end + 4 - buf);
    int64_t clen = 0;
    char *line = strstr(buf, "\r\n");
    if (!line || sscanf(buf, "%7s %1023s", s->method, s->target) != 2)
        return false;
    for (char *p = line + 2; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
        char *eol = strstr(p, "\r\n");
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char *colon = memchr(p, ':', n);
        if (!colon)
            continue;
        const char *v = colon + 1;
        size_t vlen = n - (size_t)(v - p);
        str_trim(&v, &vlen);
        size_t nlen = (size_t)(colon - p);
        if (str_eq_nocase(p, nlen, "authorization"))
            str_copyn(s->auth, sizeof(s->auth), v, vlen);
        else if (str_eq_nocase(p, nlen, "stripe-version"))
            str_copyn(s->version, sizeof(s->version), v, vlen);
        else if (str_eq_nocase(p, nlen, "idempotency-key"))
            str_copyn(s->idem, sizeof(s->idem), v, vlen);
        else if (str_eq_nocase(p, nlen, "user-agent"))
            str_copyn(s->agent, sizeof(s->agent), v, vlen);
        else if (str_eq_nocase(p, nlen, "content-type"))
            str_copyn(s->ctype, sizeof(s->ctype), v, vlen);
        else if (str_eq_nocase(p, nlen, "content-length") &&
                 parse_i64(v, vlen, 0, (int64_t)sizeof(s->body) - 1, &clen) != ERR_OK)
            return false;
    }
    if (have > (size_t)clen)
        return false; /* the client never pipelines */
    memcpy(s->body, end + 4, have);
    while (have < (size_t)clen) {
        ssize_t r = read(fd, s->body + have, (size_t)clen - have);
        if (r <= 0)
            return false;
        have += (size_t)r;
    }
    s->body[have] = '\0';
    return true;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void answer(int fd, const struct step *st, size_t nth)
{
    char head[1024];
    const char *body = st->body ? st->body : CUS_BODY;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Request-Id: req_fake_%zu\r\n%s%s%s%s%s%s%s\r\n",
                     st->status, strlen(body), nth, st->should_retry ? "Stripe-Should-Retry: " : "",
                     st->should_retry ? st->should_retry : "", st->should_retry ? "\r\n" : "",
                     st->retry_after ? "Retry-After: " : "", st->retry_after ? st->retry_after : "",
                     st->retry_after ? "\r\n" : "",
                     st->replayed ? "Idempotent-Replayed: true\r\n" : "");

    write_all(fd, head, (size_t)n);
    write_all(fd, body, strlen(body));
}

static void *conn_main(void *p)
{
    struct conn_arg a = *(struct conn_arg *)p;
    struct fake *f = a.f;
    static const struct step ok = { .status = 200 };

    free(p);
    for (;;) {
        struct seen s = { .conn = a.n };
        if (!read_request(a.fd, &s))
            break;
        pthread_mutex_lock(&f->mu);
        const struct step *st = f->next < f->n_script ? &f->script[f->next++] : &ok;
        size_t nth = f->n_seen;
        if (f->n_seen < SEEN_MAX)
            f->seen[f->n_seen++] = s;
        pthread_mutex_unlock(&f->mu);
        if (st->drop)
            break;
        answer(a.fd, st, nth);
    }
    shutdown(a.fd, SHUT_RDWR); /* closed by fake_stop, after the join */
    return NULL;
}

static void *accept_main(void *p)
{
    struct fake *f = p;

    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0 || atomic_load(&f->stopping)) {
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        struct conn_arg *a = malloc(sizeof(*a));
        pthread_mutex_lock(&f->mu);
        bool room = f->conns < CONNS_MAX;
        *a = (struct conn_arg){ f, fd, f->conns + 1 };
        if (room) {
            f->fds[f->conns] = fd;
            pthread_create(&f->threads[f->conns], NULL, conn_main, a);
            f->conns++;
        }
        pthread_mutex_unlock(&f->mu);
        if (!room) {
            close(fd);
            free(a);
        }
    }
}

static int listen_loopback(uint16_t *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("fake stripe: listen");
        exit(1);
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static void fake_start(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = listen_loopback(&f->port);
    pthread_create(&f->acceptor, NULL, accept_main, f);
}

/* Sets the answers to come and forgets what was seen. */
static void fake_script(struct fake *f, const struct step *script, size_t n)
{
    pthread_mutex_lock(&f->mu);
    f->script = script;
    f->n_script = n;
    f->next = 0;
    f->n_seen = 0;
    pthread_mutex_unlock(&f->mu);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stopping, true);
    shutdown(f->lfd, SHUT_RDWR);
    pthread_join(f->acceptor, NULL);
    close(f->lfd);
    for (int i = 0; i < f->conns; i++) {
        shutdown(f->fds[i], SHUT_RDWR);
        pthread_join(f->threads[i], NULL);
        close(f->fds[i]);
    }
    pthread_mutex_destroy(&f->mu);
}

/* The injected hooks: recorded sleeps, a deterministic random source, the trace. */
struct hooks {
    pthread_mutex_t mu;
    uint64_t state;      /* xorshift state; 0 means "always return fixed" */
    uint64_t fixed;      /* returned when state is 0 */
    uint64_t last;       /* the latest value returned */
    int64_t sleeps[16];  /* ms asked for */
    uint64_t jitter[16]; /* the random value drawn just before each sleep */
    size_t n_sleeps;
    struct stripe_trace traces[SEEN_MAX];
    char trace_forms[SEEN_MAX][256];
    size_t n_traces;
};

static void hook_sleep(void *ctx, int64_t ms)
{
    struct hooks *h = ctx;

    pthread_mutex_lock(&h->mu);
    if (h->n_sleeps < ARRAY_SIZE(h->sleeps)) {
        h->jitter[h->n_sleeps] = h->last;
        h->sleeps[h->n_sleeps++] = ms;
    }
    pthread_mutex_unlock(&h->mu);
}

static uint64_t hook_random(void *ctx)
{
    struct hooks *h = ctx;
    uint64_t v;

    pthread_mutex_lock(&h->mu);
    if (h->state) {
        h->state ^= h->state << 13;
        h->state ^= h->state >> 7;
        h->state ^= h->state << 17;
    }
    v = h->last = h->state ? h->state : h->fixed;
    pthread_mutex_unlock(&h->mu);
    return v;
}

static void hook_trace(void *ctx, const struct stripe_trace *t)
{
    struct hooks *h = ctx;

    pthread_mutex_lock(&h->mu);
    if (h->n_traces < SEEN_MAX) {
        h->traces[h->n_traces] = *t;
        str_copy(h->trace_forms[h->n_traces], sizeof(h->trace_forms[0]), t->form);
        h->traces[h->n_traces].form = h->trace_forms[h->n_traces];
        h->traces[h->n_traces].method = NULL; /* borrowed pointers die with the call */
        h->traces[h->n_traces].path = NULL;
        h->traces[h->n_traces].idempotency_key = NULL;
        h->n_traces++;
    }
    pthread_mutex_unlock(&h->mu);
}

static void hooks_reset(struct hooks *h)
{
    pthread_mutex_lock(&h->mu);
    h->n_sleeps = 0;
    h->n_traces = 0;
    pthread_mutex_unlock(&h->mu);
}

static struct stripe_client *client_for(uint16_t port, struct hooks *h, const char *version)
{
    struct stripe_client_params p;
    struct stripe_client *c = NULL;
    struct secret key = { 0 };
    char base[64], errbuf[256];

    snprintf(base, sizeof(base), "http://127.0.0.1:%u/", port);
    secret_set(&key, KEY, strlen(KEY));
    stripe_client_params_init(&p);
    p.api_base = base;
    p.secret_key = &key;
    if (version)
        p.api_version = version;
    p.connect_timeout_ms = 2000;
    p.timeout_ms = 10000;
    p.sleep = hook_sleep;
    p.random = hook_random;
    p.hook_ctx = h;
    if (stripe_client_new(&p, &c, errbuf, sizeof(errbuf)) != ERR_OK) {
        printf("Bail out! %s\n", errbuf);
        exit(1);
    }
    secret_release(&key);
    stripe_client_set_trace(c, hook_trace, h);
    return c;
}

static const struct stripe_customer_params cus_params = { "a@b.c", "Jenny Rosen", "user_1" };

static void test_headers(struct fake *f, struct hooks *h)
{
    struct stripe_client *c = client_for(f->port, h, NULL);
    struct stripe_customer cus;
    struct stripe_error se;

    fake_script(f, NULL, 0);
    hooks_reset(h);
    T_EQ_I64(stripe_customer_create(c, &cus_params, NULL, &cus, &se), ERR_OK, "create succeeds");
    T_EQ_STR(cus.id, "cus_1", "the answer is parsed");
    T_EQ_I64(f->n_seen, 1, "one request");
    T_EQ_STR(f->seen[0].method, "POST", "POST");
    T_EQ_STR(f->seen[0].target, "/v1/customers", "to /v1/customers (trailing / of the base gone)");
    T_EQ_STR(f->seen[0].auth, "Bearer " KEY, "Authorization: Bearer <key>");
    T_EQ_STR(f->seen[0].version, "2023-08-16", "Stripe-Version defaults to 2023-08-16");
    T_EQ_STR(f->seen[0].agent, "subgate/0.1.0", "User-Agent");
    T_EQ_STR(f->seen[0].ctype, "application/x-www-form-urlencoded", "form Content-Type");
    T_EQ_STR(f->seen[0].body, "email=a%40b.c&name=Jenny%20Rosen&metadata[user_id]=user_1",
             "form body");
    T_EQ_I64(strlen(f->seen[0].idem), 36, "a random UUID idempotency key");
    T_EQ_I64(f->seen[0].idem[14], '4', "of version 4");
    T_EQ_I64(h->n_traces, 1, "one trace");
    T_EQ_I64(h->traces[0].status, 200, "trace has the status");
    T_OK(strstr(h->trace_forms[0], "sk_test") == NULL, "the trace never has the key");
    T_EQ_STR(se.request_id, "req_fake_0", "Request-Id is kept");
    T_EQ_I64(stripe_customer_create(c, &cus_params, "subgate-customer-create-abc", &cus, &se),
             ERR_OK, "create with a caller's key");
    T_EQ_STR(f->seen[1].idem, "subgate-customer-create-abc", "a caller's key is sent as is");
    stripe_client_free(c);

    c = client_for(f->port, h, "2024-06-20");
    fake_script(f, NULL, 0);
    T_EQ_I64(stripe_customer_retrieve(c, "cus_1", &cus, &se), ERR_OK, "retrieve succeeds");
    T_EQ_STR(f->seen[0].method, "GET", "GET");
    T_EQ_STR(f->seen[0].target, "/v1/customers/cus_1", "the id is in the path");
    T_EQ_STR(f->seen[0].version, "2024-06-20", "a configured Stripe-Version is sent");
    T_EQ_STR(f->seen[0].idem, "", "no Idempotency-Key on GET");
    T_EQ_I64(stripe_customer_retrieve(c, "cus_1/../x", &cus, &se), ERR_INVALID,
             "an id that is not a Stripe id never reaches the path");
    stripe_client_free(c);
}

#define OK_BODY CUS_BODY
#define E500    "{\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}"
#define E400                                                                                   \
    "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"parameter_unknown\",\"param\":" \
    "\"bogus\",\"message\":\"Received unknown parameter: bogus\"}}"
#define E402                                                                           \
    "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\",\"decline_code\":" \
    "\"generic_decline\",\"message\":\"Your card was declined.\"}}"
#define E404 "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"resource_missing\"}}"
#define E429 "{\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}"

/* Scripted answers: status and body, with Stripe's retry headers, or a dropped connection. */
#define ANS(st, b)                  \
    {                               \
        .status = (st), .body = (b) \
    }
#define ANS_H(st, retry, after, b)                                                   \
    {                                                                                \
        .status = (st), .should_retry = (retry), .retry_after = (after), .body = (b) \
    }
#define ANS_R(st, b)                                  \
    {                                                 \
        .status = (st), .body = (b), .replayed = true \
    }
#define DROP         \
    {                \
        .drop = true \
    }

static const struct {
    const char *name;
    struct step steps[4];
    size_t n;
    enum err want;
    int attempts;
    const char *message; /* part of se.message on failure; NULL: not checked */
} scenarios[] = {
    { "500, 500, 200", { ANS(500, E500), ANS(500, E500), ANS(200, NULL) }, 3, ERR_OK, 3, NULL },
    { "409 then 200", { ANS(409, E500), ANS(200, NULL) }, 2, ERR_OK, 2, NULL },
    { "dropped then 200", { DROP, ANS(200, NULL) }, 2, ERR_OK, 2, NULL },
    { "502 with no error object, 200", { ANS(502, "<html>"), ANS(200, NULL) }, 2, ERR_OK, 2, NULL },
    { "500 three times",
      { ANS(500, E500), ANS(500, E500), ANS(500, E500) },
      3,
      ERR_UPSTREAM,
      3,
      "boom" },
    { "dropped three times", { DROP, DROP, DROP }, 3, ERR_UNAVAILABLE, 3, "cannot reach stripe" },
    { "500 with Stripe-Should-Retry: false",
      { ANS_H(500, "false", NULL, E500) },
      1,
      ERR_UPSTREAM,
      1,
      "boom" },
    { "409 with Stripe-Should-Retry: false",
      { ANS_H(409, "false", NULL, E500) },
      1,
      ERR_UPSTREAM,
      1,
      NULL },
    { "429 alone", { ANS(429, E429) }, 1, ERR_RATE_LIMITED, 1, "slow down" },
    { "429 with Stripe-Should-Retry: true",
      { ANS_H(429, "true", NULL, E429), ANS(200, NULL) },
      2,
      ERR_OK,
      2,
      NULL },
    { "400 even with Stripe-Should-Retry: true",
      { ANS_H(400, "true", NULL, E400) },
      1,
      ERR_REFUSED,
      1,
      "unknown parameter: bogus" },
    { "402 card error", { ANS(402, E402) }, 1, ERR_QUOTA, 1, "declined" },
    { "404", { ANS(404, E404) }, 1, ERR_NOT_FOUND, 1, NULL },
    { "401", { ANS(401, E400) }, 1, ERR_UNAVAILABLE, 1, "STRIPE_SECRET_KEY" },
    { "200 with malformed JSON", { ANS(200, "{\"id\":") }, 1, ERR_UPSTREAM, 1, "malformed JSON" },
    { "200 that is not a customer",
      { ANS(200, "{\"object\":\"customer\"}") },
      1,
      ERR_UPSTREAM,
      1,
      "'id' is missing" },
};

/* Every request of one call carried the same idempotency key. */
static bool same_key_throughout(const struct fake *f)
{
    for (size_t i = 1; i < f->n_seen; i++)
        if (strcmp(f->seen[i].idem, f->seen[0].idem) != 0)
            return false;
    return f->n_seen > 0 && f->seen[0].idem[0] != '\0';
}

/* The recorded sleeps are the backoff for the random values drawn before them. */
static bool sleeps_follow_backoff(const struct hooks *h)
{
    for (size_t i = 0; i < h->n_sleeps; i++)
        if (h->sleeps[i] != stripe_retry_delay_ms((int)i + 1, -1, h->jitter[i]))
            return false;
    return true;
}

/* A fresh client per row: its first attempt opens a new connection (see test_stale_reuse). */
static void test_scenarios(struct fake *f, struct hooks *h)
{
    for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++) {
        struct stripe_client *c = client_for(f->port, h, NULL);
        struct stripe_customer cus;
        struct stripe_error se;
        const char *name = scenarios[i].name;

        fake_script(f, scenarios[i].steps, scenarios[i].n);
        hooks_reset(h);
        enum err err = stripe_customer_create(c, &cus_params, NULL, &cus, &se);
        T_EQ_I64(err, scenarios[i].want, "%s: %s", name, err_name(scenarios[i].want));
        T_EQ_I64(f->n_seen, scenarios[i].attempts, "%s: requests received", name);
        T_EQ_I64(se.attempts, scenarios[i].attempts, "%s: attempts reported", name);
        T_EQ_I64(h->n_traces, scenarios[i].attempts, "%s: one trace per attempt", name);
        T_EQ_I64(h->n_sleeps, scenarios[i].attempts - 1, "%s: one sleep per retry", name);
        T_OK(sleeps_follow_backoff(h), "%s: sleeps follow the backoff", name);
        T_OK(same_key_throughout(f), "%s: one idempotency key for every attempt", name);
        if (scenarios[i].message)
            T_OK(strstr(se.message, scenarios[i].message) != NULL, "%s: message '%.200s'", name,
                 se.message);
        T_OK(strstr(se.message, KEY) == NULL, "%s: the message never has the key", name);
        stripe_client_free(c);
    }
}

/*
 * libcurl re-sends a request once, on a fresh connection, when a reused keep-alive connection
 * dies before any answer byte: inside one attempt, with the same idempotency key.
 */
static void test_stale_reuse(struct fake *f, struct hooks *h)
{
    static const struct step steps[] = { ANS(200, NULL), DROP, ANS(200, NULL) };
    struct stripe_client *c = client_for(f->port, h, NULL);
    struct stripe_customer cus;
    struct stripe_error se;

    fake_script(f, steps, ARRAY_SIZE(steps));
    hooks_reset(h);
    T_EQ_I64(stripe_customer_create(c, &cus_params, NULL, &cus, &se), ERR_OK, "first create");
    T_EQ_I64(stripe_customer_create(c, &cus_params, NULL, &cus, &se), ERR_OK,
             "second create survives its kept connection dying");
    T_EQ_I64(se.attempts, 1, "in one attempt");
    T_EQ_I64(h->n_sleeps, 0, "without a backoff");
    T_EQ_I64(f->n_seen, 3, "the fake saw the request twice");
    T_EQ_STR(f->seen[2].idem, f->seen[1].idem, "with the same idempotency key");
    T_OK(f->seen[2].conn != f->seen[1].conn, "on a new connection");
    stripe_client_free(c);
}

static void test_backoff_sequence(struct fake *f, struct hooks *h)
{
    static const struct step steps[] = { ANS(500, E500), ANS(503, E500),
                                         ANS_H(429, NULL, "3", E429) };
    struct stripe_client *c = client_for(f->port, h, NULL);
    struct stripe_customer cus;
    struct stripe_error se;

    h->state = 0; /* jitter at its floor: exactly half of each step */
    h->fixed = 0;
    fake_script(f, steps, ARRAY_SIZE(steps));
    hooks_reset(h);
    T_EQ_I64(stripe_customer_retrieve(c, "cus_1", &cus, &se), ERR_RATE_LIMITED,
             "500, 503, 429: the last answer decides");
    T_EQ_I64(h->n_sleeps, 2, "two sleeps");
    T_EQ_I64(h->sleeps[0], 250, "first backoff 0.5 s at 50 %% jitter");
    T_EQ_I64(h->sleeps[1], 500, "second backoff doubles");

    static const struct step after[] = { ANS_H(429, "true", "3", E429), ANS(200, NULL) };
    fake_script(f, after, ARRAY_SIZE(after));
    hooks_reset(h);
    T_EQ_I64(stripe_customer_retrieve(c, "cus_1", &cus, &se), ERR_OK, "429 then 200");
    T_EQ_I64(h->n_sleeps, 1, "one sleep");
    T_EQ_I64(h->sleeps[0], 3000, "Retry-After: 3 is honoured");
    h->state = UINT64_C(0x2545f4914f6cdd1d);
    stripe_client_free(c);
}

static void test_refused(struct hooks *h)
{
    uint16_t port;
    int fd = listen_loopback(&port);
    struct stripe_client *c;
    struct stripe_customer cus;
    struct stripe_error se;

    close(fd); /* nothing listens there now */
    c = client_for(port, h, NULL);
    hooks_reset(h);
    T_EQ_I64(stripe_customer_create(c, &cus_params, NULL, &cus, &se), ERR_UNAVAILABLE,
             "connection refused: ERR_UNAVAILABLE");
    T_EQ_I64(se.attempts, 3, "after 1 + 2 retries");
    T_EQ_I64(h->n_sleeps, 2, "with two backoffs");
    T_EQ_I64(se.http_status, 0, "and no HTTP status");
    T_OK(strstr(se.message, "cannot reach stripe at 'http://127.0.0.1:") != NULL,
         "the message names the base: %.200s", se.message);
    stripe_client_free(c);
}

static void test_keep_alive_and_query(struct fake *f, struct hooks *h)
{
    static const struct step list[] = {
        ANS(200, "{\"object\":\"list\",\"has_more\":true,\"data\":[{\"id\":\"sub_9\"}]}"),
    };
    struct stripe_client *c = client_for(f->port, h, NULL);
    struct stripe_subscription_page page;
    struct stripe_error se;
    int before = f->conns;

    fake_script(f, list, ARRAY_SIZE(list));
    T_EQ_I64(stripe_subscription_list(c, "cus_1", "sub_8", 3, &page, &se), ERR_OK, "list");
    T_EQ_STR(f->seen[0].target,
             "/v1/subscriptions?customer=cus_1&limit=3&starting_after=sub_8&status=all",
             "list parameters go in the query string");
    T_EQ_STR(f->seen[0].body, "", "and the body is empty");
    T_OK(page.has_more && strcmp(page.last_id, "sub_9") == 0, "page read");
    stripe_subscription_page_release(&page);
    for (int i = 0; i < 5; i++) {
        struct subscription sub;
        fake_script(f, NULL, 0);
        (void)!stripe_subscription_retrieve(c, "sub_9", &sub, &se); /* counted below */
    }
    T_EQ_I64(f->conns - before, 1, "six sequential calls share one connection");
    stripe_client_free(c);
}

struct worker {
    struct stripe_client *c;
    int ok;
};

static void *worker_main(void *p)
{
    struct worker *w = p;

    for (int i = 0; i < 10; i++) {
        struct stripe_customer cus;
        struct stripe_error se;
        w->ok += stripe_customer_create(w->c, &cus_params, NULL, &cus, &se) == ERR_OK;
    }
    return NULL;
}

static void test_threads(struct fake *f, struct hooks *h)
{
    struct stripe_client *c = client_for(f->port, h, NULL);
    pthread_t t[8];
    struct worker w[8];
    int ok = 0, before = f->conns;
    bool distinct = true;

    fake_script(f, NULL, 0);
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        w[i] = (struct worker){ c, 0 };
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
    }
    T_EQ_I64(ok, 80, "8 threads x 10 creates all succeed");
    T_OK(f->conns - before <= 8, "on at most 8 connections (%d)", f->conns - before);
    for (size_t i = 1; i < f->n_seen; i++)
        distinct = distinct && strcmp(f->seen[i].idem, f->seen[i - 1].idem) != 0;
    T_OK(distinct, "each call its own random key");
    stripe_client_free(c);
}

static void test_idempotency_key_for(void)
{
    char a[STRIPE_IDEMPOTENCY_KEY_MAX], b[STRIPE_IDEMPOTENCY_KEY_MAX];

    stripe_idempotency_key_for("customer-create", "user_1", a);
    stripe_idempotency_key_for("customer-create", "user_1", b);
    T_EQ_STR(a, b, "the same operation and subject give the same key");
    /* sha256("user_1") = 79b0aa0042b3c05617c378046a6553ec2cd81e9995959a6012f9b497a18ec82b */
    T_EQ_STR(a, "subgate-customer-create-79b0aa0042b3c05617c378046a6553ec",
             "subgate-<operation>-<sha256 prefix>");
    stripe_idempotency_key_for("customer-create", "user_2", b);
    T_OK(strcmp(a, b) != 0, "another subject, another key");
    stripe_idempotency_key_for("checkout-create", "user_1", b);
    T_OK(strcmp(a, b) != 0, "another operation, another key");
}

static void test_idempotency_key_link(void)
{
    char k61[62], k62[63], out[STRIPE_IDEMPOTENCY_KEY_MAX], again[STRIPE_IDEMPOTENCY_KEY_MAX];

    memset(k61, 'a', sizeof(k61) - 1);
    k61[sizeof(k61) - 1] = '\0';
    memset(k62, 'a', sizeof(k62) - 1);
    k62[sizeof(k62) - 1] = '\0';
    stripe_idempotency_key_link("subgate-customer-create-abc", 1, out);
    T_EQ_STR(out, "subgate-customer-create-abc~1", "a key that fits: <key>~<n>");
    stripe_idempotency_key_link("subgate-customer-create-abc", STRIPE_KEY_LINKS_MAX, out);
    T_EQ_STR(out, "subgate-customer-create-abc~8", "the last link");
    stripe_idempotency_key_link(k61, 1, out);
    T_EQ_I64(strlen(out), 63, "61 bytes and ~1 still fit");
    stripe_idempotency_key_link(k62, 1, out);
    T_OK(str_has_prefix(out, "subgate-link-") && strlen(out) == 47, "a longer key is hashed: '%s'",
         out);
    stripe_idempotency_key_link(k62, 1, again);
    T_EQ_STR(again, out, "the same key, the same link");
    k62[0] = 'b';
    stripe_idempotency_key_link(k62, 1, again);
    T_OK(strcmp(again, out) != 0, "another long key, another link");
}

/*
 * Walking past failures Stripe saved under the key (Idempotent-Replayed 5xx): the keys each
 * attempt carried, as "K" for the caller's key and "K~n" for link n.
 */
static const struct {
    const char *name;
    struct step steps[10];
    size_t n;
    bool harmless; /* stripe_request.repeat_is_harmless */
    enum err want;
    const char *keys; /* the attempts' keys, space separated */
    size_t sleeps;
} key_walks[] = {
    { "a saved 500 met first: the next link at once",
      { ANS_R(500, E500) },
      1,
      false,
      ERR_OK,
      "K K~1",
      0 },
    { "a fresh 500, then its replay, harmless: the next link",
      { ANS(500, E500), ANS_R(500, E500) },
      2,
      true,
      ERR_OK,
      "K K K~1",
      1 },
    { "a fresh 500, then its replay: stops, the outcome is unknown",
      { ANS(500, E500), ANS_R(500, E500) },
      2,
      false,
      ERR_UPSTREAM,
      "K K",
      1 },
    { "no answer, then a replayed 500: stops",
      { DROP, ANS_R(500, E500) },
      2,
      false,
      ERR_UPSTREAM,
      "K K",
      1 },
    { "no answer keeps the key, harmless or not",
      { DROP, ANS(200, NULL) },
      2,
      true,
      ERR_OK,
      "K K",
      1 },
    { "a saved 500 on the first link too, a fresh 500 on the second: retried with it",
      { ANS_R(500, E500), ANS_R(503, E500), ANS(500, E500), ANS(200, NULL) },
      4,
      false,
      ERR_OK,
      "K K~1 K~2 K~2",
      1 },
    { "saved 500s on every link: stops after the last",
      { ANS_R(500, E500), ANS_R(500, E500), ANS_R(500, E500), ANS_R(500, E500), ANS_R(500, E500),
        ANS_R(500, E500), ANS_R(500, E500), ANS_R(500, E500), ANS_R(500, E500) },
      9,
      true,
      ERR_UPSTREAM,
      "K K~1 K~2 K~3 K~4 K~5 K~6 K~7 K~8",
      0 },
    { "a replayed 200 is the answer", { ANS_R(200, NULL) }, 1, false, ERR_OK, "K", 0 },
    { "a replayed 400 is not walked past", { ANS_R(400, E400) }, 1, true, ERR_REFUSED, "K", 0 },
};

/* The keys the fake saw, with the caller's key written K: "K K~1". */
static void keys_seen(const struct fake *f, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key), used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < f->n_seen && used < len; i++) {
        const char *k = f->seen[i].idem;
        bool ours = strncmp(k, key, klen) == 0;
        int n = snprintf(out + used, len - used, "%s%s%s", i ? " " : "", ours ? "K" : "",
                         ours ? k + klen : k);
        used += n > 0 ? (size_t)n : 0;
    }
}

static void test_key_walks(struct fake *f, struct hooks *h)
{
    static const char key[] = "subgate-customer-create-walk";
    struct form form;

    form_init(&form, FORM_MAX_DEFAULT);
    form_add(&form, "email", "a@b.c");
    for (size_t i = 0; i < ARRAY_SIZE(key_walks); i++) {
        struct stripe_client *c = client_for(f->port, h, NULL);
        struct stripe_request rq = { .method = STRIPE_POST,
                                     .path = "/v1/customers",
                                     .form = &form,
                                     .idempotency_key = key,
                                     .repeat_is_harmless = key_walks[i].harmless };
        const char *name = key_walks[i].name;
        struct stripe_error se;
        json_t *out = NULL;
        char keys[512];

        fake_script(f, key_walks[i].steps, key_walks[i].n);
        hooks_reset(h);
        T_EQ_I64(stripe_client_call(c, &rq, &out, &se), key_walks[i].want, "%s: %s", name,
                 err_name(key_walks[i].want));
        keys_seen(f, key, keys, sizeof(keys));
        T_EQ_STR(keys, key_walks[i].keys, "%s: the keys sent", name);
        T_EQ_I64(h->n_sleeps, key_walks[i].sleeps, "%s: sleeps only before a retry", name);
        T_EQ_I64(se.attempts, f->n_seen, "%s: every attempt reported", name);
        json_decref(out);
        stripe_client_free(c);
    }
    form_release(&form);
}

#define CS_BODY                                                                        \
    "{\"id\":\"cs_test_1\",\"object\":\"checkout.session\",\"mode\":\"subscription\"," \
    "\"status\":\"open\",\"url\":\"https://checkout.example/cs_test_1\",\"expires_at\":1}"

/* The checkout form: exactly Stripe's parameter names, the options only when configured. */
static void test_checkout_form(struct fake *f, struct hooks *h)
{
    static const struct step answers[] = { ANS(200, CS_BODY), ANS(200, CS_BODY),
                                           ANS(200, CS_BODY) };
    struct stripe_client *c = client_for(f->port, h, NULL);
    struct stripe_checkout_params p = { .customer = "cus_1",
                                        .price = "price_1",
                                        .success_url = "https://a.example/ok",
                                        .cancel_url = "https://a.example/no",
                                        .client_reference_id = "u1",
                                        .user_id = "u1" };
    struct stripe_checkout_session cs;
    struct stripe_error se;
    const char *base = "mode=subscription&customer=cus_1&line_items[0][price]=price_1&"
                       "line_items[0][quantity]=1&success_url=https%3A%2F%2Fa.example%2Fok&"
                       "cancel_url=https%3A%2F%2Fa.example%2Fno&client_reference_id=u1&"
                       "metadata[user_id]=u1&subscription_data[metadata][user_id]=u1";
    char want[1024];

    fake_script(f, answers, ARRAY_SIZE(answers));
    T_EQ_I64(stripe_checkout_session_create(c, &p, NULL, &cs, &se), ERR_OK, "a plain session");
    T_EQ_STR(cs.id, "cs_test_1", "the session is parsed");
    T_EQ_STR(f->seen[0].target, "/v1/checkout/sessions", "POST /v1/checkout/sessions");
    T_EQ_STR(f->seen[0].body, base, "no option: none of their parameters");

    p.allow_promotion_codes = true;
    p.automatic_tax = true;
    p.locale = "pt-BR";
    T_EQ_I64(stripe_checkout_session_create(c, &p, NULL, &cs, &se), ERR_OK, "every option");
    snprintf(want, sizeof(want),
             "%s&allow_promotion_codes=true&automatic_tax[enabled]=true&"
             "billing_address_collection=required&tax_id_collection[enabled]=true&"
             "customer_update[address]=auto&customer_update[name]=auto&locale=pt-BR",
             base);
    T_EQ_STR(f->seen[1].body, want, "Stripe's names for every option");

    p.allow_promotion_codes = false;
    p.automatic_tax = false;
    p.locale = "";
    T_EQ_I64(stripe_checkout_session_create(c, &p, NULL, &cs, &se), ERR_OK, "an empty locale");
    T_EQ_STR(f->seen[2].body, base, "an empty locale is not sent");
    stripe_client_free(c);
}

static void test_bad_params(void)
{
    struct stripe_client_params p;
    struct stripe_client *c = NULL;
    struct secret key = { 0 };
    char errbuf[256];

    stripe_client_params_init(&p);
    T_EQ_I64(stripe_client_new(&p, &c, errbuf, sizeof(errbuf)), ERR_INVALID, "no key: refused");
    secret_set(&key, "sk_test\r\nX-Evil: 1", 18);
    p.secret_key = &key;
    T_EQ_I64(stripe_client_new(&p, &c, errbuf, sizeof(errbuf)), ERR_INVALID,
             "a key that would split a header: refused");
    T_OK(strstr(errbuf, "sk_test") == NULL, "without showing it: %s", errbuf);
    secret_set(&key, KEY, strlen(KEY));
    p.api_base = "ftp://x";
    T_EQ_I64(stripe_client_new(&p, &c, errbuf, sizeof(errbuf)), ERR_INVALID, "ftp base: refused");
    T_OK(c == NULL, "and nothing is created");
    secret_release(&key);
    stripe_client_free(NULL);
}

int main(void)
{
    static struct fake f;
    static struct hooks h = { .state = UINT64_C(0x2545f4914f6cdd1d) };

    pthread_mutex_init(&h.mu, NULL);
    fake_start(&f);
    test_headers(&f, &h);
    test_scenarios(&f, &h);
    test_stale_reuse(&f, &h);
    test_backoff_sequence(&f, &h);
    test_refused(&h);
    test_keep_alive_and_query(&f, &h);
    test_threads(&f, &h);
    test_idempotency_key_for();
    test_idempotency_key_link();
    test_key_walks(&f, &h);
    test_checkout_form(&f, &h);
    test_bad_params();
    fake_stop(&f);
    pthread_mutex_destroy(&h.mu);
    return t_done();
}
