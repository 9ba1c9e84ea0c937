/* emu.c: the emulator object and its reset (see emu.h); it calls only the modules below it. */
#include "emu.h"

#include <stdlib.h>

#include "base/clock.h"
#include "base/xalloc.h"

struct emu *emu_new(const struct emu_config *cfg)
{
    struct emu *app = xcalloc(1, sizeof(*app));

    app->cfg = *cfg;
    pthread_mutex_init(&app->mu, NULL);
    pthread_mutex_init(&app->log_mu, NULL);
    app->st = emu_state_new(cfg->premium_price, cfg->plus_price);
    app->idem = emu_idem_new();
    app->wh = emu_webhooks_new();
    app->faults = emu_faults_new((uint64_t)clock_mono_ms());
    app->reqlog = json_array();
    app->delivery = (struct emu_webhook_delivery){ EMU_WEBHOOK_ORDERED, 0, 500, 5, 1 };
    emu_webhooks_set_delivery(app->wh, &app->delivery);
    if (cfg->webhook_url[0])
        emu_webhooks_configure(app->wh, cfg->webhook_url, cfg->webhook_secret);
    return app;
}

void emu_free(struct emu *app)
{
    if (!app)
        return;
    emu_webhooks_free(app->wh);
    emu_faults_free(app->faults);
    emu_idem_free(app->idem);
    emu_state_free(app->st);
    json_decref(app->reqlog);
    free(app->state_saved);
    pthread_mutex_destroy(&app->mu);
    pthread_mutex_destroy(&app->log_mu);
    free(app);
}

void emu_reset(struct emu *app)
{
    static const struct emu_fault_config no_faults = { .mode = EMU_FAULT_NONE,
                                                       .delay_ms = EMU_FAULT_DELAY_MS_DEFAULT };

    pthread_mutex_lock(&app->mu);
    emu_state_reset(app->st);
    emu_idem_reset(app->idem);
    emu_webhooks_reset(app->wh);
    pthread_mutex_unlock(&app->mu);
    emu_faults_set(app->faults, &no_faults);
    pthread_mutex_lock(&app->log_mu);
    json_array_clear(app->reqlog);
    pthread_mutex_unlock(&app->log_mu);
}

void emu_emit(struct emu *app, const char *type, const json_t *obj, const json_t *prev,
              int64_t created)
{
    char id[EMU_EVENT_ID_MAX];

    emu_webhooks_emit(app->wh, type, obj, prev, created, id);
}

void emu_reqlog_add(struct emu *app, const struct request *req, const char *query, int status)
{
    json_t *entry =
        json_pack("{s:s,s:s,s:s,s:s%,s:i}", "method", req->method, "path", req->path, "query",
                  query ? query : "", "body", buf_str(&req->body), req->body.len, "status", status);

    if (!entry)
        entry = json_pack("{s:s,s:s,s:s,s:s,s:i}", "method", req->method, "path", req->path,
                          "query", "", "body", "(not UTF-8)", "status", status);
    pthread_mutex_lock(&app->log_mu);
    if (json_array_size(app->reqlog) >= EMU_REQLOG_MAX)
        json_array_remove(app->reqlog, 0);
    json_array_append_new(app->reqlog, entry);
    pthread_mutex_unlock(&app->log_mu);
}
