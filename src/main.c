/* main.c: the subcommand table and the wiring of serve; no business logic lives here. */
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/events_cli.h"
#include "api/help.h"
#include "api/outbox.h"
#include "api/sync.h"
#include "api/user_cli.h"
#include "auth/jwks_source.h"
#include "auth/jwt.h"
#include "auth/jwt_sign.h"
#include "auth/service_key.h"
#include "auth/signer.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/log.h"
#include "base/str.h"
#include "base/version.h"
#include "billing/gate.h"
#include "billing/tiers.h"
#include "config/config.h"
#include "http/offload.h"
#include "http/server.h"
#include "metrics/metrics.h"
#include "store/store.h"
#include "stripe/client.h"

#define DOTENV_PATH     ".env"
#define TIERS_MAX       ((size_t)1024 * 1024)
#define THEME_MAX       ((size_t)256 * 1024)
#define SHUTDOWN_MS     INT64_C(10000)
#define ERRBUF          512
#define WRITE_IN_FLIGHT 16 /* WRITE_CONCURRENCY's default: fibers of one thread */
#define WRITE_FIBER_STACK \
    ((size_t)512 * 1024) /* bytes: jansson's deepest parse takes about 190 KiB */

/* What serve builds and tears down. */
struct app {
    struct config cfg;
    struct tier_catalog tiers;
    struct gate_rules gate;
    struct jwt_verifier *jwt;
    struct jwks_source *jwks; /* NULL without JWT_JWKS_URL or JWT_JWKS_FILE */
    struct service_keys keys;
    struct store *store;
    struct stripe_client *stripe; /* NULL without STRIPE_SECRET_KEY */
    struct signer *signer;        /* NULL without ENTITLEMENT_TOKEN_KEY_FILE */
    struct api api;
    char *theme_css; /* BILLING_THEME_FILE's bytes; NULL without it */
    size_t theme_len;
    int threads;          /* HTTP worker threads */
    struct offload *away; /* PostgreSQL: where the write fibers' own round trips go (start_away) */
};

static int fail(const char *msg)
{
    fprintf(stderr, "subgate: %s\n", msg);
    return 1;
}

/*
 * For the commands that take no arguments: true when there is none, else false after the usage
 * error (the caller exits 2), so `serve --port 9000` is refused rather than run on LISTEN.
 */
static bool no_arguments(int argc, char **argv)
{
    if (argc < 2)
        return true;
    fprintf(stderr, "subgate: %s: unexpected argument '%s' (see 'subgate %s --help')\n", argv[0],
            argv[1], argv[0]);
    return false;
}

static int load_config(struct config *cfg)
{
    char err[ERRBUF];

    if (config_load(cfg, DOTENV_PATH, err, sizeof(err)) != ERR_OK)
        return fail(err);
    log_min_level = (enum log_level)log_level_parse(cfg->log_level);
    return 0;
}

/*
 * With Stripe configured, every tier sold through checkout needs a Stripe price id: without one
 * it cannot be sold, and its subscribers' events would name a price no tier has.
 */
static int check_prices(const struct config *cfg, const struct tier_catalog *cat)
{
    const struct tier *t = tier_catalog_unpriced(cat);
    const char *var = !t                              ? ""
                      : strcmp(t->id, "premium") == 0 ? "STRIPE_PREMIUM_PRICE_ID"
                      : strcmp(t->id, "plus") == 0    ? "STRIPE_PLUS_PRICE_ID"
                                                      : "TIERS_FILE";
    char msg[ERRBUF + 128];

    if (!t)
        return 0;
    if (!tier_primary_price(t) || !tier_primary_price(t)->stripe_price_id[0])
        snprintf(msg, sizeof(msg),
                 "%s: tier '%s' is sold through checkout and needs a Stripe price id (price_...) "
                 "when STRIPE_SECRET_KEY is set%s",
                 var, t->id,
                 strcmp(var, "TIERS_FILE") != 0 && cfg->tiers_file && *cfg->tiers_file
                     ? " (or stripe_price_id in TIERS_FILE)"
                     : "");
    else
        snprintf(msg, sizeof(msg), "%s: '%s' (tier '%s') is not a Stripe price id (price_...)", var,
                 tier_primary_price(t)->stripe_price_id, t->id);
    return fail(msg);
}

