/*
 * events_cli.h: `subgate events`: the webhook inbox for operators (list recent or failed
 * events, replay one). main.c wires it; the work happens here so main.c stays wiring.
 */
#ifndef SUBGATE_API_EVENTS_CLI_H
#define SUBGATE_API_EVENTS_CLI_H

#include <stdio.h>

struct store;
struct tier_catalog;

#define EVENTS_CLI_LIMIT_MAX 1000 /* --limit N accepts 1..this; the default is 20 */

/*
 * Runs one events command; argv[0] is "events":
 *   events [--failed] [--limit N]   lists the most recent (or failed) events, newest first:
 *                                   id, type, created, status, attempts, last_error;
 *   events replay ID                applies the stored event ID again (webhook_ingest in
 *                                   replay mode: idempotent for an event applied before).
 * Writes results to out and errors to err, one line each. Returns the exit status: 0 on
 * success, 1 when the command failed, 2 on a usage error.
 */
int events_cli_run(struct store *st, const struct tier_catalog *cat, int argc, char **argv,
                   FILE *out, FILE *err);

#endif /* SUBGATE_API_EVENTS_CLI_H */
