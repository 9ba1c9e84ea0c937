/*
 * skim.h: reads a JSON document and builds only the members subgate uses. A webhook event
 * is a few kilobytes of which the readers need a few dozen values; jansson would allocate a
 * node, a key and often a string for every member. stripe_skim_parse checks the whole text
 * as json_loadb(JSON_REJECT_DUPLICATES) does (grammar, UTF-8, escapes, no NUL in a string,
 * integers that fit 64 bits, one object at the top) but builds a member of an object only when
 * its key is one of keep[], and skips everything under a key that is not, allocating nothing
 * for it. The tree it returns is json_loadb's tree with those members removed (json_equal).
 * Differences: nesting deeper than STRIPE_SKIM_DEPTH_MAX is refused, a duplicate key is found
 * only among the members of objects that are built, and a NUL byte is refused wherever it is
 * (jansson 2.14 lets one through right after a number or a literal).
 */
#ifndef SUBGATE_STRIPE_SKIM_H
#define SUBGATE_STRIPE_SKIM_H

#include <stddef.h>

#include <jansson.h>

#define STRIPE_SKIM_DEPTH_MAX 128

/*
 * The document's top-level object with only the kept members (every member of an array that
 * is kept is built, objects in it filtered the same way). NULL when the text is not valid
 * JSON or not an object; then errbuf[errlen] says where ("at byte N: why"). keep[] is sorted
 * in strcmp order (it is searched by halves); a name out of order may be missed.
 */
json_t *stripe_skim_parse(const char *text, size_t len, const char *const *keep, size_t nkeep,
                          char *errbuf, size_t errlen);

#endif /* SUBGATE_STRIPE_SKIM_H */