/* A price id from the environment, for a tier and interval of the built-in names. */
struct env_price {
    const char *var, *tier, *interval;
    size_t off; /* of the value in struct config */
};

static const struct env_price env_prices[] = {
    { "STRIPE_PREMIUM_PRICE_ID", "premium", NULL,
      offsetof(struct config, stripe_premium_price_id) },
    { "STRIPE_PLUS_PRICE_ID", "plus", NULL, offsetof(struct config, stripe_plus_price_id) },
    { "STRIPE_PREMIUM_ANNUAL_PRICE_ID", "premium", "year",
      offsetof(struct config, stripe_premium_annual_price_id) },
    { "STRIPE_PLUS_ANNUAL_PRICE_ID", "plus", "year",
      offsetof(struct config, stripe_plus_annual_price_id) },
};

/*
 * Fills the tier's price at the interval from the environment when the tier has that price and
 * no id of its own (TIERS_FILE wins); a tier without such a price ignores the variable.
 */
static int env_price(struct tier_catalog *cat, const struct env_price *ep, const char *value)
{
    const struct tier *t = tier_catalog_find(cat, ep->tier);
    const struct tier_price *have = t ? tier_sold_price(t, ep->interval) : NULL;
    char msg[ERRBUF];
    enum err e;

    if (!value || !*value || !have || have->stripe_price_id[0])
        return 0;
    e = tier_catalog_set_price_id(cat, ep->tier, ep->interval, value);
    if (e == ERR_OK)
        return 0;
    snprintf(msg, sizeof(msg), "%s: cannot be set on tier '%s': %s", ep->var, ep->tier,
             e == ERR_CONFLICT ? "another price already has this id" : "not a Stripe price id");
    return fail(msg);
}

