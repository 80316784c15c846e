//! The differences between the three databases, kept in one place.
//!
//! Queries are written with `?` placeholders (SQLite and MySQL syntax); PostgreSQL needs
//! `$1, $2, …`. Unique-constraint violations are recognised per backend.

use magnum_config::DatabaseBackend;
use sqlx::AssertSqlSafe;
use std::borrow::Cow;

/// The SQL flavour of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    backend: DatabaseBackend,
}

impl Dialect {
    pub fn new(backend: DatabaseBackend) -> Self {
        Self { backend }
    }

    pub fn backend(self) -> DatabaseBackend {
        self.backend
    }

    /// Adapts a query written with `?` placeholders to this backend.
    ///
    /// The text must not contain `?` inside string literals; queries in this crate bind every
    /// value, so none does.
    pub fn sql(self, query: impl Into<Cow<'static, str>>) -> AssertSqlSafe<Cow<'static, str>> {
        let query = query.into();
        if self.backend != DatabaseBackend::Postgres || !query.contains('?') {
            return AssertSqlSafe(query);
        }
        let mut numbered = String::with_capacity(query.len() + 16);
        let mut n_placeholders = 0;
        for character in query.chars() {
            if character == '?' {
                n_placeholders += 1;
                numbered.push('$');
                numbered.push_str(&n_placeholders.to_string());
            } else {
                numbered.push(character);
            }
        }
        AssertSqlSafe(Cow::Owned(numbered))
    }
}

impl Dialect {
    /// The clause that makes a `SELECT` lock the rows it reads until the transaction ends.
    /// Empty on SQLite, whose writers take turns anyway (a transaction that writes holds
    /// the database's one write lock).
    pub fn lock_rows(self) -> &'static str {
        match self.backend {
            DatabaseBackend::Sqlite => "",
            DatabaseBackend::Postgres | DatabaseBackend::MySql => " FOR UPDATE",
        }
    }

    /// `INSERT … VALUES …` that does nothing when the row's key exists already.
    pub fn insert_ignoring_duplicates(self, table: &str, columns: &str, values: &str) -> String {
        match self.backend {
            DatabaseBackend::Sqlite => {
                format!("INSERT OR IGNORE INTO {table} ({columns}) VALUES ({values})")
            }
            DatabaseBackend::Postgres => {
                format!("INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING")
            }
            DatabaseBackend::MySql => {
                format!("INSERT IGNORE INTO {table} ({columns}) VALUES ({values})")
            }
        }
    }

    /// `expression` as a 64-bit integer (MySQL's SUM gives DECIMAL, and spells the cast
    /// differently).
    pub fn as_bigint(self, expression: &str) -> String {
        match self.backend {
            DatabaseBackend::MySql => format!("CAST({expression} AS SIGNED)"),
            DatabaseBackend::Sqlite | DatabaseBackend::Postgres => {
                format!("CAST({expression} AS BIGINT)")
            }
        }
    }
}

/// Whether the error is a unique-constraint violation on any backend.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database_error) => {
            if database_error.is_unique_violation() {
                return true;
            }
            // Codes: PostgreSQL 23505, MySQL 1062 (ER_DUP_ENTRY), SQLite 2067/1555.
            matches!(
                database_error.code().as_deref(),
                Some("23505") | Some("1062") | Some("23000") | Some("2067") | Some("1555")
            ) || database_error
                .message()
                .contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// Whether a database error is a transient conflict or an unavailable server rather than a
/// fault of the statement. SQLite reports its result codes (busy and locked: 5, 6 and their
/// extended forms 261, 262, 517); PostgreSQL, MySQL and MariaDB report SQLSTATEs:
/// serialization failures and deadlocks (40001, 40P01), connection exceptions (class 08, as
/// MySQL's 08S01 for a lost link) and a server shutting down (57P01-57P03).
pub fn is_transient(error: &dyn sqlx::error::DatabaseError) -> bool {
    let code = error
        .code()
        .map(|code| code.into_owned())
        .unwrap_or_default();
    matches!(
        code.as_str(),
        "5" | "6" | "261" | "262" | "517" | "40001" | "40P01" | "57P01" | "57P02" | "57P03"
    ) || code.starts_with("08")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_numbered_placeholders() {
        let postgres = Dialect::new(DatabaseBackend::Postgres);
        assert_eq!(
            postgres.sql("SELECT a FROM t WHERE b = ? AND c = ?").0,
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
        let sqlite = Dialect::new(DatabaseBackend::Sqlite);
        assert_eq!(sqlite.sql("SELECT ? ").0, "SELECT ? ");
        let mysql = Dialect::new(DatabaseBackend::MySql);
        assert_eq!(mysql.sql("SELECT ?").0, "SELECT ?");
    }
}
