#!/bin/bash
# Configures one node of a magnum-rs Kubernetes cluster on Fedora CoreOS at first boot
# (driver k8s_fedora_coreos_v1). Ignition wrote /etc/magnum/cluster.env (the cluster's
# settings and the trustee's credentials, mode 0600) and this script; systemd runs it once.
#
# Steps: learn this node's role and addresses from the metadata service; get a token as
# the cluster's trustee; have magnum sign this node's certificate (its key never leaves the
# node); write the kubelet's configuration; start the components for the role.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/magnum/cluster.env

METADATA_URL=http://169.254.169.254/openstack/latest/meta_data.json
STATE_DIR=/etc/kubernetes
CERT_DIR=$STATE_DIR/certs
mkdir -p "$CERT_DIR"
chmod 0700 "$CERT_DIR"

log() { echo "magnum-configure-node: $*" >&2; }

is_true() { [ "${1:-}" = "True" ] || [ "${1:-}" = "true" ]; }

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

retry curl -sf --max-time 10 -o /run/magnum-meta.json "$METADATA_URL"
ROLE=$(meta magnum_role)
API_ADDRESS=$(meta magnum_api_address)
NODE_NAME=$(hostname -s)
NODE_IP=$(ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
log "configuring $NODE_NAME ($NODE_IP) as a $ROLE of cluster $CLUSTER_UUID"

if [ -n "${HTTP_PROXY:-}" ] || [ -n "${HTTPS_PROXY:-}" ]; then
    mkdir -p /etc/systemd/system.conf.d
    cat >/etc/systemd/system.conf.d/magnum-proxy.conf <<PROXY
[Manager]
DefaultEnvironment="HTTP_PROXY=${HTTP_PROXY:-}" "HTTPS_PROXY=${HTTPS_PROXY:-}" "NO_PROXY=${NO_PROXY:-}"
PROXY
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
    python3 - "$CLUSTER_UUID" "$CERT_DIR/$name.csr" >/run/magnum-sign.json <<'PY'
import json, sys
print(json.dumps({"cluster_uuid": sys.argv[1], "csr": open(sys.argv[2]).read()}))
PY
    curl -sf --max-time 30 -X POST "$MAGNUM_URL/certificates" \
        -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
        -H 'OpenStack-API-Version: container-infra latest' \
        -d @/run/magnum-sign.json \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["pem"], end="")' \
            >"$CERT_DIR/$name.crt"
}

fetch_ca() {
    local token
    token=$(trustee_token)
    [ -n "$token" ] || return 1
    curl -sf --max-time 30 "$MAGNUM_URL/certificates/$CLUSTER_UUID" \
        -H "X-Auth-Token: $token" -H 'OpenStack-API-Version: container-infra latest' \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["pem"], end="")' \
            >"$CERT_DIR/ca.crt"
}

if [ "$TLS_DISABLED" != "True" ] && [ "$TLS_DISABLED" != "true" ]; then
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
    if [ "$ROLE" = master ]; then
        # The masters' own administrator, for the add-ons they apply.
        retry sign_certificate admin "/CN=admin/O=system:masters" "DNS:$NODE_NAME"
        if is_true "$KEYSTONE_AUTH_ENABLED"; then
            retry sign_certificate keystone-auth "/CN=k8s-keystone-auth" "IP:127.0.0.1"
        fi
    fi
fi

KUBE_IMAGE_PREFIX=${CONTAINER_INFRA_PREFIX:-docker.io/rancher/}
run_component() {
    local name="$1"
    shift
    podman rm -f "$name" >/dev/null 2>&1 || true
    podman run -d --name "$name" --net host --privileged --restart always \
        -v "$STATE_DIR:$STATE_DIR:z" -v /var/lib:/var/lib:rshared \
        "${KUBE_IMAGE_PREFIX}hyperkube:$KUBE_TAG" "$@"
}

