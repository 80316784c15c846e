#!/bin/bash
# Configures one node of a magnum-rs Kubernetes cluster on Fedora Atomic at first boot
# (driver k8s_fedora_atomic_v1, the seed's driver). cloud-init wrote /etc/sysconfig/heat-params
# (the cluster's settings and the trustee's credentials, mode 0600) and this script, and runs
# it once.
#
# As the seed describes the image: etcd, flannel, docker, kube-apiserver and the kubelet are
# systemd services of the image; kube-controller-manager, kube-scheduler and kube-proxy run
# as containers. The masters' etcd members find each other through DISCOVERY_URL. Node keys
# are made here and signed by magnum with the trustee's credentials; the key never leaves
# the node. At the end the node signals its Heat wait condition, so the stack completes only
# when every node is configured.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/sysconfig/heat-params

METADATA_URL=http://169.254.169.254/openstack/latest/meta_data.json
KUBE_DIR=/etc/kubernetes
CERT_DIR=/etc/kubernetes/certs
mkdir -p "$CERT_DIR"
chmod 0700 "$CERT_DIR"

log() { echo "magnum-configure-node: $*" >&2; }

retry() {
    local attempt
    for attempt in $(seq 1 30); do
        if "$@"; then
            return 0
        fi
        log "attempt $attempt of '$1' failed; retrying"
        sleep 10
    done
    return 1
}

meta() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)["meta"].get(sys.argv[1], ""))' "$1" \
        </run/magnum-meta.json
}

signal() {
    local status="$1" reason="$2" endpoint token
    endpoint=$(meta magnum_wait_endpoint)
    token=$(meta magnum_wait_token)
    [ -n "$endpoint" ] || return 0
    curl -sf --max-time 20 -X POST "$endpoint" -H "X-Auth-Token: $token" \
        -H 'Content-Type: application/json' -H 'Accept: application/json' \
        -d "{\"status\": \"$status\", \"reason\": \"$reason\"}" >/dev/null
}

retry curl -sf --max-time 10 -o /run/magnum-meta.json "$METADATA_URL"
trap 'signal FAILURE "configuring the node failed at line $LINENO"' ERR

ROLE=$(meta magnum_role)
API_ADDRESS=$(meta magnum_api_address)
ETCD_ADDRESS=$(meta magnum_etcd_address)
NODE_NAME=$(hostname -s)
NODE_IP=$(ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
log "configuring $NODE_NAME ($NODE_IP) as a $ROLE of cluster $BAY_UUID"

if [ -n "${HTTP_PROXY:-}" ] || [ -n "${HTTPS_PROXY:-}" ]; then
    mkdir -p /etc/systemd/system/docker.service.d
    cat >/etc/systemd/system/docker.service.d/magnum-proxy.conf <<PROXY
[Service]
Environment="HTTP_PROXY=${HTTP_PROXY:-}" "HTTPS_PROXY=${HTTPS_PROXY:-}" "NO_PROXY=${NO_PROXY:-}"
PROXY
fi

# Container storage on the Cinder volume when the template sized one.
if [ "${DOCKER_VOLUME_SIZE:-0}" -gt 0 ] && [ -b /dev/vdb ]; then
    cat >/etc/sysconfig/docker-storage-setup <<STORAGE
DEVS=/dev/vdb
VG=docker
STORAGE_DRIVER=$DOCKER_STORAGE_DRIVER
STORAGE
    docker-storage-setup
fi

trustee_token() {
    curl -sf --max-time 20 -i -X POST "$AUTH_URL/auth/tokens" \
        -H 'Content-Type: application/json' \
        -d "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"id\": \"$TRUSTEE_USER_ID\", \"password\": \"$TRUSTEE_PASSWORD\"}}}, \"scope\": {\"OS-TRUST:trust\": {\"id\": \"$TRUST_ID\"}}}}" \
        | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: \([^[:space:]]*\).*/\1/p'
}

sign_certificate() {
    local name="$1" subject="$2" addresses="$3" token
    openssl req -new -newkey rsa:2048 -nodes -keyout "$CERT_DIR/$name.key" \
        -out "$CERT_DIR/$name.csr" -subj "$subject" \
        -addext "subjectAltName=$addresses" 2>/dev/null
    chmod 0600 "$CERT_DIR/$name.key"
    token=$(trustee_token)
    [ -n "$token" ] || return 1
    python3 - "$BAY_UUID" "$CERT_DIR/$name.csr" >/run/magnum-sign.json <<'PY'
import json, sys
print(json.dumps({"bay_uuid": sys.argv[1], "csr": open(sys.argv[2]).read()}))
PY
    curl -sf --max-time 30 -X POST "$MAGNUM_URL/certificates" \
        -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
        -d @/run/magnum-sign.json \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["pem"], end="")' \
            >"$CERT_DIR/$name.crt"
}

fetch_ca() {
    local token
    token=$(trustee_token)
    [ -n "$token" ] || return 1
    curl -sf --max-time 30 "$MAGNUM_URL/certificates/$BAY_UUID" -H "X-Auth-Token: $token" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["pem"], end="")' \
            >"$CERT_DIR/ca.crt"
}

