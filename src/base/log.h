/* log.h: leveled logging to stderr; checks the level before formatting (rule 46). */
#ifndef SUBGATE_BASE_LOG_H
#define SUBGATE_BASE_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
    LOG_OFF,
};

extern enum log_level log_min_level;

void log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

/*
 * Writes one preformatted line (a request's JSON log line) whole to stderr: at once, or
 * through the thread's buffer between log_start() and log_stop().
 */
void log_line(const char *line, size_t len);

/* Starts the log thread: lines are buffered per thread from now on. false: not started. */
bool log_start(void);

/* Writes out every buffered line and stops the log thread; later lines are written at once. */
void log_stop(void);

/* Parses "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int log_level_parse(const char *s);

#define LOG_AT(lvl, ...)                                       \
    do {                                                       \
        if ((lvl) >= log_min_level)                            \
            log_write((lvl), __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)

#endif /* SUBGATE_BASE_LOG_H */
