/* file.c: whole-file reads. */
#include "base/file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum err file_read_all(const char *path, struct buf *out, char *errbuf, size_t errlen)
{
    char chunk[8192];
    enum err err = ERR_OK;
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f) {
        snprintf(errbuf, errlen, "cannot read '%s': %s", path, strerror(errno));
        return errno == ENOENT ? ERR_NOT_FOUND : ERR_INVALID;
    }
    while (!err && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        err = buf_append(out, chunk, n);
    if (err == ERR_TOO_LARGE)
        snprintf(errbuf, errlen, "cannot read '%s': larger than %zu bytes", path, out->max);
    else if (!err && ferror(f)) {
        snprintf(errbuf, errlen, "cannot read '%s': %s", path, strerror(errno));
        err = ERR_INVALID;
    }
    fclose(f);
    return err;
}