static int load_tiers(const struct config *cfg, struct tier_catalog *cat)
{
    char err[ERRBUF], msg[ERRBUF + 64];
    struct buf b;
    enum err e;
    int rc;

    if (!cfg->tiers_file || !*cfg->tiers_file) {
        tier_catalog_builtin(cat);
    } else {
        buf_init(&b, TIERS_MAX);
        e = file_read_all(cfg->tiers_file, &b, err, sizeof(err));
        if (!e)
            e = tier_catalog_parse(buf_str(&b), b.len, cat, err, sizeof(err));
        buf_release(&b);
        if (e) {
            snprintf(msg, sizeof(msg), "TIERS_FILE: %s", err);
            return fail(msg);
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(env_prices); i++)
        if ((rc = env_price(cat, &env_prices[i],
                            *(char *const *)((const char *)cfg + env_prices[i].off))))
            return rc;
    return config_has_stripe(cfg) ? check_prices(cfg, cat) : 0;
}

/* BILLING_THEME_FILE, read once: the billing page's stylesheet at /billing/theme.css. */
static int load_theme(const struct config *cfg, char **css, size_t *len)
{
    char err[ERRBUF], msg[ERRBUF + 64];
    struct buf b;

    *css = NULL;
    *len = 0;
    if (!cfg->billing_theme_file || !*cfg->billing_theme_file)
        return 0;
    buf_init(&b, THEME_MAX);
    if (file_read_all(cfg->billing_theme_file, &b, err, sizeof(err)) != ERR_OK) {
        buf_release(&b);
        snprintf(msg, sizeof(msg), "BILLING_THEME_FILE: %s", err);
        return fail(msg);
    }
    *css = buf_detach(&b, len);
    return 0;
}

/* GATE_RULES_FILE; else the example app's rules over the built-in catalogue; else none. */
static int load_gate(const struct config *cfg, const struct tier_catalog *cat,
                     struct gate_rules *out)
{
    char err[ERRBUF], msg[ERRBUF + 64];
    struct buf b;
    enum err e = ERR_OK;

    memset(out, 0, sizeof(*out));
    if (cfg->gate_rules_file && *cfg->gate_rules_file) {
        buf_init(&b, TIERS_MAX);
        e = file_read_all(cfg->gate_rules_file, &b, err, sizeof(err));
        if (!e)
            e = gate_rules_parse(buf_str(&b), b.len, cat, out, err, sizeof(err));
        buf_release(&b);
    } else if (!cfg->tiers_file || !*cfg->tiers_file) {
        gate_rules_builtin(out);
        e = gate_rules_validate(out, cat, err, sizeof(err));
    }
    if (e) {
        snprintf(msg, sizeof(msg), "GATE_RULES_FILE: %s", err);
        return fail(msg);
    }
    out->options.case_sensitive = cfg->gate_case_sensitive;
    out->options.params =
        cfg->gate_path_params == CONFIG_PATH_PARAMS_STRIP ? GATE_PARAMS_STRIP : GATE_PARAMS_REFUSE;
    return 0;
}

/*
 * JWT_JWKS_URL or JWT_JWKS_FILE. A file that cannot be used stops start-up; an unreachable URL
 * does not (the source logs it and refuses tokens until a fetch succeeds), so an identity
 * provider's outage cannot keep subgate down once it is back.
 */
static int make_jwks_verifier(const struct config *cfg, struct jwks_source **src,
                              struct jwt_verifier **out)
{
    const struct jwks_source_params p = { .url = cfg->jwt_jwks_url,
                                          .file = cfg->jwt_jwks_file,
                                          .min_refresh_s = cfg->jwt_jwks_min_refresh_s,
                                          .refresh_s = cfg->jwt_jwks_refresh_s };
    char err[ERRBUF], msg[ERRBUF + 64];

    if (jwks_source_new(&p, src, err, sizeof(err)) != ERR_OK) {
        snprintf(msg, sizeof(msg), "%s: %s", cfg->jwt_jwks_file ? "JWT_JWKS_FILE" : "JWT_JWKS_URL",
                 err);
        return fail(msg);
    }
    if (jwt_verifier_new_jwks(*src, cfg->jwt_issuer, cfg->jwt_audience, out) != ERR_OK)
        return fail("JWT_JWKS_URL: cannot set up JWKS verification");
    return 0;
}

static int make_verifier(const struct config *cfg, struct jwks_source **jwks,
                         struct jwt_verifier **out)
{
    char err[ERRBUF], msg[ERRBUF + 64];

    if (cfg->jwt_jwks_url || cfg->jwt_jwks_file)
        return make_jwks_verifier(cfg, jwks, out);
    if (secret_is_set(&cfg->jwt_secret)) {
        if (jwt_verifier_new_hmac(&cfg->jwt_secret, cfg->jwt_issuer, cfg->jwt_audience, out))
            return fail("JWT_SECRET: cannot set up HS256 verification");
        return 0;
    }
    if (jwt_verifier_new_pem(cfg->jwt_public_key_file, cfg->jwt_issuer, cfg->jwt_audience, out, err,
                             sizeof(err)) != ERR_OK) {
        snprintf(msg, sizeof(msg), "JWT_PUBLIC_KEY_FILE: %s", err);
        return fail(msg);
    }
    return 0;
}

/*
 * ENTITLEMENT_TOKEN_KEY_FILE and ENTITLEMENT_TOKEN_PUBLIC_KEYS. Without a key file the token
 * routes answer 503 (no ephemeral key: every instance must sign with the same published keys).
 */
static int make_signer(const struct config *cfg, struct signer **out)
{
    char err[ERRBUF], msg[ERRBUF + 64], quoted[ERRBUF];

    *out = NULL;
    if (!cfg->ent_token_key_file) {
        if (cfg->ent_token_public_key_count)
            return fail("ENTITLEMENT_TOKEN_PUBLIC_KEYS: needs ENTITLEMENT_TOKEN_KEY_FILE");
        return 0;
    }
    if (signer_new(cfg->ent_token_key_file, (const char *const *)cfg->ent_token_public_keys,
                   cfg->ent_token_public_key_count, out, err, sizeof(err)) != ERR_OK) {
        snprintf(quoted, sizeof(quoted), "'%s'", cfg->ent_token_key_file); /* errors quote it */
        snprintf(msg, sizeof(msg), "ENTITLEMENT_TOKEN_%s: %s",
                 strstr(err, quoted) ? "KEY_FILE" : "PUBLIC_KEYS", err);
        return fail(msg);
    }
    return 0;
}

static int open_store(const struct config *cfg, int threads, struct store **out)
{
    char err[ERRBUF];
    int applied = 0;

    if (store_open(cfg->database_url, threads + 1, out, err, sizeof(err)) != ERR_OK)
        return fail(err);
    store_group_commit_set(*out, cfg->store_group_commit != 0);
    store_ledger_set(*out, cfg->usage_ledger != 0);
    if (store_migrate(*out, &applied, err, sizeof(err)) != ERR_OK)
        return fail(err);
    if (applied)
        log_info("applied %d migration(s)", applied);
    return 0;
}

/* What the store needs to write outgoing events; they are written only with APP_WEBHOOK_URL. */
static void configure_outbox(const struct config *cfg, const struct tier_catalog *cat,
                             struct store *st)
{
    struct store_outbox_cfg o = { .enabled = cfg->app_webhook_url != NULL,
                                  .grace_s = cfg->past_due_grace_days * 86400 };
    int64_t pct = 0;

    (void)str_copy(o.default_tier, sizeof(o.default_tier), cat->tiers[cat->default_tier].id);
    for (size_t i = 0; i < cat->tier_count && i < TIER_MAX_RANKED; i++) {
        size_t at = o.tier_count++; /* insertion by rank: a handful of tiers */
        while (at > 0 && tier_catalog_find(cat, o.tiers[at - 1])->rank > cat->tiers[i].rank) {
            memcpy(o.tiers[at], o.tiers[at - 1], TIER_ID_MAX);
            at--;
        }
        (void)str_copy(o.tiers[at], TIER_ID_MAX, cat->tiers[i].id); /* same size */
    }
    for (size_t i = 0; i < cfg->quota_threshold_count && i < OUTBOX_THRESHOLDS_MAX; i++)
        if (parse_i64(cfg->quota_thresholds[i], strlen(cfg->quota_thresholds[i]), 1, 100, &pct) ==
            ERR_OK)
            o.thresholds[o.threshold_count++] = (int)pct;
    store_outbox_configure(st, &o);
}

/* The hot reads of a user's subscription from memory (ENTITLEMENT_CACHE_*); serve only. */
static void start_entitlement_cache(const struct config *cfg, struct store *st)
{
    const struct store_cache_params p = { .users = (size_t)cfg->entitlement_cache_users,
                                          .ttl_ms = cfg->entitlement_cache_ttl_ms,
                                          .listen = cfg->entitlement_cache_listen };

    store_cache_start(st, &p);
}

/* The Stripe client when STRIPE_SECRET_KEY is set; *out stays NULL otherwise. */
/* Every attempt at Stripe is counted and timed for /metrics. */
static void on_stripe_attempt(void *ctx, const struct stripe_trace *t)
{
    (void)ctx;
    metrics_stripe(t->status, t->elapsed_us);
}

static int make_stripe(const struct config *cfg, struct stripe_client **out)
{
    struct stripe_client_params p;
    char err[ERRBUF];

    *out = NULL;
    if (!config_has_stripe(cfg))
        return 0;
    stripe_client_params_init(&p);
    p.api_base = cfg->stripe_api_base;
    p.api_version = cfg->stripe_api_version;
    p.secret_key = &cfg->stripe_secret_key;
    if (stripe_client_new(&p, out, err, sizeof(err)) != ERR_OK)
        return fail(err);
    stripe_client_set_trace(*out, on_stripe_attempt, NULL);
    return 0;
}

/* Names the metrics' series: routes, quotas, kinds of webhook event (billing/events.h order). */
static void metrics_setup(const struct tier_catalog *cat)
{
    static const char *const kinds[] = { "ignored", "checkout", "subscription", "invoice",
                                         "checkout_expired" };
    static const char *quotas[METRICS_QUOTAS_MAX];
    size_t n_routes = 0, n_quotas = 0;
    const char *const *routes = api_route_labels(&n_routes);

    for (; n_quotas < cat->quota_count && n_quotas < METRICS_QUOTAS_MAX; n_quotas++)
        quotas[n_quotas] = cat->quotas[n_quotas].id;
    metrics_init(SUBGATE_VERSION, routes, n_routes, quotas, n_quotas, kinds, ARRAY_SIZE(kinds));
}

static void app_release(struct app *a)
{
    api_release(&a->api);
    free(a->theme_css);
    stripe_client_free(a->stripe);
    offload_free(a->away); /* after the server: no fiber waits on it any more */
    store_close(a->store);
    jwt_verifier_free(a->jwt);
    jwks_source_free(a->jwks);
    signer_free(a->signer);
    service_keys_release(&a->keys);
    config_release(&a->cfg);
}

/* HTTP_THREADS, else the CPUs this process may run on (taskset, cgroups' cpusets). */
static int thread_count(const struct config *cfg)
{
    cpu_set_t set;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (cfg->http_threads > 0)
        return (int)cfg->http_threads;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return cores > 0 ? (int)cores : 2;
}

static bool is_postgres(const struct store *st)
{
    return strcmp(store_backend_name(st), "postgres") == 0;
}

/*
 * WRITE_CONCURRENCY, -1 (the default): 16, as fibers of one thread on either database: each
 * write runs until it waits for its commit, and the fibers' writes, parked until every fiber
 * waits, commit in one batch. A thread per write cost more in task switches than the batches
 * saved (16 fibers rather than 32 for peak RSS, at the same CPU per write: docs/benchmarks.md).
 * On PostgreSQL a fiber's own round trips (a read, a write outside a batch) go to other threads
 * meanwhile (start_away), so that one a network away holds only its own fiber.
 */
static int write_workers(const struct config *cfg)
{
    return cfg->write_concurrency >= 0 ? (int)cfg->write_concurrency : WRITE_IN_FLIGHT;
}

static bool away_submit(void *ctx, void (*fn)(void *arg), void *arg)
{
    return offload_submit(ctx, fn, arg);
}

/*
 * PostgreSQL with write fibers: the threads their reads (and writes outside a batch) are handed
 * to (store_away_set), as many as the store's connections, started as they are needed; one job
 * a fiber at the most waits. SQLite's reads take microseconds: on the fibers' thread.
 */
static int start_away(struct app *a, int writers)
{
    if (writers <= 0 || !is_postgres(a->store))
        return 0;
    if (!(a->away = offload_new(a->threads + 1, writers)))
        return fail("cannot start the threads for the write fibers' reads");
    store_away_set(a->store, away_submit, a->away);
    return 0;
}

static int app_init(struct app *a)
{
    char err[ERRBUF];

    if (load_config(&a->cfg))
        return 1;
    a->threads = thread_count(&a->cfg);
    /*
     * One malloc arena per serving thread (at least two), shared by the pools' threads: with
     * glibc's default (eight per core) each pool thread that writes kept an arena of its own
     * warm, ~400 KiB each (measured: 16 write threads took peak RSS from 15.5 to 20 MiB).
     */
    mallopt(M_ARENA_MAX, a->threads > 2 ? a->threads : 2);
    if (config_require_serve(&a->cfg, err, sizeof(err)) != ERR_OK)
        return fail(err);
    if (load_tiers(&a->cfg, &a->tiers) || load_gate(&a->cfg, &a->tiers, &a->gate) ||
        load_theme(&a->cfg, &a->theme_css, &a->theme_len) ||
        make_verifier(&a->cfg, &a->jwks, &a->jwt) || make_signer(&a->cfg, &a->signer))
        return 1;
    if (service_keys_from_secrets(&a->keys, a->cfg.service_api_keys,
                                  a->cfg.service_api_key_count) != ERR_OK)
        return fail("SERVICE_API_KEYS: too many keys");
    if (open_store(&a->cfg, a->threads, &a->store) || make_stripe(&a->cfg, &a->stripe))
        return 1;
    start_entitlement_cache(&a->cfg, a->store);
    configure_outbox(&a->cfg, &a->tiers, a->store);
    a->api = (struct api){ .cfg = &a->cfg,
                           .store = a->store,
                           .jwt = a->jwt,
                           .service_keys = &a->keys,
                           .tiers = &a->tiers,
                           .gate = &a->gate,
                           .signer = a->signer,
                           .stripe = a->stripe,
                           .theme_css = a->theme_css,
                           .theme_len = a->theme_len };
    api_prepare(&a->api);
    return 0;
}

/* Blocks SIGINT and SIGTERM in every thread; main waits for them with sigwait. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error (503), not a crash */
}

