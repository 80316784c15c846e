//! `magnumd identity …`: managing the built-in identity's users, projects and roles.

use anyhow::Context;
use clap::Subcommand;
use magnum_config::MagnumConfig;
use magnum_identity::admin;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create a project.
    ProjectCreate {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List projects.
    ProjectList,
    /// Create a user.
    UserCreate {
        #[arg(long)]
        name: String,
        /// The password (prefer --password-file: command lines are visible to other users).
        #[arg(long, conflicts_with = "password_file")]
        password: Option<String>,
        /// A file whose first line is the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The project a token is scoped to when a request names none.
        #[arg(long)]
        project: Option<String>,
    },
    /// List users.
    UserList,
    /// Set a user's password.
    UserPassword {
        #[arg(long)]
        name: String,
        #[arg(long, conflicts_with = "password_file")]
        password: Option<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Grant a role to a user on a project (admin implies member implies reader).
    RoleAdd {
        #[arg(long)]
        user: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        role: String,
    },
    /// Withdraw a role from a user on a project.
    RoleRemove {
        #[arg(long)]
        user: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        role: String,
    },
}

fn password_from(password: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    match (password, file) {
        (Some(password), _) => Ok(password),
        (None, Some(file)) => Ok(std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()),
        (None, None) => anyhow::bail!("give --password or --password-file"),
    }
}

pub async fn run(config: &MagnumConfig, command: IdentityCommand) -> anyhow::Result<()> {
    let database = crate::serve::connect(config).await?;
    if config.database.auto_upgrade {
        database.upgrade().await.context("schema upgrade failed")?;
    }
    match command {
        IdentityCommand::ProjectCreate { name, description } => {
            let project = admin::create_project(&database, &name, description.as_deref()).await?;
            println!("Created project {} with id {}.", project.name, project.id);
        }
        IdentityCommand::ProjectList => {
            for project in database.identity().list_projects().await? {
                println!("{}\t{}", project.id, project.name);
            }
        }
        IdentityCommand::UserCreate {
            name,
            password,
            password_file,
            project,
        } => {
            let password = password_from(password, password_file)?;
            let user = admin::create_user(&database, &name, &password, project.as_deref()).await?;
            println!("Created user {} with id {}.", user.name, user.id);
        }
        IdentityCommand::UserList => {
            for user in database.identity().list_users().await? {
                println!("{}\t{}", user.id, user.name);
            }
        }
        IdentityCommand::UserPassword {
            name,
            password,
            password_file,
        } => {
            let password = password_from(password, password_file)?;
            admin::set_password(&database, &name, &password).await?;
            println!("Changed the password of {name}.");
        }
        IdentityCommand::RoleAdd {
            user,
            project,
            role,
        } => {
            admin::add_role(&database, &user, &project, &role).await?;
            println!("Granted {role} to {user} on project {project}.");
        }
        IdentityCommand::RoleRemove {
            user,
            project,
            role,
        } => {
            admin::remove_role(&database, &user, &project, &role).await?;
            println!("Withdrew {role} from {user} on project {project}.");
        }
    }
    database.close().await;
    Ok(())
}
