//! The roles of `magnumd` as a library: starting and stopping the API, the built-in
//! identity and the conductor on a configuration and an infrastructure. The binary
//! (`main.rs`) adds the command line and signals; tests start the same roles in-process on
//! a fake infrastructure.

pub mod http;
pub mod serve;
