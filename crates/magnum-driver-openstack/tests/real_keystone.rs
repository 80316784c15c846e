//! Clusters' trustees against the real Keystone 30 that `scripts/openstack/services.sh`
//! starts (named by `MAGNUM_TEST_OPENSTACK_ENV`; skipped without it unless
//! `MAGNUM_TEST_REQUIRE_ALL=1`).

#![allow(clippy::unwrap_used)]

use magnum_config::Secret;
use magnum_driver::{CallerContext, LookupError};
use magnum_driver_openstack::{TrustSettings, Trustees};
use magnum_openstack::{http_client, AuthMethod, AuthRequest, Keystone, NameOrId, Scope};

#[tokio::test]
async fn a_cluster_gets_a_trustee_acting_for_its_owner_until_it_is_revoked() {
    let Some(values) = magnum_openstack::testing::services_env() else {
        return;
    };
    let keystone = Keystone::new(http_client().unwrap(), &values["MAGNUM_TEST_KEYSTONE_URL"]);
    let password = values["MAGNUM_TEST_OPENSTACK_SERVICE_PASSWORD"].clone();
    // The owner: magnumd's own service user, in project `service`.
    let owner = keystone
        .authenticate(&AuthRequest {
            method: AuthMethod::Password {
                user: NameOrId::named("magnum", "Default"),
                password: Secret::new(password.clone()),
            },
            scope: Scope::Project(NameOrId::named("service", "Default")),
        })
        .await
        .unwrap();
    let trustees = Trustees::new(
        keystone.clone(),
        TrustSettings {
            domain_name: "magnum".to_string(),
            admin_name: "magnum_domain_admin".to_string(),
            admin_password: Secret::new(password.clone()),
            admin_domain_name: None,
            roles: Vec::new(),
            password_key: Secret::new("a test key"),
            cluster_user_trust: false,
        },
    );
    let context = CallerContext {
        project_id: owner.project_id.clone().unwrap(),
        user_id: owner.user_id.clone(),
        roles: owner.roles.clone(),
        token: Some(owner.expose().to_string()),
    };
    let cluster_uuid = format!("c{}", std::process::id());
    let grant = trustees.grant(&context, &cluster_uuid).await.unwrap();
    assert_eq!(
        grant.trustee_username,
        format!("{cluster_uuid}_{}", context.project_id)
    );

    // The trustee, with its derived password, acts as the owner in the owner's project.
    let acting = keystone
        .authenticate(&trustees.acting_as(&cluster_uuid, &grant.trustee_user_id, &grant.trust_id))
        .await
        .unwrap();
    assert_eq!(acting.user_id, context.user_id);
    assert_eq!(
        acting.project_id.as_deref(),
        Some(context.project_id.as_str())
    );

    trustees.revoke(&grant).await.unwrap();
    trustees.revoke(&grant).await.unwrap();
    let refused = keystone
        .authenticate(&trustees.acting_as(&cluster_uuid, &grant.trustee_user_id, &grant.trust_id))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");

    // Without a token to delegate from, nothing is made.
    let tokenless = CallerContext {
        token: None,
        ..context.clone()
    };
    assert!(matches!(
        trustees.grant(&tokenless, "c-none").await,
        Err(LookupError::Unavailable(_))
    ));
}
