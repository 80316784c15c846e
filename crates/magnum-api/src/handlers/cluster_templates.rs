//! Cluster templates: `/v1/clustertemplates` (current) and `/v1/baymodels` (2016), two views
//! of the same rows with each generation's field names, rules and error format.

use crate::encoded_views::ViewKind;
use crate::error::ApiError;
use crate::handlers::generation::{self, GenerationResource, RequestParts};
use crate::pagination::{next_link, page_from_query};
use crate::policy::{enforce, PolicyTarget};
use crate::request::{json_body, Caller};
use crate::views::{Collection, TemplateView};
use crate::SharedState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use magnum_core::cluster_template::{
    ClusterTemplate, Ownership, TemplateInput, TemplatePatchRules,
};
use magnum_core::patch::{apply_patch, decode_patch};
use magnum_core::{is_uuid_like, ApiGeneration};
use magnum_db::cluster_template::{is_sortable, TemplateVisibility};
use magnum_db::DbError;
use magnum_driver::provider::LookupKind;
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes() -> Router<SharedState> {
    generation::routes::<ClusterTemplates>("/v1/clustertemplates", "/v1/baymodels")
}

/// The words a generation uses for the resource.
pub(crate) struct Vocabulary {
    generation: ApiGeneration,
    /// Policy rule prefix.
    policy: &'static str,
    /// Collection path and list key.
    collection: &'static str,
    /// Name in not-found messages.
    title: &'static str,
    /// Name in sentences.
    pub(crate) noun: &'static str,
}

pub(crate) const CURRENT: Vocabulary = Vocabulary {
    generation: ApiGeneration::Current,
    policy: "clustertemplate",
    collection: "clustertemplates",
    title: "ClusterTemplate",
    noun: "cluster template",
};

pub(crate) const SEED: Vocabulary = Vocabulary {
    generation: ApiGeneration::Seed,
    policy: "baymodel",
    collection: "baymodels",
    title: "Baymodel",
    noun: "baymodel",
};

impl Vocabulary {
    fn rule(&self, action: &str) -> String {
        format!("{}:{action}", self.policy)
    }

    fn not_found(&self, ident: &str) -> ApiError {
        ApiError::not_found(format!("{} {ident} could not be found.", self.title))
    }

    fn referenced(&self, template: &ClusterTemplate) -> ApiError {
        match self.generation {
            ApiGeneration::Current => ApiError::bad_request(format!(
                "ClusterTemplate {} is referenced by one or multiple clusters.",
                template.uuid
            )),
            ApiGeneration::Seed => ApiError::bad_request(format!(
                "Baymodel {} is referenced by one or multiple bays.",
                template.uuid
            )),
        }
    }

    fn publish_denied(&self) -> ApiError {
        match self.generation {
            ApiGeneration::Current => ApiError::forbidden(
                "Not authorized to set public or hidden flag for cluster template.",
            ),
            ApiGeneration::Seed => {
                ApiError::forbidden("Not authorized to set public flag for baymodel.")
            }
        }
    }
}

/// A template as JSON in the generation's view.
fn template_response(template: &ClusterTemplate, vocabulary: &Vocabulary, base: &str) -> Response {
    Json(TemplateView {
        template,
        generation: vocabulary.generation,
        base,
        summary: false,
    })
    .into_response()
}

/// The templates a caller may see: everything for administrators, otherwise the project's
/// own plus public ones that are not hidden.
fn visibility(caller: &Caller) -> TemplateVisibility {
    if caller.is_admin {
        TemplateVisibility::All
    } else {
        TemplateVisibility::Project(caller.context.project_id.clone())
    }
}

/// Finds a visible template by uuid or name.
pub(crate) async fn find_template(
    state: &SharedState,
    caller: &Caller,
    ident: &str,
    vocabulary: &Vocabulary,
) -> Result<Arc<ClusterTemplate>, ApiError> {
    let visibility = visibility(caller);
    if let Some(uuid) = magnum_core::normalize_uuid(ident).filter(|_| is_uuid_like(ident)) {
        let template = match state.database.cluster_templates().get_by_uuid(&uuid).await {
            Ok(template) => template,
            Err(DbError::NotFound) => return Err(vocabulary.not_found(ident)),
            Err(other) => return Err(other.into()),
        };
        let visible = match &visibility {
            TemplateVisibility::All => true,
            TemplateVisibility::Project(project_id) => template.is_visible_to(project_id),
        };
        return if visible {
            Ok(template)
        } else {
            Err(vocabulary.not_found(ident))
        };
    }
    match state
        .database
        .cluster_templates()
        .find_by_name(ident, &visibility)
        .await
    {
        Ok(template) => Ok(template),
        Err(DbError::NotFound) => Err(vocabulary.not_found(ident)),
        Err(DbError::Ambiguous) => Err(ApiError::conflict(format!(
            "Multiple {}s exist with same name. Please use the {} uuid instead.",
            vocabulary.noun, vocabulary.noun
        ))),
        Err(other) => Err(other.into()),
    }
}

