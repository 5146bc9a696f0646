#!/usr/bin/env bash
# The PostgreSQL servers the tests use, made ready on this machine (run as root, idempotent):
#   main      on 127.0.0.1:5432  the metadata database of every PostgreSQL test
#   backend2  on 127.0.0.1:5433  a second server, trust auth, for tests spread over several backends
# Both are started when down and get max_prepared_transactions > 0 (two-phase commit across
# backends); a server is restarted only when that setting has to change.
# Called by .ci/run; developers can run it alone: sudo .ci/postgres-setup.sh
set -euo pipefail

version="$(ls /etc/postgresql | sort -V | tail -n 1)"
[ -n "$version" ] || { echo "No PostgreSQL installation under /etc/postgresql" >&2; exit 1; }

psql_at() {  # psql_at PORT SQL: run one statement as user postgres, print the bare result
    psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 -tAc "$2"
}

wait_ready() {  # wait_ready PORT CLUSTER: wait up to 30 s, fail clearly if the server stays down
    for _ in $(seq 1 30); do
        pg_isready -h 127.0.0.1 -p "$1" -q && return 0
        sleep 1
    done
    pg_isready -h 127.0.0.1 -p "$1" || {
        echo "PostgreSQL $version/$2 is not reachable on 127.0.0.1:$1" \
            "(see /var/log/postgresql/postgresql-$version-$2.log)" >&2
        exit 1
    }
}

ensure_online() {  # ensure_online CLUSTER PORT: start the cluster if it does not answer
    if ! pg_isready -h 127.0.0.1 -p "$2" -q 2>/dev/null; then
        pg_ctlcluster --skip-systemctl-redirect "$version" "$1" start || true
    fi
    wait_ready "$2" "$1"
}

ensure_prepared_transactions() {  # CLUSTER PORT: max_prepared_transactions > 0, restart if changed
    local current
    current="$(psql_at "$2" "SHOW max_prepared_transactions")"
    if [ "$current" -gt 0 ]; then
        return 0
    fi
    echo "PostgreSQL $version/$1: max_prepared_transactions is 0, setting 64 and restarting"
    psql_at "$2" "ALTER SYSTEM SET max_prepared_transactions = 64" >/dev/null
    pg_ctlcluster --skip-systemctl-redirect "$version" "$1" restart
    wait_ready "$2" "$1"
    current="$(psql_at "$2" "SHOW max_prepared_transactions")"
    [ "$current" -gt 0 ] || {
        echo "PostgreSQL $version/$1: max_prepared_transactions is still $current" >&2
        exit 1
    }
}

# The main server (5432).
ensure_online main 5432

# The second server (5433): create the cluster once.
existing_port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "backend2" { print $3 }')"
if [ -z "$existing_port" ]; then
    pg_createcluster "$version" backend2 -p 5433 -- --auth=trust
elif [ "$existing_port" != 5433 ]; then
    echo "PostgreSQL $version/backend2 exists on port $existing_port, expected 5433" >&2
    exit 1
fi
ensure_online backend2 5433

ensure_prepared_transactions main 5432
ensure_prepared_transactions backend2 5433
