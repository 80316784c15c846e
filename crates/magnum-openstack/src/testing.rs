//! For tests against the real Keystone and Heat that `scripts/openstack/services.sh`
//! starts: the values of its env file, named by `MAGNUM_TEST_OPENSTACK_ENV`.

use std::collections::HashMap;

/// The env file's `KEY=value` lines, or None when no file is named (the caller skips its
/// test). With `MAGNUM_TEST_REQUIRE_ALL=1` a missing file fails instead (panics), as the
/// README's test command wants.
pub fn services_env() -> Option<HashMap<String, String>> {
    let values: HashMap<String, String> = std::env::var("MAGNUM_TEST_OPENSTACK_ENV")
        .ok()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| {
            text.lines()
                .filter_map(|line| line.split_once('='))
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if values.contains_key("MAGNUM_TEST_KEYSTONE_URL") {
        return Some(values);
    }
    assert!(
        std::env::var("MAGNUM_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
        "MAGNUM_TEST_OPENSTACK_ENV names no Keystone/Heat env file \
         (scripts/openstack/services.sh start writes one)"
    );
    eprintln!("skipped: no real Keystone and Heat (MAGNUM_TEST_OPENSTACK_ENV unset)");
    None
}
