//! Operator tasks of the built-in identity: the first-start bootstrap (admin user, project
//! and roles), the token signing key, and `magnumd identity …` management commands.

use crate::password::hash_password;
use crate::secrets::{random_hex, random_password, read_or_create};
use crate::service::DEFAULT_DOMAIN_ID;
use crate::token::TokenSigner;
use chrono::{SubsecRound, Utc};
use magnum_config::IdentitySection;
use magnum_db::identity::{IdentityProject, IdentityUser};
use magnum_db::{Database, DbError};
use std::path::{Path, PathBuf};

/// The roles every deployment has; admin implies member implies reader.
pub const STANDARD_ROLES: [&str; 3] = ["admin", "member", "reader"];

/// Why an identity management task failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {reason}")]
    Secret { path: PathBuf, reason: String },
    #[error("database error: {0}")]
    Database(#[from] DbError),
}

/// What the bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapOutcome {
    pub user_name: String,
    pub project_name: String,
    /// True when this process created the admin user.
    pub created: bool,
    /// Where the generated password is, when it was generated rather than configured.
    pub password_file: Option<PathBuf>,
}

/// The file holding the token signing key.
pub fn signing_key_path(state_path: &Path) -> PathBuf {
    state_path.join("token-signing.key")
}

/// Loads the token signing key, creating it on first use.
pub fn load_token_signer(state_path: &Path) -> Result<TokenSigner, AdminError> {
    let path = signing_key_path(state_path);
    let secret_error = |reason: String| AdminError::Secret {
        path: path.clone(),
        reason,
    };
    let hex = read_or_create(&path, || random_hex(32))
        .map_err(|error| secret_error(error.to_string()))?;
    let key = (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(hex.get(index..index + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| secret_error("the key file does not hold hex digits".to_string()))?;
    TokenSigner::new(&key).map_err(secret_error)
}

fn check_name(kind: &str, name: &str) -> Result<(), AdminError> {
    if name.trim().is_empty() || name.len() > 255 {
        return Err(AdminError::Invalid(format!(
            "a {kind} name must have 1 to 255 characters"
        )));
    }
    Ok(())
}

async fn hash_off_thread(password: String) -> Result<String, AdminError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|error| AdminError::Invalid(error.to_string()))?
        .map_err(AdminError::Invalid)
}

/// Creates a project in the default domain.
pub async fn create_project(
    database: &Database,
    name: &str,
    description: Option<&str>,
) -> Result<IdentityProject, AdminError> {
    check_name("project", name)?;
    let project = IdentityProject {
        id: random_hex(16),
        name: name.to_string(),
        domain_id: DEFAULT_DOMAIN_ID.to_string(),
        description: description.map(str::to_string),
        enabled: true,
        created_at: Utc::now().trunc_subsecs(6),
    };
    match database.identity().create_project(&project).await {
        Ok(()) => Ok(project),
        Err(DbError::Duplicate) => Err(AdminError::AlreadyExists(format!("project {name}"))),
        Err(other) => Err(other.into()),
    }
}

/// Creates a user in the default domain.
pub async fn create_user(
    database: &Database,
    name: &str,
    password: &str,
    default_project: Option<&str>,
) -> Result<IdentityUser, AdminError> {
    check_name("user", name)?;
    if password.is_empty() {
        return Err(AdminError::Invalid(
            "the password must not be empty".to_string(),
        ));
    }
    let default_project_id = match default_project {
        Some(project) => Some(find_project(database, project).await?.id),
        None => None,
    };
    let user = IdentityUser {
        id: random_hex(16),
        name: name.to_string(),
        domain_id: DEFAULT_DOMAIN_ID.to_string(),
        password_hash: hash_off_thread(password.to_string()).await?,
        enabled: true,
        default_project_id,
        created_at: Utc::now().trunc_subsecs(6),
        failed_auth_count: 0,
        failed_auth_at: None,
    };
    match database.identity().create_user(&user).await {
        Ok(()) => Ok(user),
        Err(DbError::Duplicate) => Err(AdminError::AlreadyExists(format!("user {name}"))),
        Err(other) => Err(other.into()),
    }
}

/// A project by name or id.
pub async fn find_project(
    database: &Database,
    project: &str,
) -> Result<IdentityProject, AdminError> {
    match database
        .identity()
        .project_by_name(DEFAULT_DOMAIN_ID, project)
        .await
    {
        Ok(found) => Ok(found),
        Err(DbError::NotFound) => {
            database
                .identity()
                .project_by_id(project)
                .await
                .map_err(|error| match error {
                    DbError::NotFound => AdminError::NotFound(format!("project {project}")),
                    other => other.into(),
                })
        }
        Err(other) => Err(other.into()),
    }
}

