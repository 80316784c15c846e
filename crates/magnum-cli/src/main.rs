//! `magnum`: the command-line client, command-compatible with python-magnumclient's shell
//! (`cluster-template-*`, `cluster-*`, `cluster-config`, `ca-*`, `quotas-*`, `stats-list`, the
//! 2016 `baymodel-*` and `bay-*`, `service-list`) and configured by the same
//! `OS_*` variables and flags as the OpenStack clients. Tables look like python-magnumclient's;
//! `--json` prints the API's JSON instead.

mod admin;
mod clusters;
mod commands;
mod config;
mod error;
mod table;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// The API's JSON instead of tables.
    pub json: bool,
}

use clap::{Args, Parser};
use error::CliError;
use magnum_client::{Credentials, MagnumClient, PasswordAuth};
use std::process::ExitCode;

/// How to reach and authenticate to the API (the OpenStack clients' options).
#[derive(Debug, Args)]
pub struct AuthOptions {
    /// Identity (Keystone v3) URL.
    #[arg(long, env = "OS_AUTH_URL", global = true)]
    os_auth_url: Option<String>,
    #[arg(long, env = "OS_USERNAME", global = true)]
    os_username: Option<String>,
    #[arg(long, env = "OS_USER_ID", global = true)]
    os_user_id: Option<String>,
    #[arg(long, env = "OS_PASSWORD", global = true, hide_env_values = true)]
    os_password: Option<String>,
    #[arg(long, env = "OS_PROJECT_NAME", alias = "os-tenant-name", global = true)]
    os_project_name: Option<String>,
    #[arg(long, env = "OS_PROJECT_ID", alias = "os-tenant-id", global = true)]
    os_project_id: Option<String>,
    #[arg(long, env = "OS_USER_DOMAIN_NAME", global = true)]
    os_user_domain_name: Option<String>,
    #[arg(long, env = "OS_USER_DOMAIN_ID", global = true)]
    os_user_domain_id: Option<String>,
    #[arg(long, env = "OS_PROJECT_DOMAIN_NAME", global = true)]
    os_project_domain_name: Option<String>,
    #[arg(long, env = "OS_PROJECT_DOMAIN_ID", global = true)]
    os_project_domain_id: Option<String>,
    #[arg(long, env = "OS_REGION_NAME", global = true)]
    os_region_name: Option<String>,
    /// A token to use instead of a password (needs an endpoint).
    #[arg(long, env = "OS_TOKEN", global = true, hide_env_values = true)]
    os_token: Option<String>,
    /// The Magnum API endpoint, bypassing the catalog.
    #[arg(
        long,
        env = "OS_ENDPOINT_OVERRIDE",
        alias = "magnum-url",
        global = true
    )]
    os_endpoint_override: Option<String>,
    /// The Magnum API endpoint (as `openstack --os-endpoint`).
    #[arg(long, env = "OS_ENDPOINT", global = true)]
    os_endpoint: Option<String>,
    /// password, token or none.
    #[arg(long, env = "OS_AUTH_TYPE", global = true)]
    os_auth_type: Option<String>,
    /// publicURL, internalURL or adminURL (also public, internal, admin).
    #[arg(
        long,
        env = "OS_ENDPOINT_TYPE",
        default_value = "publicURL",
        global = true
    )]
    os_endpoint_type: String,
    /// API microversion to request.
    #[arg(
        long,
        env = "MAGNUM_API_VERSION",
        alias = "os-container-infra-api-version",
        default_value = "latest",
        global = true
    )]
    magnum_api_version: String,
    /// Do not verify TLS certificates.
    #[arg(long, global = true)]
    insecure: bool,
}

impl AuthOptions {
    fn endpoint(&self) -> Option<String> {
        self.os_endpoint_override
            .clone()
            .or_else(|| self.os_endpoint.clone())
    }

    fn credentials(&self) -> Result<Credentials, CliError> {
        let auth_type = self
            .os_auth_type
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let missing = |what: &str| CliError::Usage(format!("You must provide {what}"));
        if auth_type == "none"
            || (self.os_auth_url.is_none() && self.os_token.is_none() && self.endpoint().is_some())
        {
            let endpoint = self
                .endpoint()
                .ok_or_else(|| missing("an endpoint via --os-endpoint or env[OS_ENDPOINT]"))?;
            return Ok(Credentials::Endpoint { endpoint });
        }
        if let Some(token) = &self.os_token {
            if let Some(endpoint) = self.endpoint() {
                return Ok(Credentials::Token {
                    endpoint,
                    token: token.clone(),
                });
            }
            if self.os_password.is_none() {
                return Err(missing(
                    "an endpoint via --os-endpoint-override (or --magnum-url) with --os-token",
                ));
            }
        }
        let auth_url = self
            .os_auth_url
            .clone()
            .ok_or_else(|| missing("an auth url via --os-auth-url or env[OS_AUTH_URL]"))?;
        let password = self
            .os_password
            .clone()
            .ok_or_else(|| missing("a password via --os-password or env[OS_PASSWORD]"))?;
        let interface = self
            .os_endpoint_type
            .trim_end_matches("URL")
            .to_ascii_lowercase();
        Ok(Credentials::Password(Box::new(PasswordAuth {
            auth_url,
            username: self.os_username.clone(),
            user_id: self.os_user_id.clone(),
            password,
            user_domain_name: self.os_user_domain_name.clone(),
            user_domain_id: self.os_user_domain_id.clone(),
            project_name: self.os_project_name.clone(),
            project_id: self.os_project_id.clone(),
            project_domain_name: self.os_project_domain_name.clone(),
            project_domain_id: self.os_project_domain_id.clone(),
            region_name: self.os_region_name.clone(),
            interface,
            endpoint_override: self.endpoint(),
        })))
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "magnum",
    about = "Command-line interface to the OpenStack Magnum API.",
    disable_version_flag = true
)]
struct Cli {
    /// Print the version and exit.
    #[arg(long)]
    version: bool,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    auth: AuthOptions,
    #[command(subcommand)]
    command: Option<commands::Command>,
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let Some(command) = cli.command else {
        return Err(CliError::Usage(
            "no command given; see `magnum --help`".to_string(),
        ));
    };
    let credentials = cli.auth.credentials()?;
    let client = MagnumClient::connect(
        &credentials,
        &cli.auth.magnum_api_version,
        cli.auth.insecure,
    )
    .await?;
    commands::run(&client, command, cli.json).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ERROR: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ERROR: {error}");
            ExitCode::FAILURE
        }
    }
}
