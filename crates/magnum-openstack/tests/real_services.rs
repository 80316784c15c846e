//! The client against the real Keystone 30 and Heat 27.0.1 that
//! `scripts/openstack/services.sh` starts (the README's test command runs it and exports
//! `MAGNUM_TEST_OPENSTACK_ENV`, the file naming their URLs and passwords). Without that file
//! the tests are skipped, unless `MAGNUM_TEST_REQUIRE_ALL=1` makes that a failure.
//!
//! In the stacks below, the environment maps `OS::Nova::Server` to `OS::Heat::None`: no
//! cloud runs here, and Heat's own engine does everything else for real.

#![allow(clippy::unwrap_used)]

use magnum_config::Secret;
use magnum_openstack::heat::{StackRef, StackState};
use magnum_openstack::keystone::TrustRequest;
use magnum_openstack::{
    http_client, AuthMethod, AuthRequest, EndpointFilter, Heat, Interface, Keystone, NameOrId,
    OpenStackError, Scope, Session, StackCreate, StackUpdate,
};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

struct Services {
    keystone_url: String,
    service_password: String,
}

fn services() -> Option<Services> {
    let values = magnum_openstack::testing::services_env()?;
    Some(Services {
        keystone_url: values.get("MAGNUM_TEST_KEYSTONE_URL")?.clone(),
        service_password: values
            .get("MAGNUM_TEST_OPENSTACK_SERVICE_PASSWORD")?
            .clone(),
    })
}

fn keystone(services: &Services) -> Keystone {
    Keystone::new(http_client().unwrap(), &services.keystone_url)
}