static int cmd_serve(int argc, char **argv)
{
    struct app a = { 0 };
    struct http_server *srv = NULL;
    struct outbox_sender *outbox = NULL;
    struct http_server_params p;
    char err[ERRBUF];
    sigset_t set;
    int sig = 0, rc = 1;

    if (!no_arguments(argc, argv))
        return 2;
    block_signals(&set);
    /*
     * Keep freed memory in the process: without this glibc trims and re-faults the heap top
     * on nearly every request (measured ~7% of a check request).
     */
    mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    mallopt(M_TOP_PAD, 1024 * 1024);
    if (app_init(&a))
        goto out;
    if (!log_start())
        log_warn("could not start the log thread: each line is written by its request");
    if (a.jwks && jwks_source_start(a.jwks) != ERR_OK) {
        fail("JWT_JWKS_URL: cannot start the key refresh thread");
        goto out;
    }
    metrics_setup(&a.tiers);
    p = (struct http_server_params){ .host = a.cfg.listen_host,
                                     .port = (uint16_t)a.cfg.listen_port,
                                     .threads = a.threads,
                                     .max_body = (size_t)a.cfg.max_body_bytes,
                                     .dispatch = api_dispatch,
                                     .app = &a.api,
                                     .pool_of = api_pool_of,
                                     .decorate = api_decorate,
                                     .slow_workers = (int)a.cfg.stripe_concurrency,
                                     .slow_queue = (int)a.cfg.stripe_queue_max,
                                     .slow_per_client = (int)a.cfg.stripe_per_client_max,
                                     .admit = api_admit,
                                     .write_workers = write_workers(&a.cfg),
                                     .write_queue = (int)a.cfg.write_queue_max,
                                     .write_fiber_stack = WRITE_FIBER_STACK };
    if (start_away(&a, p.write_workers))
        goto out;
    if (http_server_start(&p, &srv, err, sizeof(err)) != ERR_OK) {
        fail(err);
        goto out;
    }
    if (a.cfg.app_webhook_url && outbox_sender_start(a.store, &a.cfg, &outbox) != ERR_OK) {
        http_server_stop(srv, SHUTDOWN_MS);
        fail("APP_WEBHOOK_URL: cannot start the outbox delivery thread");
        goto out;
    }
    log_info("subgate %s listening on %s:%u (%d threads, %d write %s, database %s, stripe %s)",
             SUBGATE_VERSION, a.cfg.listen_host, http_server_port(srv), p.threads, p.write_workers,
             p.write_fiber_stack && p.write_workers ? "fibers on one thread" : "threads",
             store_backend_name(a.store),
             config_has_stripe(&a.cfg) ? a.cfg.stripe_api_base : "not configured");
    sigwait(&set, &sig);
    log_info("received %s, finishing requests in flight", strsignal(sig));
    http_server_stop(srv, SHUTDOWN_MS);
    outbox_sender_stop(outbox);
    log_info("stopped");
    rc = 0;
out:
    app_release(&a);
    log_stop();
    return rc;
}

