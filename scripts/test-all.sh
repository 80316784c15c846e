#!/usr/bin/env bash
# The whole test suite, from a clean checkout on Debian 12 as root.
#
# Installs what the tests need when it is missing (MariaDB, PostgreSQL, Docker from Debian's
# docker.io, debootstrap and busybox-static for node and workload images, a Python venv with
# python-openstackclient and python-magnumclient from PyPI), starts the database servers on
# loopback and the Docker engine if they are not running, builds the cluster node image (kept
# under /var/cache/magnum-rs, so later runs take seconds), runs formatting and lint checks,
# the unit tests, and the integration tests on SQLite, PostgreSQL and MariaDB, then stops only
# what it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_DIR="${MAGNUM_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/magnum-rs}"
OPENSTACKCLIENT_VERSION=10.5.0
MAGNUMCLIENT_VERSION=5.0.0
STARTED_POSTGRES=0
STARTED_MARIADB=0
STARTED_OPENSTACK=0
DOCKERD_PID=

log() { printf '\n==> %s\n' "$*"; }

cleanup() {
    set +e
    if [ -n "${PG_ADMIN_URL:-}" ]; then
        for db in $(su postgres -c "psql -Atc \"SELECT datname FROM pg_database WHERE datname LIKE 'magnum\\_t\\_%'\"" 2>/dev/null); do
            su postgres -c "psql -qc 'DROP DATABASE IF EXISTS $db'" >/dev/null 2>&1
        done
    fi
    if [ -n "${MARIADB_ADMIN_URL:-}" ]; then
        for db in $(mariadb -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'magnum\\_t\\_%'" 2>/dev/null); do
            mariadb -e "DROP DATABASE IF EXISTS \`$db\`" >/dev/null 2>&1
        done
    fi
    if [ "$STARTED_OPENSTACK" = 1 ]; then
        log "stopping the Keystone and Heat this run started"
        ./scripts/openstack/services.sh stop
    fi
    if [ "$STARTED_POSTGRES" = 1 ]; then
        log "stopping the PostgreSQL server this run started"
        pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main stop
    fi
    if [ "$STARTED_MARIADB" = 1 ]; then
        log "stopping the MariaDB server this run started"
        mariadb-admin shutdown
    fi
    if [ -n "$DOCKERD_PID" ]; then
        log "stopping the Docker engine this run started (pid $DOCKERD_PID)"
        kill "$DOCKERD_PID"
        for _ in $(seq 1 30); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 1
        done
    fi
}
trap cleanup EXIT

install_packages() {
    local missing=()
    command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
    command -v pg_ctlcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
    [ -x /usr/bin/etcd ] || missing+=(etcd-server)
    # uwsgi (Keystone's server in the tests) is built by pip and needs Python's headers.
    python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || missing+=(python3-dev)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
}

start_postgres() {
    PG_VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)
    if ! pg_lsclusters -h 2>/dev/null | grep -q " main "; then
        pg_createcluster "$PG_VERSION" main >/dev/null
    fi
    if ! pg_lsclusters -h | awk '$2 == "main" {print $4}' | grep -q online; then
        log "starting PostgreSQL $PG_VERSION"
        pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start
        STARTED_POSTGRES=1
    fi
    for _ in $(seq 1 30); do
        su postgres -c "psql -qAtc 'SELECT 1'" >/dev/null 2>&1 && break
        sleep 1
    done
    su postgres -c "psql -qAtc \"SELECT 1 FROM pg_roles WHERE rolname = 'magnum_test'\"" | grep -q 1 ||
        su postgres -c "psql -qc \"CREATE ROLE magnum_test LOGIN PASSWORD 'magnum_test' CREATEDB\""
    PG_ADMIN_URL="postgresql://magnum_test:magnum_test@127.0.0.1:5432/postgres"
}

