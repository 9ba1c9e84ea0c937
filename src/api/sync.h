/*
 * sync.h: `subgate sync`: pulls stored customers' subscriptions and invoices from Stripe, page
 * by page, and repairs the local view through the store's atomic operations, so it is safe to
 * run while the service is serving. --dry-run reports the same without writing; --import first
 * links the Stripe customers subgate never stored to users named by their metadata.
 */
#ifndef SUBGATE_API_SYNC_H
#define SUBGATE_API_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base/base.h"
#include "base/err.h"

struct store;
struct stripe_client;
struct tier_catalog;

#define SYNC_IMPORT_KEY_DEFAULT "user_id" /* the key subgate itself sets on its customers */
#define SYNC_IMPORT_KEY_MAX     40        /* Stripe's longest metadata key */
#define SYNC_USAGE                                  \
    "usage: subgate sync [--user ID] [--dry-run]\n" \
    "       subgate sync --import [--import-key KEY] [--dry-run]"

/* What a run is asked to do: sync's flags. Strings are borrowed from argv. */
struct sync_options {
    const char *user_id;    /* --user: only that user's customer; NULL for every customer */
    bool dry_run;           /* --dry-run: read and report what would change, write nothing */
    bool import;            /* --import: link Stripe customers not stored, by metadata */
    const char *import_key; /* --import-key: the metadata key naming the user */
};

/* What sync_options_parse found. */
enum sync_args {
    SYNC_ARGS_OK,   /* *o holds the options */
    SYNC_ARGS_HELP, /* --help or -h: print SYNC_USAGE and exit 0 */
    SYNC_ARGS_BAD,  /* a usage error, said in errbuf: print it and SYNC_USAGE, exit 2 */
};

/*
 * Parses sync's arguments (argv[0] is "sync"): --user ID (a user id as a token's `sub` may be:
 * 1 to 255 bytes), --dry-run, --import, --import-key KEY (1 to 40 bytes without '[' or ']',
 * only with --import; default SYNC_IMPORT_KEY_DEFAULT), --help. --import walks every customer,
 * so it is refused with --user. Each flag at most once.
 */
enum sync_args sync_options_parse(int argc, char **argv, struct sync_options *o, char *errbuf,
                                  size_t errlen);

/* What a run did (or, in a dry run, would do), summed over the customers it saw. */
struct sync_totals {
    int customers;         /* stored (or, with --import, linked) customers synced */
    int subscriptions;     /* subscriptions read from Stripe */
    int repaired;          /* subscriptions stored because the local view differed or lacked them */
    int invoices;          /* invoices read from Stripe */
    int invoices_repaired; /* invoices stored because the local view differed or lacked them */
    int failed;            /* customers whose sync stopped on an error */
    int linked;            /* --import: customers linked to a user */
    int skipped;           /* --import: customers not stored that could not be linked */
};

/*
 * Syncs one user's customer (o->user_id) or every customer that is both at Stripe and in the
 * store, and with o->import, first links each Stripe customer that is not stored to the user
 * its metadata[o->import_key] names, then syncs it too. Prints to out, one line each:
 *   "linked cus_... to user U"                        --import
 *   "skipped cus_...: REASON"                         --import: no such metadata key, not a user
 *                                                     id, the user already linked to another
 *                                                     customer, a deleted customer
 *   "  repaired sub_... (user U): status 'S', tier 'T'[, cancels at period end]"
 *   "  repaired in_... (user U): invoice status 'S', amount_paid N CUR"
 *   "cus_... user U: N subscription(s), R repaired, K invoice(s), J repaired"
 *   a line per failure, then the totals:
 *   "imported: L linked, K skipped"                   --import
 *   "synced N customer(s): S subscription(s), R repaired, K invoice(s), J repaired, F failed"
 * With o->dry_run nothing is written (no link, subscription, invoice or trial mark), and the
 * lines say what would be: "dry run: nothing is written" first, "would link", "would repair",
 * "N to repair", "would import: L to link, K skipped" and "dry run over N customer(s): ...".
 * What would be repaired is decided as a write decides it (glue_*_would_change).
 * Errors: ERR_NOT_FOUND when o->user_id has no stored customer; otherwise the first error met
 * (ERR_UNAVAILABLE, ERR_UPSTREAM, ERR_CONFLICT, ERR_STORE...), after trying every customer. A
 * customer --import skips is no error.
 */
MUST_CHECK enum err sync_run(struct store *st, struct stripe_client *sc,
                             const struct tier_catalog *cat, const struct sync_options *o,
                             FILE *out, struct sync_totals *tot);

#endif /* SUBGATE_API_SYNC_H */
