-- Schema version 4: what the conductor needs to carry operations out step by step.
-- driver: the driver that built the cluster (deletes work even if its template is gone).
-- operation_started_at: when a conductor first took up the pending operation (database clock).
-- operation_attempts: failed attempts of the pending operation so far (its retry budget).
-- rollback_template_id: the template an upgrade came from, to roll back to if it fails.
-- rollback_reason: why a rollback runs (the upgrade's failure), kept for its final status.
ALTER TABLE cluster ADD COLUMN driver VARCHAR(255);
ALTER TABLE cluster ADD COLUMN operation_started_at VARCHAR(32);
ALTER TABLE cluster ADD COLUMN operation_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cluster ADD COLUMN rollback_template_id VARCHAR(36);
ALTER TABLE cluster ADD COLUMN rollback_reason TEXT;
UPDATE cluster SET driver = (SELECT t.driver FROM cluster_template t WHERE t.uuid = cluster.cluster_template_id);