start_mariadb() {
    if ! mariadb -e 'SELECT 1' >/dev/null 2>&1; then
        log "starting MariaDB"
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- \
            --user=mysql --bind-address=127.0.0.1
        STARTED_MARIADB=1
        for _ in $(seq 1 30); do
            mariadb -e 'SELECT 1' >/dev/null 2>&1 && break
            sleep 1
        done
    fi
    mariadb -e "CREATE USER IF NOT EXISTS 'magnum_test'@'127.0.0.1' IDENTIFIED BY 'magnum_test';
                CREATE USER IF NOT EXISTS 'magnum_test'@'localhost' IDENTIFIED BY 'magnum_test';
                GRANT ALL ON \`magnum\\_%\`.* TO 'magnum_test'@'127.0.0.1';
                GRANT ALL ON \`magnum\\_%\`.* TO 'magnum_test'@'localhost';
                CREATE DATABASE IF NOT EXISTS magnum_admin;"
    MARIADB_ADMIN_URL="mysql+pymysql://magnum_test:magnum_test@127.0.0.1:3306/magnum_admin"
}

start_docker() {
    if docker version >/dev/null 2>&1; then
        return
    fi
    log "starting the Docker engine"
    mkdir -p /var/log
    dockerd >/var/log/magnum-test-dockerd.log 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 60); do
        docker version >/dev/null 2>&1 && return
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 1
    done
    echo "the Docker engine did not start; its log:" >&2
    tail -n 50 /var/log/magnum-test-dockerd.log >&2
    exit 1
}

prepare_venv() {
    VENV="$CACHE_DIR/venv-osc${OPENSTACKCLIENT_VERSION}-magnum${MAGNUMCLIENT_VERSION}"
    if [ ! -x "$VENV/bin/openstack" ]; then
        log "creating a Python venv with the OpenStack clients in $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q "python-openstackclient==$OPENSTACKCLIENT_VERSION" \
            "python-magnumclient==$MAGNUMCLIENT_VERSION"
    fi
}

# cloud-init's own schema check of the cloud-config documents the drivers render. The
# package is unpacked, never installed: installed, it would configure this host at boot.
prepare_cloud_init() {
    CLOUD_INIT_DIR="$CACHE_DIR/cloud-init-22.4"
    if [ ! -f "$CLOUD_INIT_DIR/.complete" ]; then
        log "unpacking Debian's cloud-init into $CLOUD_INIT_DIR for its schema check"
        rm -rf "$CLOUD_INIT_DIR"
        mkdir -p "$CLOUD_INIT_DIR"
        (cd "$CLOUD_INIT_DIR" && apt-get download -q cloud-init >/dev/null 2>&1 \
            || { apt-get update -q && apt-get download -q cloud-init; })
        dpkg-deb -x "$CLOUD_INIT_DIR"/cloud-init_*.deb "$CLOUD_INIT_DIR/root"
        python3 -m venv "$CLOUD_INIT_DIR/venv"
        "$CLOUD_INIT_DIR/venv/bin/pip" install -q jsonschema pyyaml jinja2 configobj \
            requests jsonpatch netifaces
        touch "$CLOUD_INIT_DIR/.complete"
    fi
    export MAGNUM_TEST_CLOUD_INIT="$CLOUD_INIT_DIR"
}

# Ignition's own validator (ignition-validate, from Debian's ignition package, unpacked and
# never installed) for the Ignition configurations the Fedora CoreOS driver renders.
prepare_ignition_validate() {
    IGNITION_DIR="$CACHE_DIR/ignition-2.14"
    if [ ! -x "$IGNITION_DIR/root/usr/bin/ignition-validate" ]; then
        log "unpacking Debian's ignition into $IGNITION_DIR for ignition-validate"
        rm -rf "$IGNITION_DIR"
        mkdir -p "$IGNITION_DIR"
        (cd "$IGNITION_DIR" && apt-get download -q ignition >/dev/null 2>&1 \
            || { apt-get update -q && apt-get download -q ignition; })
        dpkg-deb -x "$IGNITION_DIR"/ignition_*.deb "$IGNITION_DIR/root"
    fi
    export MAGNUM_TEST_IGNITION_VALIDATE="$IGNITION_DIR/root/usr/bin/ignition-validate"
}

start_openstack() {
    log "starting a real Keystone and Heat for the OpenStack provider's tests"
    STARTED_OPENSTACK=1
    MAGNUM_TEST_OPENSTACK_ENV="$(./scripts/openstack/services.sh start)"
    export MAGNUM_TEST_OPENSTACK_ENV
}

install_packages
start_postgres
start_mariadb
start_docker
prepare_venv
prepare_cloud_init
prepare_ignition_validate
start_openstack

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building"
cargo build --workspace --bins --locked

log "preparing the cluster node image (cached under /var/cache/magnum-rs)"
./target/debug/magnumd node-image build

export MAGNUM_TEST_VENV="$VENV"
# A failing test prints its message, not a backtrace that would push the message out of
# the part of the log CI shows.
export RUST_BACKTRACE=0
export MAGNUM_TEST_REQUIRE_ALL=1

log "unit and integration tests on SQLite"
cargo test --workspace --locked

log "database and API tests on PostgreSQL"
MAGNUM_TEST_DATABASE_URL="$PG_ADMIN_URL" cargo test --locked -p magnum-db -p magnum-tests -- --skip clients::

log "database and API tests on MariaDB"
MAGNUM_TEST_DATABASE_URL="$MARIADB_ADMIN_URL" cargo test --locked -p magnum-db -p magnum-tests -- --skip clients::

log "all tests passed"
