//! The database of Magnum-rs: the only crate that contains SQL.
//!
//! Desired and observed state lives here (cluster templates, conductor heartbeats, the
//! built-in identity's users, projects, roles and revoked tokens). Every query is written once
//! with `?` placeholders; [`dialect`] adapts it to SQLite, PostgreSQL or MariaDB/MySQL, so the
//! same code and the same tests run on all three. Other crates see typed repository methods,
//! never query strings.
//!
//! Layout: [`Database`] (pool, migrations), [`cluster_template`], [`cluster`], [`nodegroup`],
//! [`work_queue`] (the conductor's claims and leases), [`quota`], [`certificate`],
//! [`service`], [`identity`], [`trust`], [`discovery`] (etcd bootstrap tokens),
//! [`page`] (keyset pagination shared by list queries), [`time`] (timestamp encoding).

pub mod certificate;
pub mod cluster;
pub mod cluster_template;
pub mod dialect;
pub mod discovery;
pub mod identity;
pub mod nodegroup;
pub mod page;
pub mod quota;
pub mod row_cache;
pub mod service;
pub mod time;
pub mod trust;
pub mod work_queue;

#[cfg(test)]
mod test_fixtures;

use magnum_config::{DatabaseBackend, DatabaseConnection};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::time::Duration;

pub use dialect::Dialect;
pub use page::{Page, SortDirection};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/mysql");

/// What can go wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No row matched.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (e.g. a duplicate name).
    #[error("a row with the same unique key already exists")]
    Duplicate,
    /// A name matched more than one visible row.
    #[error("more than one row matches the name")]
    Ambiguous,
    /// The row changed since it was read; the caller should re-read and retry.
    #[error("the row was changed by someone else")]
    Stale,
    /// The change would take the project beyond a quota.
    #[error("the project's {resource} quota ({limit}) would be exceeded")]
    QuotaExceeded { resource: Resource, limit: i64 },
    /// The change would alter a cluster template that clusters use.
    #[error("the cluster template is used by clusters")]
    InUse,
    /// A pagination marker is not a visible row.
    #[error("the marker does not exist or is not visible")]
    MarkerNotFound,
    /// A stored value cannot be decoded (a bug or a hand-edited database).
    #[error("stored value of {column} is invalid: {reason}")]
    Corrupt {
        column: &'static str,
        reason: String,
    },
    #[error("database error: {0}")]
    Backend(#[source] sqlx::Error),
    #[error("schema migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        if dialect::is_unique_violation(&error) {
            DbError::Duplicate
        } else if matches!(error, sqlx::Error::RowNotFound) {
            DbError::NotFound
        } else {
            DbError::Backend(error)
        }
    }
}

impl DbError {
    /// Whether the database could not be reached or could not serve the statement now (a
    /// lost connection, an exhausted pool, a lock conflict): worth trying again later, and
    /// not the caller's fault.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Backend(error) => match error {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(database_error) => {
                    dialect::is_transient(database_error.as_ref())
                }
                _ => false,
            },
            _ => false,
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// What a project's quotas count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cluster,
    /// Masters and workers over every cluster of the project.
    Node,
}

impl Resource {
    /// The name quota rows and the quota API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Cluster => "Cluster",
            Resource::Node => "Node",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A project's limits, checked in the transaction that writes a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectLimits {
    pub clusters: i64,
    pub nodes: i64,
}

/// Rows of `cluster_template` kept decoded in memory (see [`row_cache`]).
const TEMPLATE_CACHE_CAPACITY: usize = 4096;

/// Rows of `cluster` kept decoded in memory (see [`row_cache`]): a few pages of the largest
/// lists, about 2 KiB each.
const CLUSTER_CACHE_CAPACITY: usize = 4096;

/// SQLite page cache per connection, in KiB (SQLite's default is 2 MiB).
const SQLITE_CACHE_KIB: u32 = 1024;

