//! The conductor against the fake driver and a real SQLite database: waiting steps that
//! free workers, supersession, timeouts, bounded retries, crashes and lease takeover,
//! deletes whose driver or template is gone, and upgrades that roll back.

#![allow(clippy::unwrap_used)]

use chrono::Utc;
use magnum_conductor::{CertificateSettings, Conductor, ConductorSettings, RetryPolicy};
use magnum_config::DatabaseConnection;
use magnum_core::cluster::{Cluster, ClusterInput, ClusterOwner, CountRules};
use magnum_core::cluster_template::{ClusterTemplate, Ownership, TemplateInput};
use magnum_core::coe::TemplateRules;
use magnum_core::lifecycle::{ClusterStatus, Operation};
use magnum_core::ApiGeneration;
use magnum_db::nodegroup::DefaultNodeGroups;
use magnum_db::{Database, DbError};
use magnum_driver::test_doubles::{FakeDriver, FakeProvider};
use magnum_driver::{DriverError, EnabledProvider, Infrastructure, ProviderKind};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The registry name the fake driver stands in for.
const DRIVER: &str = "swarm_docker_v1";

struct Setup {
    database: Database,
    path: std::path::PathBuf,
    driver: Arc<FakeDriver>,
    infrastructure: Arc<Infrastructure>,
    _directory: tempfile::TempDir,
}

async fn setup() -> Setup {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("magnum.sqlite");
    let database = Database::connect(
        &DatabaseConnection::Sqlite {
            path: Some(path.clone()),
        },
        8,
    )
    .await
    .unwrap();
    database.upgrade().await.unwrap();
    let driver = FakeDriver::new(DRIVER);
    let infrastructure = Arc::new(
        Infrastructure::new(
            vec![EnabledProvider {
                lookups: Arc::new(FakeProvider::new(ProviderKind::Docker)),
                drivers: vec![driver.clone()],
            }],
            ProviderKind::Docker,
        )
        .unwrap(),
    );
    Setup {
        database,
        path,
        driver,
        infrastructure,
        _directory: directory,
    }
}

fn settings(lease_owner: &str) -> ConductorSettings {
    let mut settings = ConductorSettings::for_host("test-host", lease_owner);
    settings.workers = 4;
    settings.lease = Duration::from_secs(2);
    settings.poll_interval = Duration::from_millis(50);
    settings.sync_interval = Duration::from_secs(3600);
    settings.retry = RetryPolicy {
        max_attempts: 3,
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    };
    settings
}

fn certificate_settings() -> CertificateSettings {
    CertificateSettings {
        x509: magnum_x509::X509Settings {
            rsa_key_size: 2048,
            term_of_validity_days: 30,
        },
        sealer: magnum_x509::KeySealer::new(&[7u8; 32]).unwrap(),
    }
}

