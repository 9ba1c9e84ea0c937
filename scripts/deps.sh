#!/bin/sh
# deps.sh: installs the Debian packages subgate needs to build, run and test, when any is
# missing (one apt-get call), and nothing when all are present.
set -eu
PKGS="gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev libssl-dev
libcurl4-openssl-dev clang libclang-rt-14-dev curl"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: missing packages:$missing (run as root or install them)" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
