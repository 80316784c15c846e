//! Authorization rules in the oslo.policy language, with Magnum's defaults (spec §8.1) and
//! operator overrides from a YAML or JSON policy file.
//!
//! A rule is a check string: `role:admin`, `rule:other`, `project_id:%(project_id)s`,
//! `is_admin:True`, `@` (always), `!` (never), combined with `and`, `or`, `not` and
//! parentheses. Credentials are the caller's roles, project, user and `is_admin` (the
//! `context_is_admin` rule); the target is the object's project and user.

use crate::error::ApiError;
use crate::request::Caller;
use crate::SharedState;
use magnum_identity::RequestContext;
use std::collections::HashMap;
use std::path::Path;

/// One default rule: its check string and the deprecated one it replaced (accepted as an
/// alternative unless `[oslo_policy] enforce_new_defaults` is true).
struct DefaultRule {
    name: &'static str,
    check: &'static str,
    deprecated: Option<&'static str>,
}

const fn rule(name: &'static str, check: &'static str) -> DefaultRule {
    DefaultRule {
        name,
        check,
        deprecated: None,
    }
}

const fn renamed(name: &'static str, check: &'static str, deprecated: &'static str) -> DefaultRule {
    DefaultRule {
        name,
        check,
        deprecated: Some(deprecated),
    }
}

const OWNER: &str = "rule:admin_or_owner";
const ADMIN: &str = "rule:context_is_admin";
const READER: &str = "rule:admin_or_project_reader";
const MEMBER: &str = "rule:admin_or_project_member";

const DEFAULT_RULES: &[DefaultRule] = &[
    rule("context_is_admin", "role:admin"),
    rule("admin_or_owner", "is_admin:True or project_id:%(project_id)s"),
    rule("admin_or_user", "is_admin:True or user_id:%(user_id)s"),
    rule("admin_api", "rule:context_is_admin"),
    rule("default", "rule:admin_or_owner"),
    rule(
        "admin_or_project_reader",
        "rule:context_is_admin or (role:reader and project_id:%(project_id)s)",
    ),
    rule(
        "admin_or_project_member",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    rule(
        "admin_or_project_member_user",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s and user_id:%(user_id)s)",
    ),
    rule(
        "admin_or_project_reader_user",
        "rule:context_is_admin or (role:reader and project_id:%(project_id)s and user_id:%(user_id)s)",
    ),
    rule("project_member", "role:member and project_id:%(project_id)s"),
    // Cluster templates.
    renamed("clustertemplate:create", MEMBER, OWNER),
    renamed("clustertemplate:delete", MEMBER, OWNER),
    renamed("clustertemplate:update", MEMBER, OWNER),
    renamed("clustertemplate:get", READER, OWNER),
    renamed("clustertemplate:get_all", READER, OWNER),
    renamed("clustertemplate:detail", READER, OWNER),
    rule("clustertemplate:get_one_all_projects", ADMIN),
    rule("clustertemplate:get_all_all_projects", ADMIN),
    rule("clustertemplate:detail_all_projects", ADMIN),
    rule("clustertemplate:update_all_projects", ADMIN),
    rule("clustertemplate:delete_all_projects", ADMIN),
    rule("clustertemplate:publish", ADMIN),
    // The 2016 names of the same operations.
    rule("baymodel:create", "rule:clustertemplate:create"),
    rule("baymodel:delete", "rule:clustertemplate:delete"),
    rule("baymodel:update", "rule:clustertemplate:update"),
    rule("baymodel:get", "rule:clustertemplate:get"),
    rule("baymodel:get_all", "rule:clustertemplate:get_all"),
    rule("baymodel:detail", "rule:clustertemplate:detail"),
    rule("baymodel:publish", "rule:clustertemplate:publish"),
    // Clusters.
    renamed("cluster:create", MEMBER, OWNER),
    renamed("cluster:delete", MEMBER, OWNER),
    renamed("cluster:update", MEMBER, OWNER),
    renamed("cluster:resize", MEMBER, OWNER),
    renamed("cluster:upgrade", MEMBER, OWNER),
    renamed("cluster:get", READER, OWNER),
    renamed("cluster:get_all", READER, OWNER),
    renamed("cluster:detail", READER, OWNER),
    rule(
        "cluster:update_health_status",
        "rule:admin_or_project_member_user",
    ),
    rule("cluster:get_all_all_projects", ADMIN),
    rule("cluster:detail_all_projects", ADMIN),
    rule("cluster:get_one_all_projects", ADMIN),
    rule("cluster:update_all_projects", ADMIN),
    rule("cluster:delete_all_projects", ADMIN),
    rule("cluster:upgrade_all_projects", ADMIN),
    rule("bay:create", "rule:cluster:create"),
    rule("bay:delete", "rule:cluster:delete"),
    rule("bay:update", "rule:cluster:update"),
    rule("bay:get", "rule:cluster:get"),
    rule("bay:get_all", "rule:cluster:get_all"),
    rule("bay:detail", "rule:cluster:detail"),
    // Certificates, credentials, services, nodegroups, quotas, stats.
    renamed("certificate:create", "rule:admin_or_project_member_user", "rule:admin_or_user"),
    renamed("certificate:get", "rule:admin_or_project_reader_user", "rule:admin_or_user"),
    renamed("certificate:rotate_ca", MEMBER, OWNER),
    rule("credential:rotate", "rule:project_member"),
    rule("magnum-service:get_all", "rule:admin_api"),
    renamed("nodegroup:get", READER, OWNER),
    renamed("nodegroup:get_all", READER, OWNER),
    rule("nodegroup:get_all_all_projects", ADMIN),
    rule("nodegroup:get_one_all_projects", ADMIN),
    renamed("nodegroup:create", MEMBER, OWNER),
    renamed("nodegroup:update", MEMBER, OWNER),
    renamed("nodegroup:delete", MEMBER, OWNER),
    rule("quota:create", "rule:admin_api"),
    rule("quota:update", "rule:admin_api"),
    rule("quota:delete", "rule:admin_api"),
    rule("quota:get_all", "rule:admin_api"),
    renamed("quota:get", READER, OWNER),
    renamed("stats:get_all", READER, OWNER),
];

