-- Schema version 6: the built-in identity's account lockout and user-wide revocations.
-- failed_auth_count / failed_auth_at: wrong passwords since the last good one (Keystone's
-- [security_compliance] lockout semantics).
-- identity_revoked_user: every token of the user issued up to revoked_at is revoked (a role
-- removed, a password changed).
ALTER TABLE identity_user ADD COLUMN failed_auth_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE identity_user ADD COLUMN failed_auth_at VARCHAR(32);
CREATE TABLE identity_revoked_user (
    user_id VARCHAR(64) NOT NULL PRIMARY KEY,
    revoked_at VARCHAR(32) NOT NULL
);
