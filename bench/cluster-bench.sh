#!/usr/bin/env bash
# Cluster lifecycle benchmarks for BENCHMARKS.md: magnumd on the local Docker engine next to
# a plain docker-CLI script doing the same container and swarm steps (the physical limit).
#
# Needs a running Docker engine and the node image (`magnumd node-image build`). Builds
# magnumd in release mode, starts it with the docker provider in a temporary state
# directory, and for each of BENCH_RUNS runs measures, for both magnumd and the script:
#   create 1 master + 2 workers until every node is Ready (magnumd: until CREATE_COMPLETE),
#   create 1 + 4, scale out +2 workers, scale in -1 worker (named), delete everything.
# magnumd is timed from the API request to the status change, polled every 50 ms. Then it
# keeps 5 clusters (1 + 1) and reports its RSS. Prints Markdown tables; stops only what it
# started (by PID) and removes only resources labelled by this run.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-3}"
API_PORT="${BENCH_API_PORT:-19611}"
IDENTITY_PORT="${BENCH_IDENTITY_PORT:-15100}"
IMAGE="${BENCH_NODE_IMAGE:-magnum-node:bookworm}"
INIT=crates/magnum-driver-docker/node/magnum-node-init
cargo build --release --locked --bin magnumd >&2
./target/release/magnumd node-image build >&2

WORK=$(mktemp -d)
MAGNUMD_PID=""
PLAIN_LABEL="magnum-bench.plain=$$"
cleanup() {
    set +e
    if [ -n "$MAGNUMD_PID" ]; then kill "$MAGNUMD_PID" 2>/dev/null; wait "$MAGNUMD_PID" 2>/dev/null; fi
    plain_delete_all >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 130" INT TERM

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---------------------------------------------------------------- the plain docker script
# The same steps the Swarm driver takes: network, volumes, certificates (openssl), node
# containers with the flags of ../shared/notes, certificates copied in, start, swarm init
# over TLS, joins through exec, wait until Ready.
PLAIN_NET=plain-bench-$$
SUBNET_PREFIX=10.201.250
plain_tls() { docker --tlsverify --tlscacert "$WORK/plain/ca.pem" --tlscert "$WORK/plain/cert.pem" \
    --tlskey "$WORK/plain/key.pem" -H "tcp://$SUBNET_PREFIX.10:2376" "$@"; }

plain_certificates() {
    local dir="$WORK/plain"; mkdir -p "$dir/tls/etc/docker/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=plain -keyout "$dir/ca-key.pem" \
        -out "$dir/ca.pem" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -subj /CN=swarm.invalid -keyout "$dir/tls/etc/docker/tls/server-key.pem" \
        -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:%s.10,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' "$SUBNET_PREFIX" > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
        -days 30 -extfile "$dir/server.ext" -out "$dir/tls/etc/docker/tls/server.pem" 2>/dev/null
    cp "$dir/ca.pem" "$dir/tls/etc/docker/tls/ca.pem"
    openssl req -new -newkey rsa:2048 -nodes -subj /CN=admin -keyout "$dir/key.pem" -out "$dir/client.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > "$dir/client.ext"
    openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
        -days 30 -extfile "$dir/client.ext" -out "$dir/cert.pem" 2>/dev/null
    mkdir -p "$dir/tls/usr/local/bin"; cp "$INIT" "$dir/tls/usr/local/bin/magnum-node-init"
}

plain_node() { # role index host
    local role=$1 index=$2 host=$3 name="plain-$$-$1-$2"
    docker volume create --label "$PLAIN_LABEL" "$name-docker" >/dev/null
    docker create --name "$name" --label "$PLAIN_LABEL" --hostname "$name" \
        --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
        --security-opt systempaths=unconfined --cgroupns private --tmpfs /run --tmpfs /tmp \
        -v "$name-docker:/var/lib/docker" --network "$PLAIN_NET" --ip "$SUBNET_PREFIX.$host" \
        -e "MAGNUM_NODE_ROLE=$role" -e MAGNUM_TLS=1 "$IMAGE" >/dev/null
    if [ "$role" = master ]; then
        tar -C "$WORK/plain/tls" -c . | docker cp - "$name:/"
    else
        tar -C "$WORK/plain/tls" -c usr | docker cp - "$name:/"
    fi
    docker start "$name" >/dev/null
}

plain_wait_ready() { # count
    until [ "$(plain_tls node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$')" = "$1" ]; do sleep 0.05; done
}

plain_join() { # index...
    local token; token=$(plain_tls swarm join-token -q worker)
    local pids=()
    for index in "$@"; do
        docker exec "plain-$$-worker-$index" sh -c "until docker info >/dev/null 2>&1; do sleep 0.05; done; docker swarm join --token $token $SUBNET_PREFIX.10:2377" >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
}

plain_create() { # workers
    local workers=$1
    plain_certificates
    docker network create --internal --label "$PLAIN_LABEL" --subnet "$SUBNET_PREFIX.0/24" \
        --gateway "$SUBNET_PREFIX.1" "$PLAIN_NET" >/dev/null
    local pids=()
    plain_node master 0 10 & pids+=($!)
    for index in $(seq 0 $((workers - 1))); do plain_node worker "$index" $((20 + index)) & pids+=($!); done
    wait "${pids[@]}"  # not a bare wait: magnumd is a background job of this shell too
    until plain_tls info >/dev/null 2>&1; do sleep 0.05; done
    plain_tls swarm init --advertise-addr "$SUBNET_PREFIX.10" --default-addr-pool 10.211.0.0/16 >/dev/null
    plain_join $(seq 0 $((workers - 1)))
    plain_wait_ready $((workers + 1))
}

plain_scale_out() { # from to
    local pids=()
    for index in $(seq "$1" $(($2 - 1))); do plain_node worker "$index" $((20 + index)) & pids+=($!); done
    wait "${pids[@]}"
    plain_join $(seq "$1" $(($2 - 1)))
    plain_wait_ready $(($2 + 1))
}

plain_scale_in() { # index (remaining worker count + 1 nodes stay)
    local name="plain-$$-worker-$1" id
    id=$(plain_tls node ls --filter "name=$name" -q)
    plain_tls node update --availability drain "$id" >/dev/null
    docker exec "$name" docker swarm leave --force >/dev/null
    plain_tls node rm --force "$id" >/dev/null
    docker rm -f "$name" >/dev/null
    docker volume rm "$name-docker" >/dev/null
}

plain_delete_all() {
    local containers; containers=$(docker ps -aq --filter "label=$PLAIN_LABEL")
    [ -n "$containers" ] && docker rm -f $containers >/dev/null
    local volumes; volumes=$(docker volume ls -q --filter "label=$PLAIN_LABEL")
    [ -n "$volumes" ] && docker volume rm $volumes >/dev/null
    docker network rm "$PLAIN_NET" >/dev/null 2>&1 || true
    rm -rf "$WORK/plain"
}

# ---------------------------------------------------------------------------- magnumd
cat > "$WORK/magnum.conf" <<CONF
[DEFAULT]
state_path = $WORK/state
[api]
port = $API_PORT
[identity]
port = $IDENTITY_PORT
admin_password = bench-secret
[drivers]
provider = docker
CONF
RUST_LOG=warn ./target/release/magnumd --config-file "$WORK/magnum.conf" > "$WORK/stdout" 2> "$WORK/stderr" &
MAGNUMD_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/"; do sleep 0.05; done
TOKEN=$(curl -si -X POST "http://127.0.0.1:$IDENTITY_PORT/v3/auth/tokens" -H 'Content-Type: application/json' \
  -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"bench-secret"}}},"scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}' \
  | awk 'tolower($1) == "x-subject-token:" {print $2}' | tr -d '\r')
