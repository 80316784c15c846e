-- Schema version 2: clusters (2016: bays), their nodegroups, quotas, and the certificate
-- authorities of each cluster (private keys sealed with the service's encryption key).
-- A cluster row carries its pending operation and the conductor lease on it.

CREATE TABLE cluster (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uuid VARCHAR(36) NOT NULL,
    name VARCHAR(255),
    project_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    cluster_template_id VARCHAR(36) NOT NULL,
    keypair VARCHAR(255),
    docker_volume_size INTEGER,
    labels TEXT NOT NULL,
    master_flavor_id VARCHAR(255),
    flavor_id VARCHAR(255),
    fixed_network VARCHAR(255),
    fixed_subnet VARCHAR(255),
    floating_ip_enabled SMALLINT NOT NULL,
    master_lb_enabled SMALLINT NOT NULL,
    create_timeout INTEGER NOT NULL,
    discovery_url TEXT,
    master_count INTEGER NOT NULL,
    node_count INTEGER NOT NULL,
    stack_id VARCHAR(255),
    status VARCHAR(32) NOT NULL,
    status_reason TEXT,
    health_status VARCHAR(16),
    health_status_reason TEXT NOT NULL,
    api_address VARCHAR(255),
    master_addresses TEXT NOT NULL,
    node_addresses TEXT NOT NULL,
    coe_version VARCHAR(255),
    container_version VARCHAR(255),
    operation VARCHAR(16),
    operation_generation BIGINT NOT NULL,
    nodes_to_remove TEXT NOT NULL,
    create_deadline VARCHAR(32),
    lease_owner VARCHAR(255),
    lease_expires_at VARCHAR(32),
    version BIGINT NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE UNIQUE INDEX uniq_cluster_uuid ON cluster (uuid);
CREATE UNIQUE INDEX uniq_cluster_project_name ON cluster (project_id, name);
CREATE INDEX ix_cluster_operation ON cluster (operation);
CREATE INDEX ix_cluster_template ON cluster (cluster_template_id);

CREATE TABLE nodegroup (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uuid VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    cluster_id VARCHAR(36) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    docker_volume_size INTEGER,
    labels TEXT NOT NULL,
    flavor_id VARCHAR(255),
    image_id VARCHAR(255),
    node_addresses TEXT NOT NULL,
    node_count INTEGER NOT NULL,
    role VARCHAR(255) NOT NULL,
    max_node_count INTEGER,
    min_node_count INTEGER NOT NULL,
    is_default SMALLINT NOT NULL,
    stack_id VARCHAR(255),
    status VARCHAR(32),
    status_reason TEXT,
    version BIGINT NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE UNIQUE INDEX uniq_nodegroup_uuid ON nodegroup (uuid);
CREATE UNIQUE INDEX uniq_nodegroup_cluster_name ON nodegroup (cluster_id, name);

CREATE TABLE quota (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    resource VARCHAR(255) NOT NULL,
    hard_limit INTEGER NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE UNIQUE INDEX uniq_quota_project_resource ON quota (project_id, resource);

CREATE TABLE cluster_certificate (
    cluster_uuid VARCHAR(36) NOT NULL,
    ca_type VARCHAR(32) NOT NULL,
    certificate_pem TEXT NOT NULL,
    private_key_sealed TEXT NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32),
    PRIMARY KEY (cluster_uuid, ca_type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
