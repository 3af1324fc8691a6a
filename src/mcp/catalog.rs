//! A tenant's upstream tool list. Intercom has grown it from 6 to 14 tools, so it is always
//! read from `tools/list`, never hard-coded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

/// One upstream tool, as the gateway uses it.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: Arc<Map<String, Value>>,
    /// From `annotations.readOnlyHint`; a tool that does not say is treated as a write.
    pub read_only: bool,
}

pub struct Catalog {
    pub tools: Vec<ToolSpec>,
    by_name: HashMap<String, usize>,
    pub(super) fetched_at: Instant,
}

impl Catalog {
    pub(super) fn from_tools(tools: Vec<rmcp::model::Tool>) -> Self {
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
        Self {
            tools,
            by_name,
            fetched_at: Instant::now(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }
}
