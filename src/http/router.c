/* router.c: linear match over the route table; a dozen routes need nothing cleverer. */
#include "http/router.h"

#include <stdio.h>
#include <string.h>

#include "base/str.h"

/* Appends ", name" (or "name" first) to the Allow list; a list that would not fit stops growing. */
static void allow_add(char *allow, size_t allow_len, size_t *used, const char *name)
{
    int w = snprintf(allow + *used, allow_len - *used, "%s%s", *used ? ", " : "", name);

    if (w > 0 && (size_t)w < allow_len - *used)
        *used += (size_t)w;
}

/* The methods of path's routes, in table order; HEAD after GET unless the table names HEAD. */
static void allow_list(const struct route *routes, size_t n, const char *path, char *allow,
                       size_t allow_len)
{
    bool head_listed = false;
    size_t used = 0;

    for (size_t i = 0; i < n; i++)
        if (strcmp(routes[i].path, path) == 0 && strcmp(routes[i].method, "HEAD") == 0)
            head_listed = true;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        allow_add(allow, allow_len, &used, routes[i].method);
        if (!head_listed && strcmp(routes[i].method, "GET") == 0)
            allow_add(allow, allow_len, &used, "HEAD");
    }
}

enum err router_match(const struct route *routes, size_t n, const char *method, const char *path,
                      const struct route **out, char *allow, size_t allow_len)
{
    const struct route *get = NULL; /* what a HEAD runs when the table has no HEAD route */
    bool path_seen = false;

    if (allow_len)
        allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            *out = &routes[i];
            return ERR_OK;
        }
        path_seen = true;
        if (!get && strcmp(routes[i].method, "GET") == 0)
            get = &routes[i];
    }
    if (get && strcmp(method, "HEAD") == 0) {
        *out = get;
        return ERR_OK;
    }
    if (!path_seen)
        return ERR_NOT_FOUND;
    if (allow_len)
        allow_list(routes, n, path, allow, allow_len);
    return ERR_METHOD;
}

bool router_path_match(const char *pattern, const char *path, char *id, size_t idlen)
{
    while (*pattern && *path) {
        if (*pattern == '*') {
            size_t n = strcspn(path, "/");
            if (n == 0 || n >= idlen)
                return false;
            str_copyn(id, idlen, path, n);
            path += n;
            pattern++;
        } else if (*pattern++ != *path++) {
            return false;
        }
    }
    return *pattern == '\0' && *path == '\0';
}
