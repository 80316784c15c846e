//! JSON representations of resources, per API generation, serialized straight from the
//! stored rows (no intermediate JSON tree: a 100-item list is the hot path of the API).

use magnum_core::cluster_template::{ClusterTemplate, FieldKind, FieldSpec, FIELDS};
use magnum_core::ApiGeneration;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// The `links` of an item: self (with `/v1`) and bookmark (without).
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    pub base: &'a str,
    pub collection: &'a str,
    pub uuid: &'a str,
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Link {
            href: String,
            rel: &'static str,
        }
        let mut links = serializer.serialize_seq(Some(2))?;
        links.serialize_element(&Link {
            href: format!("{}/v1/{}/{}", self.base, self.collection, self.uuid),
            rel: "self",
        })?;
        links.serialize_element(&Link {
            href: format!("{}/{}/{}", self.base, self.collection, self.uuid),
            rel: "bookmark",
        })?;
        links.end()
    }
}

/// Attributes the 2016 plain list shows for a baymodel.
const SEED_SUMMARY: [&str; 5] = ["uuid", "name", "image_id", "apiserver_port", "coe"];

/// A cluster template as one API generation shows it.
#[derive(Debug, Clone, Copy)]
pub struct TemplateView<'a> {
    pub template: &'a ClusterTemplate,
    pub generation: ApiGeneration,
    pub base: &'a str,
    /// The 2016 plain-list view (the current API lists full objects).
    pub summary: bool,
}

impl TemplateView<'_> {
    fn shows(&self, spec: &FieldSpec) -> bool {
        if !spec.availability.includes(self.generation) {
            return false;
        }
        match (self.generation, spec.kind) {
            (_, FieldKind::Internal) => match spec.name {
                "created_at" | "updated_at" => !self.summary,
                "project_id" | "user_id" => self.generation == ApiGeneration::Current,
                _ => false,
            },
            (ApiGeneration::Seed, _) if self.summary => SEED_SUMMARY.contains(&spec.name),
            _ => true,
        }
    }

    /// The collection the links point into.
    pub fn collection(generation: ApiGeneration) -> &'static str {
        match generation {
            ApiGeneration::Seed => "baymodels",
            ApiGeneration::Current => "clustertemplates",
        }
    }
}

impl Serialize for TemplateView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for spec in FIELDS.iter().filter(|spec| self.shows(spec)) {
            map.serialize_entry(spec.name, &self.template.field_ref(spec.name))?;
        }
        map.serialize_entry(
            "links",
            &Links {
                base: self.base,
                collection: Self::collection(self.generation),
                uuid: &self.template.uuid,
            },
        )?;
        map.end()
    }
}

/// A page of a collection: `{"<key>": [items], "next": url}` (`next` only when given).
#[derive(Debug)]
pub struct Collection<'a, T> {
    pub key: &'a str,
    pub items: &'a [T],
    pub next: Option<String>,
}

impl<T: Serialize> Serialize for Collection<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(self.key, self.items)?;
        if let Some(next) = &self.next {
            map.serialize_entry("next", next)?;
        }
        map.end()
    }
}
