/* faults.c: the fault injector (see faults.h); a seeded xorshift decides percentages. */
#include "faults.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

struct emu_faults {
    pthread_mutex_t mu;
    struct emu_fault_config c;
    uint64_t rng;
};

static const struct {
    const char *name;
    enum emu_fault_mode mode;
} mode_names[] = {
    { "none", EMU_FAULT_NONE },
    { "500", EMU_FAULT_500 },
    { "500_saved", EMU_FAULT_500_SAVED },
    { "500_applied", EMU_FAULT_500_APPLIED },
    { "429", EMU_FAULT_429 },
    { "timeout", EMU_FAULT_TIMEOUT },
    { "drop", EMU_FAULT_DROP },
};

struct emu_faults *emu_faults_new(uint64_t seed)
{
    struct emu_faults *f = xcalloc(1, sizeof(*f));

    pthread_mutex_init(&f->mu, NULL);
    f->rng = seed ? seed : UINT64_C(0x9e3779b97f4a7c15);
    f->c.mode = EMU_FAULT_NONE;
    f->c.count = 0;
    f->c.delay_ms = EMU_FAULT_DELAY_MS_DEFAULT;
    return f;
}

void emu_faults_free(struct emu_faults *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void emu_faults_set(struct emu_faults *f, const struct emu_fault_config *c)
{
    pthread_mutex_lock(&f->mu);
    f->c = *c;
    pthread_mutex_unlock(&f->mu);
}

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Whether the configuration's method and path filters let this request count. */
static bool fault_matches(const struct emu_fault_config *c, const char *method, const char *path)
{
    return (!c->method[0] || strcmp(c->method, method) == 0) &&
           (!c->path[0] || strcmp(c->path, path) == 0);
}

enum emu_fault_mode emu_faults_next(struct emu_faults *f, const char *method, const char *path,
                                    int64_t *delay_ms)
{
    enum emu_fault_mode m = EMU_FAULT_NONE;

    pthread_mutex_lock(&f->mu);
    if (f->c.mode != EMU_FAULT_NONE && fault_matches(&f->c, method, path)) {
        if (f->c.count > 0) {
            m = f->c.mode;
            f->c.count--;
        } else if (f->c.count < 0 && (int64_t)(next_random(&f->rng) % 100) < f->c.percent) {
            m = f->c.mode;
        }
    }
    *delay_ms = f->c.delay_ms;
    pthread_mutex_unlock(&f->mu);
    return m;
}

static const char *mode_name(enum emu_fault_mode m)
{
    for (size_t i = 0; i < ARRAY_SIZE(mode_names); i++)
        if (mode_names[i].mode == m)
            return mode_names[i].name;
    return "none";
}

json_t *emu_faults_json(struct emu_faults *f)
{
    struct emu_fault_config c;

    pthread_mutex_lock(&f->mu);
    c = f->c;
    pthread_mutex_unlock(&f->mu);
    return json_pack("{s:s,s:I,s:I,s:I,s:s,s:s}", "mode", mode_name(c.mode), "count",
                     (json_int_t)(c.count < 0 ? 0 : c.count), "percent",
                     (json_int_t)(c.count < 0 ? c.percent : 0), "delay_ms", (json_int_t)c.delay_ms,
                     "method", c.method, "path", c.path);
}

bool emu_json_int_field(const json_t *body, const char *name, int64_t min, int64_t max,
                        int64_t *out)
{
    const json_t *v = json_object_get(body, name);

    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* Reads the optional string field name into out[len]; false when not a string that fits. */
static bool string_field(const json_t *body, const char *name, char *out, size_t len)
{
    const json_t *v = json_object_get(body, name);

    if (!v)
        return true;
    return json_is_string(v) && str_copy(out, len, json_string_value(v));
}

enum err emu_fault_config_parse(const json_t *body, struct emu_fault_config *out, char *errbuf,
                                size_t errlen)
{
    const char *mode = json_string_value(json_object_get(body, "mode"));
    int64_t percent = -1;

    *out = (struct emu_fault_config){ .mode = EMU_FAULT_NONE,
                                      .count = 1,
                                      .delay_ms = EMU_FAULT_DELAY_MS_DEFAULT };
    for (size_t i = 0; mode && i < ARRAY_SIZE(mode_names); i++)
        if (strcmp(mode, mode_names[i].name) == 0)
            out->mode = mode_names[i].mode;
    if (!mode || (out->mode == EMU_FAULT_NONE && strcmp(mode, "none") != 0)) {
        snprintf(errbuf, errlen,
                 "mode: must be one of none, 500, 500_saved, 500_applied, 429, timeout, drop");
        return ERR_INVALID;
    }
    if (!string_field(body, "method", out->method, sizeof(out->method)) ||
        !string_field(body, "path", out->path, sizeof(out->path))) {
        snprintf(errbuf, errlen, "method and path must be strings (at most %d and %d bytes)",
                 EMU_FAULT_METHOD_MAX - 1, EMU_FAULT_PATH_MAX - 1);
        return ERR_INVALID;
    }
    if (!emu_json_int_field(body, "count", 0, 1000000, &out->count) ||
        !emu_json_int_field(body, "percent", 0, 100, &percent) ||
        !emu_json_int_field(body, "delay_ms", 0, 600000, &out->delay_ms)) {
        snprintf(errbuf, errlen,
                 "count (0-1000000), percent (0-100) and delay_ms (0-600000) "
                 "must be integers in range");
        return ERR_INVALID;
    }
    if (percent >= 0) {
        out->percent = percent;
        out->count = -1;
    }
    return ERR_OK;
}
