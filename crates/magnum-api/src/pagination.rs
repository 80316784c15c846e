//! Collection query parameters (spec §4.1): `limit`, `marker`, `sort_key`, `sort_dir`, and
//! the `next` link of a full page.

use crate::error::ApiError;
use magnum_db::{Page, SortDirection};
use std::collections::HashMap;

/// Reads the paging parameters. `is_sortable` tells which columns exist.
pub fn page_from_query(
    query: &HashMap<String, String>,
    max_limit: usize,
    is_sortable: impl Fn(&str) -> bool,
) -> Result<Page, ApiError> {
    let limit = match query.get("limit") {
        None => max_limit,
        Some(text) => {
            let limit: i64 = text.trim().parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid input for field/attribute limit. Value: '{text}'. Wrong type. Expected an integer."
                ))
            })?;
            if limit <= 0 {
                return Err(ApiError::bad_request("Limit must be positive"));
            }
            usize::try_from(limit).unwrap_or(max_limit).min(max_limit)
        }
    };
    let marker = match query.get("marker") {
        None => None,
        Some(text) => Some(magnum_core::normalize_uuid(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute marker. Value: '{text}'. Expected a uuid"
            ))
        })?),
    };
    let sort_key = query
        .get("sort_key")
        .cloned()
        .unwrap_or_else(|| "id".to_string());
    if !is_sortable(&sort_key) {
        return Err(ApiError::bad_request(format!(
            "The sort_key value \"{sort_key}\" is an invalid field for sorting"
        )));
    }
    let sort_dir = match query.get("sort_dir").map(String::as_str) {
        None | Some("asc") => SortDirection::Asc,
        Some("desc") => SortDirection::Desc,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
            )))
        }
    };
    Ok(Page {
        limit,
        marker,
        sort_key,
        sort_dir,
    })
}

/// The `next` link when the page is full: `<base>/v1/<path>?sort_key=…&sort_dir=…&limit=…&marker=…`.
pub fn next_link(
    base: &str,
    path: &str,
    page: &Page,
    n_items: usize,
    last_uuid: Option<&str>,
) -> Option<String> {
    if n_items == 0 || n_items < page.limit {
        return None;
    }
    let marker = last_uuid?;
    Some(format!(
        "{base}/v1/{path}?sort_key={}&sort_dir={}&limit={}&marker={marker}",
        page.sort_key,
        page.sort_dir.as_str(),
        page.limit
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sortable(column: &str) -> bool {
        ["id", "name"].contains(&column)
    }

    #[test]
    fn defaults_and_caps() {
        let page = page_from_query(&query(&[]), 1000, sortable).unwrap();
        assert_eq!(
            (page.limit, page.sort_key.as_str(), page.sort_dir),
            (1000, "id", SortDirection::Asc)
        );
        let capped = page_from_query(&query(&[("limit", "5000")]), 1000, sortable).unwrap();
        assert_eq!(capped.limit, 1000);
    }

    #[test]
    fn bad_values_are_400_with_upstream_messages() {
        for (pairs, expected) in [
            (vec![("limit", "0")], "Limit must be positive"),
            (vec![("limit", "-3")], "Limit must be positive"),
            (vec![("limit", "many")], "Wrong type"),
            (vec![("marker", "abc")], "Expected a uuid"),
            (
                vec![("sort_key", "colour")],
                "The sort_key value \"colour\" is an invalid field for sorting",
            ),
            (
                vec![("sort_dir", "up")],
                "Invalid sort direction: up. Acceptable values are 'asc' or 'desc'",
            ),
        ] {
            let error = page_from_query(&query(&pairs), 1000, sortable).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains(expected), "{}", error.message);
        }
    }

    #[test]
    fn next_link_only_for_full_pages() {
        let page = page_from_query(
            &query(&[("limit", "2"), ("sort_key", "name")]),
            1000,
            sortable,
        )
        .unwrap();
        assert_eq!(
            next_link("http://h:9511", "clustertemplates", &page, 2, Some("u2")).as_deref(),
            Some("http://h:9511/v1/clustertemplates?sort_key=name&sort_dir=asc&limit=2&marker=u2")
        );
        assert_eq!(
            next_link("http://h:9511", "clustertemplates", &page, 1, Some("u1")),
            None
        );
    }
}
