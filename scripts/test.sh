#!/bin/bash
# test.sh [--only unit|integration|python|fuzz|gates] FLAVOR...: builds each flavor (release,
# asan, fuzz; 'gates' is format-check and lint) and
# runs its tests (the Python client's with the release build's integration tests, or alone with
# --only python), counting every TAP "ok"/"not ok" line; ends with "N passed, N failed" and
# exits non-zero on any failure. Logs go to build/test-logs/.
set -u
cd "$(dirname "$0")/.."
only=""
if [ "${1:-}" = "--only" ]; then only=$2; shift 2; fi
[ $# -gt 0 ] || set -- release
passed=0
failed=0
logs=build/test-logs
mkdir -p "$logs"
jobs=$(nproc 2>/dev/null || echo 2)

# count NAME LOGFILE EXIT: adds a TAP log's results; a non-zero exit with no "not ok" line
# (a crash, a sanitizer report) counts as one more failure. Node's runner nests its tests in
# suites, so its own "# pass N" / "# fail N" totals count there.
count() {
    local name=$1 log=$2 rc=$3 ok bad
    if grep -qE '^# pass [0-9]+$' "$log"; then
        ok=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)
        bad=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)
    else
        ok=$(grep -cE '^ok ' "$log")
        bad=$(grep -cE '^not ok ' "$log")
    fi
    if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; echo "not ok - $name exited with status $rc" >>"$log"; fi
    if [ "$ok" = 0 ] && [ "$bad" = 0 ]; then bad=1; echo "not ok - $name ran no test" >>"$log"; fi
    passed=$((passed + ok))
    failed=$((failed + bad))
    if [ "$bad" != 0 ]; then
        echo "FAIL $name: $ok passed, $bad failed (log: $log)"
        grep -E -A12 '^ *not ok |ERROR: |runtime error' "$log" | head -80
    else
        echo "ok   $name: $ok passed"
    fi
}

build() {
    local flavor=$1 target=$2 cc=${3:-cc}
    if ! make -s -j"$jobs" FLAVOR="$flavor" CC="$cc" $target >"$logs/build-$flavor.log" 2>&1; then
        echo "FAIL build ($flavor): see $logs/build-$flavor.log"
        tail -30 "$logs/build-$flavor.log"
        failed=$((failed + 1))
        return 1
    fi
}

run_units() {
    local flavor=$1 bin log rc
    for bin in build/$flavor/tests/unit/test_* build/$flavor/tests/contract/test_* \
        build/$flavor/tests/integration/test_*; do
        [ -x "$bin" ] || continue
        name="$(basename "$(dirname "$bin")")/$(basename "$bin")"
        log="$logs/$flavor-${name%%/*}-$(basename "$bin").tap"
        EMULATOR_BIN="build/$flavor/stripe-emulator" "$bin" >"$log" 2>&1
        rc=$?
        count "$flavor $name" "$log" "$rc"
    done
}

# run_integration FLAVOR [pg]: the Node suite on SQLite, or with "pg" on PostgreSQL (every
# test's database a fresh one on the run's throwaway server; multi-instance and outage tests
# run only then). Every answer the suite gets is recorded (SUBGATE_OPENAPI_LOG) and checked
# against docs/openapi.json by zz_openapi.test.mjs, the last file of the run.
run_integration() {
    local flavor=$1 backend=${2:-sqlite} log="$logs/$1-integration-${2:-sqlite}.tap" rc pgurl=""
    local answers="$logs/$1-openapi-answers-${2:-sqlite}.jsonl"
    [ "$backend" = pg ] && pgurl=$PG_URL
    rm -f "$answers"
    SUBGATE_OPENAPI_LOG="$PWD/$answers" SUBGATE_TEST_PG_URL="$pgurl" SUBGATE_TEST_PG_DIR="" \
        SUBGATE_BIN="build/$flavor/subgate" EMULATOR_BIN="build/$flavor/stripe-emulator" \
        TOOLS_DIR="build/$flavor/tests/tools" node --test --test-reporter=tap \
        --test-concurrency=1 tests/integration/*.test.mjs >"$log" 2>&1
    rc=$?
    count "$flavor integration ($backend)" "$log" "$rc"
}

# run_python FLAVOR: the Python client's tests (clients/python/tests) with Debian's pytest,
# FastAPI and uvicorn (/usr/bin/python3, not a virtualenv's) against the flavor's binary. pytest's
# summary line ("2 failed, 13 passed, 1 error in 1.2s") becomes the "# pass N" / "# fail N"
# totals that count reads; errors count as failures, and a run with no summary (pytest or a
# package missing) fails by its exit status. Nothing is written into the tree.
run_python() {
    local flavor=$1 log="$logs/$1-python-client.log" rc summary ok bad
    PYTHONDONTWRITEBYTECODE=1 SUBGATE_BIN="build/$flavor/subgate" \
        "${PYTHON:-/usr/bin/python3}" -m pytest -q -p no:cacheprovider -rfE \
        clients/python/tests >"$log" 2>&1
    rc=$?
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|errors?|skipped)\b.* in [0-9.]+s' "$log" |
        tail -n 1)
    ok=$(echo "$summary" | sed -n 's/.*\b\([0-9][0-9]*\) passed.*/\1/p')
    bad=0
    for n in $(echo "$summary" | grep -oE '[0-9]+ (failed|errors?)' | cut -d' ' -f1); do
        bad=$((bad + n))
    done
    # pytest's own failure lines carry no TAP "not ok": mark them so count shows them.
    sed -i 's/^FAILED /not ok - FAILED /; s/^ERROR /not ok - ERROR /' "$log"
    printf '# pass %s\n# fail %s\n' "${ok:-0}" "$bad" >>"$log"
    count "$flavor python client" "$log" "$rc"
}

