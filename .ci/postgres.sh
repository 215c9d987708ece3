#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the test suite and print its URL.
#
#   QUANTSEARCH_PG_URL="$(bash .ci/postgres.sh)"; export QUANTSEARCH_PG_URL
#
# stdout is exactly one line, the SQLAlchemy URL of the server's `postgres` database; everything
# else goes to stderr. Idempotent: a second run finds the server running and prints the same URL;
# a cluster whose server has gone (machine restarted, processes ended) is started again.
# The tests create a fresh database per session on this server (tests/pg_fixtures.py).
#
# Steps: install the `postgresql` package with apt when no initdb can be found; initdb a cluster
# under $QUANTSEARCH_PG_DIR (default: a folder in the temp dir, owned by the `postgres` user when
# this runs as root, since initdb refuses root); listen on 127.0.0.1 only, on a free port, with
# the Unix socket inside the cluster folder; password (scram) auth for role `quantsearch`.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

PGDIR="${QUANTSEARCH_PG_DIR:-${TMPDIR:-/tmp}/quantsearch-pg}"
DATA="$PGDIR/data"
ROLE=quantsearch
PASSWORD=quantsearch

find_bindir() {
    local d
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    # Debian keeps the server binaries off PATH; take the newest major version.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

if ! BINDIR="$(find_bindir)"; then
    if [[ "$(id -u)" != 0 ]]; then
        log "no initdb/pg_ctl found and not root: install the 'postgresql' package"
        exit 1
    fi
    log "installing postgresql with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # The package's own cluster (if its maintainer script makes one) is not used: ours is below.
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BINDIR="$(find_bindir)" || { log "postgresql installed but no initdb found"; exit 1; }
fi

# Run server commands as `postgres` when root (initdb and postgres refuse to run as root).
if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PGDIR" --shell /bin/false postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_in_use() {
    python3 -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"
}

url() { echo "postgresql+psycopg2://$ROLE:$PASSWORD@127.0.0.1:$1/postgres"; }

mkdir -p "$PGDIR"
if [[ "$(id -u)" == 0 ]]; then chown postgres: "$PGDIR"; fi
chmod 700 "$PGDIR"

# A cluster that initdb did not finish (no PG_VERSION) is wiped and made again.
if [[ -d "$DATA" && ! -f "$DATA/PG_VERSION" ]]; then
    log "removing incomplete cluster $DATA"
    rm -rf "$DATA"
fi

if [[ ! -d "$DATA" ]]; then
    log "initdb $DATA"
    pwfile="$PGDIR/pwfile"
    echo "$PASSWORD" >"$pwfile"
    if [[ "$(id -u)" == 0 ]]; then chown postgres: "$pwfile"; fi
    as_pg "$BINDIR/initdb" -D "$DATA" -U "$ROLE" --pwfile="$pwfile" -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$PGDIR/initdb.log" 2>&1 \
        || { cat "$PGDIR/initdb.log" >&2; exit 1; }
    rm -f "$pwfile"
    cat >>"$DATA/postgresql.conf" <<EOF
# quantsearch CI: loopback only, socket inside the cluster folder.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DATA'
max_connections = 200
EOF
fi

running_port() {
    # The server counts as up only when its postmaster is alive and it accepts connections.
    local p
    as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1 || return 1
    p="$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null)"  # line 4 of postmaster.pid: the port
    [[ -n "$p" ]] && "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$p" -t 5 || return 1
    echo "$p"
}

if port="$(running_port)"; then
    echo "$port" >"$PGDIR/port"
    log "already running on 127.0.0.1:$port"
else
    # A postmaster that is alive but not answering (dying, stuck) is stopped first.
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    port="$(cat "$PGDIR/port" 2>/dev/null || true)"
    if [[ -z "$port" ]] || port_in_use "$port"; then port="$(free_port)"; fi
    echo "$port" >"$PGDIR/port"
    log "starting on 127.0.0.1:$port"
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$PGDIR/server.log" -w -t 60 -o "-p $port" start >&2 \
        || { tail -n 20 "$PGDIR/server.log" >&2; exit 1; }
fi

url "$port" >"$PGDIR/url"
url "$port"
