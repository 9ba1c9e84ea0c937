/* call.c: failures in Stripe's terms, answers with expand[], and lists (see call.h). */
#include "call.h"

#include <stdarg.h>
#include <stdio.h>

#include "base/str.h"
#include "objects.h"

/* Stripe's status and error type for each failure. */
static const struct {
    enum err err;
    int status;
    const char *type;
} err_map[] = {
    { ERR_INVALID, 400, "invalid_request_error" },
    { ERR_UNAUTHORIZED, 401, "invalid_request_error" },
    { ERR_QUOTA, 402, "card_error" },
    { ERR_NOT_FOUND, 404, "invalid_request_error" },
    { ERR_CONFLICT, 409, "invalid_request_error" },
    { ERR_RATE_LIMITED, 429, "rate_limit_error" },
};

enum err emu_call_fail(struct emu_call *c, enum err e, const char *code, const char *param,
                       const char *fmt, ...)
{
    va_list ap;

    c->err_status = 500;
    c->err_type = "api_error";
    for (size_t i = 0; i < ARRAY_SIZE(err_map); i++) {
        if (err_map[i].err == e) {
            c->err_status = err_map[i].status;
            c->err_type = err_map[i].type;
        }
    }
    str_copy(c->err_code, sizeof(c->err_code), code ? code : "");
    str_copy(c->err_param, sizeof(c->err_param), param ? param : "");
    va_start(ap, fmt);
    vsnprintf(c->err_message, sizeof(c->err_message), fmt, ap);
    va_end(ap);
    return e;
}

enum err emu_call_missing(struct emu_call *c, const char *kind_name, const char *param,
                          const char *id)
{
    enum err e = emu_call_fail(c, param ? ERR_INVALID : ERR_NOT_FOUND, "resource_missing", param,
                               "No such %s: '%s'", kind_name, id);

    return e;
}

void emu_call_answer(struct emu_call *c, const json_t *obj)
{
    json_decref(c->result);
    c->result = emu_expand(c->app->st, obj, json_object_get(c->params, "expand"));
}

enum err emu_call_list(struct emu_call *c, enum emu_kind kind, const char *url, emu_match_fn match,
                       const void *match_ctx)
{
    struct emu_list_params lp = {
        .kind = kind,
        .limit = EMU_LIST_LIMIT_DEFAULT,
        .starting_after = emu_param_str(c->params, "starting_after"),
        .ending_before = emu_param_str(c->params, "ending_before"),
        .url = url,
        .match = match,
        .match_ctx = match_ctx,
    };
    json_t *list;

    if (emu_param_int(c->params, "limit", &lp.limit) && (lp.limit < 1 || lp.limit > 100))
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid_integer", "limit",
                             "This value must be greater than or equal to 1 and less than or "
                             "equal to 100.");
    if (lp.starting_after && lp.ending_before)
        return emu_call_fail(c, ERR_INVALID, "parameter_invalid", NULL,
                             "You may only specify one of these parameters: ending_before, "
                             "starting_after.");
    if (emu_state_list(c->app->st, &lp, &list) != ERR_OK)
        return emu_call_missing(c, emu_kind_name(kind),
                                lp.ending_before ? "ending_before" : "starting_after",
                                lp.ending_before ? lp.ending_before : lp.starting_after);
    c->result = emu_expand(c->app->st, list, NULL);
    json_decref(list);
    return ERR_OK;
}
