/*
 * test_event_order.c: the property of SPEC §5 and issue #4 item 4: whatever the order and
 * however many times Stripe delivers one subscription's lifecycle, the store ends equal to
 * Stripe's final state. 100 seeded shuffles with duplicates, through webhook_ingest (parse,
 * record and apply) on sqlite::memory:.
 */
#include <stdlib.h>

#include <jansson.h>

#include "api/stripe_glue.h"
#include "api/webhook.h"
#include "base/clock.h"
#include "base/xalloc.h"
#include "billing/status.h"
#include "billing/tiers.h"
#include "store/store.h"
#include "t.h"

#define RUNS    100
#define DAY     INT64_C(86400)
#define T0      INT64_C(1700000000)
#define TE      (T0 + 14 * DAY) /* trial end */
#define TR      (TE + 30 * DAY) /* first renewal */
#define TF      (TR + 30 * DAY) /* second renewal: the payment fails */
#define TP      (TF + 3 * DAY)  /* the retry succeeds */
#define TC      TP              /* the user cancels at period end, in the same second */
#define TD      (TF + 30 * DAY) /* the period ends: deleted */
#define PRICE   "price_premium_test"
#define USER    "user_1"
#define MAX_DUP 12
#define ROUNDS  4 /* Stripe retries failed events; a few rounds settle any order */

/* One state of the subscription, as a customer.subscription.* event carries it. */
struct sub_state {
    enum sub_status status; /* SUB_STATUS_MISSING: the event carries no subscription */
    int64_t start, end;
    int64_t trial_end;
    bool cancel_at_period_end;
    int64_t canceled_at, cancel_at;
};

struct invoice_state {
    const char *id, *status;
    int64_t amount_paid, created, period_start, period_end;
};

/* The script: every event of the lifecycle, several sharing one `created` second. */
struct scripted {
    const char *id, *type;
    int64_t created;
    struct sub_state sub;         /* customer.subscription.* */
    struct invoice_state invoice; /* invoice.* */
};

/* status: ACTIVE for SUB_STATUS_ACTIVE. */
#define SUB(status, start, end, trial, cape, cat, cancel_at)         \
    {                                                                \
        SUB_STATUS_##status, start, end, trial, cape, cat, cancel_at \
    }
#define NO_SUB                                   \
    {                                            \
        SUB_STATUS_MISSING, 0, 0, 0, false, 0, 0 \
    }
#define INV(id, status, paid, created, ps, pe) \
    {                                          \
        id, status, paid, created, ps, pe      \
    }
#define NO_INV                 \
    {                          \
        NULL, NULL, 0, 0, 0, 0 \
    }

/* clang-format off */
static const struct scripted script[] = {
    { "evt_01", "checkout.session.completed", T0, NO_SUB, NO_INV },
    { "evt_02", "customer.subscription.created", T0,
      SUB(TRIALING, T0, TE, TE, false, 0, 0), NO_INV },
    { "evt_03", "invoice.paid", T0, NO_SUB, INV("in_0", "paid", 0, T0, T0, T0) },
    { "evt_04", "customer.subscription.trial_will_end", TE - 3 * DAY,
      SUB(TRIALING, T0, TE, TE, false, 0, 0), NO_INV },
    { "evt_05", "customer.subscription.updated", TE,
      SUB(ACTIVE, TE, TR, TE, false, 0, 0), NO_INV },
    { "evt_06", "invoice.paid", TE, NO_SUB, INV("in_1", "paid", 999, TE, T0, TE) },
    { "evt_07", "invoice.created", TR, NO_SUB, NO_INV },
    { "evt_08", "customer.subscription.updated", TR,
      SUB(ACTIVE, TR, TF, TE, false, 0, 0), NO_INV },
    { "evt_09", "invoice.paid", TR, NO_SUB, INV("in_2", "paid", 999, TR, TE, TR) },
    { "evt_10", "customer.subscription.updated", TF,
      SUB(ACTIVE, TF, TD, TE, false, 0, 0), NO_INV },
    { "evt_11", "customer.subscription.updated", TF,
      SUB(PAST_DUE, TF, TD, TE, false, 0, 0), NO_INV },
    { "evt_12", "invoice.payment_failed", TF, NO_SUB, INV("in_3", "open", 0, TF, TR, TF) },
    { "evt_13", "customer.subscription.updated", TP,
      SUB(ACTIVE, TF, TD, TE, false, 0, 0), NO_INV },
    { "evt_14", "invoice.paid", TP, NO_SUB, INV("in_3", "paid", 999, TF, TR, TF) },
    { "evt_15", "customer.subscription.updated", TC,
      SUB(ACTIVE, TF, TD, TE, true, TC, TD), NO_INV },
    { "evt_16", "customer.subscription.updated", TD,
      SUB(ACTIVE, TF, TD, TE, true, TC, TD), NO_INV },
    { "evt_17", "customer.subscription.deleted", TD,
      SUB(CANCELED, TF, TD, TE, true, TC, TD), NO_INV },
};
/* clang-format on */

