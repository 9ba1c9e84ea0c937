/* idempotency.c: the kept answers, a JSON object keyed by "<api key>\n<idempotency key>". */
#include "idempotency.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/xalloc.h"

struct emu_idem {
    json_t *keys;  /* scope -> {fingerprint, status, body} */
    json_t *order; /* scopes, oldest first, for forgetting */
};

struct emu_idem *emu_idem_new(void)
{
    struct emu_idem *m = xcalloc(1, sizeof(*m));

    m->keys = json_object();
    m->order = json_array();
    return m;
}

void emu_idem_free(struct emu_idem *m)
{
    if (!m)
        return;
    json_decref(m->keys);
    json_decref(m->order);
    free(m);
}

void emu_idem_reset(struct emu_idem *m)
{
    json_object_clear(m->keys);
    json_array_clear(m->order);
}

/* Returns a new string "<a>\n<b>..." of the parts; free(). */
static char *join(const char *const *parts, size_t n)
{
    struct buf b;
    size_t len;

    buf_init(&b, SIZE_MAX);
    for (size_t i = 0; i < n; i++)
        (void)!buf_appendf(&b, "%s%s", i ? "\n" : "", parts[i]); /* uncapped: cannot fail */
    return buf_detach(&b, &len);
}

static char *scope_of(const struct emu_idem_request *r)
{
    const char *parts[] = { r->api_key, r->key };

    return join(parts, ARRAY_SIZE(parts));
}

static char *fingerprint_of(const struct emu_idem_request *r)
{
    const char *parts[] = { r->method, r->path, r->params };

    return join(parts, ARRAY_SIZE(parts));
}

enum emu_idem_result emu_idem_lookup(struct emu_idem *m, const struct emu_idem_request *r,
                                     int *status, char **body)
{
    char *scope = scope_of(r);
    char *fp = fingerprint_of(r);
    json_t *entry = json_object_get(m->keys, scope);
    enum emu_idem_result res = EMU_IDEM_NEW;

    if (entry && strcmp(json_string_value(json_object_get(entry, "fp")), fp) != 0) {
        res = EMU_IDEM_MISMATCH;
    } else if (entry) {
        res = EMU_IDEM_REPLAY;
        *status = (int)json_integer_value(json_object_get(entry, "status"));
        *body = xstrdup(json_string_value(json_object_get(entry, "body")));
    }
    free(scope);
    free(fp);
    return res;
}

static void forget_oldest_half(struct emu_idem *m)
{
    size_t half = json_array_size(m->order) / 2;

    for (size_t i = 0; i < half; i++)
        json_object_del(m->keys, json_string_value(json_array_get(m->order, i)));
    for (size_t i = 0; i < half; i++)
        json_array_remove(m->order, 0);
}

void emu_idem_store(struct emu_idem *m, const struct emu_idem_request *r, int status,
                    const char *body)
{
    char *scope = scope_of(r);
    char *fp = fingerprint_of(r);
    json_t *entry = json_pack("{s:s,s:i,s:s}", "fp", fp, "status", status, "body", body);

    if (json_array_size(m->order) >= EMU_IDEM_MAX_KEYS)
        forget_oldest_half(m);
    if (entry && json_object_set_new(m->keys, scope, entry) == 0)
        json_array_append_new(m->order, json_string(scope));
    free(scope);
    free(fp);
}

json_t *emu_idem_to_json(const struct emu_idem *m)
{
    return json_pack("{s:o,s:o}", "keys", json_deep_copy(m->keys), "order",
                     json_deep_copy(m->order));
}

static bool entry_is_valid(const json_t *e)
{
    return json_is_string(json_object_get(e, "fp")) &&
           json_is_integer(json_object_get(e, "status")) &&
           json_is_string(json_object_get(e, "body"));
}

enum err emu_idem_from_json(struct emu_idem *m, const json_t *snap, char *err, size_t errlen)
{
    json_t *keys = json_object_get(snap, "keys");
    json_t *order = json_object_get(snap, "order");
    const char *scope;
    json_t *v;
    size_t i;

    if (!json_is_object(keys) || !json_is_array(order))
        goto bad;
    json_object_foreach(keys, scope, v)
    {
        if (!entry_is_valid(v))
            goto bad;
    }
    json_array_foreach(order, i, v)
    {
        if (!json_object_get(keys, json_string_value(v) ? json_string_value(v) : ""))
            goto bad;
    }
    json_decref(m->keys);
    json_decref(m->order);
    m->keys = json_deep_copy(keys);
    m->order = json_deep_copy(order);
    return ERR_OK;
bad:
    snprintf(err, errlen, "idempotency: not a snapshot of idempotency keys");
    return ERR_INVALID;
}
