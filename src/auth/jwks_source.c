/*
 * jwks_source.c: the verifier's current JWKS key set. Sets are immutable and refcounted, so a
 * swap under the mutex is all a refresh needs; a verifying thread holds a reference for as long
 * as it uses a key. At most one fetch runs at a time, and a fetch asked for by an unknown kid
 * starts at most once per min_refresh_s, so random kids cannot make us hammer the provider.
 */
#include "auth/jwks_source.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/log.h"
#include "base/version.h"
#include "base/xalloc.h"

#define WHY_MAX 256

struct jwks_source {
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* the refresh thread sleeps on it; signalled to stop */
    struct jwks_keys *keys;   /* the current set, NULL while there is none; under lock */
    bool fetching;            /* a fetch is in flight; under lock */
    bool stop;                /* the refresh thread must end; under lock */
    int64_t last_fetch_ms;    /* monotonic start of the last fetch; under lock */
    _Atomic uint64_t keys_id; /* jwks_keys_id of keys, 0 while none */
    _Atomic uint64_t fetches; /* fetches begun */
    bool thread_started;
    pthread_t thread;
    char *url; /* NULL for a file source */
    int64_t min_refresh_ms;
    int64_t refresh_ms;
};

/* Replaces the current set with ks (whose reference it takes); under lock. */
static void install_locked(struct jwks_source *src, struct jwks_keys *ks, struct jwks_keys **old)
{
    *old = src->keys;
    src->keys = ks;
    atomic_store(&src->keys_id, jwks_keys_id(ks));
}

/* Claims the one fetch slot; under lock. False when a fetch is in flight. */
static bool fetch_begin_locked(struct jwks_source *src)
{
    if (src->fetching)
        return false;
    src->fetching = true;
    src->last_fetch_ms = clock_mono_ms();
    atomic_fetch_add(&src->fetches, 1);
    return true;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;

    if (buf_append(b, p, size * n) != ERR_OK)
        return 0; /* past JWKS_BODY_MAX: curl stops with CURLE_WRITE_ERROR */
    return size * n;
}

/* One GET of url into body: only a 200 answers. why gets the cause of a failure. */
static bool http_get(const char *url, struct buf *body, char *why, size_t whylen)
{
    char curl_err[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    CURLcode rc;
    long status = 0;

    if (!h) {
        snprintf(why, whylen, "cannot make a curl handle");
        return false;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "subgate/" SUBGATE_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, JWKS_CONNECT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, JWKS_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc == CURLE_WRITE_ERROR)
        snprintf(why, whylen, "body larger than %zu bytes", JWKS_BODY_MAX);
    else if (rc != CURLE_OK)
        snprintf(why, whylen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
    else if (status != 200)
        snprintf(why, whylen, "HTTP status %ld", status);
    return rc == CURLE_OK && status == 200;
}

/* Fetches and parses the set at url; NULL (and why) on any failure. */
static struct jwks_keys *fetch_keys(const char *url, char *why, size_t whylen)
{
    struct buf body;
    struct jwks_keys *ks = NULL;
    struct jwks_parse_info info;

    buf_init(&body, JWKS_BODY_MAX);
    if (http_get(url, &body, why, whylen) &&
        jwks_keys_parse(buf_str(&body), body.len, &ks, &info, why, whylen) == ERR_OK &&
        info.skipped > 0)
        log_info("JWKS '%s': %zu key(s) skipped, first: %s", url, info.skipped, info.first_skip);
    buf_release(&body);
    return ks;
}

/* Runs the fetch this thread claimed, installs its set, frees the slot. Not under lock. */
static void fetch_run(struct jwks_source *src, const char *trigger)
{
    char why[WHY_MAX] = "";
    struct jwks_keys *ks = fetch_keys(src->url, why, sizeof(why));
    struct jwks_keys *old = NULL;

    pthread_mutex_lock(&src->lock);
    if (ks)
        install_locked(src, ks, &old);
    src->fetching = false;
    pthread_mutex_unlock(&src->lock);
    jwks_keys_release(old);
    if (ks)
        log_info("JWKS '%s' (%s): %zu key(s)", src->url, trigger, jwks_keys_count(ks));
    else
        log_warn("cannot fetch JWKS '%s' (%s): %s; keeping the keys there were", src->url, trigger,
                 why);
}

/* Waits on wake until the monotonic time due_ms, or a signal; under lock. */
static void sleep_until_locked(struct jwks_source *src, int64_t due_ms)
{
    struct timespec ts = { .tv_sec = (time_t)(due_ms / 1000),
                           .tv_nsec = (long)(due_ms % 1000) * 1000000L };

    pthread_cond_timedwait(&src->wake, &src->lock, &ts);
}

/* Fetches every refresh_ms, or every min_refresh_ms while there is no set yet. */
static void *refresh_main(void *arg)
{
    struct jwks_source *src = arg;

    pthread_mutex_lock(&src->lock);
    while (!src->stop) {
        int64_t period = src->keys ? src->refresh_ms : src->min_refresh_ms;
        int64_t due = src->last_fetch_ms + period;

        if (clock_mono_ms() < due || !fetch_begin_locked(src)) {
            sleep_until_locked(src, clock_mono_ms() < due ? due : clock_mono_ms() + period);
            continue;
        }
        pthread_mutex_unlock(&src->lock);
        fetch_run(src, "refresh");
        pthread_mutex_lock(&src->lock);
    }
    pthread_mutex_unlock(&src->lock);
    return NULL;
}

static enum err load_file(struct jwks_source *src, const char *path, char *errbuf, size_t errlen)
{
    char why[WHY_MAX] = "";
    struct buf b;
    struct jwks_keys *ks = NULL, *old = NULL;
    enum err err;

    buf_init(&b, JWKS_BODY_MAX);
    err = file_read_all(path, &b, why, sizeof(why));
    if (!err)
        err = jwks_keys_parse(buf_str(&b), b.len, &ks, NULL, why, sizeof(why));
    buf_release(&b);
    if (err) {
        snprintf(errbuf, errlen, "cannot use JWKS file '%s': %s", path, why);
        return ERR_INVALID;
    }
    install_locked(src, ks, &old); /* no other thread sees src yet */
    return ERR_OK;
}

static struct jwks_source *source_alloc(const struct jwks_source_params *p)
{
    struct jwks_source *src = xcalloc(1, sizeof(*src));
    pthread_condattr_t attr;

    pthread_mutex_init(&src->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&src->wake, &attr);
    pthread_condattr_destroy(&attr);
    src->min_refresh_ms = p->min_refresh_s * 1000;
    src->refresh_ms = p->refresh_s * 1000;
    return src;
}

enum err jwks_source_new(const struct jwks_source_params *p, struct jwks_source **out, char *errbuf,
                         size_t errlen)
{
    struct jwks_source *src = source_alloc(p);

    *out = NULL;
    if (p->file && load_file(src, p->file, errbuf, errlen) != ERR_OK) {
        jwks_source_free(src);
        return ERR_INVALID;
    }
    if (!p->file) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(errbuf, errlen, "cannot initialise libcurl");
            jwks_source_free(src);
            return ERR_INTERNAL;
        }
        src->url = xstrdup(p->url);
        (void)fetch_begin_locked(src); /* no other thread sees src yet: always claimed */
        fetch_run(src, "start");
    }
    *out = src;
    return ERR_OK;
}

