#!/bin/sh
# deps.sh [--test|--fuzz|--bench]: installs what is missing, and nothing when all is present.
# With no flag (make run, make deps): only what building and running subgate needs (compiler,
# make, pkg-config, the libraries' -dev packages; curl for the commands `make run` prints to try
# the API). --fuzz adds clang and its sanitizer runtimes (make fuzz). --test adds what the test
# command uses: clang (fuzz targets), clang-format, clang-tidy and cppcheck (the style gates),
# Node.js and npm (the integration suite) with the test-only npm packages, python3 (Stripe
# parameter checks, the Python client's tests on Debian's pytest, FastAPI, uvicorn, httpx and
# cryptography), groff, man-db and systemd-analyze (the man page and unit checks), nginx and
# caddy (the gate tests' proxies), PostgreSQL (a throwaway server per run), prometheus
# (promtool) and chromium (the JS client's browser test). --bench adds wrk, nginx, PostgreSQL,
# python3 and the sqlite3 shell.
set -eu
RUN_PKGS="gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev libpq-dev libssl-dev
libcurl4-openssl-dev curl"
FUZZ_PKGS="clang libclang-rt-14-dev"
TEST_PKGS="$FUZZ_PKGS clang-format clang-tidy cppcheck python3 groff-base man-db
python3-pytest python3-fastapi python3-uvicorn python3-httpx python3-cryptography"
BENCH_PKGS="python3 sqlite3"
mode=${1:-}
case $mode in
"" | --test | --fuzz | --bench) ;;
*)
    echo "deps: unknown option '$mode' (usage: scripts/deps.sh [--test|--fuzz|--bench])" >&2
    exit 2
    ;;
esac

install_packages() {
    echo "deps: installing: $*" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "deps: missing packages: $* (run as root or install them)" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# missing_pkgs PKG...: prints those of the Debian packages that are not installed.
missing_pkgs() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf ' %s' "$p"
    done
}

pkgs=$RUN_PKGS
case $mode in
--fuzz) pkgs="$pkgs $FUZZ_PKGS" ;;
--test) pkgs="$pkgs $TEST_PKGS" ;;
--bench) pkgs="$pkgs $BENCH_PKGS" ;;
esac
# shellcheck disable=SC2086 # word splitting of the package lists is meant
need=$(missing_pkgs $pkgs)
if [ "$mode" = --test ] || [ "$mode" = --bench ]; then
    # nginx is the gate tests' proxy and the benchmark's yardstick; wrk drives the load.
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
    if [ "$mode" = --bench ]; then command -v wrk >/dev/null 2>&1 || need="$need wrk"; fi
fi
if [ "$mode" = --test ]; then
    # caddy runs docs/caddy.example.Caddyfile as the test's user (caddy.test.mjs), apart from
    # the package's own service, which the test neither needs nor touches; promtool checks
    # /metrics against Prometheus's own rules; the JS client's browser test runs on Debian's
    # chromium (driven by playwright-core from npm).
    command -v node >/dev/null 2>&1 || need="$need nodejs"
    command -v npm >/dev/null 2>&1 || need="$need npm"
    command -v promtool >/dev/null 2>&1 || need="$need prometheus"
    command -v chromium >/dev/null 2>&1 || need="$need chromium"
    command -v caddy >/dev/null 2>&1 || need="$need caddy"
    # install.test.mjs checks the unit with systemd-analyze verify
    command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
fi
# shellcheck disable=SC2086
[ -z "$need" ] || install_packages $need

# Test-only npm packages (package.json): the official Stripe SDK as a referee, playwright-core,
# the OpenAPI 3.1 meta-schema validator and Ajv for docs/openapi.json.
[ "$mode" = --test ] || exit 0
cd "$(dirname "$0")/.."
if [ ! -d node_modules/stripe ] || [ ! -d node_modules/playwright-core ] ||
    [ ! -d node_modules/ajv ] || [ ! -d node_modules/@seriousme/openapi-schema-validator ]; then
    echo "deps: npm ci" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
fi
