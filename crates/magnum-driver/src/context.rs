//! Who a provider or driver acts for.
//!
//! A lookup during a request is made for the caller (a cloud looks images and keypairs up in
//! the caller's project, with the caller's token). Work the conductor does later, after the
//! request has ended, is made with the cluster's credentials: its owner, and on a cloud the
//! trust the owner gave the cluster's trustee.

/// The caller of an API request, as the provider sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct CallerContext {
    pub project_id: String,
    pub user_id: String,
    pub roles: Vec<String>,
    /// The caller's token, when the request was authenticated with one.
    pub token: Option<String>,
}

impl std::fmt::Debug for CallerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerContext")
            .field("project_id", &self.project_id)
            .field("user_id", &self.user_id)
            .field("roles", &self.roles)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl CallerContext {
    /// The context of a cluster's owner, for lookups the conductor makes on its behalf.
    pub fn of_owner(credentials: &ClusterCredentials) -> CallerContext {
        CallerContext {
            project_id: credentials.project_id.clone(),
            user_id: credentials.user_id.clone(),
            roles: Vec::new(),
            token: None,
        }
    }
}

/// What a driver acts with on a cluster's behalf: the owner, and on a cloud the trust the
/// owner gave the cluster's trustee user (none on the local engine).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterCredentials {
    pub project_id: String,
    pub user_id: String,
    /// The trust from the owner to the trustee, when the provider uses trusts.
    pub trust_id: Option<String>,
    /// The trustee user the cluster's nodes authenticate as.
    pub trustee_user_id: Option<String>,
}
