/* params.c: checking decoded forms against the endpoint tables (see params.h). */
#include "params.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"

static enum err param_fail(struct emu_param_error *e, const char *param, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

static enum err param_fail(struct emu_param_error *e, const char *param, const char *fmt, ...)
{
    va_list ap;

    str_copy(e->param, sizeof(e->param), param);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return ERR_INVALID;
}

static bool in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);

    while (choices) {
        const char *bar = strchr(choices, '|');
        size_t len = bar ? (size_t)(bar - choices) : strlen(choices);
        if (len == n && strncmp(choices, v, n) == 0)
            return true;
        choices = bar ? bar + 1 : NULL;
    }
    return false;
}

/* check_fields, check_one and check_array recurse, bounded by the form depth (form.h). */
static enum err check_fields(const struct emu_param *spec, json_t *obj, const char *prefix,
                             struct emu_param_error *e);

static enum err check_string(const struct emu_param *p, json_t *v, const char *name,
                             struct emu_param_error *e)
{
    if (!json_is_string(v))
        return param_fail(e, name, "Invalid string: %s", name);
    if (p->choices && !in_choices(p->choices, json_string_value(v)))
        return param_fail(e, name, "Invalid %s: must be one of %s", name, p->choices);
    return ERR_OK;
}

static enum err check_scalar(const struct emu_param *p, json_t *v, const char *name,
                             struct emu_param_error *e)
{
    const char *s = json_string_value(v);
    int64_t n;

    if (!s)
        return param_fail(e, name, "Invalid %s: %s", p->kind == EP_INT ? "integer" : "boolean",
                          name);
    if (p->kind == EP_INT && parse_i64(s, strlen(s), INT64_MIN, INT64_MAX, &n) != ERR_OK)
        return param_fail(e, name, "Invalid integer: %.100s", s);
    if (p->kind == EP_BOOL && strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
        return param_fail(e, name, "Invalid boolean: %.100s", s);
    return ERR_OK;
}

static enum err check_metadata(json_t *v, const char *name, struct emu_param_error *e)
{
    const char *key;
    json_t *val;

    if (json_is_string(v) && json_string_length(v) == 0)
        return ERR_OK;
    if (!json_is_object(v))
        return param_fail(e, name, "Invalid hash: %s", name);
    json_object_foreach(v, key, val)
    {
        if (!json_is_string(val))
            return param_fail(e, name, "Invalid metadata value for '%.100s': must be a string",
                              key);
        if (strlen(key) > 40 || json_string_length(val) > 500)
            return param_fail(e, name,
                              "Invalid metadata: keys are at most 40 characters and "
                              "values at most 500");
    }
    return ERR_OK;
}

/* NOLINTNEXTLINE(misc-no-recursion) */
static enum err check_array(const struct emu_param *p, json_t *v, const char *name,
                            struct emu_param_error *e)
{
    size_t i;
    json_t *item;
    char sub[160];

    if (!json_is_array(v))
        return param_fail(e, name, "Invalid array: %s", name);
    json_array_foreach(v, i, item)
    {
        snprintf(sub, sizeof(sub), "%.128s[%zu]", name, i);
        if (p->kind == EP_STRINGS && !json_is_string(item))
            return param_fail(e, sub, "Invalid string: %s", sub);
        if (p->kind == EP_OBJECTS && !json_is_object(item))
            return param_fail(e, sub, "Invalid hash: %s", sub);
        if (p->kind == EP_OBJECTS && check_fields(p->fields, item, sub, e) != ERR_OK)
            return ERR_INVALID;
    }
    return ERR_OK;
}

/* NOLINTNEXTLINE(misc-no-recursion) */
static enum err check_one(const struct emu_param *p, json_t *v, const char *name,
                          struct emu_param_error *e)
{
    switch (p->kind) {
    case EP_STRING:
        return check_string(p, v, name, e);
    case EP_INT:
    case EP_BOOL:
        return check_scalar(p, v, name, e);
    case EP_METADATA:
        return check_metadata(v, name, e);
    case EP_STRINGS:
    case EP_OBJECTS:
        return check_array(p, v, name, e);
    case EP_OBJECT:
        if (!json_is_object(v))
            return param_fail(e, name, "Invalid hash: %s", name);
        return check_fields(p->fields, v, name, e);
    case EP_ANY:
        return ERR_OK;
    }
    return ERR_OK;
}

static const struct emu_param *find_param(const struct emu_param *spec, const char *name)
{
    for (; spec && spec->name; spec++)
        if (strcmp(spec->name, name) == 0)
            return spec;
    return NULL;
}

static void full_name(char *out, size_t len, const char *prefix, const char *key)
{
    if (prefix[0])
        snprintf(out, len, "%.64s[%.60s]", prefix, key);
    else
        snprintf(out, len, "%.126s", key);
}

/* NOLINTNEXTLINE(misc-no-recursion) */
static enum err check_fields(const struct emu_param *spec, json_t *obj, const char *prefix,
                             struct emu_param_error *e)
{
    const char *key;
    json_t *v;
    char name[128];

    json_object_foreach(obj, key, v)
    {
        const struct emu_param *p = find_param(spec, key);
        full_name(name, sizeof(name), prefix, key);
        if (!p)
            return param_fail(e, name, "Received unknown parameter: %s", name);
        if (check_one(p, v, name, e) != ERR_OK)
            return ERR_INVALID;
    }
    for (; spec && spec->name; spec++) {
        full_name(name, sizeof(name), prefix, spec->name);
        if (spec->required && !json_object_get(obj, spec->name))
            return param_fail(e, name, "Missing required param: %s.", name);
    }
    return ERR_OK;
}

enum err emu_params_check(const struct emu_param *spec, json_t *params, struct emu_param_error *e)
{
    return check_fields(spec, params, "", e);
}

const char *emu_param_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

bool emu_param_int(const json_t *obj, const char *key, int64_t *out)
{
    const char *s = emu_param_str(obj, key);

    return s && parse_i64(s, strlen(s), INT64_MIN, INT64_MAX, out) == ERR_OK;
}

bool emu_param_bool(const json_t *obj, const char *key, bool *out)
{
    const char *s = emu_param_str(obj, key);

    if (!s)
        return false;
    *out = strcmp(s, "true") == 0;
    return true;
}