#define N_EVENTS ARRAY_SIZE(script)

static const struct sub_state final_sub = SUB(CANCELED, TF, TD, TE, true, TC, TD);
static const struct invoice_state final_invoices[] = {
    INV("in_0", "paid", 0, T0, T0, T0),
    INV("in_1", "paid", 999, TE, T0, TE),
    INV("in_2", "paid", 999, TR, TE, TR),
    INV("in_3", "paid", 999, TF, TR, TF),
};

static json_t *time_or_null(int64_t t)
{
    return t ? json_integer(t) : json_null();
}

static json_t *subscription_object(const struct sub_state *s)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:b, s:o, s:o, s:{s:s}, s:{s:[{s:{s:s}}]}}", "id",
        "sub_1", "object", "subscription", "customer", "cus_1", "status",
        sub_status_name(s->status), "current_period_start", (json_int_t)s->start,
        "current_period_end", (json_int_t)s->end, "trial_end", time_or_null(s->trial_end),
        "cancel_at_period_end", s->cancel_at_period_end, "canceled_at",
        time_or_null(s->canceled_at), "cancel_at", time_or_null(s->cancel_at), "metadata",
        "user_id", USER, "items", "data", "price", "id", PRICE);
}

/* Invoices carry no user: it is found through the customer, linked at checkout. */
static json_t *invoice_object(const struct invoice_state *inv)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:I, s:s, s:s}", "id", inv->id,
        "object", "invoice", "customer", "cus_1", "subscription", "sub_1", "status", inv->status,
        "amount_due", (json_int_t)999, "amount_paid", (json_int_t)inv->amount_paid, "created",
        (json_int_t)inv->created, "currency", "usd", "period_start", (json_int_t)inv->period_start,
        "period_end", (json_int_t)inv->period_end, "hosted_invoice_url",
        "https://invoice.stripe.test/i", "invoice_pdf", "https://invoice.stripe.test/p");
}

static json_t *object_of(const struct scripted *e)
{
    if (e->sub.status != SUB_STATUS_MISSING)
        return subscription_object(&e->sub);
    if (e->invoice.id)
        return invoice_object(&e->invoice);
    if (strcmp(e->type, "checkout.session.completed") == 0)
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", "cs_1", "object",
                         "checkout.session", "mode", "subscription", "status", "complete",
                         "customer", "cus_1", "subscription", "sub_1", "client_reference_id", USER);
    return json_pack("{s:s, s:s}", "id", "in_other", "object", "invoice");
}

/* The body Stripe would send; free with free(). */
static char *event_body(const struct scripted *e)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:b, s:{s:o}}", "id", e->id, "object", "event",
                          "type", e->type, "created", (json_int_t)e->created, "livemode", 0, "data",
                          "object", object_of(e));
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    return s;
}

/* splitmix64: a seeded, portable sequence. */
static uint64_t next_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* A delivery order: every event once, plus up to MAX_DUP duplicates, shuffled. */
static size_t make_order(uint64_t seed, size_t *order)
{
    uint64_t rng = seed;
    size_t n = N_EVENTS + (size_t)(next_rand(&rng) % (MAX_DUP + 1));

    for (size_t i = 0; i < n; i++)
        order[i] = i < N_EVENTS ? i : (size_t)(next_rand(&rng) % N_EVENTS);
    for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)(next_rand(&rng) % (i + 1));
        size_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    return n;
}

