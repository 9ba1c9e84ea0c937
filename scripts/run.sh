#!/bin/sh
# run.sh: `make run`. Writes a development .env on first use (never overwrites one), runs the
# service in the foreground (SQLite by default) and, with no Stripe key, the bundled Stripe
# emulator beside it, its state kept in var/emulator-state.json across restarts. Every log line
# says which process wrote it ("subgate  | ", "emulator | "). Once both answer, it prints one
# URL that opens the billing page signed in as a development user.
#
# Environment: LISTEN and EMULATOR_LISTEN override the addresses; SUBGATE_RUN_DIR names the
# directory to work in (.env, var/; default: the repository), so a test can run this script
# without touching the repository's .env and var/.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
BIN="$root/build/release/subgate"
EMU="$root/build/release/stripe-emulator"
cd "${SUBGATE_RUN_DIR:-$root}"
rand() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
dotenv() { sed -n "s/^$1=//p" .env | tail -n 1; }

listen=
if [ -f .env ]; then listen=$(dotenv LISTEN); fi
listen=${LISTEN:-${listen:-127.0.0.1:8080}}
port=${listen##*:}
case "${listen%:*}" in
0.0.0.0 | "") host=127.0.0.1 ;;
"[::]") host="[::1]" ;;
*) host=${listen%:*} ;;
esac
# subgate's own origins: the billing page is checkout's success_url and the portal's return_url.
own_origins="http://127.0.0.1:$port,http://localhost:$port"
# The printed page's own origin too, when subgate listens elsewhere ([::1], another address).
case "$host" in
127.0.0.1 | localhost) ;;
*) own_origins="http://$host:$port,$own_origins" ;;
esac

if [ ! -f .env ]; then
    mask=$(umask)
    umask 077
    cat >.env <<ENV
# Development configuration written by 'make run' on $(date -u +%Y-%m-%d). See README.md.
JWT_SECRET=$(rand 32)
SERVICE_API_KEYS=sk_svc_$(rand 24)
DATABASE_URL=sqlite:var/subgate.db
LISTEN=$listen
ALLOWED_REDIRECT_ORIGINS=$own_origins,http://localhost:3000
# Set these to talk to Stripe (test mode keys work):
# STRIPE_SECRET_KEY=sk_test_...
# STRIPE_PUBLISHABLE_KEY=pk_test_...
# STRIPE_WEBHOOK_SECRET=whsec_...
# STRIPE_PREMIUM_PRICE_ID=price_...
# STRIPE_PLUS_PRICE_ID=price_...
# STRIPE_PREMIUM_ANNUAL_PRICE_ID=price_...
# STRIPE_PLUS_ANNUAL_PRICE_ID=price_...
ENV
    umask "$mask"
    echo "run: wrote a development .env (random JWT_SECRET and SERVICE_API_KEYS)"
fi
mkdir -p var

# A .env written by an older run.sh lacks subgate's own origins: add them through the
# environment, which wins over .env (the variable is a comma-separated list).
origins=${ALLOWED_REDIRECT_ORIGINS:-$(dotenv ALLOWED_REDIRECT_ORIGINS)}
case ",$origins," in
*",http://$host:$port,"*",http://127.0.0.1:$port,"* | *",http://127.0.0.1:$port,"*",http://$host:$port,"*) ;;
*",http://127.0.0.1:$port,"*) [ "$host" != 127.0.0.1 ] && [ "$host" != localhost ] &&
    export ALLOWED_REDIRECT_ORIGINS="$origins,http://$host:$port" ;;
*) export ALLOWED_REDIRECT_ORIGINS="${origins:+$origins,}$own_origins" ;;
esac