static int cmd_migrate(int argc, char **argv)
{
    struct config cfg = { 0 };
    struct store *st = NULL;
    char err[ERRBUF];
    int applied = 0, version = 0, rc = 1;

    if (!no_arguments(argc, argv))
        return 2;
    if (load_config(&cfg))
        goto out;
    if (store_open(cfg.database_url, 1, &st, err, sizeof(err)) != ERR_OK ||
        store_migrate(st, &applied, err, sizeof(err)) != ERR_OK) {
        fail(err);
        goto out;
    }
    if (store_schema_version(st, &version) != ERR_OK) {
        fail("cannot read the schema version");
        goto out;
    }
    printf("applied %d migration(s); schema version %d (%s)\n", applied, version,
           store_backend_name(st));
    rc = 0;
out:
    store_close(st);
    config_release(&cfg);
    return rc;
}

/* events [--failed] [--limit N] | events replay ID: the webhook inbox (api/events_cli.c). */
static int cmd_events(int argc, char **argv)
{
    struct app a = { 0 };
    int rc = 1;

    if (load_config(&a.cfg) || load_tiers(&a.cfg, &a.tiers) || open_store(&a.cfg, 1, &a.store))
        goto out;
    configure_outbox(&a.cfg, &a.tiers, a.store); /* a replay's changes send events */
    rc = events_cli_run(a.store, &a.tiers, argc, argv, stdout, stderr);
out:
    app_release(&a);
    return rc;
}

