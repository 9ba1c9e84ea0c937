/*
 * test_stripe_client.c: the real Stripe client against the Stripe emulator ($EMULATOR_BIN,
 * started here): idempotency under retries, faults and concurrency, the typed operations,
 * pagination, and, at the end, every request the client made checked against Stripe's OpenAPI
 * spec with ../shared/tools/stripe_params.py. Run from the repo root.
 */
#include "t.h"

#include <fcntl.h>
#include <pthread.h>
#include <time.h>

#include "base/secret.h"
#include "base/str.h"
#include "billing/status.h"
#include "emu_proc.h"
#include "stripe/client.h"
#include "stripe/resources.h"

#define PARAMS_TOOL "../shared/tools/stripe_params.py"
#define SEEN_MAX    512

/* Every distinct request the client made: "METHOD PATH FORM" (trace hook). */
static struct {
    pthread_mutex_t mu;
    char *lines[SEEN_MAX];
    size_t n;
} seen = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void trace(void *ctx, const struct stripe_trace *t)
{
    char line[4096];

    (void)ctx;
    snprintf(line, sizeof(line), "%s %s %s", t->method, t->path, t->form);
    pthread_mutex_lock(&seen.mu);
    bool known = false;
    for (size_t i = 0; i < seen.n && !known; i++)
        known = strcmp(seen.lines[i], line) == 0;
    if (!known && seen.n < SEEN_MAX)
        seen.lines[seen.n++] = strdup(line);
    pthread_mutex_unlock(&seen.mu);
}

static struct stripe_client *client_new(const struct emu_proc *e, int64_t timeout_ms)
{
    struct stripe_client_params p;
    struct stripe_client *c = NULL;
    struct secret key = { 0 };
    char errbuf[256];

    secret_set(&key, EMU_TEST_KEY, strlen(EMU_TEST_KEY));
    stripe_client_params_init(&p);
    p.api_base = e->base;
    p.secret_key = &key;
    p.timeout_ms = timeout_ms;
    if (stripe_client_new(&p, &c, errbuf, sizeof(errbuf)) != ERR_OK) {
        printf("Bail out! %s\n", errbuf);
        exit(1);
    }
    secret_release(&key);
    stripe_client_set_trace(c, trace, NULL);
    return c;
}

/* How many customers have this email, as the client lists them. */
static long customers_with_email(struct stripe_client *c, const char *email)
{
    struct stripe_customer_page page;
    struct stripe_error se;
    long n = -1;

    if (stripe_customer_list(c, email, NULL, 100, &page, &se) == ERR_OK)
        n = (long)page.len;
    else
        printf("# list by email: %s\n", se.message);
    stripe_customer_page_release(&page);
    return n;
}

/* Creates the customer of user with the stable key of "customer-create" for that user. */
static enum err create_for_user(struct stripe_client *c, const char *user, const char *email,
                                struct stripe_customer *out, struct stripe_error *se)
{
    struct stripe_customer_params p = { email, "Integration Test", user };
    char key[STRIPE_IDEMPOTENCY_KEY_MAX];

    stripe_idempotency_key_for("customer-create", user, key);
    return stripe_customer_create(c, &p, key, out, se);
}

static void test_stable_key(const struct emu_proc *e, struct stripe_client *c)
{
    struct stripe_customer a, b;
    struct stripe_error se;

    emu_reset(e);
    T_EQ_I64(create_for_user(c, "user_twice", "twice@example.com", &a, &se), ERR_OK,
             "first create (%.200s)", se.message);
    T_EQ_I64(create_for_user(c, "user_twice", "twice@example.com", &b, &se), ERR_OK,
             "second create with the same key");
    T_EQ_STR(b.id, a.id, "the same customer comes back");
    T_OK(stripe_metadata_find(&a.metadata, "user_id") &&
             strcmp(stripe_metadata_find(&a.metadata, "user_id")->value, "user_twice") == 0,
         "with the user id in its metadata");
    T_EQ_I64(customers_with_email(c, "twice@example.com"), 1, "one customer exists");
}

static const struct {
    const char *mode;
    int count;
    enum err want;
    int attempts; /* 0: not checked */
} faults[] = {
    { "500", 2, ERR_OK, 3 },
    { "429", 1, ERR_RATE_LIMITED, 1 }, /* no Stripe-Should-Retry: true, no retry */
    /* 1 or 2: on a kept connection libcurl itself re-sends once, inside the attempt */
    { "drop", 1, ERR_OK, 0 },
    { "500", 5, ERR_UPSTREAM, 3 },
    { "drop", 5, ERR_UNAVAILABLE, 3 },
};

