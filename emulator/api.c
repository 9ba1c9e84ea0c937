/*
 * api.c: the /v1 route table and the request pipeline (see api.h). State changes run under the
 * emulator's one mutex, Idempotency-Key look-up and store included, so two requests with one
 * key cannot both run.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "api_handlers.h"
#include "base/buf.h"
#include "base/str.h"
#include "form.h"
#include "http/router.h"

struct api_route {
    const char *method;
    const char *pattern; /* '*' matches one path segment, captured as the call's id */
    const struct emu_param *params;
    emu_api_fn fn;
};

static const struct api_route routes[] = {
    { "POST", "/v1/customers", emu_p_customer_create, emu_customer_create_h },
    { "GET", "/v1/customers", emu_p_customer_list, emu_customer_list_h },
    { "GET", "/v1/customers/*", emu_p_retrieve, emu_customer_get_h },
    { "POST", "/v1/customers/*", emu_p_customer_update, emu_customer_update_h },
    { "GET", "/v1/prices", emu_p_price_list, emu_price_list_h },
    { "GET", "/v1/prices/*", emu_p_retrieve, emu_price_get_h },
    { "POST", "/v1/checkout/sessions", emu_p_session_create, emu_session_create_h },
    { "GET", "/v1/checkout/sessions", emu_p_session_list, emu_session_list_h },
    { "GET", "/v1/checkout/sessions/*", emu_p_retrieve, emu_session_get_h },
    { "POST", "/v1/checkout/sessions/*/expire", emu_p_retrieve, emu_session_expire_h },
    { "GET", "/v1/subscriptions", emu_p_sub_list, emu_sub_list_h },
    { "GET", "/v1/subscriptions/*", emu_p_retrieve, emu_sub_get_h },
    { "POST", "/v1/subscriptions/*", emu_p_sub_update, emu_sub_update_h },
    { "DELETE", "/v1/subscriptions/*", emu_p_sub_cancel, emu_sub_cancel_h },
    { "POST", "/v1/subscriptions/*/resume", emu_p_sub_resume, emu_sub_resume_h },
    { "GET", "/v1/invoices", emu_p_invoice_list, emu_invoice_list_h },
    { "GET", "/v1/invoices/upcoming", emu_p_invoice_upcoming, emu_invoice_upcoming_h },
    { "GET", "/v1/invoices/*", emu_p_retrieve, emu_invoice_get_h },
    { "POST", "/v1/invoices/*/pay", emu_p_invoice_pay, emu_invoice_pay_h },
    { "POST", "/v1/subscription_schedules", emu_p_schedule_create, emu_schedule_create_h },
    { "GET", "/v1/subscription_schedules/*", emu_p_retrieve, emu_schedule_get_h },
    { "POST", "/v1/subscription_schedules/*", emu_p_schedule_update, emu_schedule_update_h },
    { "POST", "/v1/subscription_schedules/*/release", emu_p_schedule_release,
      emu_schedule_release_h },
    { "GET", "/v1/promotion_codes", emu_p_promotion_code_list, emu_promotion_code_list_h },
    { "GET", "/v1/promotion_codes/*", emu_p_retrieve, emu_promotion_code_get_h },
    { "GET", "/v1/coupons/*", emu_p_retrieve, emu_coupon_get_h },
    { "GET", "/v1/charges", emu_p_charge_list, emu_charge_list_h },
    { "GET", "/v1/charges/*", emu_p_retrieve, emu_charge_get_h },
    { "GET", "/v1/payment_intents/*", emu_p_payment_intent_get, emu_payment_intent_get_h },
    { "POST", "/v1/refunds", emu_p_refund_create, emu_refund_create_h },
    { "GET", "/v1/refunds", emu_p_refund_list, emu_refund_list_h },
    { "GET", "/v1/refunds/*", emu_p_retrieve, emu_refund_get_h },
    { "POST", "/v1/billing_portal/sessions", emu_p_portal_create, emu_portal_create_h },
    { "POST", "/v1/test_helpers/test_clocks", emu_p_clock_create, emu_clock_create_h },
    { "GET", "/v1/test_helpers/test_clocks", emu_p_clock_list, emu_clock_list_h },
    { "GET", "/v1/test_helpers/test_clocks/*", emu_p_retrieve, emu_clock_get_h },
    { "DELETE", "/v1/test_helpers/test_clocks/*", emu_p_none, emu_clock_delete_h },
    { "POST", "/v1/test_helpers/test_clocks/*/advance", emu_p_clock_advance, emu_clock_advance_h },
    { "GET", "/v1/events", emu_p_event_list, emu_event_list_h },
    { "GET", "/v1/events/*", emu_p_retrieve, emu_event_get_h },
};

