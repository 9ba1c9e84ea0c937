/* router.c: linear match over the route table; a dozen routes need nothing cleverer. */
#include "http/router.h"

#include <stdio.h>
#include <string.h>

#include "base/str.h"

enum err router_match(const struct route *routes, size_t n, const char *method, const char *path,
                      const struct route **out, char *allow, size_t allow_len)
{
    bool path_seen = false;
    size_t used = 0;

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
        int w =
            snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", routes[i].method);
        if (w > 0 && (size_t)w < allow_len - used)
            used += (size_t)w;
    }
    return path_seen ? ERR_METHOD : ERR_NOT_FOUND;
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
