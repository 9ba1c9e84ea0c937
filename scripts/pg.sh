#!/bin/sh
# pg.sh start DIR PORT | stop DIR | pause DIR | resume DIR: a throwaway PostgreSQL for tests.
# start creates a cluster in DIR (owned by the postgres system user: the server refuses to run
# as root), listening on 127.0.0.1:PORT and on a unix socket in DIR, with trust auth and a
# database subgate_test, and prints its URL; stop stops it and removes DIR. pause stops the
# server and resume starts it again on the same data (outage tests). Installs Debian's
# postgresql when it is missing.
set -eu
usage() {
    echo "usage: pg.sh start DIR PORT | stop DIR | pause DIR | resume DIR" >&2
    exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
DB=subgate_test

# The newest installed server's bin directory ("" when none).
bindir() {
    found=""
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && found=$d
    done
    echo "$found"
}

install_postgres() {
    [ -n "$(bindir)" ] && return 0
    echo "pg.sh: installing postgresql" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "pg.sh: postgresql missing (run as root or install it)" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # apt may be busy with another job: wait for its lock rather than fail.
    $SUDO apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
    $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends postgresql >/dev/null
}

# as_pg CMD...: runs CMD as the postgres system user (as ourselves when not root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

resume() {
    as_pg "$(bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
}

pause() {
    as_pg "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
}

start() {
    port=$1
    install_postgres
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" != 0 ] || chown postgres: "$dir"
    chmod 700 "$dir"
    as_pg "$(bindir)/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # In postgresql.conf, so resume (a plain pg_ctl start) listens in the same places.
    printf "%s\n" "listen_addresses = '127.0.0.1'" "port = $port" \
        "unix_socket_directories = '$dir'" "fsync = on" "max_connections = 200" |
        as_pg sh -c "cat >>'$dir/data/postgresql.conf'"
    resume
    as_pg "$(bindir)/createdb" -h "$dir" -p "$port" -U postgres "$DB"
    echo "postgres://postgres@127.0.0.1:$port/$DB"
}

stop() {
    if [ -d "$dir/data" ]; then
        as_pg "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case $cmd in
start)
    [ $# -eq 3 ] || usage
    start "$3"
    ;;
stop) stop ;;
pause) pause ;;
resume) resume ;;
*) usage ;;
esac