void emu_api_error(struct response *resp, int status, const char *type, const char *code,
                   const char *param, const char *message)
{
    json_t *e = json_pack("{s:s}", "type", type);
    json_t *msg = json_string(message);

    if (code && code[0])
        json_object_set_new(e, "code", json_string(code));
    if (param && param[0])
        json_object_set_new(e, "param", json_string(param));
    json_object_set_new(e, "message", msg ? msg : json_string("invalid request"));
    response_json(resp, status, json_pack("{s:o}", "error", e));
}

static const struct api_route *route_find(const char *method, const char *path, char *id,
                                          size_t idlen)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        if (strcmp(routes[i].method, method) == 0 &&
            router_path_match(routes[i].pattern, path, id, idlen))
            return &routes[i];
    return NULL;
}

/* Only the last four characters of a key are shown, as Stripe does. */
static void key_hint(const char *key, char *out, size_t len)
{
    size_t n = strlen(key);
    size_t pre = strcspn(key, "_");

    if (n < 8 || pre + 1 >= n)
        snprintf(out, len, "****");
    else
        snprintf(out, len, "%.*s****%s", (int)(strchr(key + pre + 1, '_') ? 8 : pre + 1), key,
                 key + n - 4);
}

/* Decodes base64 into out (NUL-terminated); the decoded length, or -1. */
static int b64_decode(const char *in, unsigned char *out, size_t outlen)
{
    size_t len = strlen(in);
    int n;

    if (len % 4 != 0 || len / 4 * 3 + 1 > outlen)
        return -1;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    for (size_t i = len; i > 0 && in[i - 1] == '='; i--)
        n--;
    out[n] = '\0';
    return n;
}

/* The API key from Bearer or Basic (key as the user) authorization, into key[len]. */
static bool api_key_of(const struct request *req, char *key, size_t len)
{
    const char *h = request_header(req, "Authorization");
    unsigned char raw[512];
    int n;

    if (!h)
        return false;
    if (strncasecmp(h, "Bearer ", 7) == 0)
        return str_copy(key, len, h + 7);
    if (strncasecmp(h, "Basic ", 6) != 0 || strlen(h + 6) > 600)
        return false;
    n = b64_decode(h + 6, raw, sizeof(raw));
    if (n <= 0)
        return false;
    raw[strcspn((char *)raw, ":")] = '\0';
    return str_copy(key, len, (const char *)raw);
}

static bool key_is_valid(const struct emu *app, const char *key)
{
    size_t n = strlen(app->cfg.secret_key);

    return strlen(key) == n && CRYPTO_memcmp(key, app->cfg.secret_key, n) == 0;
}

static enum err authenticate(struct emu_call *c, char *key, size_t keylen)
{
    char hint[32];

    if (!api_key_of(c->req, key, keylen) || key[0] == '\0')
        return emu_call_fail(c, ERR_UNAUTHORIZED, NULL, NULL,
                             "You did not provide an API key. You need to provide your API key "
                             "in the Authorization header, using Bearer auth (e.g. "
                             "'Authorization: Bearer YOUR_SECRET_KEY').");
    if (key_is_valid(c->app, key))
        return ERR_OK;
    key_hint(key, hint, sizeof(hint));
    return emu_call_fail(c, ERR_UNAUTHORIZED, NULL, NULL, "Invalid API Key provided: %s", hint);
}

