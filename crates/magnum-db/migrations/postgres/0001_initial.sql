-- Schema version 1: cluster templates, conductor services and the built-in identity.
-- Booleans are SMALLINT 0/1 and timestamps RFC 3339 text in UTC so that one query text
-- works on SQLite, PostgreSQL and MariaDB/MySQL.

CREATE TABLE cluster_template (
    id BIGSERIAL PRIMARY KEY,
    uuid VARCHAR(36) NOT NULL,
    name VARCHAR(255),
    project_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    coe VARCHAR(32) NOT NULL,
    image_id VARCHAR(255) NOT NULL,
    flavor_id VARCHAR(255),
    master_flavor_id VARCHAR(255),
    keypair_id VARCHAR(255),
    dns_nameserver VARCHAR(255),
    external_network_id VARCHAR(255),
    fixed_network VARCHAR(255),
    fixed_subnet VARCHAR(255),
    network_driver VARCHAR(255),
    volume_driver VARCHAR(255),
    apiserver_port INTEGER,
    docker_volume_size INTEGER,
    docker_storage_driver VARCHAR(255),
    ssh_authorized_key TEXT,
    cluster_distro VARCHAR(255),
    http_proxy VARCHAR(255),
    https_proxy VARCHAR(255),
    no_proxy VARCHAR(255),
    registry_enabled SMALLINT NOT NULL,
    insecure_registry VARCHAR(255),
    labels TEXT NOT NULL,
    tls_disabled SMALLINT NOT NULL,
    public SMALLINT NOT NULL,
    server_type VARCHAR(255) NOT NULL,
    master_lb_enabled SMALLINT NOT NULL,
    floating_ip_enabled SMALLINT NOT NULL,
    hidden SMALLINT NOT NULL,
    tags VARCHAR(255),
    driver VARCHAR(255),
    version BIGINT NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32)
);
CREATE UNIQUE INDEX uniq_cluster_template_uuid ON cluster_template (uuid);
CREATE UNIQUE INDEX uniq_cluster_template_project_name ON cluster_template (project_id, name);

CREATE TABLE magnum_service (
    id BIGSERIAL PRIMARY KEY,
    host VARCHAR(255) NOT NULL,
    service_binary VARCHAR(255) NOT NULL,
    disabled SMALLINT NOT NULL,
    disabled_reason VARCHAR(255),
    forced_down SMALLINT NOT NULL,
    report_count BIGINT NOT NULL,
    last_seen_up VARCHAR(32),
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32)
);
CREATE UNIQUE INDEX uniq_magnum_service_host_binary ON magnum_service (host, service_binary);

CREATE TABLE identity_project (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    domain_id VARCHAR(64) NOT NULL,
    description TEXT,
    enabled SMALLINT NOT NULL,
    created_at VARCHAR(32) NOT NULL
);
CREATE UNIQUE INDEX uniq_identity_project_domain_name ON identity_project (domain_id, name);

CREATE TABLE identity_user (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    domain_id VARCHAR(64) NOT NULL,
    password_hash TEXT NOT NULL,
    enabled SMALLINT NOT NULL,
    default_project_id VARCHAR(64),
    created_at VARCHAR(32) NOT NULL
);
CREATE UNIQUE INDEX uniq_identity_user_domain_name ON identity_user (domain_id, name);

CREATE TABLE identity_role (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL
);
CREATE UNIQUE INDEX uniq_identity_role_name ON identity_role (name);

CREATE TABLE identity_role_assignment (
    user_id VARCHAR(64) NOT NULL,
    project_id VARCHAR(64) NOT NULL,
    role_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (user_id, project_id, role_id)
);

CREATE TABLE identity_revoked_token (
    audit_id VARCHAR(64) NOT NULL PRIMARY KEY,
    expires_at VARCHAR(32) NOT NULL
);
