/*
 * resources.c: typed Stripe operations. Each is the same three steps: build the form, call,
 * map the JSON; call_then_parse holds the shared middle. Every form parameter here is checked
 * against Stripe's OpenAPI spec by tests/integration/test_stripe_client.c.
 */
#include "stripe/resources.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"

#define PATH_MAX_ 512

/* Maps the answer JSON into the caller's struct. */
typedef enum err (*parse_fn)(const json_t *j, void *out, struct stripe_error *se);

static enum err fail(struct stripe_error *se, enum err err, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Fails before any call: se holds only the message. */
static enum err fail(struct stripe_error *se, enum err err, const char *fmt, ...)
{
    va_list ap;

    memset(se, 0, sizeof(*se));
    va_start(ap, fmt);
    vsnprintf(se->message, sizeof(se->message), fmt, ap);
    va_end(ap);
    return err;
}

static bool id_is_safe(const char *id)
{
    size_t n = id ? strlen(id) : 0;

    return n > 0 && n < STRIPE_ID_MAX &&
           strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Writes prefix + id into path[PATH_MAX_]; an id that is not a Stripe id is ERR_INVALID. */
static enum err object_path(char *path, const char *prefix, const char *id, struct stripe_error *se)
{
    if (!id_is_safe(id))
        return fail(se, ERR_INVALID, "'%s' is not a stripe id", id ? id : "");
    snprintf(path, PATH_MAX_, "%s%s", prefix, id);
    return ERR_OK;
}

static enum err call_then_parse(struct stripe_client *c, const struct stripe_request *rq,
                                parse_fn parse, void *out, struct stripe_error *se)
{
    json_t *j = NULL;
    enum err err = stripe_client_call(c, rq, &j, se);

    if (err == ERR_OK)
        err = parse(j, out, se);
    json_decref(j);
    return err;
}

/* Adapters from the typed readers to parse_fn. */
static enum err parse_customer(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_customer_from_json(j, out, se);
}

static enum err parse_subscription(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_subscription_from_json(j, out, se);
}

static enum err parse_session(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_checkout_session_from_json(j, out, NULL, se);
}

static enum err parse_portal(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_portal_session_from_json(j, out, se);
}

static enum err parse_customer_page(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_customer_page_from_json(j, out, se);
}

static enum err parse_subscription_page(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_subscription_page_from_json(j, out, se);
}

static enum err parse_invoice_page(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_invoice_page_from_json(j, out, se);
}

static void add_if_set(struct form *f, const char *key, const char *value)
{
    if (value && value[0])
        form_add(f, key, value);
}

enum err stripe_customer_create(struct stripe_client *c, const struct stripe_customer_params *p,
                                const char *idempotency_key, struct stripe_customer *out,
                                struct stripe_error *se)
{
    struct form f;
    /* a second customer is never stored: the store keeps the first one per user (client.c) */
    struct stripe_request rq = { .method = STRIPE_POST,
                                 .path = "/v1/customers",
                                 .form = &f,
                                 .idempotency_key = idempotency_key,
                                 .repeat_is_harmless = true };
    enum err err;

    form_init(&f, FORM_MAX_DEFAULT);
    add_if_set(&f, "email", p->email);
    add_if_set(&f, "name", p->name);
    add_if_set(&f, "metadata[user_id]", p->user_id);
    err = call_then_parse(c, &rq, parse_customer, out, se);
    form_release(&f);
    return err;
}

enum err stripe_customer_retrieve(struct stripe_client *c, const char *id,
                                  struct stripe_customer *out, struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct stripe_request rq = { .method = STRIPE_GET, .path = path };
    enum err err = object_path(path, "/v1/customers/", id, se);

    return err ? err : call_then_parse(c, &rq, parse_customer, out, se);
}

/* The query of a list call: filter=value, limit, starting_after. */
static enum err list_form(struct form *f, const char *filter, const char *value,
                          const char *starting_after, int limit, struct stripe_error *se)
{
    if (limit < 1 || limit > STRIPE_LIST_MAX)
        return fail(se, ERR_INVALID, "list limit must be 1-100, not %d", limit);
    if (starting_after && starting_after[0] && !id_is_safe(starting_after))
        return fail(se, ERR_INVALID, "'%s' is not a stripe id", starting_after);
    add_if_set(f, filter, value);
    form_add_i64(f, "limit", limit);
    add_if_set(f, "starting_after", starting_after);
    return ERR_OK;
}

enum err stripe_customer_list(struct stripe_client *c, const char *email,
                              const char *starting_after, int limit,
                              struct stripe_customer_page *out, struct stripe_error *se)
{
    struct form f;
    struct stripe_request rq = { .method = STRIPE_GET, .path = "/v1/customers", .form = &f };
    enum err err;

    memset(out, 0, sizeof(*out));
    form_init(&f, FORM_MAX_DEFAULT);
    err = list_form(&f, "email", email, starting_after, limit, se);
    if (err == ERR_OK)
        err = call_then_parse(c, &rq, parse_customer_page, out, se);
    form_release(&f);
    return err;
}

static void checkout_form(struct form *f, const struct stripe_checkout_params *p)
{
    static const char *const sub_user[] = { "subscription_data", "metadata", "user_id" };

    form_add(f, "mode", "subscription");
    form_add(f, "customer", p->customer);
    form_add(f, "line_items[0][price]", p->price);
    form_add(f, "line_items[0][quantity]", "1");
    form_add(f, "success_url", p->success_url);
    form_add(f, "cancel_url", p->cancel_url);
    add_if_set(f, "client_reference_id", p->client_reference_id);
    if (p->user_id && p->user_id[0]) {
        form_add(f, "metadata[user_id]", p->user_id);
        form_add_path(f, sub_user, ARRAY_SIZE(sub_user), p->user_id);
    }
    if (p->trial_period_days > 0)
        form_add_i64(f, "subscription_data[trial_period_days]", p->trial_period_days);
    if (p->allow_promotion_codes)
        form_add_bool(f, "allow_promotion_codes", true);
    if (p->automatic_tax) {
        /* an existing customer: Stripe wants the address and the business name saved on it */
        form_add_bool(f, "automatic_tax[enabled]", true);
        form_add(f, "billing_address_collection", "required");
        form_add_bool(f, "tax_id_collection[enabled]", true);
        form_add(f, "customer_update[address]", "auto");
        form_add(f, "customer_update[name]", "auto");
    }
    add_if_set(f, "locale", p->locale);
}

enum err stripe_checkout_session_create(struct stripe_client *c,
                                        const struct stripe_checkout_params *p,
                                        const char *idempotency_key,
                                        struct stripe_checkout_session *out,
                                        struct stripe_error *se)
{
    struct form f;
    /* a second session's URL reaches nobody, so nobody pays it (client.c) */
    struct stripe_request rq = { .method = STRIPE_POST,
                                 .path = "/v1/checkout/sessions",
                                 .form = &f,
                                 .idempotency_key = idempotency_key,
                                 .repeat_is_harmless = true };
    enum err err;

    if (!p->customer || !p->price || !p->success_url || !p->cancel_url)
        return fail(se, ERR_INVALID, "checkout session: customer, price and URLs are required");
    form_init(&f, FORM_MAX_DEFAULT);
    checkout_form(&f, p);
    err = call_then_parse(c, &rq, parse_session, out, se);
    form_release(&f);
    return err;
}

enum err stripe_checkout_session_retrieve(struct stripe_client *c, const char *id,
                                          bool expand_subscription,
                                          struct stripe_checkout_session *out,
                                          struct subscription *sub_out, struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct form f;
    struct stripe_request rq = { .method = STRIPE_GET, .path = path, .form = &f };
    json_t *j = NULL;
    enum err err = object_path(path, "/v1/checkout/sessions/", id, se);

    if (err)
        return err;
    form_init(&f, FORM_MAX_DEFAULT);
    if (expand_subscription)
        form_add(&f, "expand[]", "subscription");
    err = stripe_client_call(c, &rq, &j, se);
    if (err == ERR_OK)
        err = stripe_checkout_session_from_json(j, out, sub_out, se);
    json_decref(j);
    form_release(&f);
    return err;
}

enum err stripe_subscription_retrieve(struct stripe_client *c, const char *id,
                                      struct subscription *out, struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct stripe_request rq = { .method = STRIPE_GET, .path = path };
    enum err err = object_path(path, "/v1/subscriptions/", id, se);

    return err ? err : call_then_parse(c, &rq, parse_subscription, out, se);
}

enum err stripe_checkout_session_expire(struct stripe_client *c, const char *id,
                                        struct stripe_checkout_session *out,
                                        struct stripe_error *se)
{
    char path[PATH_MAX_], key[STRIPE_IDEMPOTENCY_KEY_MAX];
    struct stripe_request rq = { .method = STRIPE_POST, .path = path, .idempotency_key = key };

    memset(out, 0, sizeof(*out));
    if (!id_is_safe(id))
        return fail(se, ERR_INVALID, "'%s' is not a stripe id", id ? id : "");
    snprintf(path, sizeof(path), "/v1/checkout/sessions/%s/expire", id);
    stripe_idempotency_key_for("session-expire", id, key);
    return call_then_parse(c, &rq, parse_session, out, se);
}

static enum err parse_refund(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_refund_from_json(j, out, se);
}

enum err stripe_refund_create(struct stripe_client *c, const char *charge, const char *reason,
                              const char *idempotency_key, struct stripe_refund *out,
                              struct stripe_error *se)
{
    struct form f;
    struct stripe_request rq = { .method = STRIPE_POST,
                                 .path = "/v1/refunds",
                                 .form = &f,
                                 .idempotency_key = idempotency_key };
    enum err err;

    memset(out, 0, sizeof(*out));
    if (!id_is_safe(charge))
        return fail(se, ERR_INVALID, "'%s' is not a stripe id", charge ? charge : "");
    form_init(&f, FORM_MAX_DEFAULT);
    form_add(&f, "charge", charge);
    if (reason)
        form_add(&f, "reason", reason);
    err = call_then_parse(c, &rq, parse_refund, out, se);
    form_release(&f);
    return err;
}

static enum err parse_clock_time(const json_t *j, void *out, struct stripe_error *se)
{
    const json_t *t = json_object_get(j, "frozen_time");

    if (!json_is_integer(t) || json_integer_value(t) < 0 ||
        json_integer_value(t) > BILLING_TIME_MAX) {
        (void)!fail(se, ERR_UPSTREAM, "test clock: frozen_time is not a time");
        return ERR_UPSTREAM;
    }
    *(int64_t *)out = (int64_t)json_integer_value(t);
    return ERR_OK;
}

enum err stripe_test_clock_time(struct stripe_client *c, const char *id, int64_t *frozen_time,
                                struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct stripe_request rq = { .method = STRIPE_GET, .path = path };
    enum err err = object_path(path, "/v1/test_helpers/test_clocks/", id, se);

    *frozen_time = 0;
    return err ? err : call_then_parse(c, &rq, parse_clock_time, frozen_time, se);
}

enum err stripe_subscription_list(struct stripe_client *c, const char *customer,
                                  const char *starting_after, int limit,
                                  struct stripe_subscription_page *out, struct stripe_error *se)
{
    struct form f;
    struct stripe_request rq = { .method = STRIPE_GET, .path = "/v1/subscriptions", .form = &f };
    enum err err;

    memset(out, 0, sizeof(*out));
    form_init(&f, FORM_MAX_DEFAULT);
    err = list_form(&f, "customer", customer, starting_after, limit, se);
    form_add(&f, "status", "all");
    if (err == ERR_OK)
        err = call_then_parse(c, &rq, parse_subscription_page, out, se);
    form_release(&f);
    return err;
}

enum err stripe_subscription_set_cancel_at_period_end(struct stripe_client *c, const char *id,
                                                      bool cancel, struct subscription *out,
                                                      struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct form f;
    struct stripe_request rq = { .method = STRIPE_POST, .path = path, .form = &f };
    enum err err = object_path(path, "/v1/subscriptions/", id, se);

    if (err)
        return err;
    form_init(&f, FORM_MAX_DEFAULT);
    form_add_bool(&f, "cancel_at_period_end", cancel);
    err = call_then_parse(c, &rq, parse_subscription, out, se);
    form_release(&f);
    return err;
}

enum err stripe_subscription_cancel(struct stripe_client *c, const char *id,
                                    struct subscription *out, struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct stripe_request rq = { .method = STRIPE_DELETE, .path = path };
    enum err err = object_path(path, "/v1/subscriptions/", id, se);

    return err ? err : call_then_parse(c, &rq, parse_subscription, out, se);
}

enum err stripe_invoice_list(struct stripe_client *c, const char *customer,
                             const char *starting_after, int limit, struct stripe_invoice_page *out,
                             struct stripe_error *se)
{
    struct form f;
    struct stripe_request rq = { .method = STRIPE_GET, .path = "/v1/invoices", .form = &f };
    enum err err;

    memset(out, 0, sizeof(*out));
    form_init(&f, FORM_MAX_DEFAULT);
    err = list_form(&f, "customer", customer, starting_after, limit, se);
    if (err == ERR_OK)
        err = call_then_parse(c, &rq, parse_invoice_page, out, se);
    form_release(&f);
    return err;
}

enum err stripe_billing_portal_session_create(struct stripe_client *c, const char *customer,
                                              const char *return_url, char *url_out,
                                              struct stripe_error *se)
{
    struct form f;
    struct stripe_request rq = { .method = STRIPE_POST,
                                 .path = "/v1/billing_portal/sessions",
                                 .form = &f };
    enum err err;

    if (!id_is_safe(customer))
        return fail(se, ERR_INVALID, "'%s' is not a stripe id", customer ? customer : "");
    form_init(&f, FORM_MAX_DEFAULT);
    form_add(&f, "customer", customer);
    add_if_set(&f, "return_url", return_url);
    err = call_then_parse(c, &rq, parse_portal, url_out, se);
    form_release(&f);
    return err;
}

enum err stripe_subscription_change_price(struct stripe_client *c, const char *id,
                                          const char *item_id, const char *price,
                                          const char *idempotency_key, struct subscription *out,
                                          struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct form f;
    struct stripe_request rq = { .method = STRIPE_POST,
                                 .path = path,
                                 .form = &f,
                                 .idempotency_key = idempotency_key };
    enum err err = object_path(path, "/v1/subscriptions/", id, se);

    if (err)
        return err;
    if (!id_is_safe(item_id) || !id_is_safe(price))
        return fail(se, ERR_INVALID, "plan change: item and price must be stripe ids");
    form_init(&f, FORM_MAX_DEFAULT);
    form_add(&f, "items[0][id]", item_id);
    form_add(&f, "items[0][price]", price);
    form_add(&f, "proration_behavior", "always_invoice");
    form_add(&f, "payment_behavior", "pending_if_incomplete");
    err = call_then_parse(c, &rq, parse_subscription, out, se);
    form_release(&f);
    return err;
}

static enum err parse_schedule(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_schedule_from_json(j, out, se);
}

enum err stripe_schedule_from_subscription(struct stripe_client *c, const char *id,
                                           const char *idempotency_key, struct schedule_record *out,
                                           struct stripe_error *se)
{
    struct form f;
    struct stripe_request rq = { .method = STRIPE_POST,
                                 .path = "/v1/subscription_schedules",
                                 .form = &f,
                                 .idempotency_key = idempotency_key };
    enum err err;

    if (!id_is_safe(id))
        return fail(se, ERR_INVALID, "'%s' is not a stripe id", id ? id : "");
    form_init(&f, FORM_MAX_DEFAULT);
    form_add(&f, "from_subscription", id);
    err = call_then_parse(c, &rq, parse_schedule, out, se);
    form_release(&f);
    return err;
}

enum err stripe_schedule_set_phases(struct stripe_client *c, const char *id,
                                    const struct stripe_schedule_phases *p,
                                    const char *idempotency_key, struct schedule_record *out,
                                    struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct form f;
    struct stripe_request rq = { .method = STRIPE_POST,
                                 .path = path,
                                 .form = &f,
                                 .idempotency_key = idempotency_key };
    enum err err = object_path(path, "/v1/subscription_schedules/", id, se);

    if (err)
        return err;
    if (!id_is_safe(p->price) || !id_is_safe(p->next_price) || p->end <= p->start)
        return fail(se, ERR_INVALID, "schedule phases: prices must be stripe ids, end > start");
    form_init(&f, FORM_MAX_DEFAULT);
    form_add(&f, "phases[0][items][0][price]", p->price);
    form_add(&f, "phases[0][items][0][quantity]", "1");
    form_add_i64(&f, "phases[0][start_date]", p->start);
    form_add_i64(&f, "phases[0][end_date]", p->end);
    form_add(&f, "phases[1][items][0][price]", p->next_price);
    form_add(&f, "phases[1][items][0][quantity]", "1");
    form_add(&f, "phases[1][iterations]", "1");
    form_add(&f, "end_behavior", "release");
    form_add(&f, "proration_behavior", "none");
    err = call_then_parse(c, &rq, parse_schedule, out, se);
    form_release(&f);
    return err;
}

enum err stripe_schedule_release(struct stripe_client *c, const char *id,
                                 struct schedule_record *out, struct stripe_error *se)
{
    char path[PATH_MAX_], key[STRIPE_IDEMPOTENCY_KEY_MAX];
    struct stripe_request rq = { .method = STRIPE_POST, .path = path, .idempotency_key = key };

    if (!id_is_safe(id))
        return fail(se, ERR_INVALID, "'%s' is not a stripe id", id ? id : "");
    snprintf(path, sizeof(path), "/v1/subscription_schedules/%s/release", id);
    stripe_idempotency_key_for("schedule-release", id, key); /* before out: id may be out->id */
    return call_then_parse(c, &rq, parse_schedule, out, se);
}

static enum err parse_upcoming(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_upcoming_from_json(j, out, se);
}

enum err stripe_invoice_upcoming(struct stripe_client *c, const struct stripe_upcoming_params *p,
                                 struct stripe_upcoming *out, struct stripe_error *se)
{
    struct form f;
    struct stripe_request rq = { .method = STRIPE_GET,
                                 .path = "/v1/invoices/upcoming",
                                 .form = &f };
    enum err err;

    memset(out, 0, sizeof(*out));
    if (!id_is_safe(p->customer) || !id_is_safe(p->subscription) || !id_is_safe(p->item_id) ||
        !id_is_safe(p->price) || !p->proration_behavior)
        return fail(se, ERR_INVALID,
                    "upcoming invoice: customer, subscription, item and price "
                    "must be stripe ids");
    form_init(&f, FORM_MAX_DEFAULT);
    form_add(&f, "customer", p->customer);
    form_add(&f, "subscription", p->subscription);
    form_add(&f, "subscription_items[0][id]", p->item_id);
    form_add(&f, "subscription_items[0][price]", p->price);
    form_add(&f, "subscription_proration_behavior", p->proration_behavior);
    err = call_then_parse(c, &rq, parse_upcoming, out, se);
    form_release(&f);
    return err;
}

static enum err parse_invoice(const json_t *j, void *out, struct stripe_error *se)
{
    return stripe_invoice_from_json(j, out, se);
}

enum err stripe_invoice_retrieve(struct stripe_client *c, const char *id,
                                 struct stripe_invoice *out, struct stripe_error *se)
{
    char path[PATH_MAX_];
    struct stripe_request rq = { .method = STRIPE_GET, .path = path };
    enum err err = object_path(path, "/v1/invoices/", id, se);

    memset(out, 0, sizeof(*out));
    return err ? err : call_then_parse(c, &rq, parse_invoice, out, se);
}
