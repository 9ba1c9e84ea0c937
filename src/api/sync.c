/*
 * sync.c: `subgate sync` (see sync.h). Every write goes through store_subscription_apply or
 * store_invoice_apply, each atomic and ordered on its own, so a sync racing webhooks or requests
 * never leaves a state older than the one it found. A dry run asks the same questions of the
 * same rules (stripe_glue's *_check) and writes nothing.
 */
#include "api/sync.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/duplicates.h"
#include "api/stripe_glue.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/records.h"
#include "billing/status.h"
#include "store/store.h"
#include "stripe/resources.h"

#define PAGE_LIMIT 100

/* A link a dry run would make: later customers naming the same user would be skipped. */
struct planned_link {
    char user_id[USER_ID_MAX];
    char stripe_customer_id[STRIPE_ID_MAX];
};

struct sync_ctx {
    struct store *st;
    struct stripe_client *sc;
    const struct tier_catalog *cat;
    const struct sync_options *o;
    FILE *out;
    struct sync_totals *tot;
    struct planned_link *planned; /* dry run with --import only */
    size_t planned_len, planned_cap;
};

/* Per customer counts, printed on its line. */
struct sync_counts {
    int subscriptions;
    int repaired;
    int invoices;
    int invoices_repaired;
};

/* Arguments */

static PRINTF_LIKE(3, 4) enum sync_args bad_args(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(errbuf, errlen, fmt, ap); /* a cut message is still a message */
    va_end(ap);
    return SYNC_ARGS_BAD;
}

/* A Stripe metadata key: 1 to 40 bytes, no square brackets (Stripe refuses them). */
static bool import_key_ok(const char *key)
{
    size_t n = strlen(key);

    return n > 0 && n <= SYNC_IMPORT_KEY_MAX && !strpbrk(key, "[]");
}

/* The value of flag argv[*i] into *dst, once. */
static enum sync_args flag_value(int argc, char **argv, int *i, const char **dst, char *errbuf,
                                 size_t errlen)
{
    if (*dst)
        return bad_args(errbuf, errlen, "%s given twice", argv[*i]);
    if (*i + 1 >= argc)
        return bad_args(errbuf, errlen, "%s needs a value", argv[*i]);
    *dst = argv[++*i];
    return SYNC_ARGS_OK;
}

static enum sync_args flag_once(const char *arg, bool *dst, char *errbuf, size_t errlen)
{
    if (*dst)
        return bad_args(errbuf, errlen, "%s given twice", arg);
    *dst = true;
    return SYNC_ARGS_OK;
}

/* Reads the flag at argv[*i], and its value. */
static enum sync_args parse_flag(int argc, char **argv, int *i, struct sync_options *o,
                                 char *errbuf, size_t errlen)
{
    const char *a = argv[*i];

    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        return SYNC_ARGS_HELP;
    if (strcmp(a, "--user") == 0)
        return flag_value(argc, argv, i, &o->user_id, errbuf, errlen);
    if (strcmp(a, "--import-key") == 0)
        return flag_value(argc, argv, i, &o->import_key, errbuf, errlen);
    if (strcmp(a, "--dry-run") == 0)
        return flag_once(a, &o->dry_run, errbuf, errlen);
    if (strcmp(a, "--import") == 0)
        return flag_once(a, &o->import, errbuf, errlen);
    return bad_args(errbuf, errlen, "unknown argument '%.64s'", a);
}

/* The combinations: what each flag needs of the others. */
static enum sync_args check_options(struct sync_options *o, char *errbuf, size_t errlen)
{
    if (o->user_id && (!o->user_id[0] || strlen(o->user_id) >= USER_ID_MAX))
        return bad_args(errbuf, errlen, "--user: a user id is 1 to %d bytes", USER_ID_MAX - 1);
    if (o->import && o->user_id)
        return bad_args(errbuf, errlen, "--import walks every Stripe customer: not with --user");
    if (o->import_key && !o->import)
        return bad_args(errbuf, errlen, "--import-key is only for --import");
    if (o->import_key && !import_key_ok(o->import_key))
        return bad_args(errbuf, errlen,
                        "--import-key: '%.64s' is not a Stripe metadata key (1 to %d bytes, no "
                        "'[' or ']')",
                        o->import_key, SYNC_IMPORT_KEY_MAX);
    if (o->import && !o->import_key)
        o->import_key = SYNC_IMPORT_KEY_DEFAULT;
    return SYNC_ARGS_OK;
}