API="http://127.0.0.1:$API_PORT/v1"
call() { curl -sf -H "X-Auth-Token: $TOKEN" -H 'OpenStack-API-Version: container-infra latest' \
    -H 'Content-Type: application/json' "$@"; }
call -X POST "$API/clustertemplates" -d "{\"name\":\"swarm\",\"coe\":\"swarm\",\"image_id\":\"$IMAGE\",\"external_network_id\":\"local\",\"network_driver\":\"docker\",\"flavor_id\":\"m1.small\"}" >/dev/null

# One curl per poll and no other process, so polling adds little to what is measured.
status_of() {
    local body
    body=$(curl -s -H "X-Auth-Token: $TOKEN" -H 'OpenStack-API-Version: container-infra latest' "$API/clusters/$1")
    if [[ $body =~ \"status\":\"([A-Z_]+)\" ]]; then echo "${BASH_REMATCH[1]}"; else echo GONE; fi
}
wait_status() { # uuid wanted
    local status
    while true; do
        status=$(status_of "$1")
        case "$status" in
            "$2") return 0 ;;
            *FAILED) echo "cluster $1 ended $status" >&2; call "$API/clusters/$1" >&2; exit 1 ;;
        esac
        sleep 0.02
    done
}
magnum_create() { # name workers → uuid
    call -X POST "$API/clusters" -d "{\"name\":\"$1\",\"cluster_template_id\":\"swarm\",\"master_count\":1,\"node_count\":$2}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])'
}

