//! End-to-end tests: one binary for every suite (see `src/lib.rs` for the environment).

// Test code may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

mod api_root;
mod baymodels;
mod clients;
mod cluster_templates;
mod clusters_api;
mod discovery;
mod identity;
mod numbers;
mod openstack_provider;
mod operations;
mod services;
mod swarm_clusters;
mod tenancy;