/// More SQLite connections than this do not help: writers are serialised anyway.
const SQLITE_MAX_CONNECTIONS: u32 = 8;

/// A connection pool to one of the three supported databases.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    template_cache:
        std::sync::Arc<row_cache::RowCache<magnum_core::cluster_template::ClusterTemplate>>,
    cluster_cache: std::sync::Arc<row_cache::RowCache<magnum_core::cluster::Cluster>>,
    /// SQLite allows one writer at a time and makes others sleep and retry; queueing this
    /// process's writers here keeps their latency fair. None on server databases.
    sqlite_write_gate: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// Signalled when this process records cluster work (an operation, a released lease),
    /// so a conductor in the same process starts at once instead of at its next poll.
    work_signal: std::sync::Arc<tokio::sync::Notify>,
}

impl Database {
    /// Connects (creating the SQLite file and its directory when needed), with a pool of at
    /// most `max_pool_size` connections that waits up to 30 seconds for one.
    pub async fn connect(
        connection: &DatabaseConnection,
        max_pool_size: u32,
    ) -> DbResult<Database> {
        Self::connect_with(connection, max_pool_size, Duration::from_secs(30)).await
    }

    /// Connects like [`Database::connect`], waiting at most `pool_timeout` for a connection
    /// from the pool (including reconnecting to a server that went away) before a statement
    /// fails with [`DbError::is_unavailable`].
    pub async fn connect_with(
        connection: &DatabaseConnection,
        max_pool_size: u32,
        pool_timeout: Duration,
    ) -> DbResult<Database> {
        sqlx::any::install_default_drivers();
        let backend = connection.backend();
        if let DatabaseConnection::Sqlite { path: Some(path) } = connection {
            // The file (and the journal files SQLite gives the same mode) is the service's
            // alone: it holds tokens' revocations, users' password hashes and sealed keys.
            magnum_config::private_files::ensure_private_file(path)
                .map_err(|error| DbError::Backend(error.into()))?;
        }
        let is_memory = matches!(connection, DatabaseConnection::Sqlite { path: None });
        let pool_size = match backend {
            _ if is_memory => 1,
            DatabaseBackend::Sqlite => max_pool_size.clamp(1, SQLITE_MAX_CONNECTIONS),
            DatabaseBackend::Postgres | DatabaseBackend::MySql => max_pool_size.max(1),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(pool_size)
            .min_connections(if is_memory { 1 } else { 0 })
            .idle_timeout(if is_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if is_memory {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .acquire_timeout(pool_timeout)
            // A SQLite connection is a file handle that cannot go stale; pinging it before
            // every use would cost a round trip to its worker thread per statement. A server
            // connection is checked, so that one dropped by the server is replaced.
            .test_before_acquire(backend != DatabaseBackend::Sqlite)
            .after_connect(move |connection, _meta| {
                Box::pin(async move {
                    match backend {
                        DatabaseBackend::Sqlite => {
                            // Write-ahead logging: readers (every API request) never wait
                            // for the conductor's writers, nor writers for readers.
                            let journal = if is_memory { "" } else { "PRAGMA journal_mode = WAL; " };
                            let pragmas = format!(
                                "{journal}PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA cache_size = -{SQLITE_CACHE_KIB};"
                            );
                            connection.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                        }
                        DatabaseBackend::MySql | DatabaseBackend::Postgres => {}
                    }
                    Ok(())
                })
            })
            .connect(&connection.sqlx_url())
            .await?;
        Ok(Database {
            pool,
            dialect: Dialect::new(backend),
            template_cache: std::sync::Arc::new(row_cache::RowCache::new(TEMPLATE_CACHE_CAPACITY)),
            cluster_cache: std::sync::Arc::new(row_cache::RowCache::new(CLUSTER_CACHE_CAPACITY)),
            sqlite_write_gate: (backend == DatabaseBackend::Sqlite)
                .then(|| std::sync::Arc::new(tokio::sync::Mutex::new(()))),
            work_signal: std::sync::Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Resolves when this process has recorded cluster work since the last call (other
    /// processes' work is only seen by polling).
    pub async fn work_recorded(&self) {
        self.work_signal.notified().await;
    }

    pub(crate) fn signal_work(&self) {
        self.work_signal.notify_one();
    }

    /// Waits for this process's turn to write (SQLite only; a no-op on servers). Hold the
    /// guard for the duration of one write statement or transaction.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.sqlite_write_gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    /// Begins a transaction that is going to write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`): a deferred transaction that reads first cannot upgrade to a
    /// writer once another connection has committed since its read, and fails with
    /// SQLITE_BUSY_SNAPSHOT without waiting; an immediate one waits its turn (busy_timeout)
    /// instead. Servers lock the rows a transaction touches, so they begin normally.
    pub async fn begin_write(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Any>> {
        let transaction = match self.dialect.backend() {
            DatabaseBackend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            DatabaseBackend::Postgres | DatabaseBackend::MySql => self.pool.begin().await?,
        };
        Ok(transaction)
    }

    /// The database server's clock, in microseconds. Leases are computed from it, so that
    /// conductors on machines whose clocks disagree still agree on when a lease expires.
    pub async fn clock(&self) -> DbResult<chrono::DateTime<chrono::Utc>> {
        let sql = match self.dialect.backend() {
            DatabaseBackend::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
            }
            DatabaseBackend::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
            }
            DatabaseBackend::MySql => "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)",
        };
        let micros: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await?;
        chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| DbError::Corrupt {
            column: "clock",
            reason: format!("the database's clock reads {micros} microseconds"),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn migrator(&self) -> &'static Migrator {
        match self.dialect.backend() {
            DatabaseBackend::Sqlite => &SQLITE_MIGRATIONS,
            DatabaseBackend::Postgres => &POSTGRES_MIGRATIONS,
            DatabaseBackend::MySql => &MYSQL_MIGRATIONS,
        }
    }

    /// Applies every pending migration. Safe to run from several processes at once: the
    /// migrator takes a database lock on PostgreSQL and MySQL, SQLite serialises writers.
    pub async fn upgrade(&self) -> DbResult<()> {
        if self.dialect.backend() != DatabaseBackend::MySql {
            return self
                .migrator()
                .run(&self.pool)
                .await
                .map_err(DbError::Migration);
        }
        // sqlx locks MySQL with GET_LOCK(name, -1), which MariaDB does not treat as "wait
        // forever"; take our own lock with a real timeout on the connection that migrates.
        let mut connection = self.pool.acquire().await?;
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK('magnum_schema_upgrade', 300)")
                .fetch_one(&mut *connection)
                .await?;
        if locked != Some(1) {
            return Err(DbError::Backend(sqlx::Error::Protocol(
                "timed out waiting for another process to finish the schema upgrade".to_string(),
            )));
        }
        let result = self
            .migrator()
            .run(&mut *connection)
            .await
            .map_err(DbError::Migration);
        sqlx::query("SELECT RELEASE_LOCK('magnum_schema_upgrade')")
            .execute(&mut *connection)
            .await?;
        result
    }

    /// The newest applied schema version (0 when none) and the newest this build knows.
    pub async fn schema_version(&self) -> DbResult<(i64, i64)> {
        let known = self
            .migrator()
            .iter()
            .map(|migration| migration.version)
            .max()
            .unwrap_or(0);
        let exists = self.migrations_table_exists().await?;
        if !exists {
            return Ok((0, known));
        }
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await
                .or_else(|_| Ok::<_, sqlx::Error>(None))?;
        Ok((applied.unwrap_or(0), known))
    }

    async fn migrations_table_exists(&self) -> DbResult<bool> {
        let query = match self.dialect.backend() {
            DatabaseBackend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            DatabaseBackend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
            }
            DatabaseBackend::MySql => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = DATABASE()"
            }
        };
        let count: i64 = sqlx::query_scalar(query).fetch_one(&self.pool).await?;
        Ok(count > 0)
    }

    /// Closes every connection; pending queries finish first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Decoding helpers shared by the repositories.
pub(crate) mod row {
    use super::{AnyRow, DbError, DbResult};
    use sqlx::Row;

    pub fn text(row: &AnyRow, column: &'static str) -> DbResult<String> {
        row.try_get::<String, _>(column)
            .map_err(|error| DbError::Corrupt {
                column,
                reason: error.to_string(),
            })
    }

    pub fn optional_text(row: &AnyRow, column: &'static str) -> DbResult<Option<String>> {
        row.try_get::<Option<String>, _>(column)
            .map_err(|error| DbError::Corrupt {
                column,
                reason: error.to_string(),
            })
    }

    pub fn integer(row: &AnyRow, column: &'static str) -> DbResult<i64> {
        row.try_get::<i64, _>(column)
            .map_err(|error| DbError::Corrupt {
                column,
                reason: error.to_string(),
            })
    }

    pub fn optional_integer(row: &AnyRow, column: &'static str) -> DbResult<Option<i64>> {
        row.try_get::<Option<i64>, _>(column)
            .map_err(|error| DbError::Corrupt {
                column,
                reason: error.to_string(),
            })
    }

    pub fn boolean(row: &AnyRow, column: &'static str) -> DbResult<bool> {
        Ok(integer(row, column)? != 0)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fresh database per test: SQLite in a temporary directory by default, or a new
    //! database on the server named by `MAGNUM_TEST_DATABASE_URL` (whose user may create
    //! databases named `magnum_t_*`; the test script drops them afterwards).
    use super::*;
    use magnum_config::OptionValue;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct TestDatabase {
        pub database: Database,
        _directory: tempfile::TempDir,
    }

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    pub async fn database() -> TestDatabase {
        let directory = tempfile::tempdir().expect("temporary directory");
        let connection = match std::env::var("MAGNUM_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let server =
                    DatabaseConnection::parse_option(&url).expect("MAGNUM_TEST_DATABASE_URL");
                let name = format!(
                    "magnum_t_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    chrono::Utc::now().timestamp_micros()
                );
                let admin = Database::connect(&server, 1)
                    .await
                    .expect("connect to test server");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(admin.pool())
                    .await
                    .expect("create test database");
                admin.close().await;
                match server {
                    DatabaseConnection::Server { backend, mut url } => {
                        url.set_path(&format!("/{name}"));
                        DatabaseConnection::Server { backend, url }
                    }
                    sqlite => sqlite,
                }
            }
            _ => DatabaseConnection::Sqlite {
                path: Some(directory.path().join("test.sqlite")),
            },
        };
        let database = Database::connect(&connection, 4).await.expect("connect");
        database.upgrade().await.expect("migrate");
        TestDatabase {
            database,
            _directory: directory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::database;

    #[tokio::test]
    async fn migrations_apply_and_report_their_version() {
        let test = database().await;
        let (applied, known) = test.database.schema_version().await.unwrap();
        assert_eq!(applied, known);
        assert!(known >= 1);
        // Running the upgrade again is a no-op.
        test.database.upgrade().await.unwrap();
        test.database.ping().await.unwrap();
    }

    #[tokio::test]
    async fn the_database_clock_reads_the_current_time() {
        let test = database().await;
        let before = chrono::Utc::now();
        let clock = test.database.clock().await.unwrap();
        let after = chrono::Utc::now();
        // Same machine here: the server's clock lies between our two readings (with a
        // little slack for SQLite's millisecond resolution).
        let slack = chrono::Duration::milliseconds(5);
        assert!(
            clock >= before - slack && clock <= after + slack,
            "{before} {clock} {after}"
        );
        assert!(test.database.clock().await.unwrap() >= clock);
    }
}
