-- Schema version 7: how a cluster on an OpenStack cloud acts for its owner later: the
-- trustee user made for it and the trust its owner gave that user. The trustee's password
-- is not stored: magnumd derives it from its own key and the cluster's uuid.
CREATE TABLE cluster_trust (
    cluster_uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    trustee_user_id VARCHAR(255) NOT NULL,
    trustee_username VARCHAR(255) NOT NULL,
    trust_id VARCHAR(255) NOT NULL,
    created_at VARCHAR(32) NOT NULL
);
