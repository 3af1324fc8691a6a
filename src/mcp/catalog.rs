//! A tenant's upstream tool list. Intercom has grown it from 6 to 14 tools, so it is always
//! read from `tools/list`, never hard-coded.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use serde_json::{Map, Value};

/// One upstream tool, as the gateway uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: Arc<Map<String, Value>>,
    /// From `annotations.readOnlyHint`; a tool that does not say is treated as a write.
    pub read_only: bool,
}

/// A tenant's tool list and when it was fetched. The list itself is shared by every tenant whose
/// upstream sent the same one (see [`Shelf`]).
pub struct Catalog {
    set: Arc<ToolSet>,
    pub(super) fetched_at: Instant,
}

/// The tools of one `tools/list` answer, by name.
#[derive(Debug, PartialEq)]
pub struct ToolSet {
    pub tools: Vec<ToolSpec>,
    by_name: HashMap<String, usize>,
}

impl Deref for Catalog {
    type Target = ToolSet;
    fn deref(&self) -> &ToolSet {
        &self.set
    }
}

impl Catalog {
    pub(super) fn from_tools(tools: Vec<rmcp::model::Tool>, shelf: &Shelf) -> Self {
        Self {
            set: shelf.share(tools),
            fetched_at: Instant::now(),
        }
    }

    /// Whether two catalogs hold the very same shared list.
    #[cfg(test)]
    pub(super) fn shares_with(&self, other: &Catalog) -> bool {
        Arc::ptr_eq(&self.set, &other.set)
    }
}

impl ToolSet {
    fn new(tools: Vec<rmcp::model::Tool>) -> Self {
        let tools: Vec<ToolSpec> = tools
            .into_iter()
            .map(|t| ToolSpec {
                read_only: t
                    .annotations
                    .as_ref()
                    .and_then(|a| a.read_only_hint)
                    .unwrap_or(false),
                title: t
                    .title
                    .clone()
                    .or_else(|| t.annotations.as_ref().and_then(|a| a.title.clone())),
                description: t.description.map(|d| d.into_owned()),
                input_schema: t.input_schema,
                name: t.name.into_owned(),
            })
            .collect();
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Self { tools, by_name }
    }

    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }
}

/// The tool lists in use, so that tenants on the same upstream share one copy. Intercom sends
/// every workspace the same 14 tools with their JSON Schemas: kept per tenant that was the
/// largest part of an idle tenant's memory (issue 8: ~30 KiB each). A list is found by a hash
/// of its JSON and confirmed equal before it is shared; it lives as long as a catalog uses it.
#[derive(Default)]
pub(super) struct Shelf(Mutex<HashMap<u64, Weak<ToolSet>>>);

impl Shelf {
    fn share(&self, tools: Vec<rmcp::model::Tool>) -> Arc<ToolSet> {
        let key = serde_json::to_vec(&tools).ok().map(|json| {
            let mut h = DefaultHasher::new();
            h.write(&json);
            h.finish()
        });
        let set = ToolSet::new(tools);
        let (Some(key), Ok(mut shelf)) = (key, self.0.lock()) else {
            return Arc::new(set);
        };
        if let Some(shared) = shelf.get(&key).and_then(Weak::upgrade)
            && *shared == set
        {
            return shared;
        }
        let set = Arc::new(set);
        shelf.retain(|_, w| w.strong_count() > 0);
        shelf.insert(key, Arc::downgrade(&set));
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(names: &[&str]) -> Vec<rmcp::model::Tool> {
        names
            .iter()
            .map(|n| {
                serde_json::from_value(serde_json::json!({
                    "name": n,
                    "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}},
                    "annotations": {"readOnlyHint": true}
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn tenants_with_the_same_tool_list_share_one_copy() {
        let shelf = Shelf::default();
        let a = Catalog::from_tools(tools(&["get_contact", "search"]), &shelf);
        let b = Catalog::from_tools(tools(&["get_contact", "search"]), &shelf);
        let c = Catalog::from_tools(tools(&["get_contact"]), &shelf);
        assert!(a.shares_with(&b));
        assert!(!a.shares_with(&c));
        assert!(b.get("search").is_some_and(|t| t.read_only));
        assert!(c.get("search").is_none());
        // A list no catalog uses any more is not kept.
        drop((a, b));
        let d = Catalog::from_tools(tools(&["get_contact", "search"]), &shelf);
        assert_eq!(d.tools.len(), 2);
        assert_eq!(shelf.0.lock().unwrap().len(), 2);
    }
}