/// A parsed check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    Always,
    Never,
    Rule(String),
    Role(String),
    /// `key:value`; `value` may be `%(attribute)s` of the target or a literal.
    Generic {
        key: String,
        value: String,
    },
    And(Vec<Check>),
    Or(Vec<Check>),
    Not(Box<Check>),
}

/// A check string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse policy rule '{rule}': {reason}")]
pub struct PolicyParseError {
    pub rule: String,
    pub reason: String,
}

/// Splits a check string into tokens the way oslo.policy does: on whitespace, then peeling
/// leading `(` and trailing `)` off each word (so `%(project_id)s` stays whole).
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        let mut rest = word;
        while let Some(inner) = rest.strip_prefix('(') {
            tokens.push("(".to_string());
            rest = inner;
        }
        let mut closing = 0;
        while let Some(inner) = rest.strip_suffix(')') {
            // A `)` that closes a `%(name)` reference belongs to the word.
            if inner.ends_with("%(") || (inner.contains("%(") && !inner.contains(")s")) {
                break;
            }
            closing += 1;
            rest = inner;
        }
        if !rest.is_empty() {
            tokens.push(rest.to_string());
        }
        tokens.extend(std::iter::repeat_n(")".to_string(), closing));
    }
    tokens
}

struct Parser {
    tokens: Vec<String>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.position).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn or_expression(&mut self) -> Result<Check, String> {
        let mut alternatives = vec![self.and_expression()?];
        while self
            .peek()
            .is_some_and(|token| token.eq_ignore_ascii_case("or"))
        {
            self.next();
            alternatives.push(self.and_expression()?);
        }
        Ok(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Check::Or(alternatives)
        })
    }

    fn and_expression(&mut self) -> Result<Check, String> {
        let mut parts = vec![self.not_expression()?];
        while self
            .peek()
            .is_some_and(|token| token.eq_ignore_ascii_case("and"))
        {
            self.next();
            parts.push(self.not_expression()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Check::And(parts)
        })
    }

    fn not_expression(&mut self) -> Result<Check, String> {
        if self
            .peek()
            .is_some_and(|token| token.eq_ignore_ascii_case("not"))
        {
            self.next();
            return Ok(Check::Not(Box::new(self.not_expression()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Check, String> {
        let token = self.next().ok_or("the rule ends too early")?;
        match token.as_str() {
            "(" => {
                let inner = self.or_expression()?;
                match self.next().as_deref() {
                    Some(")") => Ok(inner),
                    _ => Err("a parenthesis is not closed".to_string()),
                }
            }
            ")" => Err("unexpected ')'".to_string()),
            "@" => Ok(Check::Always),
            "!" => Ok(Check::Never),
            check => {
                let (kind, value) = check
                    .split_once(':')
                    .ok_or_else(|| format!("'{check}' is not of the form kind:value"))?;
                Ok(match kind {
                    "rule" => Check::Rule(value.to_string()),
                    "role" => Check::Role(value.to_ascii_lowercase()),
                    "http" | "https" => {
                        return Err("remote (http) checks are not supported".to_string())
                    }
                    key => Check::Generic {
                        key: key.to_string(),
                        value: value.to_string(),
                    },
                })
            }
        }
    }
}

fn parse_check(text: &str) -> Result<Check, String> {
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return Ok(Check::Always);
    }
    let mut parser = Parser {
        tokens,
        position: 0,
    };
    let check = parser.or_expression()?;
    if parser.position < parser.tokens.len() {
        return Err(format!("unexpected '{}'", parser.tokens[parser.position]));
    }
    Ok(check)
}

/// Refuses the request with upstream's policy message unless `rule` lets the caller act on
/// `target`. Every handler checks its rule through here.
pub(crate) fn enforce(
    state: &SharedState,
    rule: &str,
    caller: &Caller,
    target: &PolicyTarget,
) -> Result<(), ApiError> {
    if state.policy.allows(rule, &caller.context, target) {
        Ok(())
    } else {
        Err(ApiError::policy(rule))
    }
}

/// The object a rule is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyTarget {
    pub project_id: Option<String>,
    pub user_id: Option<String>,
}

impl PolicyTarget {
    /// The caller's own project and user, used for collection rules.
    pub fn own(context: &RequestContext) -> Self {
        Self {
            project_id: Some(context.project_id.clone()),
            user_id: Some(context.user_id.clone()),
        }
    }

    pub fn of(project_id: &str, user_id: &str) -> Self {
        Self {
            project_id: Some(project_id.to_string()),
            user_id: Some(user_id.to_string()),
        }
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        match name {
            "project_id" => self.project_id.as_deref(),
            "user_id" => self.user_id.as_deref(),
            _ => None,
        }
    }
}

/// The active rules.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<String, Check>,
}

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}: {source}")]
    BadRule {
        path: String,
        #[source]
        source: PolicyParseError,
    },
}