declare -A MAGNUM PLAIN
record() { # table key ms
    local -n table=$1
    table[$2]="${table[$2]:-} $3"
}

for run in $(seq 1 "$RUNS"); do
    echo "run $run of $RUNS" >&2
    # magnumd: create 1+2, scale +2, scale -1, delete; then create 1+4 and delete.
    start=$(now_ms); uuid=$(magnum_create "b$run" 2); wait_status "$uuid" CREATE_COMPLETE
    record MAGNUM create3 $(( $(now_ms) - start ))
    start=$(now_ms)
    call -X PATCH "$API/clusters/$uuid" -d '[{"op":"replace","path":"/node_count","value":4}]' >/dev/null
    sleep 0.05; wait_status "$uuid" UPDATE_COMPLETE
    record MAGNUM out2 $(( $(now_ms) - start ))
    start=$(now_ms)
    call -X POST "$API/clusters/$uuid/actions/resize" -d "{\"node_count\":3,\"nodes_to_remove\":[\"b$run-node-3\"]}" >/dev/null
    sleep 0.05; wait_status "$uuid" UPDATE_COMPLETE
    record MAGNUM in1 $(( $(now_ms) - start ))
    start=$(now_ms); call -X DELETE "$API/clusters/$uuid" >/dev/null; wait_status "$uuid" GONE
    record MAGNUM delete $(( $(now_ms) - start ))
    # The cluster is gone from the API only after its resources are: check, untimed.
    leftovers="$(docker ps -aq --filter "label=org.openstack.magnum.cluster=$uuid")$(docker volume ls -q --filter "label=org.openstack.magnum.cluster=$uuid")$(docker network ls -q --filter "label=org.openstack.magnum.cluster=$uuid")"
    [ -z "$leftovers" ] || { echo "cluster $uuid left resources behind: $leftovers" >&2; exit 1; }
    start=$(now_ms); uuid=$(magnum_create "f$run" 4); wait_status "$uuid" CREATE_COMPLETE
    record MAGNUM create5 $(( $(now_ms) - start ))
    call -X DELETE "$API/clusters/$uuid" >/dev/null; wait_status "$uuid" GONE

    # The plain script, same steps.
    start=$(now_ms); plain_create 2; record PLAIN create3 $(( $(now_ms) - start ))
    start=$(now_ms); plain_scale_out 2 4; record PLAIN out2 $(( $(now_ms) - start ))
    start=$(now_ms); plain_scale_in 3; record PLAIN in1 $(( $(now_ms) - start ))
    start=$(now_ms); plain_delete_all; record PLAIN delete $(( $(now_ms) - start ))
    start=$(now_ms); plain_create 4; record PLAIN create5 $(( $(now_ms) - start ))
    plain_delete_all
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { awk -v ms="$1" 'BEGIN {printf "%.2f", ms / 1000}'; }
echo
echo "| Step | magnumd (median s) | plain docker script (median s) | ratio | magnumd runs (ms) | script runs (ms) |"
echo "|---|---|---|---|---|---|"
for key in create3 create5 out2 in1 delete; do
    case $key in
        create3) label="create 1 master + 2 workers, all Ready" ;;
        create5) label="create 1 master + 4 workers, all Ready" ;;
        out2) label="scale out +2 workers" ;;
        in1) label="scale in -1 worker (named)" ;;
        delete) label="delete (1 + 3)" ;;
    esac
    m=$(echo "${MAGNUM[$key]}" | median); p=$(echo "${PLAIN[$key]}" | median)
    ratio=$(awk -v m="$m" -v p="$p" 'BEGIN {printf "%.2f", m / p}')
    echo "| $label | $(seconds "$m") | $(seconds "$p") | $ratio | ${MAGNUM[$key]# } | ${PLAIN[$key]# } |"
done

# Memory while 5 clusters are managed (1 + 1 each), after a few health-sync rounds.
uuids=()
for index in 1 2 3 4 5; do uuids+=("$(magnum_create "m$index" 1)"); done
for uuid in "${uuids[@]}"; do wait_status "$uuid" CREATE_COMPLETE; done
sleep 25
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$MAGNUMD_PID/status")
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$MAGNUMD_PID/status")
for uuid in "${uuids[@]}"; do call -X DELETE "$API/clusters/$uuid" >/dev/null; done
for uuid in "${uuids[@]}"; do wait_status "$uuid" GONE; done
echo
echo "| magnumd memory with 5 clusters managed | |"
echo "|---|---|"
echo "| RSS | $((RSS / 1024)) MiB |"
echo "| peak RSS (VmHWM) over the whole run | $((HWM / 1024)) MiB |"
