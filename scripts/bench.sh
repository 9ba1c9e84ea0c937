#!/bin/bash
# bench.sh: `make bench` (issues #5 and #13; docs/benchmarks.md). Starts the release build on a
# fresh database in a temp dir with seeded premium and free users, and nginx serving a fixed
# small JSON body (bench/nginx.conf.in) as the yardstick, both pinned to one core; drives each
# with wrk pinned to the other core, on loopback; prints requests/s, p50/p99 latency, the ratio
# to nginx, the server's CPU time per request beside nginx's (utime+stime from /proc, which a
# noisy machine disturbs less than a rate) and its peak RSS (VmHWM), with PASS/MISS per target.
# By default it runs on SQLite, then again on a throwaway PostgreSQL (one instance), and ends
# with both side by side. An endpoint that is not there yet is reported as "not available yet".
# Everything started here is stopped on exit. Not part of the test command. Knobs
# (environment): BENCH_DURATION (5s), BENCH_CONNECTIONS (32), BENCH_USERS (64), BENCH_EVENTS
# (signed webhook events, 200000), BENCH_SERVER_CPU (0), BENCH_WRK_CPU (1), BENCH_HTTP_THREADS
# (subgate's default), BENCH_GROUP_COMMIT (subgate's STORE_GROUP_COMMIT, on|off),
# BENCH_WRITE_CONCURRENCY (subgate's WRITE_CONCURRENCY),
# BENCH_USAGE_LEDGER (subgate's USAGE_LEDGER, on|off),
# BENCH_LOG_LEVEL (info), BENCH_ROWS (the rows to run, of "pricing usage check consume
# webhooks"; all by default), BENCH_KEEP=1 keeps the temp dir, BENCH_PERF=1
# profiles subgate with perf during each run, BENCH_STRICT=1 exits 1 when a target is missed,
# and BENCH_{PRICING,CHECK,USAGE,CONSUME,WEBHOOK}_PATH, BENCH_CHECK_FEATURE, BENCH_QUOTA;
# BENCH_TIERS_EXAMPLE (docs/tiers.example.json) for a binary older than the catalogue's format.
# BENCH_DB=sqlite or postgres runs one database only (scripts/pg.sh, pinned with subgate);
# BENCH_INSTANCES=N (N >= 2) starts N subgate processes on that one PostgreSQL database behind
# a round-robin nginx (bench/nginx-lb.conf.in), all pinned with subgate, and drives that.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${SUBGATE_BIN:-build/release/subgate}
[ "${BIN#/}" != "$BIN" ] || BIN=$ROOT/$BIN
export BENCH_DIR=$ROOT/bench
INVOICE_JSON=${BENCH_INVOICE_JSON:-$ROOT/tests/fixtures/stripe/invoice.2023-08-16.json}
DURATION=${BENCH_DURATION:-5s}
CONNS=${BENCH_CONNECTIONS:-32}
USERS=${BENCH_USERS:-64}
EVENTS=${BENCH_EVENTS:-200000}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
WRK_CPU=${BENCH_WRK_CPU:-1}
PRICING_PATH=${BENCH_PRICING_PATH:-/api/v1/payments/pricing}
CHECK_PATH=${BENCH_CHECK_PATH:-/api/v1/access/check}
CHECK_FEATURE=${BENCH_CHECK_FEATURE:-unlimited_ai}
USAGE_PATH=${BENCH_USAGE_PATH:-/api/v1/payments/usage}
CONSUME_PATH=${BENCH_CONSUME_PATH:-/api/v1/access/consume}
QUOTA=${BENCH_QUOTA:-ai_minutes}
WEBHOOK_PATH=${BENCH_WEBHOOK_PATH:-/api/v1/payments/webhook}
PRICE_PREMIUM=price_bench_premium
PRICE_PLUS=price_bench_plus
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
DB=${BENCH_DB:-both}
INSTANCES=${BENCH_INSTANCES:-1}
ROWS=${BENCH_ROWS:-pricing usage check consume webhooks}
for name in $ROWS; do
    case $name in pricing | usage | check | consume | webhooks) ;;
    *) echo "bench: BENCH_ROWS holds '$name': the rows are pricing usage check consume webhooks" >&2; exit 1 ;;
    esac
