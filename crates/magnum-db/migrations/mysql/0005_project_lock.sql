-- Schema version 5: one row per project, locked by every change that a project's quotas
-- bound (clusters, nodes), so that checking a quota and writing the change are one atomic
-- step even when several API processes create clusters at once.
CREATE TABLE project_lock (
    project_id VARCHAR(255) NOT NULL PRIMARY KEY
);
