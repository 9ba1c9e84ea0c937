/* base.h: attributes and small macros every module uses; includes banned.h. */
#ifndef SUBGATE_BASE_BASE_H
#define SUBGATE_BASE_BASE_H

/*
 * The libc headers that banned.h overrides come first, so their own (fortified) definitions are
 * parsed before the bans take effect.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Discard a MUST_CHECK result with "(void)!f()" and a comment: gcc ignores a bare (void). */
#define MUST_CHECK           __attribute__((warn_unused_result))
#define PRINTF_LIKE(fmt, va) __attribute__((format(printf, fmt, va)))
#define NORETURN             __attribute__((noreturn))
#define ARRAY_SIZE(a)        (sizeof(a) / sizeof((a)[0]))

#include "base/banned.h"

#endif /* SUBGATE_BASE_BASE_H */
