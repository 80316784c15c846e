//! The stock OpenStack clients (python-openstackclient 10.5.0 with python-magnumclient 5.0.0,
//! from PyPI) and the Rust `magnum` CLI against a real magnumd.

use crate::common::cli::{json_of, openstack, password_env, run, stderr, stdout};
use crate::common::{binary, Magnumd, Options};
use serde_json::Value;

#[tokio::test]
async fn openstack_client_manages_templates_through_the_catalog() {
    let Some(openstack) = openstack() else { return };
    let magnumd = Magnumd::start_with(Options {
        configured_admin_password: false,
        ..Options::default()
    })
    .await;
    let env = password_env(&magnumd);
    let osc = |args: &[&str]| run(&openstack, &env, args);

    let created = osc(&[
        "coe",
        "cluster",
        "template",
        "create",
        "k8s-tmpl",
        "--coe",
        "kubernetes",
        "--image",
        "fedora-coreos",
        "--external-network",
        "public",
        "--labels",
        "kube_tag=v1.23.3,flannel_backend=vxlan",
        "-f",
        "json",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("Request to create cluster template k8s-tmpl accepted"));
    let template = json_of(&created);
    assert_eq!(template["name"], "k8s-tmpl");
    assert_eq!(template["network_driver"], "flannel");
    assert_eq!(template["docker_storage_driver"], "overlay2");
    assert_eq!(template["dns_nameserver"], "8.8.8.8");
    assert_eq!(template["labels"]["flannel_backend"], "vxlan");

    let listed = osc(&["coe", "cluster", "template", "list", "-f", "json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let rows = json_of(&listed);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["name"], "k8s-tmpl");
    assert_eq!(rows[0]["uuid"], template["uuid"]);

    let updated = osc(&[
        "coe",
        "cluster",
        "template",
        "update",
        "k8s-tmpl",
        "--docker-volume-size",
        "7",
        "--label",
        "smoke=2",
        "--public",
        "-f",
        "json",
    ]);
    assert!(updated.status.success(), "{}", stderr(&updated));
    let after = json_of(&updated);
    assert_eq!(after["docker_volume_size"], 7);
    assert_eq!(after["labels"]["smoke"], "2");
    assert_eq!(after["public"], true);

    let shown = osc(&[
        "coe", "cluster", "template", "show", "k8s-tmpl", "-f", "json",
    ]);
    assert_eq!(json_of(&shown)["docker_volume_size"], 7);

    let missing = osc(&["coe", "cluster", "template", "show", "no-such-template"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("ClusterTemplate no-such-template could not be found (HTTP 404)"),
        "{}",
        stderr(&missing)
    );
    let invalid = osc(&[
        "coe",
        "cluster",
        "template",
        "create",
        "bad",
        "--coe",
        "mesos",
        "--image",
        "u",
        "--external-network",
        "public",
        "--network-driver",
        "flannel",
    ]);
    assert!(!invalid.status.success());
    assert!(
        stderr(&invalid).contains("Network driver type flannel is not supported"),
        "{}",
        stderr(&invalid)
    );

    let services = osc(&["coe", "service", "list", "-f", "json"]);
    assert!(services.status.success(), "{}", stderr(&services));
    let services = json_of(&services);
    assert_eq!(services[0]["binary"], "magnum-conductor");
    assert_eq!(services[0]["state"], "up");

    let deleted = osc(&["coe", "cluster", "template", "delete", "k8s-tmpl"]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(
        stdout(&deleted).contains("Request to delete cluster template k8s-tmpl has been accepted.")
    );
    let empty = osc(&["coe", "cluster", "template", "list", "-f", "json"]);
    assert_eq!(json_of(&empty), Value::Array(vec![]));
}

#[tokio::test]
async fn openstack_client_works_without_keystone_on_noauth() {
    let Some(openstack) = openstack() else { return };
    // The operator makes every unauthenticated caller an administrator here (the default
    // is member and reader), so that the service list is visible.
    let magnumd = Magnumd::start_with(Options {
        auth_strategy: "noauth",
        extra_config: "[api]\nnoauth_roles = admin, member, reader\n".to_string(),
        ..Options::default()
    })
    .await;
    let endpoint = magnumd.api_url.clone();
    let osc = |args: &[&str]| {
        let mut all = vec!["--os-auth-type", "none", "--os-endpoint", endpoint.as_str()];
        all.extend_from_slice(args);
        run(&openstack, &[], &all)
    };
    let created = osc(&[
        "coe",
        "cluster",
        "template",
        "create",
        "swarm-tmpl",
        "--coe",
        "swarm",
        "--image",
        "fedora-atomic",
        "--external-network",
        "public",
        "-f",
        "json",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(json_of(&created)["network_driver"], "docker");
    let listed = osc(&["coe", "cluster", "template", "list", "-f", "json"]);
    assert_eq!(json_of(&listed)[0]["name"], "swarm-tmpl");
    let services = osc(&["coe", "service", "list", "-f", "json"]);
    assert!(services.status.success(), "{}", stderr(&services));
    assert_eq!(json_of(&services)[0]["state"], "up");
    let deleted = osc(&["coe", "cluster", "template", "delete", "swarm-tmpl"]);
    assert!(
        stdout(&deleted).contains("has been accepted"),
        "{}",
        stdout(&deleted)
    );
}

#[tokio::test]
async fn magnum_cli_manages_templates_and_baymodels() {
    let magnumd = Magnumd::start().await;
    let magnum = binary("magnum");
    let env = password_env(&magnumd);
    let cli = |args: &[&str]| run(&magnum, &env, args);

    let version = cli(&["--version"]);
    assert!(version.status.success());
    assert!(
        stdout(&version).trim().split('.').count() == 3,
        "{}",
        stdout(&version)
    );

    let created = cli(&[
        "cluster-template-create",
        "--name",
        "t",
        "--coe",
        "swarm",
        "--image",
        "fedora-atomic",
        "--external-network",
        "public",
        "--labels",
        "a=1,b=2",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let table = stdout(&created);
    assert!(table.starts_with("+-"), "{table}");
    assert!(table.contains("| Property "), "{table}");
    assert!(
        table.contains("| labels ") && table.contains("{'a': '1', 'b': '2'}"),
        "{table}"
    );
    assert!(
        table.contains("| keypair_id ") && table.contains("| -"),
        "{table}"
    );
    assert!(!table.contains("links"));

    let listed = cli(&["cluster-template-list"]);
    let list = stdout(&listed);
    assert!(
        list.contains("| uuid ") && list.contains("| name |") && list.contains("| t    |"),
        "{list}"
    );
    let with_fields = cli(&["cluster-template-list", "--fields", "coe,public"]);
    assert!(
        stdout(&with_fields).contains("| coe   | public |"),
        "{}",
        stdout(&with_fields)
    );

    let updated = cli(&[
        "--json",
        "cluster-template-update",
        "t",
        "replace",
        "docker_volume_size=5",
        "public=false",
    ]);
    assert!(updated.status.success(), "{}", stderr(&updated));
    assert_eq!(json_of(&updated)["docker_volume_size"], 5);
    let labels = cli(&[
        "--json",
        "cluster-template-update",
        "t",
        "add",
        "labels/c=3",
    ]);
    assert_eq!(json_of(&labels)["labels"]["c"], "3");
    let shown = cli(&["--json", "cluster-template-show", "t"]);
    assert_eq!(
        json_of(&shown)["labels"],
        serde_json::json!({"a": "1", "b": "2", "c": "3"})
    );

    let baymodel = cli(&[
        "baymodel-create",
        "--name",
        "bm",
        "--image-id",
        "fedora-21-atomic-5",
        "--keypair-id",
        "kp",
        "--external-network-id",
        "public",
        "--coe",
        "kubernetes",
        "--labels",
        "flannel_backend=host-gw",
    ]);
    assert!(baymodel.status.success(), "{}", stderr(&baymodel));
    assert!(
        !stdout(&baymodel).contains("| hidden"),
        "{}",
        stdout(&baymodel)
    );
    let baymodels = stdout(&cli(&["baymodel-list"]));
    assert!(baymodels.contains("| bm "), "{baymodels}");
    assert!(cli(&["baymodel-show", "bm"]).status.success());
    let renamed = cli(&["--json", "baymodel-update", "bm", "replace", "name=bm2"]);
    assert_eq!(json_of(&renamed)["name"], "bm2");

    let services = stdout(&cli(&["service-list"]));
    assert!(
        services.contains("| magnum-conductor |") && services.contains("| up "),
        "{services}"
    );

    let missing = cli(&["cluster-template-show", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with("ERROR: ClusterTemplate nope could not be found"),
        "{}",
        stderr(&missing)
    );
    let denied = run(
        &magnum,
        &[
            ("OS_AUTH_URL", magnumd.identity_url.clone().unwrap()),
            ("OS_USERNAME", "admin".to_string()),
            ("OS_PASSWORD", "wrong".to_string()),
            ("OS_PROJECT_NAME", "admin".to_string()),
        ],
        &["cluster-template-list"],
    );
    assert_eq!(denied.status.code(), Some(1));
    assert!(stderr(&denied).contains("HTTP 401"), "{}", stderr(&denied));

    let deleted = cli(&["cluster-template-delete", "t", "bm2"]);
    assert!(stdout(&deleted).contains("Request to delete cluster template t has been accepted."));
    assert!(stdout(&deleted).contains("Request to delete cluster template bm2 has been accepted."));
    let empty = cli(&["--json", "cluster-template-list"]);
    assert_eq!(json_of(&empty), Value::Array(vec![]));
}

#[tokio::test]
async fn magnum_cli_takes_a_token_and_endpoint_or_an_endpoint_alone() {
    let magnumd = Magnumd::start().await;
    let magnum = binary("magnum");
    let token = magnumd
        .token("admin", &magnumd.admin_password.clone(), "admin")
        .await;
    let with_token = run(
        &magnum,
        &[
            ("OS_TOKEN", token),
            ("OS_ENDPOINT", magnumd.api_url.clone()),
        ],
        &["service-list"],
    );
    assert!(with_token.status.success(), "{}", stderr(&with_token));
    assert!(stdout(&with_token).contains("magnum-conductor"));
    let url_flag = run(
        &magnum,
        &[],
        &[
            "--os-token",
            "garbage",
            "--magnum-url",
            &magnumd.api_url,
            "service-list",
        ],
    );
    assert!(
        stderr(&url_flag).contains("HTTP 401"),
        "{}",
        stderr(&url_flag)
    );

    let noauth = Magnumd::start_with(Options {
        auth_strategy: "noauth",
        ..Options::default()
    })
    .await;
    let endpoint_only = run(
        &magnum,
        &[("OS_ENDPOINT", noauth.api_url.clone())],
        &[
            "cluster-template-create",
            "--name",
            "n",
            "--coe",
            "mesos",
            "--image",
            "ubuntu",
        ],
    );
    assert!(endpoint_only.status.success(), "{}", stderr(&endpoint_only));
    let missing = run(&magnum, &[], &["service-list"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("You must provide"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test]
async fn magnum_cli_manages_quotas_and_stats_and_reports_cluster_errors() {
    let magnumd = Magnumd::start().await;
    let magnum = binary("magnum");
    let env = password_env(&magnumd);
    let cli = |args: &[&str]| run(&magnum, &env, args);
    magnumd.add_user("quinn", "quota-project", &["member"]);
    let project = magnumd
        .password_auth("quinn", "quinn-pw", "quota-project")
        .await
        .body["token"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let created = cli(&[
        "--json",
        "quotas-create",
        "--project-id",
        &project,
        "--resource",
        "Cluster",
        "--hard-limit",
        "3",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(json_of(&created)["hard_limit"], 3);
    let updated = cli(&[
        "--json",
        "quotas-update",
        "--project-id",
        &project,
        "--resource",
        "Cluster",
        "--hard-limit",
        "4",
    ]);
    assert!(updated.status.success(), "{}", stderr(&updated));
    assert_eq!(json_of(&updated)["hard_limit"], 4);
    let shown = cli(&[
        "quotas-show",
        "--project-id",
        &project,
        "--resource",
        "Cluster",
    ]);
    assert!(
        stdout(&shown).contains("| hard_limit "),
        "{}",
        stdout(&shown)
    );
    let listed = cli(&["quotas-list", "--all-tenants"]);
    let table = stdout(&listed);
    assert!(
        table.contains("| project_id ") && table.contains(&project) && table.contains("| 4 "),
        "{table}"
    );
    let deleted = cli(&[
        "quotas-delete",
        "--project-id",
        &project,
        "--resource",
        "Cluster",
    ]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(stdout(&deleted).contains("has been accepted"));

    let stats = cli(&["--json", "stats-list", "--project-id", &project]);
    assert!(stats.status.success(), "{}", stderr(&stats));
    assert_eq!(
        json_of(&stats),
        serde_json::json!({"clusters": 0, "nodes": 0})
    );

    let empty = cli(&["cluster-list"]);
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert!(
        stdout(&empty).contains("| uuid | name | keypair | node_count | master_count | status |"),
        "{}",
        stdout(&empty)
    );
    let unknown_template = cli(&[
        "cluster-create",
        "c",
        "--cluster-template",
        "no-such-template",
    ]);
    assert!(!unknown_template.status.success());
    assert!(
        stderr(&unknown_template)
            .contains("ClusterTemplate no-such-template could not be found (HTTP 404)"),
        "{}",
        stderr(&unknown_template)
    );
    let unknown_cluster = cli(&["cluster-show", "no-such-cluster"]);
    assert!(!unknown_cluster.status.success());
    assert!(
        stderr(&unknown_cluster).contains("Cluster no-such-cluster could not be found (HTTP 404)"),
        "{}",
        stderr(&unknown_cluster)
    );
    let config = cli(&["cluster-config", "no-such-cluster"]);
    assert!(!config.status.success());
    let no_cluster = cli(&["ca-show"]);
    assert!(!no_cluster.status.success());
    assert!(
        stderr(&no_cluster).contains("A cluster must be given"),
        "{}",
        stderr(&no_cluster)
    );
    let deleted = cli(&["cluster-delete", "no-such-cluster"]);
    assert!(!deleted.status.success());
    assert!(
        stdout(&deleted).contains("Delete for cluster no-such-cluster failed"),
        "{}",
        stdout(&deleted)
    );
}

/// The README's first example, as a new user would type it, on magnumd's defaults (the
/// docker provider alone); and the Kubernetes template that needs a provider this
/// deployment does not enable, refused with the reason.
#[tokio::test]
async fn the_readme_first_example_works_on_the_defaults() {
    let Some(openstack) = openstack() else { return };
    let magnumd = Magnumd::start_with(Options {
        provider: "docker",
        configured_admin_password: false,
        ..Options::default()
    })
    .await;
    let env = password_env(&magnumd);
    let osc = |args: &[&str]| run(&openstack, &env, args);
    let created = osc(&[
        "coe",
        "cluster",
        "template",
        "create",
        "swarm",
        "--coe",
        "swarm",
        "--image",
        "magnum-node:bookworm",
        "--external-network",
        "local",
        "--network-driver",
        "docker",
        "--flavor",
        "m1.small",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let listed = osc(&["coe", "cluster", "template", "list", "-f", "json"]);
    assert_eq!(json_of(&listed)[0]["name"], "swarm");
    let services = osc(&["coe", "service", "list", "-f", "json"]);
    assert!(services.status.success(), "{}", stderr(&services));
    let kubernetes = osc(&[
        "coe",
        "cluster",
        "template",
        "create",
        "k8s",
        "--coe",
        "kubernetes",
        "--image",
        "fedora-coreos",
        "--external-network",
        "public",
        "--labels",
        "flannel_backend=vxlan",
    ]);
    assert!(!kubernetes.status.success());
    let reason = stderr(&kubernetes);
    assert!(
        reason.contains("HTTP 400") && reason.contains("openstack provider"),
        "{reason}"
    );
    // Naming a provider this deployment does not run is refused the same way.
    let elsewhere = osc(&[
        "coe",
        "cluster",
        "template",
        "create",
        "k8s",
        "--coe",
        "swarm",
        "--image",
        "magnum-node:bookworm",
        "--external-network",
        "local",
        "--labels",
        "provider=openstack",
    ]);
    assert!(!elsewhere.status.success());
    assert!(
        stderr(&elsewhere).contains("The openstack provider is not enabled"),
        "{}",
        stderr(&elsewhere)
    );
}