done

# Both databases: this script once for each, then the two side by side.
if [ "$DB" = both ]; then
    [ "$INSTANCES" = 1 ] || { echo "bench: BENCH_INSTANCES needs BENCH_DB=postgres" >&2; exit 1; }
    sums=$(mktemp -d /tmp/subgate-bench-sum.XXXXXX)
    trap 'rm -rf "$sums"' EXIT
    rc=0
    for db in sqlite postgres; do
        BENCH_DB=$db BENCH_SUMMARY=$sums/$db "$0" || rc=1
    done
    echo
    echo "both databases, one instance (req/s, ratio to nginx in the same run, server CPU per request):"
    printf "%-10s %28s %28s\n" "endpoint" "SQLite" "PostgreSQL"
    for name in $ROWS; do
        printf "%-10s %28s %28s\n" "$name" \
            "$(awk -v n="$name" '$1 == n { printf "%s/s %sx %s us", $2, $3, $4 }' "$sums/sqlite" 2>/dev/null)" \
            "$(awk -v n="$name" '$1 == n { printf "%s/s %sx %s us", $2, $3, $4 }' "$sums/postgres" 2>/dev/null)"
    done
    exit $rc
fi

# The targets of issue #13: name, kind (ratio to nginx, or absolute requests/s), value; on
# PostgreSQL the write rows have absolute targets of their own.
TARGETS="pricing ratio 0.8
usage ratio 0.5
check ratio 0.5
consume ratio 0.35
webhooks rate 12000"
if [ "$DB" = postgres ]; then
    TARGETS="pricing ratio 0.8
usage ratio 0.5
check ratio 0.5
consume rate 10000
webhooks rate 5000"
fi
P99_TARGETS="consume 5000" # microseconds
RSS_TARGET_KIB=$((16 * 1024))

die() {
    echo "bench: $*" >&2
    exit 1
}

case $DB in sqlite | postgres) ;; *) die "BENCH_DB must be both, sqlite or postgres, not '$DB'" ;; esac
case $INSTANCES in [1-9]) ;; *) die "BENCH_INSTANCES must be 1-9, not '$INSTANCES'" ;; esac
[ "$INSTANCES" = 1 ] || [ "$DB" = postgres ] || die "several instances need BENCH_DB=postgres"
[ "$DB" = sqlite ] || command -v psql >/dev/null 2>&1 || die "needs psql (Debian postgresql-client)"
for tool in wrk taskset python3 sqlite3 curl; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool (make bench installs it: scripts/deps.sh --bench)"
done
[ -x "$NGINX" ] || die "needs nginx (scripts/deps.sh --bench)"
[ -x "$BIN" ] || die "no $BIN: build it first (make FLAVOR=release)"
[ -f "$INVOICE_JSON" ] || die "no Stripe invoice fixture at $INVOICE_JSON (set BENCH_INVOICE_JSON)"