enum err jwks_source_start(struct jwks_source *src)
{
    if (!src->url || src->thread_started)
        return ERR_OK;
    if (pthread_create(&src->thread, NULL, refresh_main, src) != 0)
        return ERR_INTERNAL;
    src->thread_started = true;
    return ERR_OK;
}

/* Claims a fetch for an unknown kid when the rate limit allows one; under lock. */
static bool may_fetch_locked(struct jwks_source *src)
{
    return src->url && clock_mono_ms() - src->last_fetch_ms >= src->min_refresh_ms &&
           fetch_begin_locked(src);
}

/* The current set with a reference, and its key for kid; under lock. */
static struct jwks_keys *current_locked(struct jwks_source *src, const char *kid,
                                        const struct jwks_key **key)
{
    struct jwks_keys *ks = src->keys ? jwks_keys_ref(src->keys) : NULL;

    *key = ks ? jwks_keys_find(ks, kid) : NULL;
    return ks;
}

struct jwks_keys *jwks_source_get(struct jwks_source *src, const char *kid,
                                  const struct jwks_key **key)
{
    struct jwks_keys *ks;
    bool fetch = false;

    pthread_mutex_lock(&src->lock);
    ks = current_locked(src, kid, key);
    if (!*key)
        fetch = may_fetch_locked(src);
    pthread_mutex_unlock(&src->lock);
    if (!fetch)
        return ks;
    jwks_keys_release(ks);
    fetch_run(src, "unknown kid");
    pthread_mutex_lock(&src->lock);
    ks = current_locked(src, kid, key);
    pthread_mutex_unlock(&src->lock);
    return ks;
}

uint64_t jwks_source_keys_id(struct jwks_source *src)
{
    return atomic_load(&src->keys_id);
}

uint64_t jwks_source_fetches(struct jwks_source *src)
{
    return atomic_load(&src->fetches);
}

void jwks_source_free(struct jwks_source *src)
{
    if (!src)
        return;
    if (src->thread_started) {
        pthread_mutex_lock(&src->lock);
        src->stop = true;
        pthread_cond_signal(&src->wake);
        pthread_mutex_unlock(&src->lock);
        pthread_join(src->thread, NULL);
    }
    jwks_keys_release(src->keys);
    if (src->url)
        curl_global_cleanup();
    free(src->url);
    pthread_cond_destroy(&src->wake);
    pthread_mutex_destroy(&src->lock);
    free(src);
}
