//! The identity of the caller of one API request.

/// Who is calling and in which project, as the API's policy checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub user_id: String,
    pub user_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_id: String,
    pub project_name: Option<String>,
    /// Role names, lower-case.
    pub roles: Vec<String>,
    /// The trust the token was scoped to, when it was (a cluster's nodes call as its
    /// trustee within the trust its owner gave; with impersonation the user is the owner).
    pub trust_id: Option<String>,
}

impl RequestContext {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles
            .iter()
            .any(|held| held.eq_ignore_ascii_case(role))
    }
}