/// Checks what the template names against the infrastructure of its provider (its
/// `provider` label, or the default; see `magnum_driver::registry`), records the image's
/// distro and selects the driver among that provider's. `driver_is_explicit` says whether
/// `template.driver` was given by the caller (rather than selected earlier).
async fn check_references(
    state: &SharedState,
    caller: &Caller,
    template: &mut ClusterTemplate,
    driver_is_explicit: bool,
    vocabulary: &Vocabulary,
) -> Result<(), ApiError> {
    let infrastructure = &state.infrastructure;
    let kind = infrastructure.provider_for(&template.labels, template.coe)?;
    let provider = infrastructure.lookups(kind)?;
    let asking = caller.provider_context();
    let image = provider
        .find_image(&asking, &template.image_id)
        .await
        .map_err(|error| error.into_domain(LookupKind::Image, &template.image_id))?;
    if provider.verifies() && image.os_distro.is_none() {
        return Err(ApiError::bad_request(format!(
            "Image {} doesn't contain os_distro field.",
            template.image_id
        )));
    }
    if image.os_distro.is_some() {
        template.cluster_distro = image.os_distro.clone();
    }
    provider.check_template(template)?;
    for (kind, value) in [
        (LookupKind::Flavor, template.flavor_id.clone()),
        (LookupKind::Flavor, template.master_flavor_id.clone()),
    ] {
        if let Some(flavor) = value {
            provider
                .find_flavor(&asking, &flavor)
                .await
                .map_err(|error| error.into_domain(kind, &flavor))?;
        }
    }
    if let Some(network) = template.external_network_id.clone() {
        provider
            .find_external_network(&asking, &network)
            .await
            .map_err(|error| error.into_domain(LookupKind::ExternalNetwork, &network))?;
    }
    if vocabulary.generation == ApiGeneration::Current {
        if let Some(network) = template.fixed_network.clone() {
            provider
                .find_fixed_network(&asking, &network)
                .await
                .map_err(|error| error.into_domain(LookupKind::FixedNetwork, &network))?;
        }
        if let Some(subnet) = template.fixed_subnet.clone() {
            provider
                .find_fixed_subnet(&asking, &subnet)
                .await
                .map_err(|error| error.into_domain(LookupKind::FixedSubnet, &subnet))?;
        }
    } else if let Some(keypair) = template.keypair_id.clone() {
        provider
            .find_keypair(&asking, &keypair)
            .await
            .map_err(|error| error.into_domain(LookupKind::Keypair, &keypair))?;
    }
    let explicit = if driver_is_explicit {
        template.driver.clone()
    } else {
        None
    };
    let selected = infrastructure.registry().select(
        kind,
        explicit.as_deref(),
        image.magnum_driver.as_deref(),
        &template.server_type,
        template.cluster_distro.as_deref(),
        template.coe,
    );
    match (selected, vocabulary.generation) {
        (Ok(Some(driver)), _) => template.driver = Some(driver.name.to_string()),
        (Ok(None), _) => template.driver = explicit,
        (Err(error), ApiGeneration::Current) => return Err(error.into()),
        // The 2016 API selected the driver only when a bay was created.
        (Err(_), ApiGeneration::Seed) => template.driver = None,
    }
    Ok(())
}

