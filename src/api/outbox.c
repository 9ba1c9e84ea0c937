/*
 * outbox.c: delivery of the outbox (store/outbox.c writes it). One thread per `serve` claims
 * due events (a lease of LEASE_MS: on PostgreSQL the claim skips rows another instance holds,
 * so each event is sent by one instance), posts each with its signature, and records the
 * outcome: a 2xx is delivered, anything else waits by outbox_retry_delay_ms and is tried
 * again, until it is given up after three days. Request threads never wait for it.
 */
#include "api/outbox.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "base/clock.h"
#include "base/hmac.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "store/store.h"

#define LEASE_MS   120000 /* a claim's life: longer than a batch's posts (BATCH * TIMEOUT_MS) */
#define TIMEOUT_MS 5000   /* one post, connect included */
#define POLL_MS    200    /* how often the thread looks for due events */
#define BATCH      16

_Static_assert(BATCH *TIMEOUT_MS < LEASE_MS, "a lease outlives the posts of its batch");

enum err outbox_sign(const struct secret *secrets, size_t n, int64_t t, const char *body,
                     size_t len, char out[OUTBOX_SIG_MAX])
{
    char ts[24], hex[HMAC_SHA256_HEX_LEN + 1];
    size_t at;
    int w = snprintf(ts, sizeof(ts), "%lld", (long long)t);

    out[0] = '\0';
    if (n == 0 || n > 8 || w <= 0)
        return ERR_INVALID;
    at = (size_t)snprintf(out, OUTBOX_SIG_MAX, "t=%s", ts);
    for (size_t i = 0; i < n; i++) {
        const struct hmac_part parts[] = { { ts, (size_t)w }, { ".", 1 }, { body, len } };
        size_t klen = 0;
        const unsigned char *key = secret_bytes(&secrets[i], &klen);
        enum err err = hmac_sha256_hex(key, klen, parts, ARRAY_SIZE(parts), hex);

        if (err) {
            out[0] = '\0';
            return err;
        }
        at += (size_t)snprintf(out + at, OUTBOX_SIG_MAX - at, ",v1=%s", hex);
    }
    return ERR_OK;
}

int64_t outbox_retry_delay_ms(int attempts, int64_t base_ms)
{
    int64_t cap = OUTBOX_CAP_BASES * base_ms, total = 0, d = base_ms;

    if (attempts < 1 || base_ms < 1)
        return base_ms < 1 ? -1 : base_ms;
    for (int i = 1; i <= attempts; i++) {
        d = i == 1 ? base_ms : (d >= cap / 2 ? cap : d * 2);
        total += d;
        if (total > OUTBOX_GIVE_UP_BASES * base_ms)
            return -1;
    }
    return d;
}

/* The sender */

struct outbox_sender {
    struct store *st;
    const char *url;
    const struct secret *secrets;
    size_t secret_count;
    int64_t base_ms;
    char owner[64];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

/* The first bytes of the receiver's answer, for last_error; the rest is read and dropped. */
struct answer {
    char text[96];
    size_t len;
};

static size_t on_answer(char *p, size_t size, size_t n, void *ctx)
{
    struct answer *a = ctx;
    size_t room = sizeof(a->text) - 1 - a->len, take = size * n < room ? size * n : room;

    memcpy(a->text + a->len, p, take);
    a->len += take;
    a->text[a->len] = '\0';
    return size * n;
}

/* Posts e's payload; ERR_OK on a 2xx, else why in errbuf. */
static enum err post(const struct outbox_sender *s, const struct outbox_event *e, char *why,
                     size_t whylen)
{
    char sig[OUTBOX_SIG_MAX], sig_h[OUTBOX_SIG_MAX + 32], id_h[OUTBOX_ID_MAX + 32];
    size_t len = strlen(e->payload);
    struct curl_slist *h = NULL;
    struct answer answer = { "", 0 };
    CURL *c = curl_easy_init();
    CURLcode rc;
    long status = 0;
    enum err err = outbox_sign(s->secrets, s->secret_count, clock_now(), e->payload, len, sig);

    if (!c || err) {
        (void)snprintf(why, whylen, "%s", !c ? "curl: no handle" : "cannot sign");
        if (c)
            curl_easy_cleanup(c);
        return ERR_INTERNAL;
    }
    (void)snprintf(sig_h, sizeof(sig_h), "Subgate-Signature: %s", sig);
    (void)snprintf(id_h, sizeof(id_h), "Subgate-Event-Id: %s", e->id);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, sig_h);
    h = curl_slist_append(h, id_h);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, e->payload);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "subgate-outbox");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        (void)snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return ERR_UNAVAILABLE;
    }
    if (status < 200 || status > 299) {
        for (size_t i = 0; i < answer.len; i++) /* one line in `subgate outbox` */
            if ((unsigned char)answer.text[i] < 0x20)
                answer.text[i] = ' ';
        (void)snprintf(why, whylen, "HTTP %ld%s%s", status, answer.len ? ": " : "", answer.text);
        return ERR_UNAVAILABLE;
    }
    return ERR_OK;
}