impl Policy {
    /// The defaults, with deprecated alternatives accepted unless `enforce_new_defaults`.
    pub fn defaults(enforce_new_defaults: bool) -> Policy {
        let mut rules = HashMap::new();
        for default in DEFAULT_RULES {
            let text = match (default.deprecated, enforce_new_defaults) {
                (Some(deprecated), false) => format!("({}) or ({deprecated})", default.check),
                _ => default.check.to_string(),
            };
            // The defaults are constants checked by a unit test, so they always parse.
            let check = parse_check(&text).unwrap_or(Check::Never);
            rules.insert(default.name.to_string(), check);
        }
        Policy { rules }
    }

    /// Overrides rules with check strings (from a policy file).
    pub fn with_overrides(
        mut self,
        overrides: &HashMap<String, String>,
    ) -> Result<Policy, PolicyParseError> {
        for (name, text) in overrides {
            let check = parse_check(text).map_err(|reason| PolicyParseError {
                rule: name.clone(),
                reason,
            })?;
            self.rules.insert(name.clone(), check);
        }
        Ok(self)
    }

    /// The defaults plus the overrides in `path` (YAML or JSON) when the file exists.
    pub fn load(path: &Path, enforce_new_defaults: bool) -> Result<Policy, PolicyFileError> {
        let policy = Policy::defaults(enforce_new_defaults);
        if !path.exists() {
            return Ok(policy);
        }
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| PolicyFileError::Unreadable {
            path: display.clone(),
            reason: error.to_string(),
        })?;
        let overrides: HashMap<String, String> = if text.trim().is_empty() {
            HashMap::new()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|error| PolicyFileError::Unreadable {
                path: display.clone(),
                reason: format!("not a map of rule names to check strings: {error}"),
            })?
        };
        policy
            .with_overrides(&overrides)
            .map_err(|source| PolicyFileError::BadRule {
                path: display,
                source,
            })
    }

    /// Whether the caller is an administrator (`context_is_admin`).
    pub fn is_admin(&self, context: &RequestContext) -> bool {
        self.evaluate_rule(
            "context_is_admin",
            context,
            &PolicyTarget::default(),
            false,
            0,
        )
    }

    /// Whether `rule` allows the caller to act on `target`.
    pub fn allows(&self, rule: &str, context: &RequestContext, target: &PolicyTarget) -> bool {
        let is_admin = self.is_admin(context);
        let name = if self.rules.contains_key(rule) {
            rule
        } else {
            "default"
        };
        self.evaluate_rule(name, context, target, is_admin, 0)
    }

    fn evaluate_rule(
        &self,
        name: &str,
        context: &RequestContext,
        target: &PolicyTarget,
        is_admin: bool,
        depth: usize,
    ) -> bool {
        if depth > 16 {
            return false;
        }
        self.rules
            .get(name)
            .map(|check| self.evaluate(check, context, target, is_admin, depth + 1))
            .unwrap_or(false)
    }

    fn evaluate(
        &self,
        check: &Check,
        context: &RequestContext,
        target: &PolicyTarget,
        is_admin: bool,
        depth: usize,
    ) -> bool {
        match check {
            Check::Always => true,
            Check::Never => false,
            Check::Rule(name) => self.evaluate_rule(name, context, target, is_admin, depth),
            Check::Role(role) => context.has_role(role),
            Check::And(parts) => parts
                .iter()
                .all(|part| self.evaluate(part, context, target, is_admin, depth)),
            Check::Or(parts) => parts
                .iter()
                .any(|part| self.evaluate(part, context, target, is_admin, depth)),
            Check::Not(inner) => !self.evaluate(inner, context, target, is_admin, depth),
            Check::Generic { key, value } => {
                let expected = match value
                    .strip_prefix("%(")
                    .and_then(|rest| rest.strip_suffix(")s"))
                {
                    Some(attribute) => match target.attribute(attribute) {
                        Some(found) => found.to_string(),
                        None => return false,
                    },
                    None => value.trim_matches('\'').to_string(),
                };
                if key.starts_with('\'') {
                    return key.trim_matches('\'') == expected;
                }
                let actual = match key.as_str() {
                    "project_id" | "tenant" | "tenant_id" => Some(context.project_id.clone()),
                    "user_id" => Some(context.user_id.clone()),
                    "is_admin" => Some(if is_admin { "True" } else { "False" }.to_string()),
                    "user_name" => context.user_name.clone(),
                    "project_name" => context.project_name.clone(),
                    _ => None,
                };
                match actual {
                    Some(actual) if key == "is_admin" => actual.eq_ignore_ascii_case(&expected),
                    Some(actual) => actual == expected,
                    None => false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(project: &str, user: &str, roles: &[&str]) -> RequestContext {
        RequestContext {
            user_id: user.to_string(),
            user_name: None,
            user_domain_id: None,
            project_id: project.to_string(),
            project_name: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            trust_id: None,
        }
    }

    #[test]
    fn tokens_keep_target_references_whole() {
        assert_eq!(
            tokenize("rule:a or ((role:reader and project_id:%(project_id)s))"),
            [
                "rule:a",
                "or",
                "(",
                "(",
                "role:reader",
                "and",
                "project_id:%(project_id)s",
                ")",
                ")"
            ]
        );
    }

    #[test]
    fn every_default_rule_parses() {
        for default in DEFAULT_RULES {
            assert!(parse_check(default.check).is_ok(), "{}", default.name);
            if let Some(deprecated) = default.deprecated {
                assert!(parse_check(deprecated).is_ok(), "{}", default.name);
            }
        }
    }

    #[test]
    fn members_act_on_their_project_and_readers_only_read() {
        let policy = Policy::defaults(true);
        let member = context("p1", "u1", &["member", "reader"]);
        let reader = context("p1", "u2", &["reader"]);
        let own = PolicyTarget::of("p1", "u1");
        let foreign = PolicyTarget::of("p2", "u9");
        assert!(policy.allows("clustertemplate:create", &member, &own));
        assert!(!policy.allows("clustertemplate:create", &member, &foreign));
        assert!(!policy.allows("clustertemplate:create", &reader, &own));
        assert!(policy.allows("clustertemplate:get", &reader, &own));
        assert!(!policy.allows("clustertemplate:publish", &member, &own));
        assert!(!policy.allows("magnum-service:get_all", &member, &own));
        assert!(policy.allows("baymodel:update", &member, &own));
    }

    #[test]
    fn admin_may_do_everything() {
        let policy = Policy::defaults(true);
        let admin = context("admin", "root", &["admin"]);
        assert!(policy.is_admin(&admin));
        let foreign = PolicyTarget::of("p2", "u9");
        for rule in [
            "clustertemplate:publish",
            "magnum-service:get_all",
            "cluster:delete",
            "quota:create",
        ] {
            assert!(policy.allows(rule, &admin, &foreign), "{rule}");
        }
    }

    #[test]
    fn deprecated_defaults_are_accepted_unless_enforced() {
        let no_roles = context("p1", "u1", &[]);
        let own = PolicyTarget::of("p1", "u1");
        assert!(!Policy::defaults(true).allows("clustertemplate:create", &no_roles, &own));
        assert!(Policy::defaults(false).allows("clustertemplate:create", &no_roles, &own));
    }

    #[test]
    fn certificate_rules_need_the_same_user() {
        let policy = Policy::defaults(true);
        let other_member = context("p1", "u2", &["member", "reader"]);
        assert!(!policy.allows(
            "certificate:create",
            &other_member,
            &PolicyTarget::of("p1", "u1")
        ));
        assert!(policy.allows(
            "certificate:create",
            &other_member,
            &PolicyTarget::of("p1", "u2")
        ));
    }

    #[test]
    fn overrides_replace_rules_and_bad_ones_are_reported() {
        let policy = Policy::defaults(true)
            .with_overrides(&HashMap::from([
                (
                    "clustertemplate:publish".to_string(),
                    "role:member or not role:member".to_string(),
                ),
                ("magnum-service:get_all".to_string(), "@".to_string()),
            ]))
            .unwrap();
        let member = context("p1", "u1", &["member"]);
        assert!(policy.allows(
            "clustertemplate:publish",
            &member,
            &PolicyTarget::own(&member)
        ));
        assert!(policy.allows(
            "magnum-service:get_all",
            &member,
            &PolicyTarget::own(&member)
        ));
        let error = Policy::defaults(true)
            .with_overrides(&HashMap::from([("x".to_string(), "(role:a".to_string())]))
            .unwrap_err();
        assert_eq!(error.rule, "x");
        assert!(Policy::defaults(true)
            .with_overrides(&HashMap::from([(
                "x".to_string(),
                "http://example".to_string()
            )]))
            .is_err());
    }

    #[test]
    fn policy_files_in_yaml_and_json_are_loaded() {
        let directory = tempfile::tempdir().unwrap();
        let yaml = directory.path().join("policy.yaml");
        std::fs::write(&yaml, "\"magnum-service:get_all\": \"role:reader\"\n").unwrap();
        let json = directory.path().join("policy.json");
        std::fs::write(&json, "{\"magnum-service:get_all\": \"!\"}").unwrap();
        let reader = context("p1", "u1", &["reader"]);
        let target = PolicyTarget::own(&reader);
        assert!(Policy::load(&yaml, true).unwrap().allows(
            "magnum-service:get_all",
            &reader,
            &target
        ));
        let admin = context("p1", "u1", &["admin"]);
        assert!(!Policy::load(&json, true).unwrap().allows(
            "magnum-service:get_all",
            &admin,
            &target
        ));
        assert!(Policy::load(&directory.path().join("missing.yaml"), true).is_ok());
        std::fs::write(&yaml, "- not a map\n").unwrap();
        assert!(Policy::load(&yaml, true).is_err());
    }

    #[test]
    fn unknown_rules_fall_back_to_default() {
        let policy = Policy::defaults(true);
        let member = context("p1", "u1", &["member"]);
        assert!(policy.allows("no:such:rule", &member, &PolicyTarget::of("p1", "u1")));
        assert!(!policy.allows("no:such:rule", &member, &PolicyTarget::of("p2", "u1")));
    }
}