async fn list(
    state: SharedState,
    caller: Caller,
    base: String,
    query: HashMap<String, String>,
    vocabulary: &Vocabulary,
    detail: bool,
) -> Result<Response, ApiError> {
    let rule = vocabulary.rule(if detail { "detail" } else { "get_all" });
    enforce(&state, &rule, &caller, &PolicyTarget::own(&caller.context))?;
    let page = page_from_query(&query, state.max_limit, is_sortable)?;
    let templates = match state
        .database
        .cluster_templates()
        .list(&visibility(&caller), &page)
        .await
    {
        Ok(templates) => templates,
        Err(DbError::MarkerNotFound) => {
            return Err(vocabulary.not_found(page.marker.as_deref().unwrap_or_default()))
        }
        Err(other) => return Err(other.into()),
    };
    let summary = vocabulary.generation == ApiGeneration::Seed && !detail;
    let kind = match (vocabulary.generation, summary) {
        (ApiGeneration::Current, _) => ViewKind::Template,
        (ApiGeneration::Seed, false) => ViewKind::Baymodel,
        (ApiGeneration::Seed, true) => ViewKind::BaymodelSummary,
    };
    let items = templates
        .iter()
        .map(|template| {
            state
                .encoded_views
                .get_or_encode(kind, template.id, template.revision, &base, || {
                    TemplateView {
                        template,
                        generation: vocabulary.generation,
                        base: &base,
                        summary,
                    }
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ApiError::internal("encoding cluster templates", &error))?;
    let path = if detail {
        format!("{}/detail", vocabulary.collection)
    } else {
        vocabulary.collection.to_string()
    };
    let next = next_link(
        &base,
        &path,
        &page,
        templates.len(),
        templates.last().map(|template| template.uuid.as_str()),
    );
    Ok(Json(Collection {
        key: vocabulary.collection,
        items: &items,
        next,
    })
    .into_response())
}

async fn show(
    state: SharedState,
    caller: Caller,
    base: String,
    ident: String,
    vocabulary: &Vocabulary,
) -> Result<Response, ApiError> {
    let template = find_template(&state, &caller, &ident, vocabulary).await?;
    let shared_with_caller = template.public && !template.hidden;
    if !shared_with_caller {
        enforce(
            &state,
            &vocabulary.rule("get"),
            &caller,
            &PolicyTarget::of(&template.project_id, &template.user_id),
        )?;
    }
    Ok(template_response(&template, vocabulary, &base))
}

fn duplicate_error(vocabulary: &Vocabulary, template: &ClusterTemplate) -> ApiError {
    ApiError::conflict(format!(
        "A {} with name {} already exists in this project.",
        vocabulary.noun,
        template.name.as_deref().unwrap_or("None")
    ))
}

async fn create(
    state: SharedState,
    caller: Caller,
    base: String,
    headers: HeaderMap,
    body: Bytes,
    vocabulary: &Vocabulary,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let input = TemplateInput::decode(&body, vocabulary.generation)?;
    enforce(
        &state,
        &vocabulary.rule("create"),
        &caller,
        &PolicyTarget::own(&caller.context),
    )?;
    let mut template = ClusterTemplate::from_input(
        &input,
        vocabulary.generation,
        Ownership {
            project_id: caller.context.project_id.clone(),
            user_id: caller.context.user_id.clone(),
            now: Utc::now().trunc_subsecs(0),
        },
        &state.template_rules,
    )?;
    if (template.public || template.hidden)
        && !state.policy.allows(
            &vocabulary.rule("publish"),
            &caller.context,
            &PolicyTarget::own(&caller.context),
        )
    {
        return Err(vocabulary.publish_denied());
    }
    let driver_is_explicit = input.has_value("driver");
    check_references(
        &state,
        &caller,
        &mut template,
        driver_is_explicit,
        vocabulary,
    )
    .await?;
    let stored = match state.database.cluster_templates().insert(&template).await {
        Ok(stored) => stored,
        Err(DbError::Duplicate) => {
            let uuid_taken = match state
                .database
                .cluster_templates()
                .get_by_uuid(&template.uuid)
                .await
            {
                Ok(_) => true,
                Err(DbError::NotFound) => false,
                Err(other) => return Err(other.into()),
            };
            return Err(if uuid_taken {
                ApiError::conflict(format!(
                    "A {} with UUID {} already exists.",
                    vocabulary.title, template.uuid
                ))
            } else {
                duplicate_error(vocabulary, &template)
            });
        }
        Err(other) => return Err(other.into()),
    };
    tracing::info!(uuid = %stored.uuid, name = ?stored.name, project = %stored.project_id, "created cluster template");
    let location = format!("{base}/v1/{}/{}", vocabulary.collection, stored.uuid);
    let mut response = (
        StatusCode::CREATED,
        template_response(&stored, vocabulary, &base),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// How many times a patch is re-applied when another writer changed the row in between.
const PATCH_ATTEMPTS: u32 = 20;

/// A short random pause before re-applying a patch that lost a race, growing with the
/// number of losses so that contending writers spread out.
async fn backoff(attempt: u32) {
    use rand::Rng;
    let ceiling_ms = u64::from(attempt.min(10)) * 2 + 1;
    let pause = rand::thread_rng().gen_range(0..ceiling_ms);
    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
}

async fn patch(
    state: SharedState,
    caller: Caller,
    base: String,
    ident: String,
    headers: HeaderMap,
    body: Bytes,
    vocabulary: &Vocabulary,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let operations = decode_patch(&body)?;
    let driver_is_explicit = operations
        .iter()
        .any(|operation| operation.segments.first().map(String::as_str) == Some("driver"));
    for attempt in 0..PATCH_ATTEMPTS {
        if attempt > 0 {
            backoff(attempt).await;
        }
        let current = find_template(&state, &caller, &ident, vocabulary).await?;
        enforce(
            &state,
            &vocabulary.rule("update"),
            &caller,
            &PolicyTarget::of(&current.project_id, &current.user_id),
        )?;
        let document = apply_patch(
            &current.patch_document(vocabulary.generation),
            &operations,
            &TemplatePatchRules(vocabulary.generation),
            vocabulary.generation,
        )?;
        let mut updated = current.with_patched_document(
            &document,
            vocabulary.generation,
            &state.template_rules,
            Utc::now().trunc_subsecs(0),
        )?;
        let publishing_changed =
            updated.public != current.public || updated.hidden != current.hidden;
        if publishing_changed
            && !state.policy.allows(
                &vocabulary.rule("publish"),
                &caller.context,
                &PolicyTarget::of(&current.project_id, &current.user_id),
            )
        {
            return Err(vocabulary.publish_denied());
        }
        // A change clusters forbid is refused before the infrastructure is asked about it
        // (the write below checks again, atomically).
        let requested = current.changed_fields(&updated);
        if !requested.is_empty()
            && !ClusterTemplate::change_allowed_in_use(&requested, vocabulary.generation)
            && crate::handlers::clusters::template_in_use(&state, &current.uuid).await?
        {
            return Err(vocabulary.referenced(&current));
        }
        check_references(
            &state,
            &caller,
            &mut updated,
            driver_is_explicit,
            vocabulary,
        )
        .await?;
        let changed = current.changed_fields(&updated);
        if changed.is_empty() {
            return Ok(template_response(&current, vocabulary, &base));
        }
        let allowed_in_use =
            ClusterTemplate::change_allowed_in_use(&changed, vocabulary.generation);
        match state
            .database
            .cluster_templates()
            .update_checked(&updated, allowed_in_use)
            .await
        {
            Ok(stored) => {
                tracing::info!(uuid = %stored.uuid, changed = ?current.changed_fields(&stored), "updated cluster template");
                return Ok(template_response(&stored, vocabulary, &base));
            }
            Err(DbError::Stale) => continue,
            Err(DbError::InUse) => return Err(vocabulary.referenced(&current)),
            Err(DbError::NotFound) => return Err(vocabulary.not_found(&ident)),
            Err(DbError::Duplicate) => return Err(duplicate_error(vocabulary, &updated)),
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::conflict(format!(
        "The {} {ident} is being changed by other requests; try again.",
        vocabulary.noun
    )))
}

async fn delete(
    state: SharedState,
    caller: Caller,
    ident: String,
    vocabulary: &Vocabulary,
) -> Result<StatusCode, ApiError> {
    let template = find_template(&state, &caller, &ident, vocabulary).await?;
    enforce(
        &state,
        &vocabulary.rule("delete"),
        &caller,
        &PolicyTarget::of(&template.project_id, &template.user_id),
    )?;
    if crate::handlers::clusters::template_in_use(&state, &template.uuid).await? {
        return Err(vocabulary.referenced(&template));
    }
    match state.database.cluster_templates().delete(template.id).await {
        Ok(()) | Err(DbError::NotFound) => {}
        Err(other) => return Err(other.into()),
    }
    tracing::info!(uuid = %template.uuid, "deleted cluster template");
    Ok(StatusCode::NO_CONTENT)
}

/// Cluster templates under `/v1/clustertemplates` and the 2016 `/v1/baymodels`.
struct ClusterTemplates;

impl GenerationResource for ClusterTemplates {
    type Words = Vocabulary;
    const CURRENT: &'static Vocabulary = &CURRENT;
    const SEED: &'static Vocabulary = &SEED;

    async fn list(
        request: RequestParts,
        query: HashMap<String, String>,
        words: &'static Vocabulary,
        detail: bool,
    ) -> Result<Response, ApiError> {
        list(
            request.state,
            request.caller,
            request.base,
            query,
            words,
            detail,
        )
        .await
    }

    async fn show(
        request: RequestParts,
        ident: String,
        words: &'static Vocabulary,
    ) -> Result<Response, ApiError> {
        show(request.state, request.caller, request.base, ident, words).await
    }

    async fn create(
        request: RequestParts,
        headers: HeaderMap,
        body: Bytes,
        words: &'static Vocabulary,
    ) -> Result<Response, ApiError> {
        create(
            request.state,
            request.caller,
            request.base,
            headers,
            body,
            words,
        )
        .await
    }

    async fn patch(
        request: RequestParts,
        ident: String,
        headers: HeaderMap,
        body: Bytes,
        words: &'static Vocabulary,
    ) -> Result<Response, ApiError> {
        let RequestParts {
            state,
            caller,
            base,
            ..
        } = request;
        patch(state, caller, base, ident, headers, body, words).await
    }

    async fn delete(
        request: RequestParts,
        ident: String,
        words: &'static Vocabulary,
    ) -> Result<StatusCode, ApiError> {
        delete(request.state, request.caller, ident, words).await
    }
}