/* user ID: the support view of one user (api/user_cli.c). */
static int cmd_user(int argc, char **argv)
{
    struct app a = { 0 };
    int rc = 1;

    if (!user_cli_arg(argc, argv)) { /* before the database is opened (and made) */
        fprintf(stderr, "usage: subgate user [--] ID\n");
        return 2;
    }
    if (load_config(&a.cfg) || load_tiers(&a.cfg, &a.tiers) || open_store(&a.cfg, 1, &a.store))
        goto out;
    a.api = (struct api){ .cfg = &a.cfg, .store = a.store, .tiers = &a.tiers };
    rc = user_cli_run(&a.api, argc, argv, stdout, stderr);
out:
    app_release(&a);
    return rc;
}

/* outbox [--failed] [--limit N] | outbox show ID | outbox replay ID (api/outbox.c). */
static int cmd_outbox(int argc, char **argv)
{
    struct app a = { 0 };
    int rc = 1;

    if (load_config(&a.cfg) || open_store(&a.cfg, 1, &a.store))
        goto out;
    rc = outbox_cli_run(a.store, argc, argv, stdout, stderr);
out:
    app_release(&a);
    return rc;
}

/*
 * sync [--user ID] [--dry-run] | sync --import [--import-key KEY] [--dry-run]: pulls
 * subscriptions and invoices from Stripe and repairs the store (api/sync.c). Exit 0 when every
 * customer synced, 1 when one failed or the configuration is incomplete, 2 on a usage error.
 */
