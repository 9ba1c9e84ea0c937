/* user_cli.h: `subgate user ID`, the support view of one user (user_cli.c). */
#ifndef SUBGATE_API_USER_CLI_H
#define SUBGATE_API_USER_CLI_H

#include <stdio.h>

struct api;

/*
 * The user id of `user ID` or `user -- ID` (an id may start with '-'); NULL on a usage error,
 * checked before anything is opened.
 */
const char *user_cli_arg(int argc, char **argv);

/* Prints the view of the user (user_cli_arg) to out; 0, 1 when the store fails, 2 on a usage error
 * (to err). */
int user_cli_run(const struct api *api, int argc, char **argv, FILE *out, FILE *err);

#endif /* SUBGATE_API_USER_CLI_H */
