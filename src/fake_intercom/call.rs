//! One `tools/call` after validation: its workspace, arguments and outcome.

use std::sync::Arc;

use rmcp::model::JsonObject;
use serde_json::Value;

use super::data::WorkspaceData;
use super::state::AppState;
use super::tools::ToolKind;
use super::{companies, contacts, conversations, search};

/// Intercom's runtime rejection of schema-valid calls that only paginate.
pub(crate) const NO_FILTER: &str = "At least one search parameter must be provided";

pub(crate) struct Call<'a> {
    pub state: &'a AppState,
    pub workspace: &'a Arc<str>,
    pub data: &'a WorkspaceData,
    pub args: &'a JsonObject,
}

/// A successful result: JSON in `content[0].text`, and for `Structured` also in
/// `structuredContent` (only `search_contacts` and `get_contact` do that, so the gateway
/// exercises both result paths).
pub(crate) enum Output {
    Text(Value),
    Structured(Value),
}

/// `Err` is a tool execution error (`isError: true`) carrying Intercom's message.
pub(crate) type Outcome = Result<Output, String>;

pub(crate) fn run(kind: ToolKind, call: &Call<'_>) -> Outcome {
    match kind {
        ToolKind::Search => search::search(call),
        ToolKind::Fetch => search::fetch(call),
        ToolKind::SearchConversations => conversations::search(call),
        ToolKind::GetConversation => conversations::get(call),
        ToolKind::AddInternalNote => conversations::add_note(call),
        ToolKind::SearchContacts => contacts::search(call),
        ToolKind::GetContact => contacts::get(call),
        ToolKind::ListCompanies => companies::list(call),
        ToolKind::GetCompany => companies::get(call),
    }
}

impl Call<'_> {
    /// Arguments were checked against the schema, so a present value has the declared type.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.args.get(key).and_then(Value::as_str)
    }

    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        self.args.get(key).and_then(Value::as_i64)
    }

    pub(crate) fn strings(&self, key: &str) -> Option<Vec<&str>> {
        let items = self.args.get(key)?.as_array()?;
        Some(items.iter().filter_map(Value::as_str).collect())
    }

    pub(crate) fn has_any(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.args.contains_key(*k))
    }
}

/// Case-insensitive text of a JSON scalar (`null` is empty).
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_lowercase(),
        Value::Null => String::new(),
        other => other.to_string().to_lowercase(),
    }
}

/// Drops HTML tags, for the plain `text` of search results.
pub(crate) fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}
