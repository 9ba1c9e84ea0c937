/* help.c: one table of every command's help, printed by `subgate --help` and `subgate help X`. */
#include "api/help.h"

#include <string.h>

#include "base/base.h"

#define CONFIG_NOTE                                                                         \
    "Configuration comes from the environment and ./.env (the environment wins); see the\n" \
    "README's Configuration table or subgate(8).\n"

#define DB_ENV "  DATABASE_URL     sqlite:PATH (default sqlite:var/subgate.db) or postgres://...\n"

struct command_help {
    const char *name;
    const char *usage;   /* its usage lines, the second and later indented under the first */
    const char *summary; /* one line for the list */
    const char *details; /* description, arguments, environment, examples */
};

/* clang-format off */
static const struct command_help helps[] = {
    { "serve", "subgate serve", "run the HTTP service (applies pending migrations first)",
      "Applies pending migrations, then serves the API on LISTEN until SIGTERM or SIGINT,\n"
      "after which it finishes requests in flight (up to 10 s) and exits 0.\n"
      "\nenvironment (the main variables):\n"
      "  LISTEN           address:port to serve on (default 127.0.0.1:8080)\n"
      DB_ENV
      "  JWT_SECRET       HS256 secret of user tokens (or JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL,\n"
      "                   JWT_JWKS_FILE: exactly one of the four)\n"
      "  SERVICE_API_KEYS comma-separated keys of the app's back ends\n"
      "  STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, STRIPE_PREMIUM_PRICE_ID, STRIPE_PLUS_PRICE_ID\n"
      "  LOG_LEVEL        debug, info (default), warn, error\n"
      "\nexit status: 0 after SIGTERM or SIGINT, 1 when it cannot start (a bad variable, the\n"
      "database, an address already taken: the message says which), 2 given an argument (it\n"
      "takes none)\n"
      "\nexamples:\n"
      "  subgate serve\n"
      "  LISTEN=0.0.0.0:8080 DATABASE_URL=sqlite:/var/lib/subgate/subgate.db subgate serve\n" },
    { "migrate", "subgate migrate", "apply pending database migrations and exit",
      "Applies the migrations compiled into the binary that the database lacks, then prints\n"
      "how many it applied and the schema version.\n"
      "\nenvironment:\n" DB_ENV
      "\nexample:\n"
      "  DATABASE_URL=postgres://subgate@db/subgate subgate migrate\n" },
    { "sync",
      "subgate sync [--user ID] [--dry-run]\n"
      "       subgate sync --import [--import-key KEY] [--dry-run]",
      "pull subscriptions and invoices from Stripe, repair drift, report it",
      "Walks Stripe's customers (or the one of --user ID), stores what the local view lacks or\n"
      "has out of step, and prints a line per repair and per customer, then the totals.\n"
      "\narguments:\n"
      "  --user ID          only that user's stored customer\n"
      "  --dry-run          read and report what would change; write nothing\n"
      "  --import           also link Stripe customers never stored, by their metadata\n"
      "  --import-key KEY   the metadata key naming the user (default user_id)\n"
      "\nenvironment:\n"
      "  STRIPE_SECRET_KEY (required), STRIPE_API_BASE, the STRIPE_*_PRICE_ID variables,\n"
      "  TIERS_FILE, DATABASE_URL, APP_WEBHOOK_URL (repairs send outgoing events)\n"
      "\nexit status: 0 all synced, 1 a customer failed or the configuration is incomplete,\n"
      "2 a usage error\n"
      "\nexamples:\n"
      "  subgate sync --dry-run\n"
      "  subgate sync --user user_123\n" },
    { "events", "subgate events [--failed] [--limit N]\n       subgate events replay ID",
      "list received webhook events, or apply a stored one again",
      "Lists the most recent (or only the failed) Stripe webhook events, newest first: id, type,\n"
      "created, status, attempts, last error. `replay ID` applies a stored event again\n"
      "(idempotent for one applied before).\n"
      "\narguments:\n"
      "  --failed     only events that failed to apply\n"
      "  --limit N    at most N lines, 1-1000 (default 20)\n"
      "  replay ID    the event to apply again (evt_...)\n"
      "\nenvironment:\n" DB_ENV
      "  TIERS_FILE, APP_WEBHOOK_URL (a replay's changes send outgoing events)\n"
      "\nexamples:\n"
      "  subgate events --failed\n"
      "  subgate events replay evt_1NqQ...\n" },
    { "outbox",
      "subgate outbox [--failed] [--limit N]\n       subgate outbox show ID\n"
      "       subgate outbox replay ID",
      "list events sent to the app, show one, or send one again",
      "Lists the outgoing events (APP_WEBHOOK_URL), newest first: id, type, created, status,\n"
      "attempts, last error. `show ID` prints one with its payload; `replay ID` makes it due\n"
      "again, so it is sent once more.\n"
      "\narguments:\n"
      "  --failed     only events given up on\n"
      "  --limit N    at most N lines, 1-1000 (default 20)\n"
      "\nenvironment:\n" DB_ENV
      "\nexamples:\n"
      "  subgate outbox --failed\n"
      "  subgate outbox replay evt_3f1c...\n" },
    { "user", "subgate user [--] ID", "everything about one user, for support",
      "Prints one user's Stripe customer, subscription and plan change in flight, the tier in\n"
      "force and its source, grants, usage per quota window, extra units and balances, the last\n"
      "usage ledger entries, last invoices, the recent webhook events naming the user or their\n"
      "customer, and the outgoing events about the user with their delivery state.\n"
      "\narguments:\n"
      "  ID    the user id (a token's sub); after --, it may start with '-'\n"
      "\nenvironment:\n" DB_ENV
      "  TIERS_FILE, PAST_DUE_GRACE_DAYS\n"
      "\nexample:\n"
      "  subgate user user_123\n" },
    { "check-config", "subgate check-config", "print the effective configuration, secrets redacted",
      "Prints every variable's effective value (secrets redacted) and where it came from\n"
      "(environment, .env, default), then whether the configuration can serve. Exits 0 when it\n"
      "can, 1 otherwise.\n"
      "\nenvironment: every variable serve reads.\n"
      "\nexample:\n"
      "  subgate check-config\n" },
    { "token", "subgate token USER [EMAIL] [TTL_S]", "mint a development user token (HS256)",
      "Prints an HS256 user token signed with JWT_SECRET, for trying the API; production\n"
      "tokens come from the app's issuer.\n"
      "\narguments:\n"
      "  USER     the token's sub (the user id)\n"
      "  EMAIL    its email claim (optional; \"\" for none)\n"
      "  TTL_S    seconds it lives, 1-31536000 (default 3600)\n"
      "\nenvironment:\n"
      "  JWT_SECRET (required), JWT_ISSUER, JWT_AUDIENCE\n"
      "\nexample:\n"
      "  TOKEN=$(subgate token user_123 user@example.com)\n"
      "  curl -H \"Authorization: Bearer $TOKEN\" localhost:8080/api/v1/payments/subscription\n" },
    { "version", "subgate version", "print the version", "Prints \"subgate VERSION\". Reads no configuration.\n" },
    { "help", "subgate help [COMMAND]\n       subgate COMMAND --help", "list the commands, or show one command's help",
      "Without COMMAND, lists every command; with it, prints that command's usage, arguments,\n"
      "environment and examples. `subgate COMMAND --help` does the same.\n"
      "\nexamples:\n"
      "  subgate --help\n"
      "  subgate help sync\n" },
};

/* clang-format on */

static const struct command_help *find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(helps); i++)
        if (strcmp(helps[i].name, name) == 0)
            return &helps[i];
    return NULL;
}

void help_print_commands(FILE *out)
{
    fprintf(out, "usage: subgate COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(helps); i++)
        fprintf(out, "  %-13s %s\n", helps[i].name, helps[i].summary);
    fprintf(out,
            "\n'subgate help COMMAND' or 'subgate COMMAND --help' shows a command's help.\n"
            "%s",
            CONFIG_NOTE);
}

bool help_print_command(const char *name, FILE *out)
{
    const struct command_help *h = find(name);

    if (!h)
        return false;
    fprintf(out, "usage: %s\n\n%s\n%s", h->usage, h->summary, h->details);
    if (strcmp(h->name, "version") != 0 && strcmp(h->name, "help") != 0)
        fprintf(out, "\n%s", CONFIG_NOTE);
    return true;
}
