//! `magnumd`: the Magnum service in one binary.
//!
//! `serve` (the default) runs the REST API, the built-in identity (when
//! `[api] auth_strategy = builtin`) and a conductor; `api` and `conductor` run one role for
//! scale-out; `db upgrade`/`db version` manage the schema; `identity …` manages users,
//! projects and roles of the built-in identity; `config sample` prints every option;
//! `node-image build` prepares the Docker provider's node image ahead of the first cluster.

mod identity_command;

use magnumd::serve;

use anyhow::Context;
use clap::{Parser, Subcommand};
use magnum_config::MagnumConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "magnumd",
    version,
    about = "Magnum container infrastructure service"
)]
struct Cli {
    /// The magnum.conf to read; built-in defaults apply when none is given.
    #[arg(long = "config-file", global = true, env = "MAGNUM_CONFIG_FILE")]
    config_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API, the built-in identity and a conductor (the default).
    Serve,
    /// Run only the API (and the built-in identity when configured).
    Api,
    /// Run only a conductor.
    Conductor,
    /// Manage the database schema.
    #[command(subcommand)]
    Db(DbCommand),
    /// Manage users, projects and roles of the built-in identity.
    #[command(subcommand)]
    Identity(identity_command::IdentityCommand),
    /// Show configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the node image of the Docker provider.
    #[command(subcommand)]
    NodeImage(NodeImageCommand),
}

#[derive(Debug, Subcommand)]
enum NodeImageCommand {
    /// Build (or find) the `[docker] node_image` now, so the first cluster does not wait for
    /// it: debootstrap into `[docker] image_cache_dir` (kept), then import into the engine.
    Build,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply every pending migration.
    Upgrade,
    /// Print the applied and the newest known schema versions.
    Version,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a magnum.conf with every option at its default.
    Sample,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<MagnumConfig> {
    let config = match path {
        Some(path) => MagnumConfig::load(path)?,
        None => MagnumConfig::from_text("", "<built-in defaults>")?,
    };
    Ok(config)
}

fn init_tracing(config: &MagnumConfig) {
    let default_level = if config.default.debug {
        "debug"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},sqlx=warn,hyper=warn"))
    });
    // Colour codes only for a person at a terminal; files and journals get plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .try_init();
}

fn build_runtime(worker_threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if worker_threads > 0 {
        builder.worker_threads(worker_threads);
    }
    builder.build().context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Config(ConfigCommand::Sample) = command {
        print!("{}", MagnumConfig::sample());
        return Ok(());
    }
    let config = load_config(cli.config_file.as_ref())?;
    init_tracing(&config);
    for unknown in &config.unknown_options {
        tracing::warn!(option = %unknown, "ignoring an option this version does not know");
    }
    let runtime = build_runtime(config.api.workers)?;
    runtime.block_on(async move {
        match command {
            Command::Serve => serve::run(config, serve::Roles::all()).await,
            Command::Api => serve::run(config, serve::Roles::api_only()).await,
            Command::Conductor => serve::run(config, serve::Roles::conductor_only()).await,
            Command::Db(DbCommand::Upgrade) => {
                tracing::info!(database = %config.database_connection(), "upgrading the database schema");
                let database = serve::connect(&config).await?;
                database.upgrade().await.context("schema upgrade failed")?;
                let (applied, _) = database.schema_version().await?;
                println!("Database schema is at version {applied}.");
                Ok(())
            }
            Command::Db(DbCommand::Version) => {
                let database = serve::connect(&config).await?;
                let (applied, known) = database.schema_version().await?;
                println!("applied: {applied}\nnewest known: {known}");
                Ok(())
            }
            Command::Identity(identity) => identity_command::run(&config, identity).await,
            Command::Config(ConfigCommand::Sample) => Ok(()),
            Command::NodeImage(NodeImageCommand::Build) => {
                let settings = serve::docker_settings(&config)?;
                let started = std::time::Instant::now();
                let engine = magnum_driver_docker::LocalEngine::new(settings.clone());
                magnum_driver_docker::node_image::ensure_node_image(&engine, &settings)
                    .await
                    .map_err(|error| anyhow::anyhow!("cannot build the node image: {error}"))?;
                println!(
                    "Node image {} is ready ({:.1} s).",
                    settings.node_image,
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("magnumd: {error:#}");
            if error.downcast_ref::<magnum_config::ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
