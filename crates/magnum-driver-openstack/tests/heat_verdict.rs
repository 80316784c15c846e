//! Real Heat's verdict on the stacks the Kubernetes drivers (`k8s_fedora_coreos_v1`,
//! `k8s_fedora_atomic_v1`) generate: every variant of the matrix below (1 or 3 masters with
//! the load balancer, each flannel backend and calico where the driver has it, a given fixed
//! network or a new one, volumes, floating IPs on or off, TLS on or off, autoscaling) is
//! created in the real Heat 27.0.1 of `scripts/openstack/services.sh`,
//! nested templates included, and must reach CREATE_COMPLETE; for a few variants a
//! nodegroup's own stack is then made on that stack's outputs, and must complete too. That Heat's environment turns
//! servers, networks, volumes and load balancers into no-op resources (no cloud runs here);
//! everything else — parsing, parameter types and constraints, conditions, intrinsic
//! functions, dependencies, nested stacks — is Heat's own strict work.

#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use magnum_config::Secret;
use magnum_driver::test_doubles::sample_spec;
use magnum_driver::ClusterSpec;
use magnum_driver_openstack::definition::{NodeAccess, RenderedStack, StackDefinition};
use magnum_driver_openstack::k8s_fedora_atomic::FedoraAtomic;
use magnum_driver_openstack::k8s_fedora_coreos::FedoraCoreos;
use magnum_openstack::heat::{Stack, StackRef, StackState};
use magnum_openstack::{
    http_client, AuthMethod, AuthRequest, EndpointFilter, Heat, Interface, Keystone, NameOrId,
    Scope, StackCreate,
};
use std::time::{Duration, Instant};

/// The variants whose stack also gets a nodegroup stack on its outputs.
const NODEGROUP_VARIANTS: [&str; 4] = [
    "-defaults",
    "-three-masters-behind-the-lb",
    "-given-fixed-network",
    "-no-floating-ips",
];

