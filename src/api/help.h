/*
 * help.h: the text of `subgate --help` (every command, one line each) and of `subgate help
 * COMMAND` (its usage, arguments, the environment it reads, examples). main.c runs the commands.
 */
#ifndef SUBGATE_API_HELP_H
#define SUBGATE_API_HELP_H

#include <stdbool.h>
#include <stdio.h>

/* Prints the usage line and every command with its one-line summary to out. */
void help_print_commands(FILE *out);

/* Prints the help of the command named name to out; false (nothing printed) when none is. */
bool help_print_command(const char *name, FILE *out);

#endif /* SUBGATE_API_HELP_H */