struct query_ctx {
    struct emu_form *form;
    struct buf *raw;
    bool failed;
};

static bool add_query_pair(void *ctx, const char *key, const char *value)
{
    struct query_ctx *q = ctx;

    (void)!emu_form_encode_pair(q->raw, key, value); /* capped: the log keeps a prefix */
    if (!q->failed && emu_form_add(q->form, key, value) != ERR_OK)
        q->failed = true;
    return true;
}

/* Decodes the parameters: the body for POST and DELETE, the query string for GET. */
static enum err decode_params(struct emu_call *c, struct buf *query)
{
    struct emu_form f;
    struct query_ctx q = { &f, query, false };
    enum err e = ERR_OK;

    emu_form_init(&f);
    request_query_each(c->req, add_query_pair, &q);
    if (q.failed)
        e = ERR_INVALID;
    else if (strcmp(c->req->method, "GET") != 0)
        e = emu_form_parse(&f, buf_str(&c->req->body), c->req->body.len);
    if (e != ERR_OK) {
        emu_call_fail(c, ERR_INVALID, "parameter_invalid", NULL, "%s", f.error);
        emu_form_release(&f);
        return ERR_INVALID;
    }
    c->params = f.root;
    f.root = NULL;
    return ERR_OK;
}

static enum err check_params(struct emu_call *c, const struct api_route *r)
{
    struct emu_param_error pe;

    if (emu_params_check(r->params, c->params, &pe) == ERR_OK)
        return ERR_OK;
    return emu_call_fail(c, ERR_INVALID,
                         strncmp(pe.message, "Received unknown", 16) == 0 ? "parameter_unknown"
                         : strncmp(pe.message, "Missing", 7) == 0         ? "parameter_missing"
                                                                          : "parameter_invalid",
                         pe.param, "%s", pe.message);
}

static void render(struct emu_call *c, struct response *resp)
{
    if (c->result) {
        response_json(resp, c->status, c->result);
        c->result = NULL;
        return;
    }
    emu_api_error(resp, c->err_status, c->err_type, c->err_code, c->err_param, c->err_message);
}

static void idem_mismatch(struct response *resp, const char *key)
{
    char msg[512];

    snprintf(msg, sizeof(msg),
             "Keys for idempotent requests can only be used with the same parameters they were "
             "first used with. Try using a key other than '%.200s' if you meant to execute a "
             "different request.",
             key);
    emu_api_error(resp, 400, "idempotency_error", NULL, NULL, msg);
}

static void server_error(struct response *resp)
{
    emu_api_error(resp, 500, "api_error", NULL, NULL, "An unknown error occurred");
}

/*
 * A request seen for the first time: runs the handler and renders its answer, or for a saved
 * 500 fault (saved) renders the 500, after running the handler only for 500_applied (its effect
 * happened, the answer says nothing of it: Stripe's indeterminate 500).
 */
static void run_new(struct emu_call *c, const struct api_route *r, enum emu_fault_mode saved,
                    struct response *resp)
{
    if (saved != EMU_FAULT_500_SAVED && r->fn(c) != ERR_OK) {
        json_decref(c->result);
        c->result = NULL;
    }
    if (saved != EMU_FAULT_NONE)
        server_error(resp);
    else
        render(c, resp);
}

/*
 * Runs the handler under the mutex, with Idempotency-Key replay for POST and DELETE. A 5xx is
 * kept under the key only when a saved fault made it, as Stripe keeps the 500 of a request
 * whose execution began; a 5xx of the handler's own is not kept, so a retry runs it again.
 */