static void test_faults(const struct emu_proc *e, struct stripe_client *c)
{
    for (size_t i = 0; i < ARRAY_SIZE(faults); i++) {
        struct stripe_customer cus;
        struct stripe_error se;
        char user[32], email[64];

        emu_reset(e);
        snprintf(user, sizeof(user), "user_fault_%zu", i);
        snprintf(email, sizeof(email), "fault%zu@example.com", i);
        T_OK(emu_faults(e, faults[i].mode, faults[i].count, 0), "fault %s x%d set", faults[i].mode,
             faults[i].count);
        enum err err = create_for_user(c, user, email, &cus, &se);
        T_EQ_I64(err, faults[i].want, "%s x%d: %s (%.200s)", faults[i].mode, faults[i].count,
                 err_name(faults[i].want), se.message);
        if (faults[i].attempts)
            T_EQ_I64(se.attempts, faults[i].attempts, "%s x%d: attempts", faults[i].mode,
                     faults[i].count);
        if (err != ERR_OK)
            T_OK(se.message[0] != '\0', "%s x%d: says why: %.200s", faults[i].mode, faults[i].count,
                 se.message);
        emu_faults(e, "none", 0, 0);
        T_EQ_I64(customers_with_email(c, email), err == ERR_OK, "%s x%d: no duplicate customer",
                 faults[i].mode, faults[i].count);
    }
}

static void test_timeout(const struct emu_proc *e)
{
    struct stripe_client *c = client_new(e, 700);
    struct stripe_customer cus;
    struct stripe_error se;
    struct timespec wait = { 2, 0 };

    emu_reset(e);
    T_OK(emu_faults(e, "timeout", 1, 2000), "the next request hangs 2 s");
    T_EQ_I64(create_for_user(c, "user_slow", "slow@example.com", &cus, &se), ERR_OK,
             "a 0.7 s client timeout is retried (%.200s)", se.message);
    T_EQ_I64(se.attempts, 2, "in two attempts");
    nanosleep(&wait, NULL); /* let the hung first attempt finish inside the emulator */
    T_EQ_I64(customers_with_email(c, "slow@example.com"), 1, "still one customer");
    stripe_client_free(c);
}

/* The first price the emulator seeds (premium). */
static void first_price(const struct emu_proc *e, char *out, size_t size)
{
    struct buf b;
    json_t *j;

    buf_init(&b, 1 << 20);
    out[0] = '\0';
    emu_http(e, "GET", "/v1/prices", NULL, NULL, &b);
    j = json_loads(buf_str(&b), 0, NULL);
    const char *id =
        json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id"));
    (void)str_copy(out, size, id ? id : "");
    json_decref(j);
    buf_release(&b);
}

/* Pays a checkout session on the emulator's hosted page with the card that succeeds. */
static bool pay(const struct emu_proc *e, const char *session_id)
{
    char path[512];
    long st;

    snprintf(path, sizeof(path), "/checkout/%s/pay", session_id);
    st = emu_http(e, "POST", path, "application/x-www-form-urlencoded", "card=4242424242424242",
                  NULL);
    return st >= 200 && st < 400;
}

static enum err checkout(struct stripe_client *c, const char *customer, const char *price,
                         int64_t trial_days, struct stripe_checkout_session *cs,
                         struct stripe_error *se)
{
    struct stripe_checkout_params p = {
        .customer = customer,
        .price = price,
        .success_url = "http://localhost:3000/ok?session_id={CHECKOUT_SESSION_ID}",
        .cancel_url = "http://localhost:3000/cancel",
        .client_reference_id = "user_checkout",
        .user_id = "user_checkout",
        .trial_period_days = trial_days,
    };

    return stripe_checkout_session_create(c, &p, NULL, cs, se);
}