/// A running conductor on a runtime (and database pool) of its own, so that it can die
/// like a killed process: everything it runs stops mid-step and its leases stay.
struct Running {
    shutdown: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Running {
    /// Stops at once, like a killed process.
    fn crash(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn start(setup: &Setup, settings: ConductorSettings) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = CancellationToken::new();
    let (ready, registered) = tokio::sync::oneshot::channel();
    let path = setup.path.clone();
    let infrastructure = setup.infrastructure.clone();
    let stop = shutdown.clone();
    runtime.spawn(async move {
        let database = Database::connect(&DatabaseConnection::Sqlite { path: Some(path) }, 8)
            .await
            .unwrap();
        magnum_conductor::register(&database, &settings)
            .await
            .unwrap();
        let conductor = Arc::new(Conductor::new(
            database,
            infrastructure,
            certificate_settings(),
            settings,
        ));
        let _ = ready.send(());
        magnum_conductor::run(conductor, stop).await;
    });
    registered.await.unwrap();
    Running {
        shutdown,
        runtime: Some(runtime),
    }
}

async fn store_template(
    database: &Database,
    name: &str,
    image: &str,
    tls: bool,
) -> ClusterTemplate {
    let input = TemplateInput::decode(
        &json!({"name": name, "coe": "swarm", "image_id": image, "tls_disabled": !tls}),
        ApiGeneration::Current,
    )
    .unwrap();
    let mut template = ClusterTemplate::from_input(
        &input,
        ApiGeneration::Current,
        Ownership {
            project_id: "p".to_string(),
            user_id: "u".to_string(),
            now: Utc::now(),
        },
        &TemplateRules::default(),
    )
    .unwrap();
    template.driver = Some(DRIVER.to_string());
    template.cluster_distro = Some("debian".to_string());
    (*database
        .cluster_templates()
        .insert(&template)
        .await
        .unwrap())
    .clone()
}

/// Records a cluster create as the API does.
async fn create_cluster(
    database: &Database,
    template: &ClusterTemplate,
    name: &str,
    workers: i64,
    create_timeout: Option<i64>,
) -> Cluster {
    let mut body =
        json!({"cluster_template_id": template.uuid, "name": name, "node_count": workers});
    if let Some(minutes) = create_timeout {
        body["create_timeout"] = json!(minutes);
    }
    let input = ClusterInput::decode(
        &body,
        ApiGeneration::Current,
        CountRules {
            zero_nodes_allowed: true,
        },
    )
    .unwrap();
    let cluster = Cluster::new(
        &input,
        template,
        ApiGeneration::Current,
        ClusterOwner {
            project_id: "p".to_string(),
            user_id: "u".to_string(),
            now: Utc::now(),
        },
    )
    .unwrap();
    database
        .clusters()
        .insert(
            &cluster,
            &DefaultNodeGroups {
                template_revision: template.revision,
                image_id: template.image_id.clone(),
                master_flavor_id: None,
                worker_flavor_id: None,
                min_node_count: 0,
            },
        )
        .await
        .unwrap()
}

/// Starts an operation on a cluster as the API does (re-reading on lost races).
async fn request(database: &Database, uuid: &str, change: impl Fn(&mut Cluster)) {
    loop {
        let mut cluster = database.clusters().get_by_uuid(uuid).await.unwrap();
        change(&mut cluster);
        match database.clusters().update(&cluster).await {
            Ok(_) => return,
            Err(DbError::Stale) => continue,
            Err(error) => panic!("{error}"),
        }
    }
}

/// Waits until the cluster is in `status` (or gone, for `None`).
async fn settled(
    database: &Database,
    uuid: &str,
    status: Option<ClusterStatus>,
) -> Option<Cluster> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = match database.clusters().get_by_uuid(uuid).await {
            Ok(cluster) => Some(cluster),
            Err(DbError::NotFound) => None,
            Err(error) => panic!("{error}"),
        };
        let now = found.as_ref().map(|cluster| cluster.status);
        if now == status
            && found
                .as_ref()
                .is_none_or(|cluster| cluster.operation.is_none())
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "cluster {uuid} stayed {found:?}, expected {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_slow_clusters_on_four_workers_all_progress_and_finish() {
    let setup = setup().await;
    setup.driver.behave(|behaviour| {
        behaviour.waiting_steps = 5;
        behaviour.recheck_after = Duration::from_millis(30);
        behaviour.call_delay = Duration::from_millis(5);
    });
    let template = store_template(&setup.database, "t", "magnum-node:bookworm", false).await;
    let mut uuids = Vec::new();
    for index in 0..50 {
        uuids.push(
            create_cluster(&setup.database, &template, &format!("c{index}"), 1, None)
                .await
                .uuid,
        );
    }
    let _conductor = start(&setup, settings("test-host/a")).await;
    for uuid in &uuids {
        let cluster = settled(&setup.database, uuid, Some(ClusterStatus::CreateComplete))
            .await
            .unwrap();
        assert_eq!(cluster.node_addresses.len(), 1);
    }
    // Never more calls at once than workers; every cluster was waited on five times and
    // built once.
    assert!(setup.driver.most_concurrent_calls() <= 4);
    let (applies, _) = setup.driver.calls();
    assert!(applies >= 50 * 6, "{applies} apply calls");
    let built = setup.driver.clusters();
    assert_eq!(built.len(), 50);
    assert!(built.values().all(|cluster| cluster.creations == 1));
}

#[tokio::test]
async fn a_delete_supersedes_a_create_and_leaves_nothing() {
    let setup = setup().await;
    setup.driver.behave(|behaviour| {
        behaviour.waiting_steps = 1_000_000;
        behaviour.recheck_after = Duration::from_millis(20);
    });
    let template = store_template(&setup.database, "t", "magnum-node:bookworm", false).await;
    let cluster = create_cluster(&setup.database, &template, "doomed", 2, None).await;
    let _conductor = start(&setup, settings("test-host/a")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.driver.cluster(&cluster.uuid).is_none() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    request(&setup.database, &cluster.uuid, |cluster| {
        cluster.begin(Operation::Delete).unwrap()
    })
    .await;
    assert!(settled(&setup.database, &cluster.uuid, None)
        .await
        .is_none());
    assert_eq!(setup.driver.cluster(&cluster.uuid), None);
}

#[tokio::test]
async fn a_create_past_its_timeout_fails_with_the_reason() {
    let setup = setup().await;
    setup.driver.behave(|behaviour| {
        behaviour.waiting_steps = 1_000_000;
        behaviour.recheck_after = Duration::from_millis(20);
    });
    let template = store_template(&setup.database, "t", "magnum-node:bookworm", false).await;
    let cluster = create_cluster(&setup.database, &template, "slow", 1, Some(1)).await;
    // The deadline is a minute away; bring it close.
    request(&setup.database, &cluster.uuid, |cluster| {
        cluster.create_deadline = Some(Utc::now() + chrono::Duration::milliseconds(300))
    })
    .await;
    let _conductor = start(&setup, settings("test-host/a")).await;
    let failed = settled(
        &setup.database,
        &cluster.uuid,
        Some(ClusterStatus::CreateFailed),
    )
    .await
    .unwrap();
    assert_eq!(
        failed.status_reason.as_deref(),
        Some("Cluster creation timed out after 1 minute(s) (create_timeout).")
    );
}

#[tokio::test]
async fn failures_are_retried_with_backoff_then_end_failed_with_the_last_reason() {
    let setup = setup().await;
    setup.driver.behave(|behaviour| {
        behaviour.apply_always_fails = Some(DriverError::Retryable("engine busy".to_string()));
    });
    let template = store_template(&setup.database, "t", "magnum-node:bookworm", false).await;
    let cluster = create_cluster(&setup.database, &template, "unlucky", 1, None).await;
    let started = Instant::now();
    let _conductor = start(&setup, settings("test-host/a")).await;
    let failed = settled(
        &setup.database,
        &cluster.uuid,
        Some(ClusterStatus::CreateFailed),
    )
    .await
    .unwrap();
    assert_eq!(
        failed.status_reason.as_deref(),
        Some("engine busy (gave up after 3 attempts)")
    );
    let (applies, _) = setup.driver.calls();
    assert_eq!(applies, 3);
    // Two pauses of at least half their delays (10 ms, then 20 ms) came in between.
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(failed.operation, None);

    // A permanent failure is not retried.
    setup.driver.behave(|behaviour| {
        behaviour.apply_always_fails = Some(DriverError::Permanent("no such image".to_string()))
    });
    let other = create_cluster(&setup.database, &template, "doomed", 1, None).await;
    let failed = settled(
        &setup.database,
        &other.uuid,
        Some(ClusterStatus::CreateFailed),
    )
    .await
    .unwrap();
    assert_eq!(failed.status_reason.as_deref(), Some("no such image"));
    assert_eq!(setup.driver.calls().0, 4);
}

#[tokio::test]
async fn a_crashed_conductor_resumes_on_restart_and_a_dead_ones_lease_is_taken_over() {
    let setup = setup().await;
    setup.driver.behave(|behaviour| {
        behaviour.call_delay = Duration::from_secs(3600);
    });
    let template = store_template(&setup.database, "t", "magnum-node:bookworm", false).await;
    let first = create_cluster(&setup.database, &template, "first", 1, None).await;
    // The conductor claims the create and hangs in the driver, then dies.
    let conductor = start(&setup, settings("test-host/one")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.driver.calls().0 == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conductor.crash();
    setup
        .driver
        .behave(|behaviour| behaviour.call_delay = Duration::ZERO);
    // Restarted with the same identity: it takes its own work back at once, without
    // waiting for the two-second lease to run out.
    let restarted_at = Instant::now();
    let restarted = start(&setup, settings("test-host/one")).await;
    let done = settled(
        &setup.database,
        &first.uuid,
        Some(ClusterStatus::CreateComplete),
    )
    .await
    .unwrap();
    assert!(done.operation.is_none());
    assert!(restarted_at.elapsed() < Duration::from_millis(1500));
    restarted.crash();

    // Another conductor cannot know whether a silent one is dead: it waits for the lease.
    setup
        .driver
        .behave(|behaviour| behaviour.call_delay = Duration::from_secs(3600));
    let second = create_cluster(&setup.database, &template, "second", 1, None).await;
    let stuck = start(&setup, settings("test-host/two")).await;
    let calls = setup.driver.calls().0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.driver.calls().0 == calls {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stuck.crash();
    setup
        .driver
        .behave(|behaviour| behaviour.call_delay = Duration::ZERO);
    let taken_over_at = Instant::now();
    let _other = start(&setup, settings("test-host/three")).await;
    settled(
        &setup.database,
        &second.uuid,
        Some(ClusterStatus::CreateComplete),
    )
    .await;
    // Not before the two-second lease ran out.
    assert!(taken_over_at.elapsed() >= Duration::from_millis(1500));
    assert!(setup
        .driver
        .clusters()
        .values()
        .all(|cluster| cluster.creations == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_conductors_on_one_host_name_build_every_cluster_once() {
    let setup = setup().await;
    setup.driver.behave(|behaviour| {
        behaviour.waiting_steps = 2;
        behaviour.recheck_after = Duration::from_millis(10);
        behaviour.call_delay = Duration::from_millis(5);
    });
    let template = store_template(&setup.database, "t", "magnum-node:bookworm", false).await;
    let mut uuids = Vec::new();
    for index in 0..12 {
        uuids.push(
            create_cluster(&setup.database, &template, &format!("c{index}"), 1, None)
                .await
                .uuid,
        );
    }
    let state = tempfile::tempdir().unwrap();
    let one = magnum_conductor::instance::ConductorInstance::claim(state.path(), "twin").unwrap();
    let two = magnum_conductor::instance::ConductorInstance::claim(state.path(), "twin").unwrap();
    assert_ne!(one.lease_owner, two.lease_owner);
    let _first = start(&setup, settings(&one.lease_owner)).await;
    let _second = start(&setup, settings(&two.lease_owner)).await;
    for uuid in &uuids {
        settled(&setup.database, uuid, Some(ClusterStatus::CreateComplete)).await;
    }
    let built = setup.driver.clusters();
    assert_eq!(built.len(), 12);
    assert!(built.values().all(|cluster| cluster.creations == 1));
}

#[tokio::test]
async fn a_delete_without_its_driver_fails_and_keeps_the_rows_and_without_its_template_still_deletes(
) {
    let setup = setup().await;
    let template = store_template(&setup.database, "t", "magnum-node:bookworm", false).await;
    let _conductor = start(&setup, settings("test-host/a")).await;

    // The cluster's driver needs a provider this deployment does not enable.
    let orphan = create_cluster(&setup.database, &template, "orphan", 1, None).await;
    settled(
        &setup.database,
        &orphan.uuid,
        Some(ClusterStatus::CreateComplete),
    )
    .await;
    request(&setup.database, &orphan.uuid, |cluster| {
        cluster.driver = Some("k8s_fedora_atomic_v1".to_string());
        cluster.begin(Operation::Delete).unwrap();
    })
    .await;
    let failed = settled(
        &setup.database,
        &orphan.uuid,
        Some(ClusterStatus::DeleteFailed),
    )
    .await
    .unwrap();
    assert!(
        failed
            .status_reason
            .as_deref()
            .unwrap_or_default()
            .contains("needs the openstack provider"),
        "{failed:?}"
    );
    assert!(setup.driver.cluster(&orphan.uuid).is_some());

    // The template is gone (a database edit): the recorded driver still removes it all.
    let other_template = store_template(&setup.database, "t2", "magnum-node:bookworm", false).await;
    let kept = create_cluster(&setup.database, &other_template, "kept", 1, None).await;
    settled(
        &setup.database,
        &kept.uuid,
        Some(ClusterStatus::CreateComplete),
    )
    .await;
    setup
        .database
        .cluster_templates()
        .delete(other_template.id)
        .await
        .unwrap();
    request(&setup.database, &kept.uuid, |cluster| {
        cluster.begin(Operation::Delete).unwrap()
    })
    .await;
    assert!(settled(&setup.database, &kept.uuid, None).await.is_none());
    assert_eq!(setup.driver.cluster(&kept.uuid), None);
}

#[tokio::test]
async fn an_upgrade_whose_nodes_fail_rolls_back_to_the_old_template() {
    let setup = setup().await;
    setup.driver.behave(|behaviour| {
        behaviour.broken_images = vec!["broken:1".to_string()];
        behaviour.waiting_steps = 1;
    });
    let old = store_template(&setup.database, "old", "magnum-node:bookworm", true).await;
    let good = store_template(&setup.database, "good", "magnum-node:next", true).await;
    let broken = store_template(&setup.database, "broken", "broken:1", true).await;
    let _conductor = start(&setup, settings("test-host/a")).await;
    let cluster = create_cluster(&setup.database, &old, "c", 2, None).await;
    settled(
        &setup.database,
        &cluster.uuid,
        Some(ClusterStatus::CreateComplete),
    )
    .await;

    let upgrade_to = |template: &ClusterTemplate| {
        let target = template.uuid.clone();
        move |cluster: &mut Cluster| {
            cluster.begin(Operation::Upgrade).unwrap();
            cluster.rollback_template_id = Some(cluster.cluster_template_id.clone());
            cluster.cluster_template_id = target.clone();
        }
    };
    request(&setup.database, &cluster.uuid, upgrade_to(&good)).await;
    let upgraded = settled(
        &setup.database,
        &cluster.uuid,
        Some(ClusterStatus::UpdateComplete),
    )
    .await
    .unwrap();
    assert_eq!(upgraded.cluster_template_id, good.uuid);
    assert_eq!(upgraded.rollback_template_id, None);
    let nodes = setup.driver.cluster(&cluster.uuid).unwrap().nodes;
    assert!(nodes
        .values()
        .flatten()
        .all(|image| image == "magnum-node:next"));

    request(&setup.database, &cluster.uuid, upgrade_to(&broken)).await;
    let rolled_back = settled(
        &setup.database,
        &cluster.uuid,
        Some(ClusterStatus::RollbackComplete),
    )
    .await
    .unwrap();
    assert_eq!(rolled_back.cluster_template_id, good.uuid);
    let reason = rolled_back.status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&broken.uuid) && reason.contains("did not become ready"),
        "{reason}"
    );
    assert!(reason.contains("rolled back to"), "{reason}");
    let nodes = setup.driver.cluster(&cluster.uuid).unwrap().nodes;
    assert!(nodes
        .values()
        .flatten()
        .all(|image| image == "magnum-node:next"));
    // Usable again: a resize is accepted.
    request(&setup.database, &cluster.uuid, |cluster| {
        cluster.begin(Operation::Resize).unwrap();
        cluster.node_count = 3;
    })
    .await;
    settled(
        &setup.database,
        &cluster.uuid,
        Some(ClusterStatus::UpdateComplete),
    )
    .await;
}

#[tokio::test]
async fn a_ca_rotation_makes_one_new_ca_however_many_steps_it_takes() {
    let setup = setup().await;
    setup.driver.behave(|behaviour| {
        behaviour.waiting_steps = 3;
    });
    let template = store_template(&setup.database, "tls", "magnum-node:bookworm", true).await;
    let _conductor = start(&setup, settings("test-host/a")).await;
    let cluster = create_cluster(&setup.database, &template, "c", 1, None).await;
    settled(
        &setup.database,
        &cluster.uuid,
        Some(ClusterStatus::CreateComplete),
    )
    .await;
    let ca = |database: Database, uuid: String| async move {
        database
            .certificates()
            .get(&uuid, "kubernetes")
            .await
            .unwrap()
            .certificate_pem
    };
    let before = ca(setup.database.clone(), cluster.uuid.clone()).await;
    request(&setup.database, &cluster.uuid, |cluster| {
        cluster.begin(Operation::RotateCa).unwrap()
    })
    .await;
    // The fake waits three times, so the operation takes four steps; the CA the first made
    // is the one that stays.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = setup
            .database
            .clusters()
            .get_by_uuid(&cluster.uuid)
            .await
            .unwrap();
        seen.insert(ca(setup.database.clone(), cluster.uuid.clone()).await);
        if now.status == ClusterStatus::UpdateComplete {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = ca(setup.database.clone(), cluster.uuid.clone()).await;
    assert_ne!(before, after);
    seen.remove(&before);
    assert_eq!(seen.len(), 1, "more than one new CA was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clusters_unresponsive_nodes_do_not_hold_up_the_others_health_checks() {
    let setup = setup().await;
    let template = store_template(&setup.database, "t", "magnum-node:bookworm", false).await;
    let mut settings = settings("test-host/a");
    settings.sync_interval = Duration::from_millis(200);
    settings.health_check_timeout = Duration::from_millis(500);
    settings.health_check_concurrency = 2;
    let _conductor = start(&setup, settings).await;
    let mut uuids = Vec::new();
    for name in ["hung", "lost", "fine"] {
        let cluster = create_cluster(&setup.database, &template, name, 1, None).await;
        settled(
            &setup.database,
            &cluster.uuid,
            Some(ClusterStatus::CreateComplete),
        )
        .await;
        uuids.push(cluster.uuid);
    }
    // One cluster's nodes stop answering; another's nodes are lost.
    setup
        .driver
        .behave(|behaviour| behaviour.unresponsive = vec![uuids[0].clone()]);
    setup.driver.lose_nodes(&uuids[1]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lost = setup
            .database
            .clusters()
            .get_by_uuid(&uuids[1])
            .await
            .unwrap();
        let fine = setup
            .database
            .clusters()
            .get_by_uuid(&uuids[2])
            .await
            .unwrap();
        if lost.health_status == Some(magnum_core::cluster::HealthStatus::Unhealthy)
            && fine.health_status == Some(magnum_core::cluster::HealthStatus::Healthy)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{lost:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
