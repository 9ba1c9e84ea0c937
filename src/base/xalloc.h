/* xalloc.h: allocation that aborts on out-of-memory, so no caller handles NULL (rule 30). */
#ifndef SUBGATE_BASE_XALLOC_H
#define SUBGATE_BASE_XALLOC_H

#include <stddef.h>

#include "base/base.h"

/* Each returns memory to release with free(); none returns NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size); /* overflow-checked */
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n); /* copies at most n bytes, always terminated */

#endif /* SUBGATE_BASE_XALLOC_H */