struct run {
    struct store *st;
    const struct tier_catalog *cat;
    char *bodies[N_EVENTS];
    bool applied[N_EVENTS]; /* recorded as applied or ignored */
    int applied_twice;      /* a delivery after the first success that was not a duplicate */
    int failures;           /* deliveries answered with an error (Stripe retries them) */
};

static void deliver(struct run *r, size_t i)
{
    struct webhook_outcome o;
    enum err err =
        webhook_ingest(r->st, r->cat, r->bodies[i], strlen(r->bodies[i]), STORE_EVENT_RECEIVE, &o);

    if (err) {
        r->failures++;
        return;
    }
    if (r->applied[i] && o.result != STORE_EVENT_DUPLICATE)
        r->applied_twice++;
    r->applied[i] = true;
}

/* Stripe retries what failed until it succeeds. */
static void retry_failed(struct run *r)
{
    for (int round = 0; round < ROUNDS; round++)
        for (size_t i = 0; i < N_EVENTS; i++)
            if (!r->applied[i])
                deliver(r, i);
}

static bool sub_matches(const struct subscription *got, const struct sub_state *want)
{
    return got->status == want->status && got->current_period_start == want->start &&
           got->current_period_end == want->end && got->trial_end == want->trial_end &&
           got->cancel_at_period_end == want->cancel_at_period_end &&
           got->canceled_at == want->canceled_at && got->cancel_at == want->cancel_at &&
           strcmp(got->tier, "premium") == 0 && strcmp(got->user_id, USER) == 0 &&
           strcmp(got->price_id, PRICE) == 0 && got->past_due_since == 0;
}

/* Every invoice present with its final status and amounts, newest first. */
static bool invoices_match(struct store *st)
{
    struct invoice got[8];
    int n = 0;

    if (store_invoice_list(st, USER, (int)ARRAY_SIZE(got), got, &n) != ERR_OK ||
        n != (int)ARRAY_SIZE(final_invoices))
        return false;
    for (int i = 0; i < n; i++) {
        const struct invoice_state *want = &final_invoices[(size_t)n - 1 - (size_t)i];
        if (strcmp(got[i].id, want->id) != 0 || strcmp(got[i].status, want->status) != 0 ||
            got[i].amount_paid != want->amount_paid) {
            printf("#   invoice %d: got %s %s %lld\n", i, got[i].id, got[i].status,
                   (long long)got[i].amount_paid);
            return false;
        }
    }
    return true;
}

static bool inbox_complete(struct store *st)
{
    struct webhook_event list[N_EVENTS + 1];
    int n = 0, failed = 0;

    if (store_event_list(st, true, (int)ARRAY_SIZE(list), list, &failed) != ERR_OK ||
        store_event_list(st, false, (int)ARRAY_SIZE(list), list, &n) != ERR_OK)
        return false;
    return n == (int)N_EVENTS && failed == 0;
}

static struct store *open_memory(void)
{
    struct store *st = NULL;
    char msg[256] = "";
    int applied = 0;

    if (store_open("sqlite::memory:", 1, &st, msg, sizeof(msg)) != ERR_OK ||
        store_migrate(st, &applied, msg, sizeof(msg)) != ERR_OK) {
        printf("Bail out! %s\n", msg);
        exit(1);
    }
    return st;
}

static void check_run(struct run *r, uint64_t seed)
{
    struct subscription sub;
    struct customer cus;
    bool sub_ok =
        store_subscription_get(r->st, "sub_1", &sub) == ERR_OK && sub_matches(&sub, &final_sub);
    bool trial_ok = store_customer_get(r->st, USER, &cus) == ERR_OK && cus.had_trial &&
                    strcmp(cus.stripe_customer_id, "cus_1") == 0;

    T_OK(sub_ok, "seed %llu: the subscription ends as Stripe's final state",
         (unsigned long long)seed);
    if (!sub_ok)
        printf("#   got status %s period %lld-%lld cancel %d canceled_at %lld since %lld\n",
               sub_status_name(sub.status), (long long)sub.current_period_start,
               (long long)sub.current_period_end, sub.cancel_at_period_end,
               (long long)sub.canceled_at, (long long)sub.past_due_since);
    T_OK(invoices_match(r->st), "seed %llu: every invoice with its final status",
         (unsigned long long)seed);
    T_OK(inbox_complete(r->st), "seed %llu: every event recorded once, none failed",
         (unsigned long long)seed);
    T_OK(trial_ok, "seed %llu: the customer is linked and had its trial", (unsigned long long)seed);
    T_EQ_I64(r->applied_twice, 0, "seed %llu: no duplicate applied twice",
             (unsigned long long)seed);
}

