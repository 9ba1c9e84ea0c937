/* strict.c: the edge's checks of a request's target and query (see strict.h). */
#include "http/strict.h"

#include <stdint.h>

#include "base/str.h"

bool strict_text_is_clean(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, len;

    while (i < n) {
        if (p[i] == 0)
            return false;
        len = str_utf8_len(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

bool strict_target_is_clean(const char *raw)
{
    for (; *raw; raw++)
        if (raw[0] == '%' && raw[1] == '0' && raw[2] == '0')
            return false;
    return true;
}
