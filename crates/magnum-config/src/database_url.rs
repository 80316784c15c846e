//! `[database] connection` URLs as OpenStack operators write them, translated for sqlx.
//!
//! Accepted: `sqlite://` (in memory), `sqlite:///relative/path`, `sqlite:////absolute/path`,
//! `mysql://…` and `mysql+pymysql://…` (MariaDB/MySQL), `postgresql://…`,
//! `postgresql+psycopg2://…` and `postgres://…`.

use crate::values::OptionValue;
use std::fmt;
use std::path::PathBuf;

/// Which database engine a connection URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
    MySql,
}

/// A parsed `[database] connection`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseConnection {
    /// `None` is an in-memory database (tests only: every connection sees its own).
    Sqlite { path: Option<PathBuf> },
    /// A URL sqlx understands, credentials included.
    Server {
        backend: DatabaseBackend,
        url: url::Url,
    },
}

impl DatabaseConnection {
    pub fn backend(&self) -> DatabaseBackend {
        match self {
            DatabaseConnection::Sqlite { .. } => DatabaseBackend::Sqlite,
            DatabaseConnection::Server { backend, .. } => *backend,
        }
    }

    /// The URL to hand to sqlx.
    pub fn sqlx_url(&self) -> String {
        match self {
            DatabaseConnection::Sqlite { path: None } => "sqlite::memory:".to_string(),
            DatabaseConnection::Sqlite { path: Some(path) } => {
                format!("sqlite://{}?mode=rwc", path.display())
            }
            DatabaseConnection::Server { url, .. } => url.to_string(),
        }
    }
}

/// Shows the URL with any password replaced, for logs and messages.
impl fmt::Debug for DatabaseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_option())
    }
}

impl fmt::Display for DatabaseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_option())
    }
}

impl OptionValue for DatabaseConnection {
    fn parse_option(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            format!("'{text}' is not a database URL such as sqlite:///magnum.sqlite")
        })?;
        let engine = scheme.split('+').next().unwrap_or_default();
        match engine {
            "sqlite" => {
                let path = rest.strip_prefix('/').unwrap_or(rest);
                let path = path.split('?').next().unwrap_or_default();
                if path.is_empty() || path == ":memory:" {
                    Ok(DatabaseConnection::Sqlite { path: None })
                } else {
                    Ok(DatabaseConnection::Sqlite {
                        path: Some(PathBuf::from(path)),
                    })
                }
            }
            "mysql" | "mariadb" | "postgresql" | "postgres" => {
                let (backend, sqlx_scheme) = if engine.starts_with("postgres") {
                    (DatabaseBackend::Postgres, "postgres")
                } else {
                    (DatabaseBackend::MySql, "mysql")
                };
                let url = url::Url::parse(&format!("{sqlx_scheme}://{rest}"))
                    .map_err(|error| format!("'{scheme}://…' is not a valid URL: {error}"))?;
                if url.host_str().unwrap_or_default().is_empty()
                    && !url
                        .query_pairs()
                        .any(|(key, _)| key == "host" || key == "unix_socket")
                {
                    return Err(format!("the {engine} URL names no host"));
                }
                if url.path().trim_matches('/').is_empty() {
                    return Err(format!("the {engine} URL names no database"));
                }
                Ok(DatabaseConnection::Server { backend, url })
            }
            other => Err(format!(
                "unsupported database '{other}'; use sqlite, mysql (MariaDB) or postgresql"
            )),
        }
    }

    fn render_option(&self) -> String {
        match self {
            DatabaseConnection::Sqlite { path: None } => "sqlite://".to_string(),
            DatabaseConnection::Sqlite { path: Some(path) } => {
                format!("sqlite:///{}", path.display())
            }
            DatabaseConnection::Server { url, .. } => {
                let mut shown = url.clone();
                if shown.password().is_some() {
                    let _ = shown.set_password(Some("***"));
                }
                shown.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DatabaseConnection {
        DatabaseConnection::parse_option(text).unwrap()
    }

    #[test]
    fn sqlite_urls_follow_sqlalchemy_slashes() {
        assert_eq!(
            parse("sqlite:///magnum.sqlite"),
            DatabaseConnection::Sqlite {
                path: Some(PathBuf::from("magnum.sqlite"))
            }
        );
        assert_eq!(
            parse("sqlite:////var/lib/magnum/magnum.sqlite").sqlx_url(),
            "sqlite:///var/lib/magnum/magnum.sqlite?mode=rwc"
        );
        assert_eq!(
            parse("sqlite://"),
            DatabaseConnection::Sqlite { path: None }
        );
    }

    #[test]
    fn openstack_driver_suffixes_are_dropped() {
        let mysql = parse("mysql+pymysql://magnum:pw@127.0.0.1/magnum?charset=utf8");
        assert_eq!(mysql.backend(), DatabaseBackend::MySql);
        assert_eq!(
            mysql.sqlx_url(),
            "mysql://magnum:pw@127.0.0.1/magnum?charset=utf8"
        );
        let postgres = parse("postgresql+psycopg2://magnum:pw@db:5432/magnum");
        assert_eq!(postgres.backend(), DatabaseBackend::Postgres);
        assert_eq!(postgres.sqlx_url(), "postgres://magnum:pw@db:5432/magnum");
    }

    #[test]
    fn passwords_are_hidden_when_shown() {
        let connection = parse("mysql://magnum:secret@127.0.0.1/magnum");
        assert!(!format!("{connection:?} {connection}").contains("secret"));
    }

    #[test]
    fn bad_urls_say_why() {
        for (text, reason) in [
            ("magnum.sqlite", "not a database URL"),
            ("oracle://x/y", "unsupported database"),
            ("mysql://127.0.0.1", "no database"),
        ] {
            let error = DatabaseConnection::parse_option(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