static void test_checkout(const struct emu_proc *e, struct stripe_client *c, const char *price,
                          const char *customer)
{
    struct stripe_checkout_session cs, got;
    struct subscription sub;
    struct stripe_error se;

    T_EQ_I64(checkout(c, customer, price, 0, &cs, &se), ERR_OK, "checkout session (%.200s)",
             se.message);
    T_OK(str_has_prefix(cs.url, "http"), "with a hosted page URL");
    T_EQ_I64(stripe_checkout_session_retrieve(c, cs.id, true, &got, &sub, &se), ERR_OK,
             "retrieve it (%.200s)", se.message);
    T_EQ_STR(got.status, "open", "open before payment");
    T_EQ_STR(got.subscription, "", "no subscription yet");
    T_OK(pay(e, cs.id), "pay on the hosted page");
    T_EQ_I64(stripe_checkout_session_retrieve(c, cs.id, true, &got, &sub, &se), ERR_OK,
             "retrieve it again");
    T_EQ_STR(got.status, "complete", "complete after payment");
    T_OK(got.subscription_expanded, "the subscription comes expanded");
    T_EQ_STR(sub.price_id, price, "for the price");
    T_EQ_STR(sub.user_id, "user_checkout", "with subscription_data metadata");
    T_OK(sub.current_period_end > sub.current_period_start, "and a period");
    T_EQ_STR(got.client_reference_id, "user_checkout", "client_reference_id");
}

static void test_subscription_pages(struct stripe_client *c, const char *customer)
{
    struct stripe_subscription_page p1, p2;
    struct stripe_error se;

    T_EQ_I64(stripe_subscription_list(c, customer, NULL, 2, &p1, &se), ERR_OK,
             "subscriptions page 1 (%.200s)", se.message);
    T_OK(p1.len == 2 && p1.has_more, "2 items and has_more");
    T_EQ_I64(stripe_subscription_list(c, customer, p1.last_id, 2, &p2, &se), ERR_OK,
             "subscriptions page 2");
    T_OK(p2.len == 1 && !p2.has_more, "the last item, no more");
    T_OK(p2.len == 1 && strcmp(p2.data[0].id, p1.data[0].id) != 0 &&
             strcmp(p2.data[0].id, p1.data[1].id) != 0,
         "no item twice");
    stripe_subscription_page_release(&p1);
    stripe_subscription_page_release(&p2);
}

static void test_invoices(struct stripe_client *c, const char *customer)
{
    struct stripe_invoice_page p1, p2;
    struct stripe_error se;

    T_EQ_I64(stripe_invoice_list(c, customer, NULL, 2, &p1, &se), ERR_OK,
             "invoices page 1 (%.200s)", se.message);
    T_OK(p1.len == 2 && p1.has_more, "2 invoices and has_more");
    T_OK(p1.len > 0 && str_has_prefix(p1.data[0].invoice.hosted_invoice_url, "http"),
         "with a hosted invoice URL");
    T_OK(p1.len > 0 && strcmp(p1.data[0].customer, customer) == 0, "of the customer");
    T_EQ_I64(stripe_invoice_list(c, customer, p1.last_id, 100, &p2, &se), ERR_OK,
             "invoices page 2");
    T_OK(p2.len >= 1 && !p2.has_more, "the rest");
    stripe_invoice_page_release(&p1);
    stripe_invoice_page_release(&p2);
}

static void test_portal_and_cancel(struct stripe_client *c, const char *customer)
{
    struct stripe_subscription_page page;
    struct subscription sub;
    struct stripe_error se;
    char url[URL_MAX];

    T_EQ_I64(stripe_billing_portal_session_create(c, customer, "http://localhost:3000/account", url,
                                                  &se),
             ERR_OK, "portal session (%.200s)", se.message);
    T_OK(str_has_prefix(url, "http"), "with a URL: %.200s", url);
    if (stripe_subscription_list(c, customer, NULL, 1, &page, &se) != ERR_OK || page.len != 1) {
        T_OK(0, "a subscription to cancel");
        return;
    }
    T_EQ_I64(stripe_subscription_set_cancel_at_period_end(c, page.data[0].id, true, &sub, &se),
             ERR_OK, "cancel at period end (%.200s)", se.message);
    T_OK(sub.cancel_at_period_end, "is set");
    T_EQ_I64(stripe_subscription_retrieve(c, page.data[0].id, &sub, &se), ERR_OK, "retrieve");
    T_OK(sub.cancel_at_period_end && sub.status == SUB_STATUS_ACTIVE, "still active");
    T_EQ_I64(stripe_subscription_cancel(c, page.data[0].id, &sub, &se), ERR_OK, "cancel now");
    T_EQ_STR(sub_status_name(sub.status), "canceled", "is canceled");
    T_EQ_I64(stripe_subscription_retrieve(c, "sub_doesnotexist", &sub, &se), ERR_NOT_FOUND,
             "an unknown subscription is ERR_NOT_FOUND");
    stripe_subscription_page_release(&page);
}

