//! Keyset pagination shared by every list query.
//!
//! Results are ordered by (`sort_key`, `id`). NULLs sort after every value in ascending order
//! (and first in descending order) on every backend, so a page boundary means the same thing
//! on SQLite, PostgreSQL and MySQL. The marker is the last row of the previous page; the next
//! page holds the rows strictly after it in that order.

use sqlx::any::AnyArguments;
use sqlx::Arguments;

/// Ascending or descending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

impl SortDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            SortDirection::Asc => "asc",
            SortDirection::Desc => "desc",
        }
    }
}

/// One page request: at most `limit` rows after `marker` (a uuid) in `sort_key` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub marker: Option<String>,
    /// A column name the repository has checked against its list of sortable columns.
    pub sort_key: String,
    pub sort_dir: SortDirection,
}

/// The value of the sort column in the marker row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    Null,
    Text(String),
    Integer(i64),
}

/// A WHERE fragment with its bound values.
#[derive(Debug, Default)]
pub(crate) struct Fragment {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// A value bound to a fragment.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Integer(i64),
}

impl Bind {
    pub fn add_to(&self, arguments: &mut AnyArguments) -> Result<(), sqlx::error::BoxDynError> {
        match self {
            Bind::Text(text) => arguments.add(text.clone()),
            Bind::Integer(number) => arguments.add(*number),
        }
    }
}

fn sort_value_bind(value: &SortValue) -> Option<Bind> {
    match value {
        SortValue::Null => None,
        SortValue::Text(text) => Some(Bind::Text(text.clone())),
        SortValue::Integer(number) => Some(Bind::Integer(*number)),
    }
}

/// `ORDER BY` for (`column`, `id`) with NULLs last when ascending.
pub(crate) fn order_by(column: &str, direction: SortDirection) -> String {
    let dir = direction.as_str().to_ascii_uppercase();
    if column == "id" {
        return format!("ORDER BY id {dir}");
    }
    format!("ORDER BY CASE WHEN {column} IS NULL THEN 1 ELSE 0 END {dir}, {column} {dir}, id {dir}")
}

/// The condition "strictly after the marker row" in (`column`, `id`) order.
pub(crate) fn after_marker(
    column: &str,
    direction: SortDirection,
    marker_value: &SortValue,
    marker_id: i64,
) -> Fragment {
    let id_comparison = match direction {
        SortDirection::Asc => ">",
        SortDirection::Desc => "<",
    };
    if column == "id" {
        return Fragment {
            sql: format!("id {id_comparison} ?"),
            binds: vec![Bind::Integer(marker_id)],
        };
    }
    match (sort_value_bind(marker_value), direction) {
        (None, SortDirection::Asc) => Fragment {
            sql: format!("({column} IS NULL AND id > ?)"),
            binds: vec![Bind::Integer(marker_id)],
        },
        (None, SortDirection::Desc) => Fragment {
            sql: format!("(({column} IS NULL AND id < ?) OR {column} IS NOT NULL)"),
            binds: vec![Bind::Integer(marker_id)],
        },
        (Some(value), SortDirection::Asc) => Fragment {
            sql: format!("({column} IS NULL OR {column} > ? OR ({column} = ? AND id > ?))"),
            binds: vec![value.clone(), value, Bind::Integer(marker_id)],
        },
        (Some(value), SortDirection::Desc) => Fragment {
            sql: format!("({column} IS NOT NULL AND ({column} < ? OR ({column} = ? AND id < ?)))"),
            binds: vec![value.clone(), value, Bind::Integer(marker_id)],
        },
    }
}