enum sync_args sync_options_parse(int argc, char **argv, struct sync_options *o, char *errbuf,
                                  size_t errlen)
{
    enum sync_args r = SYNC_ARGS_OK;

    memset(o, 0, sizeof(*o));
    if (errlen)
        errbuf[0] = '\0';
    for (int i = 1; i < argc && r == SYNC_ARGS_OK; i++)
        r = parse_flag(argc, argv, &i, o, errbuf, errlen);
    return r == SYNC_ARGS_OK ? check_options(o, errbuf, errlen) : r;
}

/* Subscriptions and invoices of one customer */

/* "repaired" or, in a dry run, "would repair": the word of a detail line. */
static const char *repair_word(const struct sync_ctx *x)
{
    return x->o->dry_run ? "would repair" : "repaired";
}

/* "repaired" or "to repair": the word of a count. */
static const char *count_word(const struct sync_ctx *x)
{
    return x->o->dry_run ? "to repair" : "repaired";
}

/* A trial is one per user, ever: a subscription that had one marks its user. */
static enum err mark_trial(struct sync_ctx *x, const struct customer *c,
                           const struct subscription *s)
{
    if (x->o->dry_run || c->had_trial || !s->trial_end)
        return ERR_OK;
    return store_customer_mark_trial(x->st, c->user_id);
}

static enum err sync_subscription(struct sync_ctx *x, const struct customer *c,
                                  const struct stripe_error *se, struct subscription *s,
                                  struct sync_counts *n)
{
    bool changed = false;
    enum err err =
        x->o->dry_run
            ? glue_subscription_check_answer(x->st, x->cat, x->sc, c->user_id, se, s, &changed)
            : glue_subscription_store_answer(x->st, x->cat, x->sc, c->user_id, se, s, &changed);

    if (!err)
        err = mark_trial(x, c, s);
    if (err == ERR_UPSTREAM) {
        fprintf(x->out,
                "  %s: subscription '%s' has price '%s', which no tier names: not applied "
                "(configure it, then sync again)\n",
                c->stripe_customer_id, s->id, s->price_id);
        return err;
    }
    if (err) {
        fprintf(x->out, "  %s: cannot store subscription '%s': %s\n", c->stripe_customer_id, s->id,
                err_name(err));
        return err;
    }
    n->subscriptions++;
    if (changed) {
        n->repaired++;
        fprintf(x->out, "  %s %s (user %s): status '%s', tier '%s'%s\n", repair_word(x), s->id,
                c->user_id, sub_status_name(s->status), s->tier,
                s->cancel_at_period_end ? ", cancels at period end" : "");
    }
    return ERR_OK;
}

static enum err list_failed(struct sync_ctx *x, const struct customer *c, const char *what,
                            enum err err, const struct stripe_error *se)
{
    fprintf(x->out, "  %s: cannot list %s at stripe (%s): %s\n", c->stripe_customer_id, what,
            err_name(err), se->message);
    return err;
}

static enum err sync_subscriptions(struct sync_ctx *x, const struct customer *c,
                                   struct sync_counts *n)
{
    char after[STRIPE_ID_MAX] = "";
    struct stripe_subscription_page page;
    struct stripe_error se;
    bool more = false;
    enum err err;

    do {
        err = stripe_subscription_list(x->sc, c->stripe_customer_id, after[0] ? after : NULL,
                                       PAGE_LIMIT, &page, &se);
        if (err)
            return list_failed(x, c, "subscriptions", err, &se);
        for (size_t i = 0; i < page.len && !err; i++)
            err = sync_subscription(x, c, &se, &page.data[i], n);
        more = page.has_more && page.last_id[0];
        (void)str_copy(after, sizeof(after), page.last_id); /* both STRIPE_ID_MAX */
        stripe_subscription_page_release(&page);
    } while (!err && more);
    return err;
}