fn magnum_user(services: &Services) -> AuthRequest {
    AuthRequest {
        method: AuthMethod::Password {
            user: NameOrId::named("magnum", "Default"),
            password: Secret::new(services.service_password.clone()),
        },
        scope: Scope::Project(NameOrId::named("service", "Default")),
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

#[tokio::test]
async fn the_service_user_authenticates_and_finds_heat_in_the_catalog() {
    let Some(services) = services() else { return };
    let keystone = keystone(&services);
    let token = keystone
        .authenticate(&magnum_user(&services))
        .await
        .unwrap();
    let project = token.project_id.clone().expect("a project-scoped token");
    assert!(token.roles.iter().any(|role| role == "admin"));
    let heat = token
        .catalog
        .endpoint(
            &EndpointFilter::new("orchestration", Interface::Public, Some("RegionOne")),
            Some(&project),
        )
        .unwrap();
    assert!(heat.ends_with(&format!("/v1/{project}")), "{heat}");
    assert!(matches!(
        token.catalog.endpoint(
            &EndpointFilter::new("orchestration", Interface::Public, Some("Elsewhere")),
            Some(&project)
        ),
        Err(OpenStackError::NoEndpoint { .. })
    ));

    let wrong = AuthRequest {
        method: AuthMethod::Password {
            user: NameOrId::named("magnum", "Default"),
            password: Secret::new("not-the-password"),
        },
        scope: Scope::Project(NameOrId::named("service", "Default")),
    };
    let refused = keystone.authenticate(&wrong).await.unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
    assert!(!refused.is_unavailable());

    let nowhere = Keystone::new(http_client().unwrap(), "http://127.0.0.1:9/v3");
    let unreachable = nowhere
        .authenticate(&magnum_user(&services))
        .await
        .unwrap_err();
    assert!(unreachable.is_unavailable(), "{unreachable}");
    assert!(
        !unreachable.to_string().contains("127.0.0.1"),
        "{unreachable}"
    );

    // A session reuses its token until it must be replaced.
    let session = Session::new(keystone.clone(), magnum_user(&services));
    let first = session.token().await.unwrap();
    let again = session.token().await.unwrap();
    assert_eq!(first.expose(), again.expose());
    session.invalidate();
    assert!(session.token().await.is_ok());
}

#[tokio::test]
async fn a_trustee_acts_through_its_trust_until_the_trust_is_deleted() {
    let Some(services) = services() else { return };
    let keystone = keystone(&services);
    let trustor = keystone
        .authenticate(&magnum_user(&services))
        .await
        .unwrap();
    let domain_admin = keystone
        .authenticate(&AuthRequest {
            method: AuthMethod::Password {
                user: NameOrId::named("magnum_domain_admin", "magnum"),
                password: Secret::new(services.service_password.clone()),
            },
            scope: Scope::Domain(NameOrId::Name {
                name: "magnum".to_string(),
                domain: None,
            }),
        })
        .await
        .unwrap();
    let domain_id = keystone
        .domain_id(domain_admin.expose(), "magnum")
        .await
        .unwrap();
    let trustee_password = Secret::new(unique("pw"));
    let trustee_id = keystone
        .create_user(
            domain_admin.expose(),
            &domain_id,
            &unique("trustee"),
            &trustee_password,
        )
        .await
        .unwrap();
    let project_id = trustor.project_id.clone().unwrap();
    let trust_id = keystone
        .create_trust(
            trustor.expose(),
            &TrustRequest {
                trustor_user_id: trustor.user_id.clone(),
                trustee_user_id: trustee_id.clone(),
                project_id: project_id.clone(),
                roles: vec!["admin".to_string()],
                impersonation: true,
                allow_redelegation: false,
            },
        )
        .await
        .unwrap();
    let as_trustee = AuthRequest {
        method: AuthMethod::Password {
            user: NameOrId::id(&trustee_id),
            password: trustee_password.clone(),
        },
        scope: Scope::Trust(trust_id.clone()),
    };
    let acting = keystone.authenticate(&as_trustee).await.unwrap();
    assert_eq!(acting.project_id.as_deref(), Some(project_id.as_str()));
    // Impersonation: the trustee's token speaks as the trustor.
    assert_eq!(acting.user_id, trustor.user_id);

    keystone
        .delete_trust(trustor.expose(), &trust_id)
        .await
        .unwrap();
    keystone
        .delete_trust(trustor.expose(), &trust_id)
        .await
        .unwrap();
    let refused = keystone.authenticate(&as_trustee).await.unwrap_err();
    assert!(matches!(refused.status(), Some(401 | 404)), "{refused}");
    keystone
        .delete_user(domain_admin.expose(), &trustee_id)
        .await
        .unwrap();
    keystone
        .delete_user(domain_admin.expose(), &trustee_id)
        .await
        .unwrap();
}

const GROUP_TEMPLATE: &str = r#"
heat_template_version: 2021-04-16
parameters:
  node_count: {type: number, default: 2}
  removal_list: {type: comma_delimited_list, default: []}
  fail: {type: boolean, default: false}
resources:
  nodes:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: node_count}
      removal_policies: [{resource_list: {get_param: removal_list}}]
      resource_def:
        type: OS::Nova::Server
        properties: {image: node-image, flavor: m1.small}
  marker:
    type: OS::Heat::TestResource
    properties: {value: ready, fail: {get_param: fail}}
outputs:
  marker: {value: {get_attr: [marker, output]}}
  node_refs: {value: {get_attr: [nodes, refs_map]}}
"#;

const NO_CLOUD: &str = "resource_registry:\n  OS::Nova::Server: OS::Heat::None\n";

async fn heat_for(services: &Services) -> (Session, Heat) {
    let session = Session::new(keystone(services), magnum_user(services));
    let token = session.token().await.unwrap();
    let endpoint = token
        .catalog
        .endpoint(
            &EndpointFilter::new("orchestration", Interface::Public, None),
            token.project_id.as_deref(),
        )
        .unwrap();
    (session, Heat::new(http_client().unwrap(), &endpoint))
}

async fn settle(
    heat: &Heat,
    session: &Session,
    stack: &StackRef,
) -> Option<magnum_openstack::Stack> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let token = session.token().await.unwrap();
        let shown = heat.get(token.expose(), stack).await.unwrap();
        match &shown {
            Some(current) if current.status.state == StackState::InProgress => {}
            _ => return shown,
        }
        assert!(Instant::now() < deadline, "{shown:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn parameters(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn a_stack_is_created_scaled_with_a_removal_list_and_deleted() {
    let Some(services) = services() else { return };
    let (session, heat) = heat_for(&services).await;
    let token = session.token().await.unwrap();
    let stack = heat
        .create(
            token.expose(),
            &StackCreate {
                name: unique("group"),
                template: GROUP_TEMPLATE.to_string(),
                files: Default::default(),
                environment: Some(NO_CLOUD.to_string()),
                parameters: parameters(json!({"node_count": 2})),
                timeout_mins: Some(5),
                tags: Vec::new(),
            },
        )
        .await
        .unwrap();
    let created = settle(&heat, &session, &stack).await.unwrap();
    assert_eq!(created.status.to_string(), "CREATE_COMPLETE", "{created:?}");
    assert_eq!(created.outputs["marker"], json!("ready"));
    assert_eq!(created.outputs["node_refs"].as_object().unwrap().len(), 2);

    heat.update(
        token.expose(),
        &stack,
        &StackUpdate {
            parameters: parameters(json!({"node_count": 3})),
            ..StackUpdate::default()
        },
    )
    .await
    .unwrap();
    let grown = settle(&heat, &session, &stack).await.unwrap();
    assert_eq!(grown.status.to_string(), "UPDATE_COMPLETE", "{grown:?}");
    assert_eq!(grown.parameters["node_count"], json!("3"));

    // Scale in naming the members to remove: the others stay.
    heat.update(
        token.expose(),
        &stack,
        &StackUpdate {
            parameters: parameters(json!({"node_count": 1, "removal_list": "0,2"})),
            ..StackUpdate::default()
        },
    )
    .await
    .unwrap();
    let shrunk = settle(&heat, &session, &stack).await.unwrap();
    assert_eq!(shrunk.status.to_string(), "UPDATE_COMPLETE", "{shrunk:?}");
    let members: Vec<String> = shrunk.outputs["node_refs"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(members, vec!["1".to_string()]);
    let resources = heat.resources(token.expose(), &stack, 2).await.unwrap();
    assert!(resources
        .iter()
        .any(|resource| resource.name == "nodes"
            && resource.resource_type == "OS::Heat::ResourceGroup"));

    heat.delete(token.expose(), &stack).await.unwrap();
    let gone = settle(&heat, &session, &stack).await;
    assert!(
        gone.as_ref()
            .map(|stack| stack.status.to_string() == "DELETE_COMPLETE")
            .unwrap_or(true),
        "{gone:?}"
    );
    // Deleting what is gone is not an error.
    heat.delete(token.expose(), &stack).await.unwrap();
}

#[tokio::test]
async fn a_failing_resource_fails_the_create_with_its_reason() {
    let Some(services) = services() else { return };
    let (session, heat) = heat_for(&services).await;
    let token = session.token().await.unwrap();
    let stack = heat
        .create(
            token.expose(),
            &StackCreate {
                name: unique("broken"),
                template: GROUP_TEMPLATE.to_string(),
                files: Default::default(),
                environment: Some(NO_CLOUD.to_string()),
                parameters: parameters(json!({"node_count": 1, "fail": true})),
                timeout_mins: Some(5),
                tags: Vec::new(),
            },
        )
        .await
        .unwrap();
    let failed = settle(&heat, &session, &stack).await.unwrap();
    assert_eq!(failed.status.to_string(), "CREATE_FAILED", "{failed:?}");
    let reason = heat
        .failure_reason(token.expose(), &failed)
        .await
        .unwrap()
        .unwrap();
    assert!(reason.starts_with("marker: "), "{reason}");
    assert!(reason.contains("Test Resource failed"), "{reason}");

    // A template Heat refuses is a 400 with Heat's words.
    let refused = heat
        .create(
            token.expose(),
            &StackCreate {
                name: unique("invalid"),
                template:
                    "heat_template_version: 2021-04-16\nresources:\n  x: {type: OS::No::Such}\n"
                        .to_string(),
                files: Default::default(),
                environment: None,
                parameters: Map::new(),
                timeout_mins: None,
                tags: Vec::new(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    assert!(refused.to_string().contains("OS::No::Such"), "{refused}");
    heat.delete(token.expose(), &stack).await.unwrap();
}
