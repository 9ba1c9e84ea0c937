/* t.h: a tiny TAP harness for unit tests; typed asserts print both values on failure. */
#ifndef SUBGATE_TESTS_T_H
#define SUBGATE_TESTS_T_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"

static int t_count;
static int t_failed;

static void t_result(int ok, const char *what, const char *file, int line)
{
    t_count++;
    if (!ok)
        t_failed++;
    printf("%sok %d - %s\n", ok ? "" : "not ", t_count, what);
    if (!ok)
        printf("#   failed at %s:%d\n", file, line);
}

#define T_OK(cond, ...)                                  \
    do {                                                 \
        char t_what_[512];                               \
        snprintf(t_what_, sizeof(t_what_), __VA_ARGS__); \
        t_result(!!(cond), t_what_, __FILE__, __LINE__); \
    } while (0)

#define T_EQ_I64(got, want, ...)                                     \
    do {                                                             \
        long long t_g_ = (long long)(got), t_w_ = (long long)(want); \
        T_OK(t_g_ == t_w_, __VA_ARGS__);                             \
        if (t_g_ != t_w_)                                            \
            printf("#   got %lld, want %lld\n", t_g_, t_w_);         \
    } while (0)

#define T_EQ_STR(got, want, ...)                                               \
    do {                                                                       \
        const char *t_g_ = (got), *t_w_ = (want);                              \
        int t_same_ = (t_g_ && t_w_) ? strcmp(t_g_, t_w_) == 0 : t_g_ == t_w_; \
        T_OK(t_same_, __VA_ARGS__);                                            \
        if (!t_same_)                                                          \
            printf("#   got \"%s\", want \"%s\"\n", t_g_ ? t_g_ : "(null)",    \
                   t_w_ ? t_w_ : "(null)");                                    \
    } while (0)

/* Ends main(): prints the plan and returns the exit status. */
static inline int t_done(void)
{
    printf("1..%d\n", t_count);
    return t_failed ? 1 : 0;
}

#endif /* SUBGATE_TESTS_T_H */
