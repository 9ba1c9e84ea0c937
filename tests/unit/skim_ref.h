/*
 * skim_ref.h: the reference stripe_skim_parse is held to, for test_skim and fuzz_skim:
 * jansson's whole tree (json_loadb with JSON_REJECT_DUPLICATES) with the members that are not
 * kept removed the way skim.h says (at every object reached through kept members and arrays).
 */
#ifndef SUBGATE_TESTS_SKIM_REF_H
#define SUBGATE_TESTS_SKIM_REF_H

#include <stdbool.h>
#include <string.h>

#include <jansson.h>

static bool skim_ref_kept(const char *key, const char *const *keep, size_t nkeep)
{
    for (size_t i = 0; i < nkeep; i++)
        if (strcmp(key, keep[i]) == 0)
            return true;
    return false;
}

/* A new tree: j (not changed; jansson's iteration macros want it mutable) with, in every object,
 * only the kept members. */
static json_t *skim_ref_filter(json_t *j, const char *const *keep, size_t nkeep)
{
    const char *key;
    json_t *v, *out;
    size_t i;

    if (json_is_object(j)) {
        out = json_object();
        json_object_foreach(j, key, v) if (skim_ref_kept(key, keep, nkeep))
            json_object_set_new(out, key, skim_ref_filter(v, keep, nkeep));
        return out;
    }
    if (json_is_array(j)) {
        out = json_array();
        json_array_foreach(j, i, v) json_array_append_new(out, skim_ref_filter(v, keep, nkeep));
        return out;
    }
    return json_deep_copy(j);
}

#endif /* SUBGATE_TESTS_SKIM_REF_H */
