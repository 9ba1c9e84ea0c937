/* file.h: reading a whole small file (configuration, keys, tiers) with a size cap. */
#ifndef SUBGATE_BASE_FILE_H
#define SUBGATE_BASE_FILE_H

#include <stddef.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/err.h"

/*
 * Appends the contents of path to out (initialized by the caller, whose cap applies).
 * ERR_NOT_FOUND when the file does not exist, ERR_TOO_LARGE past the cap, ERR_INVALID for
 * other failures; errbuf gets one line naming the file and the cause.
 */
MUST_CHECK enum err file_read_all(const char *path, struct buf *out, char *errbuf, size_t errlen);

#endif /* SUBGATE_BASE_FILE_H */
