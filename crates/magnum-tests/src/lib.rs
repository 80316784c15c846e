//! End-to-end tests of Magnum-rs, in `tests/`.
//!
//! They start the real `magnumd` (built by `cargo build --bins`) on ephemeral ports with its
//! own state directory and database, talk to it over HTTP, and drive it with the stock
//! OpenStack clients and the `magnum` CLI. Environment:
//! - `MAGNUM_TEST_DATABASE_URL`: a PostgreSQL or MariaDB server URL whose user may create
//!   databases named `magnum_t_*`; each test gets its own database. SQLite when unset.
//! - `MAGNUM_TEST_VENV`: a Python venv with `openstack` (python-openstackclient and
//!   python-magnumclient); client tests need it.
//! - `MAGNUM_TEST_REQUIRE_ALL=1`: a missing prerequisite fails the test instead of skipping
//!   it (the README's test command sets this).