static enum err sync_invoice(struct sync_ctx *x, const struct customer *c, struct invoice *inv,
                             struct sync_counts *n)
{
    bool changed = false;
    enum err err;

    (void)str_copy(inv->user_id, sizeof(inv->user_id), c->user_id); /* same size */
    err = x->o->dry_run ? glue_invoice_check(x->st, inv, &changed)
                        : glue_invoice_store(x->st, inv, &changed);
    if (err) {
        fprintf(x->out, "  %s: cannot store invoice '%s': %s\n", c->stripe_customer_id, inv->id,
                err_name(err));
        return err;
    }
    n->invoices++;
    if (changed) {
        n->invoices_repaired++;
        fprintf(x->out, "  %s %s (user %s): invoice status '%s', amount_paid %lld %s\n",
                repair_word(x), inv->id, c->user_id, inv->status, (long long)inv->amount_paid,
                inv->currency);
    }
    return ERR_OK;
}

static enum err sync_invoices(struct sync_ctx *x, const struct customer *c, struct sync_counts *n)
{
    char after[STRIPE_ID_MAX] = "";
    struct stripe_invoice_page page;
    struct stripe_error se;
    bool more = false;
    enum err err;

    do {
        err = stripe_invoice_list(x->sc, c->stripe_customer_id, after[0] ? after : NULL, PAGE_LIMIT,
                                  &page, &se);
        if (err)
            return list_failed(x, c, "invoices", err, &se);
        for (size_t i = 0; i < page.len && !err; i++)
            err = sync_invoice(x, c, &page.data[i].invoice, n);
        more = page.has_more && page.last_id[0];
        (void)str_copy(after, sizeof(after), page.last_id); /* both STRIPE_ID_MAX */
        stripe_invoice_page_release(&page);
    } while (!err && more);
    return err;
}

static enum err sync_customer(struct sync_ctx *x, const struct customer *c)
{
    struct sync_counts n = { 0 };
    enum err err = sync_subscriptions(x, c, &n);

    if (!err)
        err = sync_invoices(x, c, &n);
    x->tot->subscriptions += n.subscriptions;
    x->tot->repaired += n.repaired;
    x->tot->invoices += n.invoices;
    x->tot->invoices_repaired += n.invoices_repaired;
    if (err) {
        x->tot->failed++;
        fprintf(x->out, "%s user %s: failed (%s)\n", c->stripe_customer_id, c->user_id,
                err_name(err));
        return err;
    }
    x->tot->customers++;
    fprintf(x->out, "%s user %s: %d subscription(s), %d %s, %d invoice(s), %d %s\n",
            c->stripe_customer_id, c->user_id, n.subscriptions, n.repaired, count_word(x),
            n.invoices, n.invoices_repaired, count_word(x));
    return ERR_OK;
}

/* --import: customers subgate never stored */

static enum err skip(struct sync_ctx *x, const struct stripe_customer *sc, const char *why)
{
    x->tot->skipped++;
    fprintf(x->out, "skipped %s: %s\n", sc->id, why);
    return ERR_OK;
}

/* The Stripe customer a dry run would link user_id to; NULL when none. */
static const char *planned_customer(const struct sync_ctx *x, const char *user_id)
{
    for (size_t i = 0; i < x->planned_len; i++)
        if (strcmp(x->planned[i].user_id, user_id) == 0)
            return x->planned[i].stripe_customer_id;
    return NULL;
}

static void plan_link(struct sync_ctx *x, const struct customer *c)
{
    struct planned_link *p;

    if (x->planned_len == x->planned_cap) {
        x->planned_cap = x->planned_cap ? 2 * x->planned_cap : 16;
        x->planned = xrealloc(x->planned, x->planned_cap * sizeof(*x->planned));
    }
    p = &x->planned[x->planned_len++];
    (void)str_copy(p->user_id, sizeof(p->user_id), c->user_id); /* same sizes */
    (void)str_copy(p->stripe_customer_id, sizeof(p->stripe_customer_id), c->stripe_customer_id);
}