static int cmd_sync(int argc, char **argv)
{
    struct app a = { 0 };
    struct sync_options o;
    struct sync_totals tot;
    char err[ERRBUF];
    int rc = 1;

    switch (sync_options_parse(argc, argv, &o, err, sizeof(err))) {
    case SYNC_ARGS_HELP:
        printf("%s\n", SYNC_USAGE);
        return 0;
    case SYNC_ARGS_BAD:
        fprintf(stderr, "subgate: sync: %s\n%s\n", err, SYNC_USAGE);
        return 2;
    case SYNC_ARGS_OK:
        break;
    }
    if (load_config(&a.cfg))
        goto out;
    if (!config_has_stripe(&a.cfg)) {
        fail("STRIPE_SECRET_KEY: required by sync");
        goto out;
    }
    if (load_tiers(&a.cfg, &a.tiers) || open_store(&a.cfg, 1, &a.store) ||
        make_stripe(&a.cfg, &a.stripe))
        goto out;
    configure_outbox(&a.cfg, &a.tiers, a.store); /* its repairs send events, as serve's do */
    rc = sync_run(a.store, a.stripe, &a.tiers, &o, stdout, &tot) == ERR_OK ? 0 : 1;
out:
    app_release(&a);
    return rc;
}

static int cmd_check_config(int argc, char **argv)
{
    struct config cfg = { 0 };
    struct tier_catalog tiers;
    char err[ERRBUF];
    int rc = 1;

    if (!no_arguments(argc, argv))
        return 2;
    if (load_config(&cfg))
        goto out;
    config_print(&cfg, stdout);
    if (load_tiers(&cfg, &tiers))
        goto out;
    if (config_require_serve(&cfg, err, sizeof(err)) != ERR_OK) {
        printf("# not ready to serve: %s\n", err);
        goto out;
    }
    printf("# configuration is valid\n");
    rc = 0;
out:
    config_release(&cfg);
    return rc;
}