/// A user by name or id.
pub async fn find_user(database: &Database, user: &str) -> Result<IdentityUser, AdminError> {
    match database
        .identity()
        .user_by_name(DEFAULT_DOMAIN_ID, user)
        .await
    {
        Ok(found) => Ok(found),
        Err(DbError::NotFound) => {
            database
                .identity()
                .user_by_id(user)
                .await
                .map_err(|error| match error {
                    DbError::NotFound => AdminError::NotFound(format!("user {user}")),
                    other => other.into(),
                })
        }
        Err(other) => Err(other.into()),
    }
}

/// Grants a role (created if it is new) to a user on a project.
pub async fn add_role(
    database: &Database,
    user: &str,
    project: &str,
    role: &str,
) -> Result<(), AdminError> {
    check_name("role", role)?;
    let user = find_user(database, user).await?;
    let project = find_project(database, project).await?;
    let role = database
        .identity()
        .ensure_role(role, &random_hex(16))
        .await?;
    database
        .identity()
        .assign_role(&user.id, &project.id, &role.id)
        .await?;
    Ok(())
}

/// Withdraws a role from a user on a project.
pub async fn remove_role(
    database: &Database,
    user: &str,
    project: &str,
    role: &str,
) -> Result<(), AdminError> {
    let user = find_user(database, user).await?;
    let project = find_project(database, project).await?;
    let role = database
        .identity()
        .role_by_name(role)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("role {role}")))?;
    database
        .identity()
        .unassign_role(&user.id, &project.id, &role.id)
        .await
        .map_err(|error| match error {
            DbError::NotFound => AdminError::NotFound("that role assignment".to_string()),
            other => other.into(),
        })
}

/// Sets a user's password.
pub async fn set_password(
    database: &Database,
    user: &str,
    password: &str,
) -> Result<(), AdminError> {
    if password.is_empty() {
        return Err(AdminError::Invalid(
            "the password must not be empty".to_string(),
        ));
    }
    let user = find_user(database, user).await?;
    let hash = hash_off_thread(password.to_string()).await?;
    database
        .identity()
        .set_password_hash(&user.id, &hash)
        .await?;
    Ok(())
}

/// On first start: the standard roles, the admin project and the admin user holding every
/// standard role on it. The password comes from `[identity] admin_password`, or is generated
/// once into `state_path/admin-password` (mode 0600). Later starts change nothing.
pub async fn bootstrap(
    database: &Database,
    settings: &IdentitySection,
    state_path: &Path,
) -> Result<BootstrapOutcome, AdminError> {
    let mut outcome = BootstrapOutcome {
        user_name: settings.admin_user.clone(),
        project_name: settings.admin_project.clone(),
        created: false,
        password_file: None,
    };
    let password_file = state_path.join("admin-password");
    if settings.admin_password.is_none() {
        outcome.password_file = Some(password_file.clone());
    }
    if find_user(database, &settings.admin_user).await.is_ok() {
        return Ok(outcome);
    }
    for role in STANDARD_ROLES {
        database
            .identity()
            .ensure_role(role, &random_hex(16))
            .await?;
    }
    match create_project(
        database,
        &settings.admin_project,
        Some("Bootstrap project for the admin user"),
    )
    .await
    {
        Ok(_) | Err(AdminError::AlreadyExists(_)) => {}
        Err(other) => return Err(other),
    }
    let password = match &settings.admin_password {
        Some(secret) => secret.expose().to_string(),
        None => {
            read_or_create(&password_file, random_password).map_err(|error| AdminError::Secret {
                path: password_file.clone(),
                reason: error.to_string(),
            })?
        }
    };
    match create_user(
        database,
        &settings.admin_user,
        &password,
        Some(&settings.admin_project),
    )
    .await
    {
        Ok(_) => outcome.created = true,
        // Another process bootstrapped at the same moment.
        Err(AdminError::AlreadyExists(_)) => return Ok(outcome),
        Err(other) => return Err(other),
    }
    for role in STANDARD_ROLES {
        add_role(
            database,
            &settings.admin_user,
            &settings.admin_project,
            role,
        )
        .await?;
    }
    Ok(outcome)
}
