#!/usr/bin/env bash
# API benchmarks for BENCHMARKS.md: start-up time, GET/POST throughput with wrk, RSS.
#
# Builds magnumd in release mode, starts it on its embedded defaults (SQLite, built-in
# identity) in a temporary state directory, seeds 100 cluster templates, and runs wrk from
# Debian (installed if missing) for 10 s per case at 1 and 16 connections. Prints a Markdown
# table. Only the magnumd it started is stopped (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${BENCH_DURATION:-10s}"
API_PORT="${BENCH_API_PORT:-19511}"
IDENTITY_PORT="${BENCH_IDENTITY_PORT:-15000}"
command -v wrk >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; } >&2
cargo build --release --locked --bin magnumd >&2

WORK=$(mktemp -d)
MAGNUMD_PID=""
cleanup() {
    if [ -n "$MAGNUMD_PID" ]; then kill "$MAGNUMD_PID" 2>/dev/null || true; wait "$MAGNUMD_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/magnum.conf" <<CONF
[DEFAULT]
state_path = $WORK/state
[api]
port = $API_PORT
[identity]
port = $IDENTITY_PORT
admin_password = bench-secret
[drivers]
# API figures only: template lookups must not depend on a Docker engine.
provider = unverified
CONF

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# Start-up: from exec to the first 200 on GET / (first start: creates the database and admin).
START_NS=$(date +%s%N)
RUST_LOG=warn ./target/release/magnumd --config-file "$WORK/magnum.conf" > "$WORK/stdout" 2> "$WORK/stderr" &
MAGNUMD_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/"; do sleep 0.002; done
FIRST_START_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
kill "$MAGNUMD_PID"; wait "$MAGNUMD_PID" || true
START_NS=$(date +%s%N)
RUST_LOG=warn ./target/release/magnumd --config-file "$WORK/magnum.conf" > "$WORK/stdout" 2> "$WORK/stderr" &
MAGNUMD_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/"; do sleep 0.002; done
WARM_START_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))

TOKEN=$(curl -si -X POST "http://127.0.0.1:$IDENTITY_PORT/v3/auth/tokens" -H 'Content-Type: application/json' \
  -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"bench-secret"}}},"scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}' \
  | awk 'tolower($1) == "x-subject-token:" {print $2}' | tr -d '\r')
for i in $(seq 1 100); do
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$API_PORT/v1/clustertemplates" -H "X-Auth-Token: $TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"name\":\"seed-$i\",\"coe\":\"kubernetes\",\"image_id\":\"fedora-coreos\",\"external_network_id\":\"public\",\"flavor_id\":\"m1.small\",\"labels\":{\"kube_tag\":\"v1.23.3\",\"flannel_backend\":\"vxlan\"}}"
done
ONE_UUID=$(curl -sf "http://127.0.0.1:$API_PORT/v1/clustertemplates/seed-50" -H "X-Auth-Token: $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
IDLE_RSS=$(rss_kib "$MAGNUMD_PID")

# Every POST creates a template with a name no other request uses: threads get distinct ids
# in setup(), runs get a distinct prefix.
cat > "$WORK/post.lua" <<LUA
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"name":"bench-' .. RUN_TAG .. '-' .. thread_id .. '-' .. counter .. '","coe":"swarm","image_id":"fedora","external_network_id":"public"}'
  return wrk.format("POST", "/v1/clustertemplates", {["X-Auth-Token"] = "$TOKEN", ["Content-Type"] = "application/json"}, body)
end
LUA
cat > "$WORK/get.lua" <<LUA
wrk.headers["X-Auth-Token"] = "$TOKEN"
LUA

# Prints "requests/s | p50 | p99" for one wrk run.
run_wrk() {
  local connections=$1 script=$2 path=$3
  local threads=$(( connections < 2 ? 1 : 2 ))
  sed "s/RUN_TAG/'c$connections'/" "$script" > "$WORK/run.lua"
  wrk -t"$threads" -c"$connections" -d"$DURATION" --latency -s "$WORK/run.lua" "http://127.0.0.1:$API_PORT$path" > "$WORK/wrk.out"
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
  errors=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out")
  echo "$rps | $p50 | $p99 | ${errors:-0}"
}

echo "| Case | Connections | Requests/s | p50 | p99 | Non-2xx |"
echo "|---|---|---|---|---|---|"
for connections in 1 16; do
  echo "| GET /v1/clustertemplates (100 rows) | $connections | $(run_wrk "$connections" "$WORK/get.lua" /v1/clustertemplates) |"
done
for connections in 1 16; do
  echo "| GET /v1/clustertemplates/{uuid} | $connections | $(run_wrk "$connections" "$WORK/get.lua" "/v1/clustertemplates/$ONE_UUID") |"
done
for connections in 1 16; do
  echo "| POST /v1/clustertemplates | $connections | $(run_wrk "$connections" "$WORK/post.lua" /v1/clustertemplates) |"
done
LOADED_RSS=$(rss_kib "$MAGNUMD_PID")
echo
echo "| Measure | Value |"
echo "|---|---|"
echo "| Start-up to first 200, first start (creates database and admin) | ${FIRST_START_MS} ms |"
echo "| Start-up to first 200, later start | ${WARM_START_MS} ms |"
echo "| RSS idle (100 templates) | $(( IDLE_RSS / 1024 )) MiB |"
echo "| RSS after the load above | $(( LOADED_RSS / 1024 )) MiB |"