TLS=yes
if [ "$TLS_DISABLED" = "True" ] || [ "$TLS_DISABLED" = "true" ]; then
    TLS=no
fi
if [ "$TLS" = yes ]; then
    retry fetch_ca
    SANS="IP:$NODE_IP,DNS:$NODE_NAME"
    if [ "$ROLE" = master ]; then
        SANS="$SANS,IP:${PORTAL_NETWORK_CIDR%.*/*}.1,DNS:kubernetes,DNS:kubernetes.default"
        if [ -n "$API_ADDRESS" ]; then
            SANS="$SANS,IP:$API_ADDRESS"
        fi
        retry sign_certificate server "/CN=kube-apiserver" "$SANS"
    fi
    retry sign_certificate kubelet "/CN=system:node:$NODE_NAME/O=system:nodes" "$SANS"
fi

# flannel keeps its network configuration in etcd (the masters' cluster).
if [ "$ROLE" = master ]; then
    ETCD_ENDPOINT=http://127.0.0.1:2379
    cat >/etc/etcd/etcd.conf <<ETCD
ETCD_NAME=$NODE_NAME
ETCD_DATA_DIR=/var/lib/etcd/default.etcd
ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379
ETCD_ADVERTISE_CLIENT_URLS=http://$NODE_IP:2379
ETCD_LISTEN_PEER_URLS=http://$NODE_IP:2380
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://$NODE_IP:2380
ETCD_DISCOVERY=$DISCOVERY_URL
ETCD
    systemctl enable --now etcd
else
    ETCD_ENDPOINT=http://${ETCD_ADDRESS:-$API_ADDRESS}:2379
fi

if [ "$NETWORK_DRIVER" = flannel ]; then
    if [ "$ROLE" = master ]; then
        FLANNEL_CONFIG="{\"Network\": \"$FLANNEL_NETWORK_CIDR\", \"SubnetLen\": $FLANNEL_NETWORK_SUBNETLEN, \"Backend\": {\"Type\": \"$FLANNEL_BACKEND\"}}"
        retry curl -sf --max-time 10 -X PUT "$ETCD_ENDPOINT/v2/keys/atomic.io/network/config" \
            --data-urlencode "value=$FLANNEL_CONFIG" >/dev/null
    fi
    cat >/etc/sysconfig/flanneld <<FLANNEL
FLANNEL_ETCD=$ETCD_ENDPOINT
FLANNEL_ETCD_KEY=/atomic.io/network
FLANNEL
    systemctl enable --now flanneld
fi
systemctl enable --now docker

if [ "$TLS" = yes ]; then
    API_URL=https://${API_ADDRESS:-$NODE_IP}:$KUBERNETES_PORT
else
    API_URL=http://${API_ADDRESS:-$NODE_IP}:$KUBERNETES_PORT
fi

run_container() {
    local name="$1"
    shift
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" --net host --privileged --restart always \
        -v "$KUBE_DIR:$KUBE_DIR:ro" "gcr.io/google_containers/hyperkube:$KUBE_TAG" \
        /hyperkube "$@"
}

if [ "$ROLE" = master ]; then
    if [ "$TLS" = yes ]; then
        SERVING="--secure-port=$KUBERNETES_PORT --insecure-port=0 --tls-cert-file=$CERT_DIR/server.crt --tls-private-key-file=$CERT_DIR/server.key --client-ca-file=$CERT_DIR/ca.crt"
    else
        SERVING="--insecure-bind-address=0.0.0.0 --insecure-port=$KUBERNETES_PORT"
    fi
    cat >"$KUBE_DIR/apiserver" <<APISERVER
KUBE_API_ADDRESS="--advertise-address=$NODE_IP"
KUBE_ETCD_SERVERS="--etcd-servers=$ETCD_ENDPOINT"
KUBE_SERVICE_ADDRESSES="--service-cluster-ip-range=$PORTAL_NETWORK_CIDR"
KUBE_API_ARGS="$SERVING --allow-privileged=$KUBE_ALLOW_PRIV"
APISERVER
    systemctl enable --now kube-apiserver
    run_container kube-controller-manager controller-manager --master="$API_URL"
    run_container kube-scheduler scheduler --master="$API_URL"
fi

cat >"$KUBE_DIR/kubelet" <<KUBELET
KUBELET_ADDRESS="--address=0.0.0.0"
KUBELET_HOSTNAME="--hostname-override=$NODE_NAME"
KUBELET_API_SERVER="--api-servers=$API_URL"
KUBELET_ARGS="--allow-privileged=$KUBE_ALLOW_PRIV --node-labels=magnum.openstack.org/role=$ROLE,magnum.openstack.org/nodegroup=$(meta magnum_nodegroup)${NODE_LABELS:+,$NODE_LABELS}"
KUBELET
systemctl enable --now kubelet
run_container kube-proxy proxy --master="$API_URL"

signal SUCCESS "node $NODE_NAME configured"
log "done"
