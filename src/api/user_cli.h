/* user_cli.h: `subgate user ID`, the support view of one user (user_cli.c). */
#ifndef SUBGATE_API_USER_CLI_H
#define SUBGATE_API_USER_CLI_H

#include <stdio.h>

struct api;

/* Prints the view of argv[1] to out; 0, 1 when the store fails, 2 on a usage error (to err). */
int user_cli_run(const struct api *api, int argc, char **argv, FILE *out, FILE *err);

#endif /* SUBGATE_API_USER_CLI_H */
