#!/usr/bin/env bash
# Cluster read benchmarks for BENCHMARKS.md: list, detail and show throughput with wrk, and
# whether list latency stays flat from 100 to 100 000 clusters.
#
# Builds magnumd in release mode and runs its API role alone (no conductor: nothing is built
# and nothing works on the rows) on its embedded defaults (SQLite, built-in identity, every
# request with a real token, the docker provider: it needs a Docker engine and the node image
# for the template's look-ups) in a temporary state directory. One template and one cluster are created through
# the API; the cluster's rows (cluster and its two nodegroups) are then copied with new
# uuids and names straight into the SQLite file while magnumd is stopped, up to each size in
# BENCH_SIZES, all CREATE_COMPLETE. wrk runs BENCH_DURATION per case at BENCH_CONNECTIONS.
# Prints Markdown tables; stops only the magnumd it started (by PID). With BENCH_PROFILE_DIR
# set, `perf record` samples magnumd during each case into that directory
# (<clusters>-<case>.data).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
SIZES="${BENCH_SIZES:-100 10000 100000}"
API_PORT="${BENCH_API_PORT:-19711}"
IDENTITY_PORT="${BENCH_IDENTITY_PORT:-15200}"
command -v wrk >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; } >&2
cargo build --release --locked --bin magnumd >&2
./target/release/magnumd node-image build >&2

WORK=$(mktemp -d)
MAGNUMD_PID=""
stop_magnumd() {
    if [ -n "$MAGNUMD_PID" ]; then kill "$MAGNUMD_PID" 2>/dev/null || true; wait "$MAGNUMD_PID" 2>/dev/null || true; fi
    MAGNUMD_PID=""
}
cleanup() {
    stop_magnumd
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/magnum.conf" <<CONF
[DEFAULT]
state_path = $WORK/state
[api]
port = $API_PORT
max_limit = 1000
[identity]
port = $IDENTITY_PORT
admin_password = bench-secret
[quotas]
max_clusters_per_project = 1000000
max_nodes_per_project = 1000000
CONF

start_magnumd() {
    RUST_LOG=warn ./target/release/magnumd --config-file "$WORK/magnum.conf" api > "$WORK/stdout" 2> "$WORK/stderr" &
    MAGNUMD_PID=$!
    until curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/"; do sleep 0.01; done
}

start_magnumd
TOKEN=$(curl -si -X POST "http://127.0.0.1:$IDENTITY_PORT/v3/auth/tokens" -H 'Content-Type: application/json' \
  -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"bench-secret"}}},"scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}' \
  | awk 'tolower($1) == "x-subject-token:" {print $2}' | tr -d '\r')
curl -sf -o /dev/null -X POST "http://127.0.0.1:$API_PORT/v1/clustertemplates" -H "X-Auth-Token: $TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"name":"bench","coe":"swarm","image_id":"magnum-node:bookworm","external_network_id":"local","network_driver":"docker","flavor_id":"m1.small"}'
curl -sf -o /dev/null -X POST "http://127.0.0.1:$API_PORT/v1/clusters" -H "X-Auth-Token: $TOKEN" \
  -H 'Content-Type: application/json' -H 'OpenStack-API-Version: container-infra latest' \
  -d '{"name":"c-0","cluster_template_id":"bench","master_count":1,"node_count":2,"labels":{"availability_zone":"nova"}}'
stop_magnumd

# Copies the first cluster (and its nodegroups) until the table holds $1 clusters.
grow_to() {
    python3 - "$WORK/state/magnum.sqlite" "$1" <<'PY'
import sqlite3, sys, uuid
path, target = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
db.row_factory = sqlite3.Row
have = db.execute("SELECT COUNT(*) FROM cluster").fetchone()[0]
first = db.execute("SELECT * FROM cluster ORDER BY id LIMIT 1").fetchone()
groups = db.execute("SELECT * FROM nodegroup WHERE cluster_id = ?", (first["uuid"],)).fetchall()
cluster_columns = [c for c in first.keys() if c != "id"]
group_columns = [c for c in groups[0].keys() if c != "id"]
cluster_rows, group_rows = [], []
for number in range(have, target):
    cluster_uuid = str(uuid.uuid4())
    values = dict(first)
    values.update(uuid=cluster_uuid, name=f"c-{number}", status="CREATE_COMPLETE",
                  operation=None, status_reason="Cluster create completed.")
    cluster_rows.append([values[c] for c in cluster_columns])
    for group in groups:
        group_values = dict(group)
        group_values.update(uuid=str(uuid.uuid4()), cluster_id=cluster_uuid)
        group_rows.append([group_values[c] for c in group_columns])
db.execute("UPDATE cluster SET status = 'CREATE_COMPLETE', operation = NULL")
db.executemany(f"INSERT INTO cluster ({', '.join(cluster_columns)}) VALUES ({', '.join('?' * len(cluster_columns))})", cluster_rows)
db.executemany(f"INSERT INTO nodegroup ({', '.join(group_columns)}) VALUES ({', '.join('?' * len(group_columns))})", group_rows)
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
PY
}

cat > "$WORK/get.lua" <<LUA
wrk.headers["X-Auth-Token"] = "$TOKEN"
wrk.headers["OpenStack-API-Version"] = "container-infra latest"
LUA

# Prints "requests/s | p50 | p99 | non-2xx" for one wrk run.
run_wrk() {
  local name=$1 path=$2 perf_pid=""
  if [ -n "${BENCH_PROFILE_DIR:-}" ]; then
    mkdir -p "$BENCH_PROFILE_DIR"
    perf record -F 999 -g -p "$MAGNUMD_PID" -o "$BENCH_PROFILE_DIR/$name.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/get.lua" "http://127.0.0.1:$API_PORT$path" > "$WORK/wrk.out"
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
  errors=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out")
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  echo "$rps | $p50 | $p99 | ${errors:-0}"
}

echo "| Clusters | Case | Connections | Requests/s | p50 | p99 | Non-2xx |"
echo "|---|---|---|---|---|---|---|"
for size in $SIZES; do
  grow_to "$size"
  start_magnumd
  middle=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT uuid FROM cluster ORDER BY id LIMIT 1 OFFSET ?', (int(sys.argv[2]) // 2,)).fetchone()[0])" "$WORK/state/magnum.sqlite" "$size")
  one=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT uuid FROM cluster ORDER BY id DESC LIMIT 1').fetchone()[0])" "$WORK/state/magnum.sqlite")
  echo "| $size | GET /v1/clusters?limit=100 | $CONNECTIONS | $(run_wrk "$size-list" '/v1/clusters?limit=100') |"
  echo "| $size | GET /v1/clusters?limit=100&marker=(middle) | $CONNECTIONS | $(run_wrk "$size-list-marker" "/v1/clusters?limit=100&marker=$middle") |"
  echo "| $size | GET /v1/clusters/detail?limit=100 | $CONNECTIONS | $(run_wrk "$size-detail" '/v1/clusters/detail?limit=100') |"
  echo "| $size | GET /v1/clusters/{uuid} | $CONNECTIONS | $(run_wrk "$size-show" "/v1/clusters/$one") |"
  stop_magnumd
done
