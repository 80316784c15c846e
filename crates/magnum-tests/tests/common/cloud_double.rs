//! `CloudApiDouble`: a test double of the parts of Glance, Nova, Neutron, Octavia and Cinder that
//! magnumd calls, because those services cannot run here (they need hypervisors, network
//! namespaces of their own and a load-balancer fleet). It is registered in the real
//! Keystone's catalog like the real services would be (see `openstack.rs`), answers only
//! requests that carry a token, and can be told that a service is down (503).
//!
//! Served per test on a loopback port: `/image/v2`, `/compute/v2.1`, `/network/v2.0`,
//! `/load-balancer/v2`, `/volume/v3/<project>`. Load balancers and volumes can be added (as
//! Kubernetes would make them) and are deleted when asked.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// What the double's services hold.
#[derive(Debug, Clone, Default)]
pub struct CloudContents {
    pub images: Vec<Value>,
    pub flavors: Vec<Value>,
    pub keypairs: Vec<String>,
    pub networks: Vec<Value>,
    pub subnets: Vec<Value>,
    /// Octavia's load balancers (`id`, `description`, `provisioning_status`).
    pub load_balancers: Vec<Value>,
    /// Cinder's volumes (`id`, `status`, `metadata`).
    pub volumes: Vec<Value>,
}

impl CloudContents {
    /// A small cloud: Fedora CoreOS and Fedora Atomic images (with their os_distro), one
    /// without os_distro, two images sharing a name; flavors m1.small and m1.large; keypair
    /// `mykey`; the external network `public` and the private network `private` with its
    /// subnet `private-subnet`.
    pub fn typical() -> CloudContents {
        CloudContents {
            images: vec![
                json!({"id": "5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c01", "name": "fedora-coreos-40",
                       "status": "active", "os_distro": "fedora-coreos"}),
                json!({"id": "5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c02", "name": "fedora-atomic-29",
                       "status": "active", "os_distro": "fedora-atomic"}),
                json!({"id": "5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c03", "name": "no-distro",
                       "status": "active"}),
                json!({"id": "5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c04", "name": "twin",
                       "status": "active", "os_distro": "fedora-coreos"}),
                json!({"id": "5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c05", "name": "twin",
                       "status": "active", "os_distro": "fedora-coreos"}),
            ],
            flavors: vec![
                json!({"id": "1", "name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20}),
                json!({"id": "2", "name": "m1.large", "vcpus": 4, "ram": 8192, "disk": 80}),
                // The tests' Heat makes servers of these flavors fail or never finish.
                json!({"id": "3", "name": "fail.flavor", "vcpus": 1, "ram": 2048, "disk": 20}),
                json!({"id": "4", "name": "slow.flavor", "vcpus": 1, "ram": 2048, "disk": 20}),
            ],
            keypairs: vec!["mykey".to_string()],
            networks: vec![
                json!({"id": "0f0e0d0c-0000-4000-8000-000000000001", "name": "public",
                       "router:external": true}),
                json!({"id": "0f0e0d0c-0000-4000-8000-000000000002", "name": "private",
                       "router:external": false}),
            ],
            subnets: vec![json!({"id": "0f0e0d0c-0000-4000-8000-000000000003",
                                  "name": "private-subnet",
                                  "network_id": "0f0e0d0c-0000-4000-8000-000000000002",
                                  "cidr": "10.0.0.0/24"})],
            load_balancers: Vec::new(),
            volumes: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
struct DoubleState {
    contents: CloudContents,
    /// Services answering 503: "image", "compute", "network", "load-balancer", "volumev3".
    down: BTreeSet<String>,
    /// How many requests each service got.
    requests: HashMap<String, usize>,
}

type Shared = Arc<Mutex<DoubleState>>;

/// The running double; stops with the test's runtime.
pub struct CloudApiDouble {
    pub url: String,
    state: Shared,
}

impl CloudApiDouble {
    pub async fn start(contents: CloudContents) -> CloudApiDouble {
        let state: Shared = Arc::new(Mutex::new(DoubleState {
            contents,
            ..DoubleState::default()
        }));
        let app = Router::new()
            .route("/image/v2/images", get(list_images))
            .route("/image/v2/images/{id}", get(show_image))
            .route("/compute/v2.1/flavors/detail", get(list_flavors))
            .route("/compute/v2.1/os-keypairs/{name}", get(show_keypair))
            .route("/network/v2.0/networks", get(list_networks))
            .route("/network/v2.0/subnets", get(list_subnets))
            .route(
                "/load-balancer/v2/lbaas/loadbalancers",
                get(list_load_balancers),
            )
            .route(
                "/load-balancer/v2/lbaas/loadbalancers/{id}",
                delete(delete_load_balancer),
            )
            .route("/volume/v3/{project}/volumes/detail", get(list_volumes))
            .route("/volume/v3/{project}/volumes/{id}", delete(delete_volume))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CloudApiDouble { url, state }
    }

    /// The catalog URL of a service type.
    pub fn endpoint(&self, service_type: &str) -> String {
        match service_type {
            "image" => format!("{}/image", self.url),
            "compute" => format!("{}/compute/v2.1", self.url),
            "network" => format!("{}/network", self.url),
            "load-balancer" => format!("{}/load-balancer", self.url),
            "volumev3" => format!("{}/volume/v3/%(tenant_id)s", self.url),
            other => panic!("the double serves no {other}"),
        }
    }

    /// Adds what Kubernetes would make: a load balancer or a volume.
    pub fn add(&self, load_balancers: &[Value], volumes: &[Value]) {
        let mut state = self.state.lock().unwrap();
        state
            .contents
            .load_balancers
            .extend_from_slice(load_balancers);
        state.contents.volumes.extend_from_slice(volumes);
    }

    /// The load balancers and volumes left.
    pub fn leftovers(&self) -> (Vec<Value>, Vec<Value>) {
        let state = self.state.lock().unwrap();
        (
            state.contents.load_balancers.clone(),
            state.contents.volumes.clone(),
        )
    }

    /// Makes a service answer 503 (or answer again).
    pub fn set_down(&self, service_type: &str, down: bool) {
        let mut state = self.state.lock().unwrap();
        if down {
            state.down.insert(service_type.to_string());
        } else {
            state.down.remove(service_type);
        }
    }

    pub fn requests(&self, service_type: &str) -> usize {
        *self
            .state
            .lock()
            .unwrap()
            .requests
            .get(service_type)
            .unwrap_or(&0)
    }
}

/// Why the double refuses a request.
enum Refusal {
    NoToken,
    Down,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NoToken => (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"code": 401,
                    "message": "The request you have made requires authentication."}})),
            )
                .into_response(),
            Refusal::Down => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service down (test double)",
            )
                .into_response(),
        }
    }
}