# Both processes write into pipes that prefix each line with the process's name, so the
# terminal says who wrote what; the pids kept are the processes' own, not the prefixers'.
fifos=$(mktemp -d "${TMPDIR:-/tmp}/subgate-run.XXXXXX")
srv=
emu=
nap=
# shellcheck disable=SC2317 # called by the traps
stop() {
    for pid in $srv $emu $nap; do kill "$pid" 2>/dev/null || true; done
    wait # for them and for the prefixers, which end with their writer
    srv=
    emu=
    nap=
    rm -rf "$fifos"
}
trap 'stop' EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
# start NAME PREFIX COMMAND...: runs COMMAND in the background ($! is its pid), lines prefixed.
start() {
    fifo="$fifos/$1"
    mkfifo "$fifo"
    sed -u "s/^/$2 | /" <"$fifo" &
    shift 2
    "$@" >"$fifo" 2>&1 &
}

# Polls url until it answers 2xx while pid runs (not another program on the port), or pid
# exits; false after about 10 s.
answers() {
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        curl -fs -o /dev/null --max-time 1 "$1" && kill -0 "$2" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# No Stripe key anywhere: run the bundled Stripe emulator and point subgate at it.
has_key=${STRIPE_SECRET_KEY:-$(dotenv STRIPE_SECRET_KEY)}
if [ -z "$has_key" ] && [ -x "$EMU" ]; then
    EMU_LISTEN=${EMULATOR_LISTEN:-127.0.0.1:12111}
    export EMULATOR_LISTEN="$EMU_LISTEN"
    export EMULATOR_STATE_FILE=var/emulator-state.json
    export EMULATOR_SECRET_KEY=sk_test_emulator
    export EMULATOR_WEBHOOK_SECRET=whsec_emulator_secret
    export EMULATOR_WEBHOOK_URL="http://$host:$port/api/v1/payments/webhook"
    export STRIPE_API_BASE="http://$EMU_LISTEN"
    export STRIPE_SECRET_KEY="$EMULATOR_SECRET_KEY"
    export STRIPE_PUBLISHABLE_KEY=pk_test_emulator
    export STRIPE_WEBHOOK_SECRET="$EMULATOR_WEBHOOK_SECRET"
    export STRIPE_PREMIUM_PRICE_ID=price_premium_monthly
    export STRIPE_PLUS_PRICE_ID=price_plus_monthly
    export STRIPE_PREMIUM_ANNUAL_PRICE_ID=price_premium_annual
    export STRIPE_PLUS_ANNUAL_PRICE_ID=price_plus_annual
    start emulator "emulator" "$EMU"
    emu=$!
    if ! answers "http://$EMU_LISTEN/" "$emu"; then
        echo "run: the Stripe emulator did not start (see its lines above)" >&2
        exit 1
    fi
    echo "run: no STRIPE_SECRET_KEY set: the Stripe emulator runs on http://$EMU_LISTEN, its state"
    echo "run: in var/emulator-state.json (test cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002"
    echo "run: declines)"
fi
start subgate "subgate " "$BIN" serve
srv=$!
if answers "http://$host:$port/healthz" "$srv"; then
    # A development user's token in the URL fragment, which the browser never sends to a server;
    # the page keeps it for the tab. A dev credential by design, printed for this terminal only.
    if tok=$("$BIN" token dev_user dev@example.com 86400); then
        echo "run: open http://$host:$port/billing/#token=$tok"
    fi
    echo "run: the API without a page: curl -s http://$host:$port/api/v1/payments/pricing"
else
    echo "run: subgate did not start (see its lines above)" >&2
fi

# Until one of them stops, or a signal comes (`wait` returns at once to run the trap).
while kill -0 "$srv" 2>/dev/null && { [ -z "$emu" ] || kill -0 "$emu" 2>/dev/null; }; do
    sleep 1 &
    nap=$!
    wait "$nap" || true
done
# The emulator gone (a crash, kill -9): subgate alone would answer 503 to every Stripe call.
emu_gone=
if [ -n "$emu" ] && ! kill -0 "$emu" 2>/dev/null; then
    emu_gone=1
    echo "run: the Stripe emulator stopped: stopping subgate too" >&2
    kill "$srv" 2>/dev/null || true
fi
rc=0
wait "$srv" || rc=$?
[ -z "$emu_gone" ] || rc=1
exit "$rc"