/// Every variant, for both drivers (calico only where the driver offers it).
fn variants() -> Vec<(String, &'static dyn StackDefinition, ClusterSpec)> {
    let definitions: [&'static dyn StackDefinition; 2] = [&FedoraCoreos, &FedoraAtomic];
    definitions
        .into_iter()
        .flat_map(|definition| {
            spec_variants()
                .into_iter()
                .filter(move |(name, _)| {
                    name != "calico" || definition.name() == FedoraCoreos.name()
                })
                .map(move |(name, spec)| {
                    (format!("{}-{name}", definition.name()), definition, spec)
                })
        })
        .collect()
}

fn spec_variants() -> Vec<(String, ClusterSpec)> {
    let mut variants = Vec::new();
    let mut add = |name: &str, change: &dyn Fn(&mut ClusterSpec)| {
        let mut spec = sample_spec(2, &[]);
        spec.discovery_url = Some("http://127.0.0.1:9511/v1/discovery/0123".to_string());
        change(&mut spec);
        variants.push((name.to_string(), spec));
    };
    add("defaults", &|_| {});
    add("three-masters-behind-the-lb", &|spec| {
        spec.master_lb_enabled = true;
        spec.nodegroups[0].node_count = 3;
    });
    add("lb-without-floating-ip", &|spec| {
        spec.master_lb_enabled = true;
        spec.labels
            .insert("master_lb_floating_ip_enabled".into(), "false".into());
    });
    for backend in ["udp", "vxlan", "host-gw"] {
        add(&format!("flannel-{backend}"), &|spec| {
            spec.labels.insert("flannel_backend".into(), backend.into());
        });
    }
    add("calico", &|spec| {
        spec.network.network_driver = Some("calico".into());
        spec.labels
            .insert("calico_ipv4pool".into(), "192.168.0.0/16".into());
    });
    add("given-fixed-network", &|spec| {
        spec.network.fixed_network = Some("private".into());
        spec.network.fixed_subnet = Some("private-subnet".into());
    });
    add("volumes", &|spec| {
        spec.docker_volume_size = Some(20);
        spec.labels.insert("boot_volume_size".into(), "40".into());
        spec.labels.insert("etcd_volume_size".into(), "5".into());
    });
    add("no-floating-ips", &|spec| {
        spec.network.floating_ip_enabled = false;
    });
    add("tls-disabled", &|spec| {
        spec.tls_disabled = true;
    });
    add("autoscaling", &|spec| {
        spec.labels
            .insert("auto_scaling_enabled".into(), "true".into());
        spec.labels.insert("min_node_count".into(), "1".into());
        spec.labels.insert("max_node_count".into(), "5".into());
    });
    add("no-workers-no-keypair", &|spec| {
        spec.nodegroups[1].node_count = 0;
        spec.keypair = None;
    });
    variants
}

#[tokio::test]
async fn real_heat_accepts_every_stack_the_kubernetes_drivers_generate() {
    let Some(values) = magnum_openstack::testing::services_env() else {
        return;
    };
    let keystone = Keystone::new(http_client().unwrap(), &values["MAGNUM_TEST_KEYSTONE_URL"]);
    let token = keystone
        .authenticate(&AuthRequest {
            method: AuthMethod::Password {
                user: NameOrId::named("magnum", "Default"),
                password: Secret::new(values["MAGNUM_TEST_OPENSTACK_SERVICE_PASSWORD"].clone()),
            },
            scope: Scope::Project(NameOrId::named("service", "Default")),
        })
        .await
        .unwrap();
    let endpoint = token
        .catalog
        .endpoint(
            &EndpointFilter::new("orchestration", Interface::Public, None),
            token.project_id.as_deref(),
        )
        .unwrap();
    let heat = Heat::new(http_client().unwrap(), &endpoint);
    let access = NodeAccess {
        magnum_url: "http://127.0.0.1:9511/v1".to_string(),
        auth_url: format!("{}/v3", values["MAGNUM_TEST_KEYSTONE_URL"]),
        region_name: "RegionOne".to_string(),
        trustee_user_id: "trustee".to_string(),
        trustee_username: "trustee-name".to_string(),
        trustee_password: Secret::new("derived"),
        trust_id: "trust".to_string(),
        cluster_user_trust: false,
    };
    let run = std::process::id();
    let checks = variants().into_iter().map(|(name, definition, spec)| {
        let heat = heat.clone();
        let access = access.clone();
        let token = token.expose().to_string();
        async move {
            let name = name.replace('_', "-");
            let rendered = definition.render(&spec, &access).unwrap();
            // A nodegroup's own stack is made on the outputs of a few variants' stacks;
            // the others keep every infrastructure resource a plain no-op (the addresses the
            // tests' Heat makes up cost a nested stack each).
            let with_nodegroup = NODEGROUP_VARIANTS
                .iter()
                .any(|variant| name.ends_with(variant));
            let (stack, verdict) = heat_verdict(
                &heat,
                &token,
                format!("verdict-{run}-{name}"),
                rendered,
                with_nodegroup,
            )
            .await?;
            let outcome = match verdict {
                Ok(_) if !with_nodegroup => Ok(name.clone()),
                Ok(cluster) => {
                    let mut spec = spec.clone();
                    let mut group = spec.nodegroups[1].clone();
                    group.name = "extra workers".to_string();
                    group.uuid = Some("5b0c7c52-0d43-4f0e-9a47-1d3f7b8f7e21".to_string());
                    group.is_default = false;
                    group.node_count = 2;
                    group.docker_volume_size = Some(10);
                    group
                        .node_labels
                        .insert("tier".to_string(), "extra".to_string());
                    spec.nodegroups.push(group.clone());
                    let rendered = definition
                        .render_nodegroup(&spec, &group, &cluster.outputs, &access)
                        .map_err(|error| format!("{name}: nodegroup: {error}"))?;
                    let (nodegroup, verdict) = heat_verdict(
                        &heat,
                        &token,
                        format!("verdict-{run}-{name}-nodegroup"),
                        rendered,
                        true,
                    )
                    .await?;
                    heat.delete(&token, &nodegroup).await.unwrap();
                    verdict
                        .map(|_| name.clone())
                        .map_err(|reason| format!("{name}: nodegroup: {reason}"))
                }
                Err(reason) => Err(format!("{name}: {reason}")),
            };
            heat.delete(&token, &stack).await.unwrap();
            outcome
        }
    });
    // A few at a time: one Heat process serves them all, next to other suites' stacks.
    let outcomes: Vec<Result<String, String>> = futures::stream::iter(checks)
        .buffer_unordered(6)
        .collect()
        .await;
    let refused: Vec<&String> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().err())
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    assert_eq!(outcomes.len(), variants().len());
}

/// Creates `rendered` as stack `name` and waits for Heat's verdict: the stack, and either
/// the completed stack or why it failed.
async fn heat_verdict(
    heat: &Heat,
    token: &str,
    name: String,
    rendered: RenderedStack,
    with_addresses: bool,
) -> Result<(StackRef, Result<Stack, String>), String> {
    // Servers as plain no-ops: the tests' global environment makes them nested stacks that
    // can be told to fail, which a verdict on the templates does not need.
    let mut environment =
        "resource_registry:\n  \"OS::Nova::Server\": OS::Heat::None\n".to_string();
    if !with_addresses {
        for kind in [
            "OS::Neutron::Port",
            "OS::Neutron::FloatingIP",
            "OS::Octavia::LoadBalancer",
        ] {
            environment.push_str(&format!("  \"{kind}\": OS::Heat::None\n"));
        }
    }
    let stack = heat
        .create(
            token,
            &StackCreate {
                name: name.clone(),
                template: rendered.template,
                files: rendered.files,
                environment: Some(environment),
                parameters: rendered.parameters,
                timeout_mins: Some(5),
                tags: Vec::new(),
            },
        )
        .await
        .map_err(|error| format!("{name}: {error}"))?;
    let deadline = Instant::now() + Duration::from_secs(240);
    let shown = loop {
        let shown = heat.get(token, &stack).await.unwrap().unwrap();
        if shown.status.state != StackState::InProgress {
            break shown;
        }
        if Instant::now() > deadline {
            return Ok((stack, Err(format!("still {}", shown.status))));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if shown.status.to_string() == "CREATE_COMPLETE" {
        Ok((stack, Ok(shown)))
    } else {
        let reason = heat.failure_reason(token, &shown).await.ok().flatten();
        Ok((stack, Err(format!("{} {reason:?}", shown.status))))
    }
}
