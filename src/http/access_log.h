/*
 * access_log.h: the one JSON log line of each request (STYLE rule 46): its level follows the
 * status (info, warn for 4xx, error for 5xx), an error answer's line carries the answer's error
 * code, and a path no route matched is logged, escaped, bounded and without what looks like a
 * token.
 */
#ifndef SUBGATE_HTTP_ACCESS_LOG_H
#define SUBGATE_HTTP_ACCESS_LOG_H

#include <stddef.h>

#include "http/request.h"

#define ACCESS_LOG_LINE_MAX 1024 /* a line is cut to this, its JSON still whole */
#define ACCESS_LOG_PATH_MAX 200  /* bytes of an unmatched path that are logged */

/*
 * Formats the line of req answered with status (0: dropped without an answer) into buf, which
 * holds ACCESS_LOG_LINE_MAX bytes; returns its length, the final newline included.
 */
size_t access_log_format(const struct request *req, int status, char *buf);

/* Writes that line through log_line when its level is at or above log_min_level. */
void access_log_write(const struct request *req, int status);

#endif /* SUBGATE_HTTP_ACCESS_LOG_H */
