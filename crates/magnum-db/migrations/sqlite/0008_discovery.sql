-- Schema version 8: etcd's discovery protocol served by magnumd. A token is one etcd
-- cluster's bootstrap: its expected size and the members registered so far, each with the
-- index etcd's v2 keys API reports. A cluster's token goes with the cluster; a token made
-- on request alone (GET /v1/discovery/new) expires.
CREATE TABLE discovery_token (
    token VARCHAR(64) NOT NULL PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    cluster_uuid VARCHAR(36),
    cluster_size INTEGER NOT NULL,
    current_index BIGINT NOT NULL,
    created_at VARCHAR(32) NOT NULL
);
CREATE INDEX discovery_token_cluster ON discovery_token (cluster_uuid);
CREATE INDEX discovery_token_project ON discovery_token (project_id);
CREATE TABLE discovery_entry (
    token VARCHAR(64) NOT NULL,
    entry_key VARCHAR(255) NOT NULL,
    entry_value TEXT NOT NULL,
    created_index BIGINT NOT NULL,
    PRIMARY KEY (token, entry_key)
);