/// The checks every request passes: a token, and the service up.
fn admit(state: &Shared, headers: &HeaderMap, service: &str) -> Result<CloudContents, Refusal> {
    let mut state = state.lock().unwrap();
    *state.requests.entry(service.to_string()).or_default() += 1;
    if headers
        .get("x-auth-token")
        .and_then(|value| value.to_str().ok())
        .is_none_or(str::is_empty)
    {
        return Err(Refusal::NoToken);
    }
    if state.down.contains(service) {
        return Err(Refusal::Down);
    }
    Ok(state.contents.clone())
}

fn matching(items: &[Value], query: &HashMap<String, String>) -> Vec<Value> {
    items
        .iter()
        .filter(|item| {
            query.iter().all(|(key, wanted)| match item.get(key) {
                Some(Value::String(text)) => text == wanted,
                Some(Value::Bool(flag)) => flag.to_string() == *wanted,
                Some(_) => false,
                // Filters on fields an item lacks (pagination, say) are ignored.
                None => !matches!(key.as_str(), "name" | "id"),
            })
        })
        .cloned()
        .collect()
}

async fn list_images(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match admit(&state, &headers, "image") {
        Ok(contents) => Json(json!({"images": matching(&contents.images, &query)})).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn show_image(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match admit(&state, &headers, "image") {
        Ok(contents) => match contents
            .images
            .iter()
            .find(|image| image["id"] == id.as_str())
        {
            Some(image) => Json(image.clone()).into_response(),
            None => (StatusCode::NOT_FOUND, "No image found with ID").into_response(),
        },
        Err(refusal) => refusal.into_response(),
    }
}

async fn list_flavors(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match admit(&state, &headers, "compute") {
        Ok(contents) => Json(json!({"flavors": contents.flavors})).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn show_keypair(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    match admit(&state, &headers, "compute") {
        Ok(contents) if contents.keypairs.contains(&name) => {
            Json(json!({"keypair": {"name": name, "type": "ssh"}})).into_response()
        }
        Ok(_) => (
            StatusCode::NOT_FOUND,
            Json(json!({"itemNotFound": {"code": 404, "message": format!("Keypair {name} not found.")}})),
        )
            .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn list_networks(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match admit(&state, &headers, "network") {
        Ok(contents) => {
            Json(json!({"networks": matching(&contents.networks, &query)})).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

async fn list_subnets(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match admit(&state, &headers, "network") {
        Ok(contents) => {
            Json(json!({"subnets": matching(&contents.subnets, &query)})).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

async fn list_load_balancers(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match admit(&state, &headers, "load-balancer") {
        Ok(contents) => Json(json!({"loadbalancers": contents.load_balancers})).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Removes an item by id from one of the double's lists: 204, or 404 when absent.
fn remove(state: &Shared, list: fn(&mut CloudContents) -> &mut Vec<Value>, id: &str) -> Response {
    let mut state = state.lock().unwrap();
    let items = list(&mut state.contents);
    let before = items.len();
    items.retain(|item| item["id"] != id);
    if items.len() < before {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn delete_load_balancer(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refusal) = admit(&state, &headers, "load-balancer") {
        return refusal.into_response();
    }
    // Octavia refuses to delete a load balancer with listeners unless cascading.
    if query.get("cascade").map(String::as_str) != Some("true") {
        return StatusCode::CONFLICT.into_response();
    }
    remove(&state, |contents| &mut contents.load_balancers, &id)
}

async fn list_volumes(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(_project): Path<String>,
) -> Response {
    match admit(&state, &headers, "volumev3") {
        Ok(contents) => Json(json!({"volumes": contents.volumes})).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn delete_volume(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((_project, id)): Path<(String, String)>,
) -> Response {
    if let Err(refusal) = admit(&state, &headers, "volumev3") {
        return refusal.into_response();
    }
    remove(&state, |contents| &mut contents.volumes, &id)
}