static void test_random_orders(const struct tier_catalog *cat, char **bodies)
{
    size_t order[N_EVENTS + MAX_DUP];
    int failures = 0;

    for (uint64_t seed = 1; seed <= RUNS; seed++) {
        struct run r = { .st = open_memory(), .cat = cat };
        size_t n = make_order(seed, order);
        memcpy(r.bodies, bodies, sizeof(r.bodies));
        for (size_t i = 0; i < n; i++)
            deliver(&r, order[i]);
        retry_failed(&r);
        check_run(&r, seed);
        failures += r.failures;
        store_close(r.st);
    }
    printf("# %d deliveries failed on the way (user not known yet) and were retried\n", failures);
}

/* The script itself, in Stripe's order: the baseline the shuffles are compared with. */
static void test_in_order(const struct tier_catalog *cat, char **bodies)
{
    struct run r = { .st = open_memory(), .cat = cat };

    memcpy(r.bodies, bodies, sizeof(r.bodies));
    for (size_t i = 0; i < N_EVENTS; i++)
        deliver(&r, i);
    T_EQ_I64(r.failures, 0, "in order: nothing fails");
    check_run(&r, 0);
    store_close(r.st);
}

/*
 * Issue #10 item 4: events and direct answers (cancel, resume, sync) ordered on Stripe's clock
 * alone. A short lifecycle with a cancel and a resume, whose answers are applied as the API
 * applies them (glue_subscription_store_answer, the answer's Date being Stripe's time) while this
 * server's clock runs 40 days behind or ahead of Stripe's; the events of each phase arrive
 * shuffled, with duplicates. After each phase the store holds Stripe's state of that moment.
 */
#define A0     (TE + 1000)     /* the subscription starts */
#define A1     (A0 + 30 * DAY) /* it renews */
#define AC     (A0 + 10)       /* the user cancels at period end: answer and event */
#define AR     (A0 + 5 * DAY)  /* the user resumes through the portal: an event only */
#define AS     (A0 + 6 * DAY)  /* a sync fetches it */
#define SKEW_N 2

static const struct scripted skew_events[] = {
    { "evt_s1", "customer.subscription.created", A0, SUB(ACTIVE, A0, A1, 0, false, 0, 0), NO_INV },
    { "evt_s2", "customer.subscription.updated", AC, SUB(ACTIVE, A0, A1, 0, true, AC, A1), NO_INV },
    { "evt_s3", "customer.subscription.updated", AR, SUB(ACTIVE, A0, A1, 0, false, 0, 0), NO_INV },
    { "evt_s4", "customer.subscription.updated", A1, SUB(ACTIVE, A1, A1 + 30 * DAY, 0, false, 0, 0),
      NO_INV },
};

/* The phases: events created before the answer that ends it, then that answer (if any). */
static const struct {
    size_t first, last; /* skew_events[first..last) arrive, shuffled, with duplicates */
    struct sub_state answer;
    int64_t answered_at;   /* 0: no answer, the phase ends on its last event */
    struct sub_state want; /* the stored state after the phase */
} skew_phases[] = {
    { 0, 1, SUB(ACTIVE, A0, A1, 0, true, AC, A1), AC, SUB(ACTIVE, A0, A1, 0, true, AC, A1) },
    { 1, 3, NO_SUB, 0, SUB(ACTIVE, A0, A1, 0, false, 0, 0) },
    { 3, 3, SUB(ACTIVE, A0, A1, 0, false, 0, 0), AS, SUB(ACTIVE, A0, A1, 0, false, 0, 0) },
    { 3, 4, NO_SUB, 0, SUB(ACTIVE, A1, A1 + 30 * DAY, 0, false, 0, 0) },
};

