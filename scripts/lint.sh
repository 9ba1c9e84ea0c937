#!/bin/sh
# lint.sh: `make lint`: include direction (STYLE rule 2) in src/ and emulator/, clang-tidy and
# cppcheck over both.
set -u
cd "$(dirname "$0")/.."
status=0

# Which project folders each folder may include; anything else is a layering violation.
allowed() {
    case $1 in
    base) echo "base" ;;
    billing) echo "base billing" ;;
    config) echo "base config" ;;
    http) echo "base http metrics" ;;
    metrics) echo "base metrics" ;;
    auth) echo "base auth billing" ;;
    store) echo "base store billing metrics" ;;
    stripe) echo "base stripe billing" ;;
    api) echo "base api auth billing config http metrics store stripe" ;;
    *) echo "*" ;;
    esac
}
for f in $(find src -name '*.[ch]' ! -path 'src/main.c'); do
    dir=$(echo "$f" | cut -d/ -f2)
    ok=$(allowed "$dir")
    [ "$ok" = "*" ] && continue
    for inc in $(sed -n 's/^#include "\([a-z_]*\)\/.*"/\1/p' "$f"); do
        case " $ok " in
        *" $inc "*) ;;
        *) echo "layering: $f includes $inc/ (allowed: $ok)"; status=1 ;;
        esac
    done
done

# The emulator may use base/ and http/ only.
for f in emulator/*.[ch]; do
    [ -f "$f" ] || continue
    for inc in $(sed -n 's/^#include "\([a-z_]*\)\/.*"/\1/p' "$f"); do
        case $inc in
        base | http) ;;
        *) echo "layering: $f includes $inc/ (allowed: base http)"; status=1 ;;
        esac
    done
done

# The emulator's layers, bottom up ("|" between layers): a file includes its own header and
# headers of lower layers only, so no module calls into one that calls it (docs/ARCHITECTURE.md).
# api_handlers.h declares the handlers of api_objects.c and api_billing.c, one layer up.
emu_layers="state params form faults idempotency webhooks | objects emu | billing call |
    api_handlers | api_objects api_billing pages | api | control | persist | dispatch | main"
emu_layer() {
    n=0
    for w in $emu_layers; do
        case $w in
        "|") n=$((n + 1)) ;;
        "$1") echo $n && return ;;
        esac
    done
    echo -1
}
for f in emulator/*.[ch]; do
    [ -f "$f" ] || continue
    m=$(basename "$f")
    m=${m%.?}
    lm=$(emu_layer "$m")
    if [ "$lm" -lt 0 ]; then
        echo "layering: $f is in no emulator layer (add it to emu_layers in scripts/lint.sh)"
        status=1
        continue
    fi
    for h in $(sed -n 's/^#include "\([a-z_]*\)\.h".*/\1/p' "$f"); do
        if [ "$h" != "$m" ] && [ "$(emu_layer "$h")" -ge "$lm" ]; then
            echo "layering: $f includes $h.h, which is not in a lower emulator layer"
            status=1
        fi
    done
done

srcs="$(find src emulator -name '*.c')"
PQ_INC=$(pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
if command -v clang-tidy >/dev/null 2>&1; then
    clang-tidy --quiet $srcs -- -std=c17 -D_GNU_SOURCE -Isrc $PQ_INC 2>/dev/null | grep -E 'warning:|error:' && status=1
fi
if command -v cppcheck >/dev/null 2>&1; then
    cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
        --inline-suppr --suppress=missingIncludeSystem -Isrc $PQ_INC $srcs || status=1
fi
[ $status = 0 ] && echo "lint: clean"
exit $status