static void test_billing(const struct emu_proc *e, struct stripe_client *c)
{
    struct stripe_customer cus;
    struct stripe_checkout_session cs;
    struct stripe_error se;
    char price[STRIPE_ID_MAX];

    emu_reset(e);
    first_price(e, price, sizeof(price));
    T_OK(price[0] != '\0', "the emulator has a price: %s", price);
    T_EQ_I64(create_for_user(c, "user_checkout", "checkout@example.com", &cus, &se), ERR_OK,
             "customer for checkout");
    test_checkout(e, c, price, cus.id);
    for (int i = 0; i < 2; i++)
        T_OK(checkout(c, cus.id, price, 0, &cs, &se) == ERR_OK && pay(e, cs.id),
             "subscription %d more", i + 2);
    test_subscription_pages(c, cus.id);
    test_invoices(c, cus.id);
    test_portal_and_cancel(c, cus.id);
    T_EQ_I64(checkout(c, cus.id, price, 14, &cs, &se), ERR_OK, "a session with a 14-day trial");
}

/* A subscription of customer on price, bought on the hosted page; false when it fails. */
static bool subscribed(const struct emu_proc *e, struct stripe_client *c, const char *customer,
                       const char *price, struct subscription *sub)
{
    struct stripe_checkout_session cs, got;
    struct stripe_error se;

    return checkout(c, customer, price, 0, &cs, &se) == ERR_OK && pay(e, cs.id) &&
           stripe_checkout_session_retrieve(c, cs.id, true, &got, sub, &se) == ERR_OK && sub->id[0];
}

/* Plan changes (issue #14): the preview, an upgrade, a downgrade schedule, release, resume. */
static void test_plans(const struct emu_proc *e, struct stripe_client *c)
{
    struct stripe_customer cus;
    struct subscription sub, got;
    struct schedule_record sched;
    struct stripe_upcoming up;
    struct stripe_invoice inv;
    struct stripe_error se;
    char key[STRIPE_IDEMPOTENCY_KEY_MAX];

    emu_reset(e);
    if (create_for_user(c, "user_plans", "plans@example.com", &cus, &se) != ERR_OK ||
        !subscribed(e, c, cus.id, "price_premium_monthly", &sub)) {
        T_OK(0, "a premium subscription to change (%.200s)", se.message);
        return;
    }
    T_OK(sub.item_id[0] != '\0', "the subscription's item: %s", sub.item_id);
    struct stripe_upcoming_params up_p = { cus.id, sub.id, sub.item_id, "price_plus_monthly",
                                           "always_invoice" };
    T_EQ_I64(stripe_invoice_upcoming(c, &up_p, &up, &se), ERR_OK, "upcoming invoice (%.200s)",
             se.message);
    T_EQ_STR(up.billing_reason, "subscription_update", "an upgrade is invoiced now");
    T_OK(up.amount_due > 0 && up.amount_due <= 1999 - 999, "its proration: %lld",
         (long long)up.amount_due);
    stripe_idempotency_key_for("plan-upgrade", sub.id, key);
    T_EQ_I64(stripe_subscription_change_price(c, sub.id, sub.item_id, "price_plus_monthly", key,
                                              &got, &se),
             ERR_OK, "change the price (%.200s)", se.message);
    T_EQ_STR(got.price_id, "price_plus_monthly", "switched at once");
    T_EQ_STR(got.pending_price_id, "", "paid: nothing pending");
    T_EQ_I64(stripe_invoice_retrieve(c, got.latest_invoice, &inv, &se), ERR_OK,
             "its invoice (%.200s)", se.message);
    T_EQ_STR(inv.invoice.status, "paid", "paid at once");
    T_EQ_I64(inv.invoice.amount_paid, up.amount_due, "the previewed amount");
    T_EQ_I64(stripe_schedule_from_subscription(c, sub.id, NULL, &sched, &se), ERR_OK,
             "a schedule from the subscription (%.200s)", se.message);
    T_EQ_STR(sched.subscription_id, sub.id, "of the subscription");
    struct stripe_schedule_phases ph = { "price_plus_monthly", got.current_period_start,
                                         got.current_period_end, "price_premium_monthly" };
    T_EQ_I64(stripe_schedule_set_phases(c, sched.id, &ph, NULL, &sched, &se), ERR_OK,
             "a downgrade at period end (%.200s)", se.message);
    T_EQ_STR(sched.next_price_id, "price_premium_monthly", "its next phase");
    T_EQ_I64(sched.next_at, got.current_period_end, "from the period end");
    T_EQ_I64(stripe_subscription_retrieve(c, sub.id, &got, &se), ERR_OK, "read again");
    T_EQ_STR(got.schedule_id, sched.id, "the subscription names its schedule");
    T_EQ_I64(stripe_schedule_release(c, sched.id, &sched, &se), ERR_OK, "release (%.200s)",
             se.message);
    T_EQ_STR(sched.status, "released", "released");
    T_EQ_I64(stripe_schedule_release(c, sched.id, &sched, &se), ERR_OK,
             "released again: the same key answers the same");
    T_EQ_I64(stripe_subscription_set_cancel_at_period_end(c, sub.id, true, &got, &se), ERR_OK,
             "cancel at period end");
    T_EQ_I64(stripe_subscription_set_cancel_at_period_end(c, sub.id, false, &got, &se), ERR_OK,
             "resume");
    T_OK(!got.cancel_at_period_end, "renews again");
}