static void skew_deliver(struct store *st, const struct tier_catalog *cat, char **bodies,
                         size_t first, size_t last, uint64_t *rng)
{
    size_t order[16], n = 0;

    for (size_t i = first; i < last; i++)
        order[n++] = i;
    for (size_t i = first; i < last && n < ARRAY_SIZE(order); i++)
        if (next_rand(rng) % 2)
            order[n++] = i; /* a duplicate */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(next_rand(rng) % i), tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
    for (size_t i = 0; i < n; i++) {
        struct webhook_outcome o;
        clock_set_fake(skew_events[order[i]].created);
        (void)!webhook_ingest(st, cat, bodies[order[i]], strlen(bodies[order[i]]),
                              STORE_EVENT_RECEIVE, &o); /* checked through the state below */
    }
}

/* The answer Stripe gives at answered_at, applied while this server's clock reads now. */
static void skew_answer(struct store *st, const struct tier_catalog *cat, const struct sub_state *a,
                        int64_t answered_at, int64_t now)
{
    struct subscription s = { .id = "sub_1", .stripe_customer_id = "cus_1", .price_id = PRICE };
    struct stripe_error se = { .answered_at = answered_at };

    s.status = a->status;
    s.current_period_start = a->start;
    s.current_period_end = a->end;
    s.cancel_at_period_end = a->cancel_at_period_end;
    s.canceled_at = a->canceled_at;
    s.cancel_at = a->cancel_at;
    clock_set_fake(now);
    if (glue_subscription_store_answer(st, cat, NULL, USER, &se, &s, NULL) != ERR_OK)
        printf("#   the answer at %lld was not stored\n", (long long)answered_at);
}

static void test_server_clock_skew(const struct tier_catalog *cat)
{
    static const int64_t skews[SKEW_N] = { -40 * DAY, 40 * DAY };
    char *bodies[ARRAY_SIZE(skew_events)];
    int wrong[SKEW_N] = { 0 };

    for (size_t i = 0; i < ARRAY_SIZE(skew_events); i++)
        bodies[i] = event_body(&skew_events[i]);
    for (size_t k = 0; k < SKEW_N; k++) {
        for (uint64_t seed = 1; seed <= RUNS / 2; seed++) {
            struct store *st = open_memory();
            uint64_t rng = seed * 7919 + k;
            for (size_t p = 0; p < ARRAY_SIZE(skew_phases); p++) {
                struct subscription got;
                skew_deliver(st, cat, bodies, skew_phases[p].first, skew_phases[p].last, &rng);
                if (skew_phases[p].answered_at)
                    skew_answer(st, cat, &skew_phases[p].answer, skew_phases[p].answered_at,
                                skew_phases[p].answered_at + skews[k]);
                if (store_subscription_get(st, "sub_1", &got) != ERR_OK ||
                    got.cancel_at_period_end != skew_phases[p].want.cancel_at_period_end ||
                    got.current_period_start != skew_phases[p].want.start) {
                    if (!wrong[k]++)
                        printf("#   skew %lld d, seed %llu, phase %zu: cancel %d start %lld\n",
                               (long long)(skews[k] / DAY), (unsigned long long)seed, p,
                               got.cancel_at_period_end, (long long)got.current_period_start);
                }
            }
            store_close(st);
        }
        T_EQ_I64(wrong[k], 0,
                 "server clock %+lld days from Stripe's: every phase ends in Stripe's state",
                 (long long)(skews[k] / DAY));
    }
    for (size_t i = 0; i < ARRAY_SIZE(skew_events); i++)
        free(bodies[i]);
}

int main(void)
{
    struct tier_catalog cat;
    char *bodies[N_EVENTS];

    clock_set_fake(T0);
    tier_catalog_builtin(&cat);
    if (tier_catalog_set_price_id(&cat, "premium", NULL, PRICE) != ERR_OK) {
        printf("Bail out! cannot set the premium price\n");
        return 1;
    }
    for (size_t i = 0; i < N_EVENTS; i++)
        bodies[i] = event_body(&script[i]);
    test_in_order(&cat, bodies);
    test_random_orders(&cat, bodies);
    test_server_clock_skew(&cat);
    for (size_t i = 0; i < N_EVENTS; i++)
        free(bodies[i]);
    return t_done();
}