static int cmd_version(int argc, char **argv)
{
    if (!no_arguments(argc, argv))
        return 2;
    printf("subgate %s\n", SUBGATE_VERSION);
    return 0;
}

/* token USER [EMAIL] [TTL_S]: prints an HS256 user token signed with JWT_SECRET. */
static int cmd_token(int argc, char **argv)
{
    struct config cfg = { 0 };
    struct buf tok;
    int64_t ttl = 3600;
    int rc = 1;

    buf_init(&tok, 8192);
    if (argc < 2 || argc > 4) {
        (void)fail("usage: subgate token USER [EMAIL] [TTL_S]"); /* a usage error: 2 */
        return 2;
    }
    if (argc == 4 && parse_i64(argv[3], strlen(argv[3]), 1, INT64_C(31536000), &ttl) != ERR_OK) {
        (void)fail("token: TTL_S must be 1-31536000 seconds");
        return 2;
    }
    if (load_config(&cfg))
        goto out;
    if (!secret_is_set(&cfg.jwt_secret)) {
        fail("JWT_SECRET: required to mint a token (RS256/ES256 tokens come from your issuer)");
        goto out;
    }
    struct jwt_mint m = { .sub = argv[1],
                          .email = argc > 2 && *argv[2] ? argv[2] : NULL,
                          .issuer = cfg.jwt_issuer,
                          .audience = cfg.jwt_audience,
                          .iat = clock_now(),
                          .ttl_s = ttl };
    if (jwt_sign_hs256(&cfg.jwt_secret, &m, &tok) != ERR_OK) {
        fail("token: cannot sign (is every claim valid UTF-8?)");
        goto out;
    }
    printf("%s\n", buf_str(&tok));
    rc = 0;
out:
    buf_release(&tok);
    config_release(&cfg);
    return rc;
}

static int cmd_help(int argc, char **argv);

/* The commands; their help (api/help.c) is found by name. */
struct command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    { "serve", cmd_serve },
    { "migrate", cmd_migrate },
    { "sync", cmd_sync },
    { "events", cmd_events },
    { "user", cmd_user },
    { "outbox", cmd_outbox },
    { "check-config", cmd_check_config },
    { "token", cmd_token },
    { "version", cmd_version },
    { "help", cmd_help },
};

static bool is_help_flag(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* help [COMMAND]: the list, or one command's help; an unknown COMMAND is a usage error (2). */
static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        help_print_commands(stdout);
        return 0;
    }
    if (argc > 2) {
        fprintf(stderr, "subgate: help takes one COMMAND (see 'subgate --help')\n");
        return 2;
    }
    if (!help_print_command(argv[1], stdout)) {
        fprintf(stderr, "subgate: help: no command '%s' (see 'subgate --help')\n", argv[1]);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "help";

    if (is_help_flag(name))
        name = "help";
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        if (argc > 2 && is_help_flag(argv[2])) /* COMMAND --help */
            return help_print_command(name, stdout) ? 0 : 1;
        return commands[i].run(argc > 1 ? argc - 1 : 1, argc > 1 ? argv + 1 : argv);
    }
    fprintf(stderr, "subgate: unknown command '%s' (see 'subgate --help')\n", name);
    return 2;
}