struct racer {
    struct stripe_client *c;
    enum err err;
    struct stripe_customer cus;
};

static void *race(void *p)
{
    struct racer *r = p;
    struct stripe_error se;

    r->err = create_for_user(r->c, "user_race", "race@example.com", &r->cus, &se);
    return NULL;
}

static void test_threads(const struct emu_proc *e, struct stripe_client *c)
{
    static struct racer r[20];
    pthread_t t[20];
    int ok = 0, same = 0;

    emu_reset(e);
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        r[i].c = c;
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        pthread_join(t[i], NULL);
        ok += r[i].err == ERR_OK;
        same += r[i].err == ERR_OK && strcmp(r[i].cus.id, r[0].cus.id) == 0;
    }
    T_EQ_I64(ok, 20, "20 threads create the customer of one user");
    T_EQ_I64(same, 20, "and all get the same one");
    T_EQ_I64(customers_with_email(c, "race@example.com"), 1, "one customer exists");
}

/* Runs argv (output discarded); true when it exits 0. */
static bool run_quietly(char *const argv[])
{
    int status = -1;
    pid_t pid = fork();

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Runs the spec checker over one "METHOD PATH FORM" line; true when it says valid. */
static bool params_valid(const char *line)
{
    char method[16], path[1024], form[4096] = "";
    char py[] = "python3", tool[] = PARAMS_TOOL, q[] = "-q", opt[] = "--form";

    if (sscanf(line, "%15s %1023s %4095s", method, path, form) < 2)
        return false;
    char *argv[] = { py, tool, q, method, path, form[0] ? opt : NULL, form, NULL };
    return run_quietly(argv);
}

static void test_params_against_spec(void)
{
    char py[] = "python3", c[] = "-c", one[] = "1";
    char *probe[] = { py, c, one, NULL };

    if (access(PARAMS_TOOL, R_OK) != 0 || !run_quietly(probe)) {
        printf("ok %d - # SKIP %s or python3 is missing\n", ++t_count, PARAMS_TOOL);
        return;
    }
    T_OK(seen.n >= 8, "the suite made %zu distinct requests", seen.n);
    for (size_t i = 0; i < seen.n; i++) {
        T_OK(params_valid(seen.lines[i]), "valid for Stripe's spec: %.400s", seen.lines[i]);
        free(seen.lines[i]);
    }
    T_OK(!params_valid("GET /v1/customers bogus=1"), "the checker does refuse a bad parameter");
}

int main(void)
{
    struct emu_proc e;
    struct stripe_client *c;
    char why[256];

    if (!emu_start(&e, why, sizeof(why))) {
        printf("1..0 # SKIP %s\n", why);
        emu_stop(&e);
        return 0;
    }
    c = client_new(&e, 10000);
    test_stable_key(&e, c);
    test_faults(&e, c);
    test_timeout(&e);
    test_billing(&e, c);
    test_plans(&e, c);
    test_threads(&e, c);
    stripe_client_free(c);
    emu_stop(&e);
    test_params_against_spec();
    return t_done();
}
