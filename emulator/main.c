/*
 * main.c: the stripe-emulator program, the top layer: configuration (one table, environment
 * then flags), wiring of the emulator (emu.h) and its dispatch (dispatch.h) onto the HTTP server,
 * the one "listening" line on stdout, and a clean stop on SIGTERM or SIGINT.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "dispatch.h"
#include "emu.h"
#include "http/server.h"
#include "persist.h"

#define EMU_THREADS       16 /* fault "timeout" holds a worker, so keep some spare */
#define EMU_MAX_BODY      ((size_t)1024 * 1024)
#define EMU_STOP_GRACE_MS INT64_C(5000)

struct settings {
    char listen[128];
    struct emu_config emu;
};

struct conf_row {
    const char *env;
    const char *flag;
    size_t offset;
    size_t size;
    const char *def;
};

#define ROW(env, flag, field, def)                                                              \
    {                                                                                           \
        env, flag, offsetof(struct settings, field), sizeof(((struct settings *)0)->field), def \
    }

static const struct conf_row conf_rows[] = {
    ROW("EMULATOR_LISTEN", "--listen", listen, "127.0.0.1:12111"),
    ROW("EMULATOR_SECRET_KEY", "--secret-key", emu.secret_key, "sk_test_emulator"),
    ROW("EMULATOR_PUBLIC_URL", "--public-url", emu.public_url, ""),
    ROW("EMULATOR_WEBHOOK_URL", "--webhook-url", emu.webhook_url, ""),
    ROW("EMULATOR_WEBHOOK_SECRET", "--webhook-secret", emu.webhook_secret, "whsec_emulator_secret"),
    ROW("EMULATOR_PREMIUM_PRICE_ID", "--premium-price-id", emu.premium_price,
        "price_premium_monthly"),
    ROW("EMULATOR_PLUS_PRICE_ID", "--plus-price-id", emu.plus_price, "price_plus_monthly"),
    ROW("EMULATOR_STATE_FILE", "--state-file", emu.state_file, ""),
};

static bool conf_set(struct settings *s, const struct conf_row *r, const char *value)
{
    if (!str_copy((char *)s + r->offset, r->size, value)) {
        fprintf(stderr, "stripe-emulator: %s: longer than %zu bytes\n", r->env, r->size - 1);
        return false;
    }
    return true;
}

static bool conf_from_env(struct settings *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(conf_rows); i++) {
        const char *v = getenv(conf_rows[i].env);
        if (!conf_set(s, &conf_rows[i], v ? v : conf_rows[i].def))
            return false;
    }
    return true;
}

static void usage(void)
{
    fprintf(stderr, "usage: stripe-emulator [--flag value]...\n");
    for (size_t i = 0; i < ARRAY_SIZE(conf_rows); i++)
        fprintf(stderr, "  %-20s or env %s (default '%s')\n", conf_rows[i].flag, conf_rows[i].env,
                conf_rows[i].def);
}

/* Flags win over the environment: "--listen ADDR" or "--listen=ADDR". */
static bool conf_from_args(struct settings *s, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const struct conf_row *row = NULL;
        const char *value = NULL;
        for (size_t k = 0; k < ARRAY_SIZE(conf_rows) && !row; k++) {
            size_t n = strlen(conf_rows[k].flag);
            if (strncmp(argv[i], conf_rows[k].flag, n) == 0 &&
                (argv[i][n] == '=' || argv[i][n] == '\0')) {
                row = &conf_rows[k];
                value = argv[i][n] == '=' ? argv[i] + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
            }
        }
        if (!row || !value) {
            usage();
            return false;
        }
        if (!conf_set(s, row, value))
            return false;
    }
    return true;
}

/* Splits "host:port" or "[v6]:port". */
static bool parse_listen(const char *listen, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon = strrchr(listen, ':');
    int64_t p;

    if (!colon || parse_i64(colon + 1, strlen(colon + 1), 0, 65535, &p) != ERR_OK) {
        fprintf(stderr, "stripe-emulator: EMULATOR_LISTEN: expected host:port, got '%s'\n", listen);
        return false;
    }
    if (listen[0] == '[' && colon > listen && colon[-1] == ']')
        str_copyn(host, hostlen, listen + 1, (size_t)(colon - listen - 2));
    else
        str_copyn(host, hostlen, listen, (size_t)(colon - listen));
    *port = (uint16_t)p;
    return true;
}

static void public_url_default(struct emu_config *c, uint16_t port)
{
    if (c->public_url[0])
        return;
    if (strchr(c->host, ':'))
        snprintf(c->public_url, sizeof(c->public_url), "http://[%s]:%u", c->host, port);
    else
        snprintf(c->public_url, sizeof(c->public_url), "http://%s:%u", c->host, port);
}

static int serve(struct emu *app)
{
    struct http_server_params hp = { .host = app->cfg.host,
                                     .port = app->cfg.port,
                                     .threads = EMU_THREADS,
                                     .max_body = EMU_MAX_BODY,
                                     .dispatch = emu_dispatch,
                                     .app = app };
    struct http_server *srv = NULL;
    char err[256];
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: they inherit it */
    if (http_server_start(&hp, &srv, err, sizeof(err)) != ERR_OK) {
        fprintf(stderr, "stripe-emulator: %s\n", err);
        return 1;
    }
    public_url_default(&app->cfg, http_server_port(srv));
    printf("stripe-emulator listening on http://%s:%u\n", app->cfg.host, http_server_port(srv));
    fflush(stdout);
    sigwait(&set, &sig);
    log_info("stopping on signal %d", sig);
    http_server_stop(srv, EMU_STOP_GRACE_MS);
    return 0;
}

/* Loads the state file (none yet: starts empty) and writes it once, so a bad path fails now. */
static bool state_open(struct emu *app)
{
    char err[EMU_URL_MAX + 256];
    enum err e;

    if (!app->cfg.state_file[0])
        return true;
    e = emu_persist_load(app, app->cfg.state_file, err, sizeof(err));
    if (e != ERR_OK && e != ERR_NOT_FOUND) {
        fprintf(stderr, "stripe-emulator: EMULATOR_STATE_FILE: %s\n", err);
        return false;
    }
    pthread_mutex_lock(&app->mu);
    e = emu_persist_save(app, err, sizeof(err));
    pthread_mutex_unlock(&app->mu);
    if (e != ERR_OK) {
        fprintf(stderr, "stripe-emulator: EMULATOR_STATE_FILE: %s\n", err);
        return false;
    }
    return true;
}

/* The last save on a clean stop: webhook deliveries settled since the last request. */
static int state_close(struct emu *app, int rc)
{
    char err[EMU_URL_MAX + 256];
    enum err e;

    pthread_mutex_lock(&app->mu);
    e = emu_persist_save(app, err, sizeof(err));
    pthread_mutex_unlock(&app->mu);
    if (e == ERR_OK)
        return rc;
    fprintf(stderr, "stripe-emulator: %s\n", err);
    return 1;
}

int main(int argc, char **argv)
{
    struct settings s = { 0 };
    struct emu *app;
    int rc;

    if (!conf_from_env(&s) || !conf_from_args(&s, argc, argv) ||
        !parse_listen(s.listen, s.emu.host, sizeof(s.emu.host), &s.emu.port))
        return 2;
    signal(SIGPIPE, SIG_IGN);
    app = emu_new(&s.emu);
    if (!state_open(app)) {
        emu_free(app);
        return 2;
    }
    rc = state_close(app, serve(app));
    emu_free(app);
    return rc;
}
