#!/usr/bin/env bash
# Real Keystone 30 and Heat 27.0.1 from PyPI on loopback, for the tests of the OpenStack
# provider (only Nova, Neutron, Glance, Cinder and Octavia cannot run here).
#
#   scripts/openstack/services.sh start   # installs (cached) and starts; prints the env file
#   scripts/openstack/services.sh stop    # stops what start started, by PID
#
# Keystone runs under uwsgi (single-threaded workers: Keystone 30's auth middleware is not
# thread-safe; every answer says "Connection: close", because uwsgi's plain HTTP socket
# closes each connection after one answer and a client reusing it would have its next
# request reset); Heat runs its API and engine in one process (heat_one_process.py). Both
# keep their data in MariaDB (SQLite fails their concurrent writers with "database is
# locked"), which must already answer as root on its local socket (scripts/test-all.sh
# starts it). Everything lives in $MAGNUM_OPENSTACK_DIR (default
# /tmp/magnum-openstack), recreated on every start; the venvs are kept in the cache.
set -euo pipefail
# Eventlet's deprecation notice, printed by every OpenStack command here, is noise.
export PYTHONWARNINGS="ignore"

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_DIR="${MAGNUM_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/magnum-rs}"
WORK_DIR="${MAGNUM_OPENSTACK_DIR:-/tmp/magnum-openstack}"
KEYSTONE_VERSION=30.0.0
HEAT_VERSION=27.0.1
KEYSTONE_PORT="${MAGNUM_KEYSTONE_PORT:-35357}"
HEAT_PORT="${MAGNUM_HEAT_PORT:-35004}"
KEYSTONE_VENV="$CACHE_DIR/venv-keystone$KEYSTONE_VERSION"
HEAT_VENV="$CACHE_DIR/venv-heat$HEAT_VERSION"
KEYSTONE_URL="http://127.0.0.1:$KEYSTONE_PORT"
HEAT_URL="http://127.0.0.1:$HEAT_PORT"

log() { printf '==> %s\n' "$*" >&2; }

# A venv is reused while it holds exactly the packages asked for (recorded in .complete).
install_venv() {
    local venv="$1"
    shift
    if [ "$(cat "$venv/.complete" 2>/dev/null)" != "$*" ]; then
        log "creating $venv (pip install $*)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "$@"
        echo "$*" >"$venv/.complete"
    fi
}

# A MariaDB database and user of that name, fresh, with `password`.
fresh_mariadb_database() {
    local name="$1" password="$2"
    mariadb -e "DROP DATABASE IF EXISTS $name;
                CREATE DATABASE $name;
                CREATE USER IF NOT EXISTS '$name'@'127.0.0.1' IDENTIFIED BY '$password';
                ALTER USER '$name'@'127.0.0.1' IDENTIFIED BY '$password';
                GRANT ALL ON $name.* TO '$name'@'127.0.0.1';"
}

wait_for_url() {
    local url="$1" pid="$2" what="$3" log_file="$4"
    for _ in $(seq 1 120); do
        if curl -sf -o /dev/null --max-time 2 "$url"; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        sleep 0.5
    done
    echo "$what did not answer on $url; the end of its log:" >&2
    tail -n 40 "$log_file" >&2 || true
    exit 1
}

# 32 hexadecimal characters (Heat wants exactly 32 for its auth_encryption_key).
random_secret() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