/*
 * The user the customer's metadata names, into c (with the customer's id, email and creation
 * time); false, with the reason in why, when it names none. A user id follows a token's `sub`:
 * 1 to USER_ID_MAX - 1 bytes (JSON strings hold no NUL).
 */
static bool user_from_metadata(const struct sync_ctx *x, const struct stripe_customer *sc,
                               struct customer *c, char *why, size_t why_len)
{
    const struct stripe_metadata_entry *e = stripe_metadata_find(&sc->metadata, x->o->import_key);

    if (!e) {
        snprintf(why, why_len, "no metadata '%s'", x->o->import_key);
        return false;
    }
    if (e->value_len == 0 || e->value_len >= USER_ID_MAX) {
        snprintf(why, why_len, "metadata '%s' is not a user id (%zu bytes; 1 to %d)",
                 x->o->import_key, e->value_len, USER_ID_MAX - 1);
        return false;
    }
    memset(c, 0, sizeof(*c));
    (void)str_copy(c->user_id, sizeof(c->user_id), e->value); /* checked: it fits */
    (void)str_copy(c->stripe_customer_id, sizeof(c->stripe_customer_id), sc->id); /* same */
    (void)str_copy(c->email, sizeof(c->email), sc->email);                        /* same */
    c->created = sc->created > 0 ? sc->created : clock_now();
    return true;
}

/* The customer the user is linked to (stored, or planned by this dry run) into owner; "" none. */
static enum err user_owner(struct sync_ctx *x, const char *user_id, char owner[STRIPE_ID_MAX])
{
    struct customer got;
    const char *planned = planned_customer(x, user_id);
    enum err err = store_customer_get(x->st, user_id, &got);

    owner[0] = '\0';
    if (err == ERR_OK)
        (void)str_copy(owner, STRIPE_ID_MAX, got.stripe_customer_id); /* same size */
    else if (err == ERR_NOT_FOUND && planned)
        (void)str_copy(owner, STRIPE_ID_MAX, planned); /* same size */
    return err == ERR_NOT_FOUND ? ERR_OK : err;
}

static enum err skip_owned(struct sync_ctx *x, const struct stripe_customer *sc,
                           const char *user_id, const char *owner)
{
    char why[USER_ID_MAX + STRIPE_ID_MAX + 64];

    snprintf(why, sizeof(why), "user %s is already linked to %s", user_id, owner);
    return skip(x, sc, why);
}

/* A link made, or a dry run's link planned: said, counted, then the customer is synced. */
static enum err linked(struct sync_ctx *x, const struct customer *c)
{
    x->tot->linked++;
    fprintf(x->out, "%s %s to user %s\n", x->o->dry_run ? "would link" : "linked",
            c->stripe_customer_id, c->user_id);
    if (x->o->dry_run)
        plan_link(x, c);
    return sync_customer(x, c);
}

/* Links c unless its user or customer was linked meanwhile (a webhook, another instance). */
static enum err link_customer(struct sync_ctx *x, const struct stripe_customer *sc,
                              const struct customer *c)
{
    struct customer got;
    bool made = false;
    enum err err = store_customer_link(x->st, c, &made);

    if (!err && made)
        return linked(x, c);
    if (!err)
        err = store_customer_get_by_stripe_id(x->st, sc->id, &got);
    if (!err)
        return sync_customer(x, &got); /* linked meanwhile: now a stored customer like any */
    if (err == ERR_NOT_FOUND)
        err = store_customer_get(x->st, c->user_id, &got);
    if (!err)
        return skip_owned(x, sc, c->user_id, got.stripe_customer_id);
    x->tot->failed++;
    fprintf(x->out, "%s: cannot link to user %s (%s)\n", sc->id, c->user_id, err_name(err));
    return err;
}

static enum err import_customer(struct sync_ctx *x, const struct stripe_customer *sc)
{
    char why[256], owner[STRIPE_ID_MAX];
    struct customer c;
    enum err err;

