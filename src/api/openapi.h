/*
 * openapi.h: the OpenAPI 3.1 document of the API (docs/openapi.json), compiled into the binary
 * by scripts/embed_file.sh (build/<flavor>/gen/openapi.c) and served at GET /openapi.json.
 */
#ifndef SUBGATE_API_OPENAPI_H
#define SUBGATE_API_OPENAPI_H

#include <stddef.h>

extern const char openapi_json[];      /* the document's bytes, NUL-terminated */
extern const size_t openapi_json_len;  /* its length, without the NUL */
extern const char openapi_json_etag[]; /* a strong ETag of the bytes, quotes included */

#endif /* SUBGATE_API_OPENAPI_H */