/* Delivers one claimed event and records the outcome. */
static void deliver(const struct outbox_sender *s, struct outbox_event *e)
{
    char why[sizeof(e->last_error)] = "";
    bool done = false;
    int64_t delay;

    e->attempts++;
    if (post(s, e, why, sizeof(why)) == ERR_OK) {
        (void)str_copy(e->status, sizeof(e->status), "delivered");
        e->delivered_at = clock_now();
        e->last_error[0] = '\0';
    } else {
        delay = outbox_retry_delay_ms(e->attempts, s->base_ms);
        (void)str_copy(e->last_error, sizeof(e->last_error), why); /* cut is fine */
        if (delay < 0) {
            (void)str_copy(e->status, sizeof(e->status), "failed");
            log_error("outbox: giving up on %s %s after %d attempts: %s", e->type, e->id,
                      e->attempts, why);
        } else {
            e->next_attempt_at = clock_now_ms() + delay; /* milliseconds: base_ms may be < 1 s */
            log_warn("outbox: %s %s not delivered (attempt %d: %s); next in %lld ms", e->type,
                     e->id, e->attempts, why, (long long)delay);
        }
    }
    if (store_outbox_finish(s->st, e, &done) != ERR_OK || !done)
        log_warn("outbox: cannot record the outcome of %s (its lease ended?)", e->id);
}

static bool sleep_or_stop(struct outbox_sender *s, int64_t ms)
{
    struct timespec ts;
    bool stop;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0)
        ;
    stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static bool stopping(struct outbox_sender *s)
{
    bool stop;

    pthread_mutex_lock(&s->mu);
    stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* At shutdown, the claimed events not sent are handed back at once, unchanged. */
static void release(const struct outbox_sender *s, struct outbox_event *e)
{
    bool done = false;

    if (store_outbox_finish(s->st, e, &done) != ERR_OK || !done)
        log_warn("outbox: cannot hand back %s: another instance takes it after the lease", e->id);
}

static void *sender_main(void *arg)
{
    struct outbox_sender *s = arg;
    struct outbox_event *batch = xcalloc(BATCH, sizeof(*batch));

    for (;;) {
        int n = 0, i = 0, due = 0;
        enum err err;

        /* Tiers changed by the clock (grants starting or ending, grace ending) are written first.
         */
        if (store_grant_transitions(s->st, clock_now(), &due) != ERR_OK)
            log_warn("outbox: cannot announce the grants that started or ended");
        if (store_grace_transitions(s->st, clock_now(), &due) != ERR_OK)
            log_warn("outbox: cannot announce the ends of past-due grace");
        /* Wall-clock milliseconds: the lease and the schedule are shared across instances. */
        err = store_outbox_claim(s->st, s->owner, clock_now_ms(), LEASE_MS, BATCH, batch, &n);
        if (err)
            log_error("outbox: cannot claim events: %s", err_name(err));
        for (; i < n && !stopping(s); i++)
            deliver(s, &batch[i]);
        for (; i < n; i++)
            release(s, &batch[i]);
        if (stopping(s) || (n < BATCH && sleep_or_stop(s, POLL_MS)))
            break; /* a full batch: more may be due, claim again at once */
    }
    free(batch);
    return NULL;
}

enum err outbox_sender_start(struct store *st, const struct config *cfg, struct outbox_sender **out)
{
    struct outbox_sender *s = xcalloc(1, sizeof(*s));
    char host[32] = "";

    *out = NULL;
    s->st = st;
    s->url = cfg->app_webhook_url;
    s->secrets = cfg->app_webhook_secrets;
    s->secret_count = cfg->app_webhook_secret_count;
    s->base_ms = cfg->app_webhook_retry_base_ms;
    (void)gethostname(host, sizeof(host) - 1);
    (void)snprintf(s->owner, sizeof(s->owner), "%s:%ld:%lld", host[0] ? host : "host",
                   (long)getpid(), (long long)clock_mono_us());
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return ERR_INTERNAL;
    }
    *out = s;
    return ERR_OK;
}