    if (!user_from_metadata(x, sc, &c, why, sizeof(why)))
        return skip(x, sc, why);
    err = user_owner(x, c.user_id, owner);
    if (err) {
        x->tot->failed++;
        fprintf(x->out, "%s: cannot read the customer of user %s (%s)\n", sc->id, c.user_id,
                err_name(err));
        return err;
    }
    if (owner[0])
        return skip_owned(x, sc, c.user_id, owner);
    return x->o->dry_run ? linked(x, &c) : link_customer(x, sc, &c);
}

/* Every customer */

/*
 * Syncs the stored customer behind one Stripe customer; one that is not stored is imported with
 * --import, else skipped.
 */
static enum err sync_listed(struct sync_ctx *x, const struct stripe_customer *sc)
{
    struct customer c;
    enum err err;

    if (sc->deleted)
        return x->o->import ? skip(x, sc, "deleted customer") : ERR_OK;
    err = store_customer_get_by_stripe_id(x->st, sc->id, &c);
    if (err == ERR_NOT_FOUND)
        return x->o->import ? import_customer(x, sc) : ERR_OK;
    if (err) {
        x->tot->failed++;
        fprintf(x->out, "%s: cannot read the stored customer (%s)\n", sc->id, err_name(err));
        return err;
    }
    return sync_customer(x, &c);
}

/* Walks Stripe's customers page by page: the store has no list of its customers. */
static enum err sync_all(struct sync_ctx *x)
{
    char after[STRIPE_ID_MAX] = "";
    struct stripe_customer_page page;
    struct stripe_error se;
    enum err first = ERR_OK, err;
    bool more = false;

    do {
        err = stripe_customer_list(x->sc, NULL, after[0] ? after : NULL, PAGE_LIMIT, &page, &se);
        if (err) {
            fprintf(x->out, "cannot list customers at stripe (%s): %s\n", err_name(err),
                    se.message);
            return first ? first : err;
        }
        for (size_t i = 0; i < page.len; i++)
            if ((err = sync_listed(x, &page.data[i])) && !first)
                first = err;
        more = page.has_more && page.last_id[0];
        (void)str_copy(after, sizeof(after), page.last_id); /* both STRIPE_ID_MAX */
        stripe_customer_page_release(&page);
    } while (more);
    return first;
}

static enum err sync_user(struct sync_ctx *x, const char *user_id)
{
    struct customer c;
    enum err err = store_customer_get(x->st, user_id, &c);

    if (err) {
        fprintf(x->out, "user %s: %s\n", user_id,
                err == ERR_NOT_FOUND ? "no stored customer" : err_name(err));
        return err;
    }
    return sync_customer(x, &c);
}

static void print_totals(const struct sync_ctx *x)
{
    const struct sync_totals *t = x->tot;
    bool dry = x->o->dry_run;

    if (x->o->import)
        fprintf(x->out, "%s: %d %s, %d skipped\n", dry ? "would import" : "imported", t->linked,
                dry ? "to link" : "linked", t->skipped);
    fprintf(x->out,
            "%s %d customer(s): %d subscription(s), %d %s, %d invoice(s), %d %s, %d failed%s\n",
            dry ? "dry run over" : "synced", t->customers, t->subscriptions, t->repaired,
            count_word(x), t->invoices, t->invoices_repaired, count_word(x), t->failed,
            dry ? "; nothing was written" : "");
}

enum err sync_run(struct store *st, struct stripe_client *sc, const struct tier_catalog *cat,
                  const struct sync_options *o, FILE *out, struct sync_totals *tot)
{
    struct sync_ctx x = { .st = st, .sc = sc, .cat = cat, .o = o, .out = out, .tot = tot };
    enum err err;

    memset(tot, 0, sizeof(*tot));
    if (o->dry_run)
        fprintf(out, "dry run: nothing is written\n");
    err = o->user_id ? sync_user(&x, o->user_id) : sync_all(&x);
    if (!o->dry_run) {
        int n = duplicates_resolve(st, sc, cat, 8); /* a second live subscription: undone */
        if (n > 0)
            fprintf(out, "canceled and refunded %d duplicate subscription(s)\n", n);
    }
    print_totals(&x);
    free(x.planned);
    return err;
}