if [ "$ROLE" = master ]; then
    # A single-member etcd per master for now; several masters need the discovery service.
    podman rm -f etcd >/dev/null 2>&1 || true
    podman run -d --name etcd --net host --restart always -v /var/lib/etcd:/var/lib/etcd:z \
        "quay.io/coreos/etcd:$ETCD_TAG" /usr/local/bin/etcd --name "$NODE_NAME" \
        --data-dir /var/lib/etcd --listen-client-urls http://127.0.0.1:2379 \
        --advertise-client-urls http://127.0.0.1:2379
    APISERVER_AUTH_ARGS=()
    if is_true "$KEYSTONE_AUTH_ENABLED"; then
        # Keystone tokens are checked by k8s-keystone-auth (an add-on) on this master.
        cat >"$STATE_DIR/keystone-webhook.kubeconfig" <<WEBHOOK
apiVersion: v1
kind: Config
clusters:
- name: webhook
  cluster:
    server: https://127.0.0.1:8443/webhook
    certificate-authority: $CERT_DIR/ca.crt
users:
- name: webhook
contexts:
- name: webhook
  context: {cluster: webhook, user: webhook}
current-context: webhook
WEBHOOK
        APISERVER_AUTH_ARGS=(
            --authentication-token-webhook-config-file="$STATE_DIR/keystone-webhook.kubeconfig"
            --authorization-webhook-config-file="$STATE_DIR/keystone-webhook.kubeconfig"
            "--authorization-mode=Node,Webhook,RBAC"
        )
    fi
    run_component kube-apiserver kube-apiserver "${APISERVER_AUTH_ARGS[@]}" \
        --etcd-servers=http://127.0.0.1:2379 \
        --advertise-address="$NODE_IP" --secure-port="$KUBERNETES_PORT" \
        --service-cluster-ip-range="$PORTAL_NETWORK_CIDR" \
        --tls-cert-file="$CERT_DIR/server.crt" --tls-private-key-file="$CERT_DIR/server.key" \
        --client-ca-file="$CERT_DIR/ca.crt"
    run_component kube-controller-manager kube-controller-manager \
        --cluster-cidr="$FLANNEL_NETWORK_CIDR" --allocate-node-cidrs=true
    run_component kube-scheduler kube-scheduler
fi

# Add-ons magnum rendered for this master (the pod network, the cloud controller manager,
# Cinder CSI, the cluster-autoscaler, as the labels ask), applied once the API answers;
# applying is idempotent, so every master does it.
kubectl_apply() {
    podman run --rm --net host -v "$STATE_DIR:$STATE_DIR:z" \
        "${KUBE_IMAGE_PREFIX}hyperkube:$KUBE_TAG" \
        kubectl --kubeconfig "$STATE_DIR/admin.kubeconfig" apply -f "$1"
}
if [ "$ROLE" = master ] && [ -d "$STATE_DIR/addons" ]; then
    if [ "$TLS_DISABLED" != "True" ] && [ "$TLS_DISABLED" != "true" ]; then
        API_URL="https://$NODE_IP:$KUBERNETES_PORT"
    else
        API_URL="http://127.0.0.1:$KUBERNETES_PORT"
    fi
    cat >"$STATE_DIR/admin.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $API_URL
    certificate-authority: $CERT_DIR/ca.crt
users:
- name: admin
  user:
    client-certificate: $CERT_DIR/admin.crt
    client-key: $CERT_DIR/admin.key
contexts:
- name: admin
  context: {cluster: local, user: admin}
current-context: admin
KUBECONFIG
    chmod 0600 "$STATE_DIR/admin.kubeconfig"
    for addon in "$STATE_DIR"/addons/*.json; do
        [ -f "$addon" ] || continue
        log "applying $(basename "$addon")"
        retry kubectl_apply "$addon"
    done
fi

KUBELET_CLOUD_ARGS=()
if is_true "$CLOUD_PROVIDER_ENABLED"; then
    # The OpenStack cloud controller manager (an add-on) initializes the nodes.
    KUBELET_CLOUD_ARGS=(--cloud-provider=external)
fi
run_component kubelet kubelet --hostname-override="$NODE_NAME" "${KUBELET_CLOUD_ARGS[@]}" \
    --node-labels="magnum.openstack.org/role=$ROLE,magnum.openstack.org/nodegroup=$(meta magnum_nodegroup)${NODE_LABELS:+,$NODE_LABELS}"
log "done"