void outbox_sender_stop(struct outbox_sender *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* `subgate outbox` */

#define USAGE "usage: subgate outbox [--failed] [--limit N] | outbox show ID | outbox replay ID"

static void format_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t == 0)
        (void)snprintf(buf, size, "-");
    else if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(buf, size, "%lld", (long long)t);
}

static int list(struct store *st, bool failed_only, int64_t limit, FILE *out, FILE *err)
{
    struct outbox_event *l = xcalloc((size_t)limit, sizeof(*l));
    int n = 0;
    enum err e = store_outbox_list(st, failed_only, (int)limit, l, &n);

    if (e) {
        fprintf(err, "subgate: cannot list the outbox: %s\n", err_name(e));
        free(l);
        return 1;
    }
    fprintf(out, "# id\ttype\tcreated\tstatus\tattempts\tlast_error\n");
    for (int i = 0; i < n; i++) {
        char created[32];

        format_time(l[i].created_at, created, sizeof(created));
        fprintf(out, "%s\t%s\t%s\t%s\t%d\t%s\n", l[i].id, l[i].type, created, l[i].status,
                l[i].attempts, l[i].last_error);
    }
    if (n == 0)
        fprintf(out, "# no %sevents\n", failed_only ? "failed " : "");
    free(l);
    return 0;
}

static int show(struct store *st, const char *id, FILE *out, FILE *err)
{
    struct outbox_event *e = xcalloc(1, sizeof(*e));
    char created[32], delivered[32];
    enum err rc = store_outbox_get(st, id, e);

    if (rc) {
        fprintf(err, "subgate: cannot show outbox event '%s': %s\n", id,
                rc == ERR_NOT_FOUND ? "no such event" : err_name(rc));
        free(e);
        return 1;
    }
    format_time(e->created_at, created, sizeof(created));
    format_time(e->delivered_at, delivered, sizeof(delivered));
    fprintf(out,
            "id: %s\ntype: %s\ncreated: %s\nstatus: %s\nattempts: %d\nnext_attempt_at_ms: "
            "%lld\ndelivered: %s\nlast_error: %s\npayload: %s\n",
            e->id, e->type, created, e->status, e->attempts, (long long)e->next_attempt_at,
            delivered, e->last_error, e->payload);
    free(e);
    return 0;
}

static int replay(struct store *st, const char *id, FILE *out, FILE *err)
{
    enum err rc = store_outbox_replay(st, id, clock_now() * 1000);

    if (rc) {
        fprintf(err, "subgate: cannot replay outbox event '%s': %s\n", id,
                rc == ERR_NOT_FOUND ? "no such event" : err_name(rc));
        return 1;
    }
    fprintf(out, "outbox event %s is due again\n", id);
    return 0;
}

int outbox_cli_run(struct store *st, int argc, char **argv, FILE *out, FILE *err)
{
    bool failed_only = false;
    int64_t limit = 20;

    if (argc >= 2 && (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "replay") == 0)) {
        if (argc != 3 || !argv[2][0]) {
            fprintf(err, "%s\n", USAGE);
            return 2;
        }
        return argv[1][0] == 's' ? show(st, argv[2], out, err) : replay(st, argv[2], out, err);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--failed") == 0) {
            failed_only = true;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc &&
                   parse_i64(argv[i + 1], strlen(argv[i + 1]), 1, OUTBOX_CLI_LIMIT_MAX, &limit) ==
                       ERR_OK) {
            i++;
        } else {
            fprintf(err, "%s\n", USAGE);
            return 2;
        }
    }
    return list(st, failed_only, limit, out, err);
}