# A throwaway PostgreSQL server for the run (scripts/pg.sh), stopped on exit. Its failure to
# start counts as a failed test: the PostgreSQL suites are part of the suite.
PG_URL=""
PG_DIR=""
start_pg() {
    local port
    port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    PG_DIR=$(mktemp -d /tmp/subgate-pg-XXXXXX)
    if ! PG_URL=$(scripts/pg.sh start "$PG_DIR" "$port" 2>"$logs/pg.log"); then
        echo "FAIL postgres: could not start a throwaway server (log: $logs/pg.log)"
        tail -5 "$logs/pg.log"
        failed=$((failed + 1))
        PG_URL=""
        return 1
    fi
    trap 'scripts/pg.sh stop "$PG_DIR" >/dev/null 2>&1' EXIT
    echo "     postgres: throwaway server at ${PG_URL%%\?*}"
}

run_fuzz() {
    local secs=${FUZZ_SECONDS:-5} src name bin log rc scratch
    for src in tests/fuzz/fuzz_*.c; do
        [ -f "$src" ] || continue
        name=$(basename "$src" .c)
        bin="build/fuzz/tests/fuzz/$name"
        log="$logs/fuzz-$name.log"
        scratch=$(mktemp -d)
        mkdir -p "tests/fuzz/corpus/$name"
        # New inputs go to the scratch dir; the committed corpus is only read.
        "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$logs/$name-" "$scratch" "tests/fuzz/corpus/$name" >"$log" 2>&1
        rc=$?
        rm -rf "$scratch"
        if [ "$rc" = 0 ]; then echo "ok - $name" >>"$log"; fi
        count "fuzz $name (${secs}s)" "$log" "$rc"
    done
}

# Style gates count as one test each: formatting and lint (layering, clang-tidy, cppcheck).
run_gate() {
    local name=$1 log="$logs/$1.log" rc
    shift
    "$@" >"$log" 2>&1
    rc=$?
    [ "$rc" = 0 ] && echo "ok - $name" >>"$log"
    count "$name" "$log" "$rc"
}

for flavor in "$@"; do
    case $flavor in
    gates)
        [ -z "$only" ] || [ "$only" = gates ] || continue
        run_gate format-check make -s format-check
        run_gate lint scripts/lint.sh
        ;;
    fuzz)
        [ -z "$only" ] || [ "$only" = fuzz ] || continue
        build fuzz fuzzers clang && run_fuzz
        ;;
    *)
        build "$flavor" "all units" || continue
        [ "$only" = python ] || [ -n "$PG_URL" ] || [ -n "$PG_DIR" ] || start_pg || true
        if [ -z "$only" ] || [ "$only" = unit ]; then
            SUBGATE_TEST_PG_URL="$PG_URL" SUBGATE_TEST_PG_DIR="$PG_DIR" run_units "$flavor"
        fi
        if [ -z "$only" ] || [ "$only" = integration ]; then
            run_integration "$flavor"
            # The PostgreSQL pass of the Node suite runs on the release build (time).
            if [ "$flavor" = release ] && [ -n "$PG_URL" ]; then run_integration "$flavor" pg; fi
        fi
        # The Python client's tests run once, on the release build.
        if [ "$flavor" = release ] && { [ -z "$only" ] || [ "$only" = integration ] || [ "$only" = python ]; }; then
            run_python "$flavor"
        fi
        ;;
    esac
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