start() {
    install_venv "$KEYSTONE_VENV" "keystone==$KEYSTONE_VERSION" uwsgi PyMySQL
    install_venv "$HEAT_VENV" "openstack-heat==$HEAT_VERSION" PyMySQL
    stop_quietly
    rm -rf "$WORK_DIR"
    mkdir -p "$WORK_DIR/fernet-keys" "$WORK_DIR/credential-keys"
    chmod 0700 "$WORK_DIR"
    local admin_password service_password encryption_key
    admin_password="$(random_secret)"
    service_password="$(random_secret)"
    encryption_key="$(random_secret)"

    log "starting Keystone $KEYSTONE_VERSION on $KEYSTONE_URL"
    fresh_mariadb_database magnum_test_keystone_$KEYSTONE_PORT "$service_password"
    cat >"$WORK_DIR/keystone.conf" <<EOF
[DEFAULT]
log_file = $WORK_DIR/keystone.log
[database]
connection = mysql+pymysql://magnum_test_keystone_$KEYSTONE_PORT:$service_password@127.0.0.1:3306/magnum_test_keystone_$KEYSTONE_PORT
[token]
provider = fernet
expiration = 14400
[fernet_tokens]
key_repository = $WORK_DIR/fernet-keys
[fernet_receipts]
key_repository = $WORK_DIR/fernet-keys
[credential]
key_repository = $WORK_DIR/credential-keys
[identity]
password_hash_rounds = 4
EOF
    local manage=("$KEYSTONE_VENV/bin/keystone-manage" --config-file "$WORK_DIR/keystone.conf")
    "${manage[@]}" db_sync
    "${manage[@]}" fernet_setup --keystone-user root --keystone-group root
    "${manage[@]}" credential_setup --keystone-user root --keystone-group root
    "${manage[@]}" bootstrap --bootstrap-password "$admin_password" \
        --bootstrap-admin-url "$KEYSTONE_URL/v3" --bootstrap-public-url "$KEYSTONE_URL/v3" \
        --bootstrap-internal-url "$KEYSTONE_URL/v3" --bootstrap-region-id RegionOne
    OS_KEYSTONE_CONFIG_FILES="$WORK_DIR/keystone.conf" \
        "$KEYSTONE_VENV/bin/uwsgi" --http-socket "127.0.0.1:$KEYSTONE_PORT" \
        --virtualenv "$KEYSTONE_VENV" --module keystone.wsgi.api:application \
        --processes 3 --threads 1 --master --die-on-term --need-app \
        --add-header "Connection: close" \
        >"$WORK_DIR/keystone-uwsgi.log" 2>&1 3>&- &
    echo $! >"$WORK_DIR/keystone.pid"
    wait_for_url "$KEYSTONE_URL/v3" "$(cat "$WORK_DIR/keystone.pid")" Keystone \
        "$WORK_DIR/keystone-uwsgi.log"

    log "creating Heat's and magnumd's users, domains and endpoints"
    python3 "$HERE/bootstrap_keystone.py" "$KEYSTONE_URL" "$admin_password" \
        "$service_password" "$HEAT_URL"

    log "starting Heat $HEAT_VERSION on $HEAT_URL"
    fresh_mariadb_database magnum_test_heat_$HEAT_PORT "$service_password"
    # Tests only: no cloud runs here, so the resources only a cloud can make (servers,
    # networks, volumes, load balancers, and signals from booted servers) become Heat's
    # no-op resource in every stack. Heat's own engine still validates, orders, updates and
    # deletes them. The product never installs such an environment.
    # Servers become a template of Heat's TestResource, so that a test can make one fail
    # (flavor fail.flavor) or never finish (flavor slow.flavor) as a cloud's server might.
    mkdir -p "$WORK_DIR/environment.d" "$WORK_DIR/templates"
    cat >"$WORK_DIR/templates/no-cloud-server.yaml" <<EOF
heat_template_version: 2021-04-16
description: Tests only - a Nova server that is not there; flavors fail.flavor and slow.flavor misbehave.
parameters:
  name: {type: string, default: ""}
  image: {type: string, default: ""}
  flavor: {type: string, default: ""}
  key_name: {type: string, default: ""}
  networks: {type: json, default: []}
  user_data_format: {type: string, default: RAW}
  user_data: {type: string, default: ""}
  user_data_update_policy: {type: string, default: REPLACE}
  metadata: {type: json, default: {}}
conditions:
  failing: {equals: [{get_param: flavor}, fail.flavor]}
  slow: {equals: [{get_param: flavor}, slow.flavor]}
resources:
  server:
    type: OS::Heat::TestResource
    properties:
      value: {get_param: name}
      fail: {if: [failing, true, false]}
      action_wait_secs: {create: {if: [slow, 3600, 0]}}
outputs:
  OS::stack_id:
    value: {get_resource: server}
EOF
    # Ports, floating IPs and load balancers become templates that make up an address, so
    # that stacks have node addresses to report (and nodegroup stacks an API address to
    # join). Heat ranks a wildcard mapping ("OS::Neutron::*") above a specific one of the
    # same family, so the other Neutron and Octavia types are listed one by one.
    cat >"$WORK_DIR/templates/no-cloud-port.yaml" <<EOF
heat_template_version: 2021-04-16
description: Tests only - a Neutron port that is not there, with a made-up address (10.0.1.100-199).
parameters:
  network: {type: string, default: ""}
  fixed_ips: {type: json, default: []}
  security_groups: {type: json, default: []}
resources:
  host:
    type: OS::Heat::RandomString
    properties:
      length: 2
      character_classes: [{class: digits, min: 2}]
outputs:
  fixed_ips:
    value: [{ip_address: {list_join: ["", ["10.0.1.1", {get_attr: [host, value]}]]}, subnet_id: ""}]
EOF
    cat >"$WORK_DIR/templates/no-cloud-floating-ip.yaml" <<EOF
heat_template_version: 2021-04-16
description: Tests only - a floating IP that is not there, with a made-up address (172.24.4.100-199).
parameters:
  floating_network: {type: string, default: ""}
  port_id: {type: string, default: ""}
resources:
  host:
    type: OS::Heat::RandomString
    properties:
      length: 2
      character_classes: [{class: digits, min: 2}]
outputs:
  floating_ip_address:
    value: {list_join: ["", ["172.24.4.1", {get_attr: [host, value]}]]}
EOF
    cat >"$WORK_DIR/templates/no-cloud-load-balancer.yaml" <<EOF
heat_template_version: 2021-04-16
description: Tests only - an Octavia load balancer that is not there, with the VIP 10.0.0.250.
parameters:
  provider: {type: string, default: ""}
  vip_subnet: {type: string, default: ""}
resources:
  vip_port:
    type: OS::Heat::RandomString
    properties: {length: 32, character_classes: [{class: hexdigits, min: 32}]}
outputs:
  vip_address:
    value: 10.0.0.250
  vip_port_id:
    value: {get_attr: [vip_port, value]}
EOF
    cat >"$WORK_DIR/environment.d/no-cloud.yaml" <<EOF
resource_registry:
  "OS::Nova::Server": file://$WORK_DIR/templates/no-cloud-server.yaml
  "OS::Neutron::Port": file://$WORK_DIR/templates/no-cloud-port.yaml
  "OS::Neutron::FloatingIP": file://$WORK_DIR/templates/no-cloud-floating-ip.yaml
  "OS::Octavia::LoadBalancer": file://$WORK_DIR/templates/no-cloud-load-balancer.yaml
  "OS::Nova::ServerGroup": OS::Heat::None
  "OS::Nova::KeyPair": OS::Heat::None
  "OS::Neutron::Net": OS::Heat::None
  "OS::Neutron::Subnet": OS::Heat::None
  "OS::Neutron::SubnetPool": OS::Heat::None
  "OS::Neutron::Router": OS::Heat::None
  "OS::Neutron::RouterInterface": OS::Heat::None
  "OS::Neutron::ExtraRoute": OS::Heat::None
  "OS::Neutron::SecurityGroup": OS::Heat::None
  "OS::Neutron::SecurityGroupRule": OS::Heat::None
  "OS::Neutron::FloatingIPAssociation": OS::Heat::None
  "OS::Neutron::ProviderNet": OS::Heat::None
  "OS::Neutron::Trunk": OS::Heat::None
  "OS::Neutron::QoSPolicy": OS::Heat::None
  "OS::Neutron::AddressScope": OS::Heat::None
  "OS::Cinder::*": OS::Heat::None
  "OS::Octavia::Listener": OS::Heat::None
  "OS::Octavia::Pool": OS::Heat::None
  "OS::Octavia::PoolMember": OS::Heat::None
  "OS::Octavia::HealthMonitor": OS::Heat::None
  "OS::Octavia::L7Policy": OS::Heat::None
  "OS::Octavia::L7Rule": OS::Heat::None
  "OS::Octavia::Flavor": OS::Heat::None
  "OS::Octavia::FlavorProfile": OS::Heat::None
  "OS::Octavia::Quota": OS::Heat::None
  "OS::Heat::WaitCondition": OS::Heat::None
  "OS::Heat::WaitConditionHandle": OS::Heat::None
  "OS::Heat::SoftwareDeployment": OS::Heat::None
  "OS::Heat::SoftwareDeploymentGroup": OS::Heat::None
  "OS::Heat::SwiftSignal": OS::Heat::None
  "OS::Heat::SwiftSignalHandle": OS::Heat::None
EOF
    cat >"$WORK_DIR/heat.conf" <<EOF
[DEFAULT]
transport_url = fake://
log_file = $WORK_DIR/heat.log
num_engine_workers = 1
host = magnum-test-heat
region_name_for_services = RegionOne
stack_user_domain_name = heat
stack_domain_admin = heat_domain_admin
stack_domain_admin_password = $service_password
deferred_auth_method = trusts
auth_encryption_key = $encryption_key
environment_dir = $WORK_DIR/environment.d
[database]
connection = mysql+pymysql://magnum_test_heat_$HEAT_PORT:$service_password@127.0.0.1:3306/magnum_test_heat_$HEAT_PORT
[paste_deploy]
api_paste_config = $HEAT_VENV/etc/heat/api-paste.ini
[clients_keystone]
auth_uri = $KEYSTONE_URL
[oslo_messaging_notifications]
driver = noop
[oslo_concurrency]
lock_path = $WORK_DIR/locks
[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL
auth_url = $KEYSTONE_URL
auth_type = password
username = heat
password = $service_password
user_domain_id = default
project_name = service
project_domain_id = default
[trustee]
auth_type = password
auth_url = $KEYSTONE_URL
username = heat
password = $service_password
user_domain_id = default
EOF
    "$HEAT_VENV/bin/heat-manage" --config-file "$WORK_DIR/heat.conf" db_sync \
        >"$WORK_DIR/heat-db-sync.log" 2>&1
    "$HEAT_VENV/bin/python" "$HERE/heat_one_process.py" --config-file "$WORK_DIR/heat.conf" \
        --port "$HEAT_PORT" --fast-steps >"$WORK_DIR/heat-process.log" 2>&1 3>&- &
    echo $! >"$WORK_DIR/heat.pid"
    wait_for_url "$HEAT_URL/" "$(cat "$WORK_DIR/heat.pid")" Heat "$WORK_DIR/heat-process.log"

    cat >"$WORK_DIR/env" <<EOF
MAGNUM_TEST_KEYSTONE_URL=$KEYSTONE_URL
MAGNUM_TEST_HEAT_URL=$HEAT_URL
MAGNUM_TEST_OPENSTACK_ADMIN_PASSWORD=$admin_password
MAGNUM_TEST_OPENSTACK_SERVICE_PASSWORD=$service_password
EOF
    chmod 0600 "$WORK_DIR/env"
    echo "$WORK_DIR/env" >&3
}

stop_pid_file() {
    local pid_file="$1"
    [ -f "$pid_file" ] || return 0
    local pid
    pid="$(cat "$pid_file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
}

stop_quietly() {
    stop_pid_file "$WORK_DIR/heat.pid"
    stop_pid_file "$WORK_DIR/keystone.pid"
}

case "${1:-}" in
    # Everything the start prints goes to stderr; only the env file's path to stdout (fd 3,
    # which the servers started in the background must not inherit: a caller reading the
    # path with $(...) would otherwise wait for them to exit).
    start) start 3>&1 1>&2 ;;
    stop) stop_quietly ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