TMP=$(mktemp -d /tmp/subgate-bench.XXXXXX)
SRV_PID=""
SRV_PIDS=""
NGX_PID=""
LB_PID=""
PG_DIR=""
cleanup() {
    local pid
    for pid in $SRV_PIDS $NGX_PID $LB_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $SRV_PIDS $NGX_PID $LB_PID; do
        wait "$pid" 2>/dev/null || true
    done
    [ -z "$PG_DIR" ] || scripts/pg.sh stop "$PG_DIR" || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rand_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# subgate's whole environment: nothing inherited but PATH, and run from $TMP, so neither the
# caller's variables nor the repository's .env leak in.
JWT_SECRET=bench-$(rand_hex 32)
SERVICE_KEY=sk_svc_bench_$(rand_hex 16)
WEBHOOK_SECRET=whsec_bench_$(rand_hex 16)
SRV_PORT=$(free_port)
NGX_PORT=$(free_port)
TARGET_PORT=$SRV_PORT # where wrk sends subgate's requests: the one instance, or the balancer
DB_URL=sqlite:$TMP/subgate.db
DB_DESC="SQLite (WAL) in $TMP"
# A throwaway PostgreSQL in a directory of its own (the postgres user must reach it, and $TMP
# is private), its processes pinned with subgate's.
if [ "$DB" = postgres ]; then
    PG_DIR=$(mktemp -d /tmp/subgate-bench-pg.XXXXXX)
    DB_URL=$(scripts/pg.sh start "$PG_DIR" "$(free_port)" | tail -1) || die "scripts/pg.sh start failed"
    PG_MAIN=$(head -1 "$PG_DIR/data/postmaster.pid")
    for pid in "$PG_MAIN" $(pgrep -P "$PG_MAIN"); do taskset -pc "$SERVER_CPU" "$pid" >/dev/null; done
    DB_DESC="PostgreSQL $(psql "$DB_URL" -XAtc 'SHOW server_version' | cut -d' ' -f1) in $PG_DIR"
fi
SRV_ENV=(env -i "PATH=$PATH" "DATABASE_URL=$DB_URL" "JWT_SECRET=$JWT_SECRET"
    "SERVICE_API_KEYS=$SERVICE_KEY" "STRIPE_WEBHOOK_SECRET=$WEBHOOK_SECRET"
    "STRIPE_PREMIUM_PRICE_ID=$PRICE_PREMIUM" "STRIPE_PLUS_PRICE_ID=$PRICE_PLUS"
    "LISTEN=127.0.0.1:$SRV_PORT" "LOG_LEVEL=${BENCH_LOG_LEVEL:-info}" "TIERS_FILE=$TMP/tiers.json")
[ -z "${BENCH_HTTP_THREADS:-}" ] || SRV_ENV+=("HTTP_THREADS=$BENCH_HTTP_THREADS")
[ -z "${BENCH_GROUP_COMMIT:-}" ] || SRV_ENV+=("STORE_GROUP_COMMIT=$BENCH_GROUP_COMMIT")
[ -z "${BENCH_USAGE_LEDGER:-}" ] || SRV_ENV+=("USAGE_LEDGER=$BENCH_USAGE_LEDGER")
[ -z "${BENCH_WRITE_CONCURRENCY:-}" ] || SRV_ENV+=("WRITE_CONCURRENCY=$BENCH_WRITE_CONCURRENCY")

subgate() { (cd "$TMP" && "${SRV_ENV[@]}" "$BIN" "$@"); }

# wait_http URL: until anything answers, for up to 10 s.
wait_http() {
    for _ in $(seq 200); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.05
    done
    return 1
}

# Seeds USERS premium and USERS free users straight into the migrated database, and mints
# their tokens. The catalogue is the example's, with a free daily AI allowance no run reaches:
# a consume on a free user checks the quota and is granted.
seed() {
    python3 - "${BENCH_TIERS_EXAMPLE:-$ROOT/docs/tiers.example.json}" >"$TMP/tiers.json" <<'PY' || die "cannot write the bench tiers"
import json, sys
cat = json.load(open(sys.argv[1]))
for t in cat["tiers"]:
    if t["id"] == "free":
        t["limits"]["ai_minutes"] = 1000000000
json.dump(cat, sys.stdout)
PY
    subgate migrate >/dev/null || die "subgate migrate failed"
    python3 "$BENCH_DIR/seed.py" sql "$USERS" "$PRICE_PREMIUM" >"$TMP/seed.sql"
    if [ "$DB" = postgres ]; then
        psql "$DB_URL" -Xq -v ON_ERROR_STOP=1 -f "$TMP/seed.sql" || die "seeding the database failed"
    else
        sqlite3 "$TMP/subgate.db" <"$TMP/seed.sql" || die "seeding the database failed"
    fi
    : >"$TMP/tokens"
    : >"$TMP/free_tokens"
    for n in $(seq 0 $((USERS - 1))); do
        subgate token "bench_user_$n" "bench_user_$n@example.com" 3600 >>"$TMP/tokens" ||
            die "subgate token failed"
        subgate token "bench_free_$n" "bench_free_$n@example.com" 3600 >>"$TMP/free_tokens" ||
            die "subgate token failed"
    done
}

start_nginx() {
    mkdir -p "$TMP/nginx/tmp"
    sed -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@PORT@|$NGX_PORT|g" "$BENCH_DIR/nginx.conf.in" \
        >"$TMP/nginx/nginx.conf"
    taskset -c "$SERVER_CPU" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" \
        2>"$TMP/nginx/stderr.log" &
    NGX_PID=$!
    wait_http "http://127.0.0.1:$NGX_PORT/" || die "nginx did not start: $(cat "$TMP/nginx/stderr.log")"
}

# start_instance PORT LOG: one more `subgate serve` on PORT (the rest of SRV_ENV as is).
start_instance() {
    (cd "$TMP" && exec taskset -c "$SERVER_CPU" "${SRV_ENV[@]}" "LISTEN=127.0.0.1:$1" "$BIN" serve 2>"$2") &
    SRV_PIDS="$SRV_PIDS $!"
    wait_http "http://127.0.0.1:$1/healthz" || die "subgate did not start: $(tail -5 "$2")"
}

# INSTANCES subgate processes; from two on, behind a round-robin nginx that wrk then drives.
start_server() {
    local n port upstreams=""
    start_instance "$SRV_PORT" "$TMP/subgate.log"
    SRV_PID=${SRV_PIDS# }
    [ "$INSTANCES" -gt 1 ] || return 0
    upstreams="server 127.0.0.1:$SRV_PORT;"
    for n in $(seq 2 "$INSTANCES"); do
        port=$(free_port)
        start_instance "$port" "$TMP/subgate-$n.log"
        upstreams="$upstreams server 127.0.0.1:$port;"
    done
    TARGET_PORT=$(free_port)
    mkdir -p "$TMP/lb/tmp"
    sed -e "s|@PREFIX@|$TMP/lb|g" -e "s|@PORT@|$TARGET_PORT|g" -e "s|@UPSTREAMS@|$upstreams|" \
        "$BENCH_DIR/nginx-lb.conf.in" >"$TMP/lb/nginx.conf"
    taskset -c "$SERVER_CPU" "$NGINX" -p "$TMP/lb" -c "$TMP/lb/nginx.conf" 2>"$TMP/lb/stderr.log" &
    LB_PID=$!
    wait_http "http://127.0.0.1:$TARGET_PORT/healthz" || die "the balancer did not start: $(cat "$TMP/lb/stderr.log")"
}

rss_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SRV_PID/status"; }

# cpu_ticks PID...: utime + stime of the processes (and, for nginx, its workers), in clock ticks.
cpu_ticks() {
    local pid total=0 t
    for pid in "$@"; do
        t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || t=0
        total=$((total + t))
    done
    echo "$total"
}
measured_pids() {
    case $1 in
    nginx-*) echo "$NGX_PID $(pgrep -P "$NGX_PID" | tr '\n' ' ')" ;;
    *) echo "$SRV_PIDS $LB_PID" ;;
    esac
}
# switches PID...: the task switches of every thread of the processes so far (voluntary, as a
# thread waits, and involuntary); less noisy than a rate, and a hand-off between threads shows.
switches() {
    local pid
    for pid in "$@"; do cat /proc/"$pid"/task/*/status 2>/dev/null; done |
        awk '$1 ~ /^(non)?voluntary_ctxt_switches:$/ { n += $2 } END { printf "%d\n", n }'
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# db_pids: the PostgreSQL server's processes (postmaster and its children); none on SQLite.
db_pids() { [ -z "${PG_MAIN:-}" ] || echo "$PG_MAIN $(pgrep -P "$PG_MAIN" | tr '\n' ' ')"; }

# probe NAME CURL-ARGS...: one request before the run. Sets PROBE_NOTE to why the endpoint
# cannot be measured ("" when it answered 2xx).
probe() {
    local name=$1 code
    shift
    code=$(curl -s -o "$TMP/probe-$name.json" -w '%{http_code}' "$@") || code=000
    PROBE_NOTE=""
    case $code in
    2??) ;;
    404) PROBE_NOTE="not available yet (404: $(head -c 160 "$TMP/probe-$name.json"))" ;;
    *) PROBE_NOTE="skipped: the probe answered $code: $(head -c 200 "$TMP/probe-$name.json")" ;;
    esac
}

# measure NAME URL SCRIPT [SCRIPT-ARGS...]: one wrk run; results in R_<field>[NAME].
declare -A R_RATE R_OK R_P50 R_P99 R_ERR R_RSS R_NOTE R_CPU R_DBCPU R_BATCH R_SWITCH

# store_counts: "WRITES COMMITS" from the first instance's /metrics (0 0 when unreadable).
store_counts() {
    curl -s "http://127.0.0.1:$SRV_PORT/metrics" | awk '
        $1 == "subgate_store_writes_total" { w = $2 }
        $1 == "subgate_store_commits_total" { c = $2 }
        END { printf "%d %d\n", w, c }'
}

measure() {
    local name=$1 url=$2 script=$3 log="$TMP/wrk-$1.log" line
    shift 3
    local perf_pid="" pids t0 t1 dbpids="" d0=0 d1=0 w0=0 c0=0 w1=0 c1=0 s0 s1
    pids=$(measured_pids "$name")
    [ "${name#nginx}" != "$name" ] || read -r w0 c0 < <(store_counts)
    [ "${name#nginx}" != "$name" ] || dbpids=$(db_pids)
    # shellcheck disable=SC2086
    t0=$(cpu_ticks $pids)
    # shellcheck disable=SC2086
    s0=$(switches $pids)
    # shellcheck disable=SC2086
    [ -z "$dbpids" ] || d0=$(cpu_ticks $dbpids)
    if [ "${BENCH_PERF:-0}" = 1 ] && [ "${name#nginx}" = "$name" ]; then
        perf record -q -g -F 999 -p "$SRV_PID" -o "$TMP/perf-$name.data" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --timeout 5s -s "$BENCH_DIR/$script" \
        "$url" -- "$@" >"$log" 2>&1 || die "wrk failed for $name: $(tail -3 "$log")"
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $pids)
    # shellcheck disable=SC2086
    s1=$(switches $pids)
    # backends started during the run count from their start; none ends during one
    # shellcheck disable=SC2046,SC2086
    [ -z "$dbpids" ] || d1=$(cpu_ticks $(printf '%s\n' $dbpids $(db_pids) | sort -u))
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    [ "${name#nginx}" != "$name" ] || read -r w1 c1 < <(store_counts)
    R_BATCH[$name]=""
    [ $((c1 - c0)) -le 0 ] || R_BATCH[$name]=$(awk -v w=$((w1 - w0)) -v c=$((c1 - c0)) \
        'BEGIN { printf "%d writes in %d commits (%.1f a commit)", w, c, w / c }')
    line=$(grep '^BENCH_RESULT ' "$log" | tail -1) || die "no result from wrk for $name: $(tail -3 "$log")"
    # The fields in bench/report.lua's order.
    local requests duration p50 p99 status connect read write timeout
    read -r requests duration p50 p99 status connect read write timeout \
        < <(echo "${line#BENCH_RESULT }" | tr ' ' '\n' | cut -d= -f2 | paste -sd' ')
    R_OK[$name]=$((requests - status))
    R_RATE[$name]=$(awk -v n="${R_OK[$name]}" -v us="$duration" 'BEGIN { printf "%.0f", n * 1e6 / us }')
    R_P50[$name]=$p50
    R_P99[$name]=$p99
    R_ERR[$name]=$((status + connect + read + write + timeout))
    R_RSS[$name]=$(rss_kib VmHWM)
    R_CPU[$name]=$(awk -v t=$((t1 - t0)) -v us="$TICK_US" -v n="$requests" \
        'BEGIN { if (n > 0) printf "%.1f", t * us / n; else print "-" }')
    R_SWITCH[$name]=$(awk -v s=$((s1 - s0)) -v n="$requests" \
        'BEGIN { if (n > 0) printf "%.1f", s / n; else print "-" }')
    R_DBCPU[$name]=""
    [ -z "$dbpids" ] || R_DBCPU[$name]=$(awk -v t=$((d1 - d0)) -v us="$TICK_US" -v n="$requests" \
        'BEGIN { if (n > 0) printf "+%.1f", t * us / n }')
}

# warm NAME URL SCRIPT [ARGS...]: a one-second run whose figures are dropped (connections,
# caches and page faults settle).
warm() {
    local url=$2 script=$3
    shift 3
    taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d1s -s "$BENCH_DIR/$script" "$url" -- "$@" \
        >/dev/null 2>&1 || true
}

# nginx NAME: measures the yardstick right before NAME's run, so that both see the same load
# on the machine; NAME's ratio is to this figure.
NGX_RUNS=0
nginx_before() {
    local url="http://127.0.0.1:$NGX_PORT/"
    [ "$NGX_RUNS" -gt 0 ] || warm nginx "$url" get.lua
    measure "nginx-$1" "$url" get.lua
    NGX_RUNS=$((NGX_RUNS + 1))
}

bench_pricing() {
    local url="http://127.0.0.1:$TARGET_PORT$PRICING_PATH"
    probe pricing "$url"
    R_NOTE[pricing]=$PROBE_NOTE
    [ -n "$PROBE_NOTE" ] && return 0
    nginx_before pricing
    warm pricing "$url" get.lua
    measure pricing "$url" get.lua
}

bench_check() {
    local url="http://127.0.0.1:$TARGET_PORT$CHECK_PATH"
    probe check -H "Authorization: Bearer $(head -1 "$TMP/tokens")" "$url?feature=$CHECK_FEATURE"
    R_NOTE[check]=$PROBE_NOTE
    [ -n "$PROBE_NOTE" ] && return 0
    nginx_before check
    warm check "$url" check.lua "$TMP/tokens" "$CHECK_FEATURE"
    measure check "$url" check.lua "$TMP/tokens" "$CHECK_FEATURE"
}

bench_usage() {
    local url="http://127.0.0.1:$TARGET_PORT$USAGE_PATH"
    probe usage -H "Authorization: Bearer $(head -1 "$TMP/free_tokens")" "$url"
    R_NOTE[usage]=$PROBE_NOTE
    [ -n "$PROBE_NOTE" ] && return 0
    nginx_before usage
    warm usage "$url" usage.lua "$TMP/free_tokens"
    measure usage "$url" usage.lua "$TMP/free_tokens"
}

# On the free users: their counters exist, the quota is checked, every call is granted.
bench_consume() {
    local url="http://127.0.0.1:$TARGET_PORT$CONSUME_PATH"
    probe consume -X POST -H "Authorization: Bearer $SERVICE_KEY" -H 'Content-Type: application/json' \
        --data "{\"user_id\":\"bench_free_0\",\"quota\":\"$QUOTA\",\"amount\":1}" "$url"
    R_NOTE[consume]=$PROBE_NOTE
    [ -n "$PROBE_NOTE" ] && return 0
    nginx_before consume
    measure consume "$url" consume.lua "$SERVICE_KEY" "$USERS" "$QUOTA" bench_free_
}

# Signs the events right before the run (Stripe's tolerance is 300 s), and probes with one
# more event signed apart from the pool.
bench_webhooks() {
    local url="http://127.0.0.1:$TARGET_PORT$WEBHOOK_PATH" body
    mkdir -p "$TMP/probe" "$TMP/events"
    python3 "$BENCH_DIR/seed.py" webhooks "$WEBHOOK_SECRET" 1 "$USERS" "$INVOICE_JSON" "$TMP/probe"
    body=$(sed -e 's/@@I@@/1/g' -e 's/@@U@@/1/g' "$TMP/probe/webhook.tpl")
    probe webhooks -X POST -H 'Content-Type: application/json; charset=utf-8' \
        -H "Stripe-Signature: $(cat "$TMP/probe/webhook.sig")" --data-binary "$body" "$url"
    R_NOTE[webhooks]=$PROBE_NOTE
    [ -n "$PROBE_NOTE" ] && return 0
    nginx_before webhooks
    python3 "$BENCH_DIR/seed.py" webhooks "$WEBHOOK_SECRET" "$EVENTS" "$USERS" "$INVOICE_JSON" "$TMP/events"
    measure webhooks "$url" webhook.lua "$TMP/events/webhook.tpl" "$TMP/events/webhook.sig" "$USERS"
    if [ "${R_OK[webhooks]}" -gt "$EVENTS" ]; then
        R_NOTE[webhooks]="more requests than signed events: some were duplicates (raise BENCH_EVENTS)"
    fi
}

ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }

# verdict NAME: "PASS"/"MISS" against the target row, with the ratio to nginx.
MISSES=()
verdict() {
    local name=$1 kind value ratio ok
    read -r _ kind value < <(echo "$TARGETS" | grep "^$name ")
    ratio=$(awk -v a="${R_RATE[$name]}" -v b="${R_RATE[nginx-$name]}" 'BEGIN { printf "%.2f", a / b }')
    if [ "$kind" = ratio ]; then
        ok=$(awk -v r="$ratio" -v t="$value" 'BEGIN { print (r >= t) }')
        V_TARGET=">= ${value}x nginx"
        [ "$ok" = 1 ] || MISSES+=("MISS: $name at ${ratio}x nginx, below the target of ${value}x")
    else
        ok=$(awk -v r="${R_RATE[$name]}" -v t="$value" 'BEGIN { print (r >= t) }')
        V_TARGET=">= $value/s"
        [ "$ok" = 1 ] || MISSES+=("MISS: $name at ${R_RATE[$name]}/s, below the target of $value/s")
    fi
    local p99_max
    p99_max=$(echo "$P99_TARGETS" | awk -v n="$name" '$1 == n { print $2 }')
    if [ -n "$p99_max" ]; then
        V_TARGET="$V_TARGET, p99 < $((p99_max / 1000)) ms"
        if [ "${R_P99[$name]}" -ge "$p99_max" ]; then
            ok=0
            MISSES+=("MISS: $name p99 $(ms "${R_P99[$name]}"), above the target of $((p99_max / 1000)) ms")
        fi
    fi
    [ "${R_ERR[$name]}" = 0 ] || { ok=0; MISSES+=("MISS: $name had ${R_ERR[$name]} failed requests (see the wrk log)"); }
    V_RATIO="${ratio}x"
    V_RESULT=$([ "$ok" = 1 ] && echo PASS || echo MISS)
}

ROW="%-36s %8s %10s %10s %7s %9s %13s %8s  %-28s %s\n"
# row LABEL NAME VS RSS TARGET RESULT: one line of the table from R_*[NAME].
row() {
    # shellcheck disable=SC2059
    printf "$ROW" "$1" "${R_RATE[$2]}" "$(ms "${R_P50[$2]}")" "$(ms "${R_P99[$2]}")" "${R_ERR[$2]}" \
        "$3" "${R_CPU[$2]}${R_DBCPU[$2]:-}" "$4" "$5" "$6"
}

report() {
    local name label
    echo
    echo "subgate bench: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))"
    echo "  subgate and nginx on cpu $SERVER_CPU, wrk on cpu $WRK_CPU; wrk -t1 -c$CONNS -d$DURATION; loopback; CPUs $BUSY% busy before the run"
    echo "  subgate $("$BIN" version | awk '{print $2}'), $DB_DESC, $USERS premium and $USERS free users; $("$NGINX" -v 2>&1 | sed 's/.*: //'); $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
    echo "  cpu us/req: the server's utime+stime over the run / its requests (nginx's workers for its rows)"
    [ -z "${PG_MAIN:-}" ] || echo "  on PostgreSQL, +N: the database server's processes' own utime+stime per request, on the same cpu"
    [ "$INSTANCES" = 1 ] || echo "  $INSTANCES subgate instances behind nginx round-robin (bench/nginx-lb.conf.in) on cpu $SERVER_CPU; RSS is the first instance's"
    echo
    # shellcheck disable=SC2059
    printf "$ROW" "endpoint" "req/s" "p50" "p99" "errors" "vs nginx" "cpu us/req" "RSS MiB" "target" "result"
    for name in $ROWS; do
        case $name in
        pricing) label="GET $PRICING_PATH" ;;
        usage) label="usage (user JWT, free user)" ;;
        check) label="check (user JWT)" ;;
        consume) label="consume (free user, quota checked)" ;;
        webhooks) label="webhooks (signed invoice.paid)" ;;
        esac
        if [ -z "${R_RATE[$name]:-}" ]; then
            printf "%-36s %s\n" "$label" "${R_NOTE[$name]}"
            continue
        fi
        verdict "$name"
        row "nginx, fixed JSON (just before)" "nginx-$name" "1.00x" "-" "" ""
        row "$label" "$name" "$V_RATIO" "$(awk -v k="${R_RSS[$name]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
            "$V_TARGET" "$V_RESULT"
        [ -z "${BENCH_SUMMARY:-}" ] ||
            echo "$name ${R_RATE[$name]} ${V_RATIO%x} ${R_CPU[$name]}" >>"$BENCH_SUMMARY"
        [ -z "${R_NOTE[$name]:-}" ] || echo "    note: ${R_NOTE[$name]}"
        [ -z "${R_BATCH[$name]:-}" ] || [ "$INSTANCES" != 1 ] || echo "    group commit: ${R_BATCH[$name]}"
        echo "    task switches: ${R_SWITCH[$name]} a request (subgate's threads)"
    done
    local peak
    peak=$(rss_kib VmHWM)
    if [ "$peak" -lt "$RSS_TARGET_KIB" ]; then RSS_RESULT=PASS; else
        RSS_RESULT=MISS
        MISSES+=("MISS: peak RSS $((peak / 1024)) MiB, above the target of $((RSS_TARGET_KIB / 1024)) MiB")
    fi
    echo
    printf "peak RSS of subgate (VmHWM): %.1f MiB (target < $((RSS_TARGET_KIB / 1024)) MiB): %s\n" \
        "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')" "$RSS_RESULT"
    if [ ${#MISSES[@]} -eq 0 ]; then echo "every measured target met"; else printf '%s\n' "${MISSES[@]}"; fi
}

# With BENCH_PERF=1: where subgate spent its CPU during each run (perf record -g), by library
# and by symbol.
perf_report() {
    local f
    for f in "$TMP"/perf-*.data; do
        [ -f "$f" ] || continue
        echo
        echo "== perf: $(basename "$f" .data | sed 's/^perf-//') (self time) =="
        perf report -i "$f" --no-children --sort dso -g none 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -6 || true
        perf report -i "$f" --no-children --sort dso,symbol -g none 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -"${BENCH_PERF_TOP:-15}" || true
    done
}

# busy_pct: how busy all CPUs were over the last second (other work makes the figures noisy).
busy_pct() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    echo "$a $b" | awk '{ n = NF / 2; for (i = 2; i <= n; i++) { t += $(i + n) - $i }
        idle = $(n + 5) + $(n + 6) - $5 - $6; printf "%.0f", 100 * (t - idle) / t }'
}

[ "$(nproc)" -ge 2 ] || echo "bench: warning: one core only: server and wrk share it" >&2
BUSY=$(busy_pct)
[ "$BUSY" -le 10 ] || echo "bench: warning: the machine was $BUSY% busy before the run: figures will be noisy" >&2
echo "bench: seeding $USERS users in $TMP"
seed
start_nginx
start_server
echo "bench: nginx (the yardstick) on 127.0.0.1:$NGX_PORT, subgate on 127.0.0.1:$TARGET_PORT (pids$SRV_PIDS)"
for b in $ROWS; do
    echo "bench: $b"
    "bench_$b"
done
report
[ "${BENCH_PERF:-0}" = 0 ] || perf_report
[ "${BENCH_STRICT:-0}" = 0 ] || [ ${#MISSES[@]} -eq 0 ]
