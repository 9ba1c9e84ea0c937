#!/bin/sh
# deps.sh [--test|--bench]: installs what is missing, and nothing when all is present: the
# Debian packages subgate needs to build and run (one apt-get call); with --test also nginx and
# caddy (the gate tests' proxies), PostgreSQL (a throwaway server per run), pytest, FastAPI,
# uvicorn and httpx (FastAPI's TestClient) for the Python client's tests, chromium for the JS
# client's browser test, and the test-only npm packages; with --bench also wrk.
set -eu
PKGS="gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev libpq-dev libssl-dev
libcurl4-openssl-dev clang libclang-rt-14-dev curl python3"
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

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    install_packages $missing
fi
# Benchmark tools: wrk drives the load, nginx is the yardstick (and the gate test's proxy).
if [ "${1:-}" = "--bench" ] || [ "${1:-}" = "--test" ]; then
    need=""
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
    if [ "${1:-}" = "--bench" ]; then command -v wrk >/dev/null 2>&1 || need="$need wrk"; fi
    if [ "${1:-}" = "--test" ]; then
        # caddy runs docs/caddy.example.Caddyfile as the test's user (caddy.test.mjs), apart
        # from the package's own service, which the test neither needs nor touches;
        # promtool checks /metrics against Prometheus's own rules; the Python client's tests
        # run on Debian's pytest, FastAPI, uvicorn, httpx and cryptography (ES256/EdDSA entitlement
        # tokens: the standard library has neither); the JS client's browser test on
        # Debian's chromium (driven by playwright-core from npm).
        command -v promtool >/dev/null 2>&1 || need="$need prometheus"
        command -v chromium >/dev/null 2>&1 || need="$need chromium"
        command -v caddy >/dev/null 2>&1 || need="$need caddy"
        for p in python3-pytest python3-fastapi python3-uvicorn python3-httpx python3-cryptography; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
        done
    fi
    [ -z "$need" ] || install_packages $need
fi
# Test-only npm packages (package.json): the official Stripe SDK as a referee, playwright-core,
# the OpenAPI 3.1 meta-schema validator and Ajv for docs/openapi.json.
[ "${1:-}" = "--test" ] || exit 0
cd "$(dirname "$0")/.."
if [ ! -d node_modules/stripe ] || [ ! -d node_modules/playwright-core ] ||
    [ ! -d node_modules/ajv ] || [ ! -d node_modules/@seriousme/openapi-schema-validator ]; then
    echo "deps: npm ci" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
fi