static void run_locked(struct emu_call *c, const struct api_route *r, const char *key,
                       enum emu_fault_mode saved, struct response *resp)
{
    const char *ik = request_header(c->req, "Idempotency-Key");
    struct emu_idem_request ir = { key, ik, c->req->method, c->req->path, buf_str(&c->req->body) };
    bool idem = ik && ik[0] && strcmp(c->req->method, "GET") != 0;
    int status = 0;
    char *body = NULL;

    pthread_mutex_lock(&c->app->mu);
    switch (idem ? emu_idem_lookup(c->app->idem, &ir, &status, &body) : EMU_IDEM_NEW) {
    case EMU_IDEM_REPLAY:
        response_json(resp, status, json_loads(body, 0, NULL));
        (void)!response_add_header(resp, "Idempotent-Replayed", "true"); /* a constant header */
        break;
    case EMU_IDEM_MISMATCH:
        idem_mismatch(resp, ik);
        break;
    case EMU_IDEM_NEW:
        run_new(c, r, saved, resp);
        if (idem && (resp->status < 500 || saved != EMU_FAULT_NONE))
            emu_idem_store(c->app->idem, &ir, resp->status, resp->body);
        break;
    }
    pthread_mutex_unlock(&c->app->mu);
    free(body);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/*
 * Applies the configured fault; true when the request is answered (or dropped) by it. A saved
 * 500 goes through authentication and the parameter check first, so *saved tells run_locked to
 * answer it and keep it under the request's Idempotency-Key.
 */
static bool inject_fault(struct emu *app, const struct request *req, struct response *resp,
                         enum emu_fault_mode *saved)
{
    int64_t delay_ms = 0;
    enum emu_fault_mode m = emu_faults_next(app->faults, req->method, req->path, &delay_ms);

    switch (m) {
    case EMU_FAULT_500:
        server_error(resp);
        return true;
    case EMU_FAULT_500_SAVED:
    case EMU_FAULT_500_APPLIED:
        *saved = m;
        return false;
    case EMU_FAULT_429:
        emu_api_error(resp, 429, "rate_limit_error", "rate_limit", NULL,
                      "Request rate limit exceeded. Learn more about rate limits here "
                      "https://stripe.com/docs/rate-limits.");
        return true;
    case EMU_FAULT_DROP:
        resp->status = 500; /* for the logs: no answer is sent */
        resp->drop = true;
        return true;
    case EMU_FAULT_TIMEOUT:
        sleep_ms(delay_ms);
        return false;
    case EMU_FAULT_NONE:
        return false;
    }
    return false;
}

static void unrecognized(struct emu_call *c)
{
    emu_call_fail(c, ERR_NOT_FOUND, NULL, NULL,
                  "Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we "
                  "can help at https://support.stripe.com/.",
                  c->req->method, c->req->path);
}

void emu_api_handle(struct emu *app, struct request *req, struct response *resp)
{
    struct emu_call c = { .app = app, .req = req, .status = 200 };
    struct buf query;
    char key[EMU_SECRET_MAX];
    const struct api_route *r = NULL;
    enum emu_fault_mode saved = EMU_FAULT_NONE;
    enum err decoded;

    buf_init(&query, (size_t)64 * 1024);
    decoded = decode_params(&c, &query);
    if (inject_fault(app, req, resp, &saved))
        goto out;
    if (authenticate(&c, key, sizeof(key)) != ERR_OK) {
        render(&c, resp);
        goto out;
    }
    r = route_find(req->method, req->path, c.id, sizeof(c.id));
    if (r)
        req->route = r->pattern;
    else
        unrecognized(&c);
    if (!r || decoded != ERR_OK || check_params(&c, r) != ERR_OK)
        render(&c, resp);
    else
        run_locked(&c, r, key, saved, resp);
out:
    emu_reqlog_add(app, req, buf_str(&query), resp->status);
    buf_release(&query);
    json_decref(c.params);
    json_decref(c.result);
}
