//! The tool catalog: names, descriptions, input schemas and annotations.
//!
//! Reconstructed from Intercom's guide and tool catalogs (research notes §1.3-1.4). Property
//! names differ between tools on purpose (`id`, `conversation_id`, `contact_ids`, `ids`, ...):
//! the gateway has to read them from `inputSchema`, as it would against the real server.

use std::sync::{Arc, LazyLock};

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolKind {
    Search,
    Fetch,
    SearchConversations,
    GetConversation,
    SearchContacts,
    GetContact,
    ListCompanies,
    GetCompany,
    AddInternalNote,
}

impl ToolKind {
    pub(crate) fn parse(name: &str) -> Option<ToolKind> {
        Some(match name {
            "search" => ToolKind::Search,
            "fetch" => ToolKind::Fetch,
            "search_conversations" => ToolKind::SearchConversations,
            "get_conversation" => ToolKind::GetConversation,
            "search_contacts" => ToolKind::SearchContacts,
            "get_contact" => ToolKind::GetContact,
            "list_companies" => ToolKind::ListCompanies,
            "get_company" => ToolKind::GetCompany,
            "add_internal_note" => ToolKind::AddInternalNote,
            _ => return None,
        })
    }
}

static CATALOG: LazyLock<Vec<Tool>> = LazyLock::new(build);

/// Every tool, in the order `tools/list` pages through them.
pub(crate) fn catalog() -> &'static [Tool] {
    &CATALOG
}

pub(crate) fn find(name: &str) -> Option<&'static Tool> {
    CATALOG.iter().find(|t| t.name == name)
}

fn build() -> Vec<Tool> {
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let integer = json!({"type": "integer"});
    let per_page =
        json!({"type": "integer", "description": "Results per page (default 5, max 150)"});
    let cursor = json!({"type": "string", "description": "Cursor from pages.next.starting_after"});
    vec![
        tool(
            "search",
            "Search conversations or contacts with a query DSL. Tokens are key[:operator]:value; the \
             query must contain object_type:conversations or object_type:contacts. Operators: eq, \
             neq, gt, gte, lt, lte, in, nin, contains. Control tokens: limit:N (default 5, max 150), \
             starting_after:<cursor>, q:<free text>. Example: object_type:conversations state:open \
             source_body:contains:\"refund\" limit:20",
            json!({"query": {"type": "string", "description": "The search query"}}),
            &["query"],
            true,
        ),
        tool(
            "fetch",
            "Fetch the full details of a conversation, contact or company by id. Accepts \
             conversation_<id>, contact_<id>, company_<id>, raw ids, or Intercom URLs.",
            json!({"id": {"type": "string", "description": "Resource id, prefixed id or Intercom URL"}}),
            &["id"],
            true,
        ),
        tool(
            "search_conversations",
            "Search conversations with structured filters. At least one filter is required. \
             Paginate with starting_after.",
            json!({
                "ids": strings, "state": {"type": "string", "enum": ["open", "closed", "snoozed"]},
                "source_type": {"type": "string", "description": "conversation, email, facebook, instagram, phone_call, push, sms, twitter, whatsapp"},
                "source_author_name": string, "source_author_email": string,
                "team_assignee_id": string, "admin_assignee_id": integer,
                "per_page": per_page, "starting_after": cursor,
            }),
            &[],
            true,
        ),
        tool(
            "get_conversation",
            "Get one conversation with its complete message history (all conversation parts). \
             Accepts 123456789, conversation_123456789 or an Intercom inbox URL.",
            json!({"conversation_id": {"type": "string", "description": "Conversation id, prefixed id or URL"}}),
            &["conversation_id"],
            true,
        ),
        tool(
            "search_contacts",
            "Search contacts (users and leads). At least one search parameter is required: name \
             (partial match), email (exact), email_domain, phone, contact_ids or custom_attributes.",
            json!({
                "contact_ids": strings, "name": string, "email": string, "email_domain": string,
                "phone": string, "custom_attributes": {"type": "object", "description": "Attribute name to value"},
                "per_page": per_page, "starting_after": cursor,
            }),
            &[],
            true,
        ),
        tool(
            "get_contact",
            "Get one contact. Accepts a raw id, contact_<id> or an Intercom URL.",
            json!({"contact_id": {"type": "string", "description": "Contact id, prefixed id or URL"}}),
            &["contact_id"],
            true,
        ),
        tool(
            "list_companies",
            "List companies, optionally filtered by exact name or tag. Page-based pagination.",
            json!({
                "name": string, "tag_id": string,
                "per_page": {"type": "integer", "description": "Results per page (default 15, max 60)"},
                "page": {"type": "integer", "description": "Page number (default 1)"},
            }),
            &[],
            true,
        ),
        tool(
            "get_company",
            "Get one company by its Intercom id (or company_<id>).",
            json!({"company_id": {"type": "string"}}),
            &["company_id"],
            true,
        ),
        tool(
            "add_internal_note",
            "Add an internal note (visible to teammates only) to a conversation. Accepts a \
             numeric id, conversation_<id> or an inbox URL. The body may be HTML or plain text.",
            json!({"conversation_id": string, "body": string}),
            &["conversation_id", "body"],
            false,
        ),
    ]
}

/// A read-only tool without arguments that a test adds to one workspace's list at run time
/// (Intercom grows its list; see [`super::FakeIntercom::add_tool`]). Calling it answers
/// "Unknown tool": only the list changes.
pub(crate) fn extra(name: &str) -> Tool {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), json!({}));
    let annotations = ToolAnnotations::with_title(name.replace('_', " ")).read_only(true);
    Tool::new(
        name.to_owned(),
        "A tool added while the server runs (fake-intercom test knob).",
        Arc::new(schema),
    )
    .with_annotations(annotations)
}

fn tool(
    name: &'static str,
    description: &'static str,
    properties: Value,
    required: &[&str],
    read_only: bool,
) -> Tool {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), properties);
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    let title = name.replace('_', " ");
    let mut annotations = ToolAnnotations::with_title(title).read_only(read_only);
    if !read_only {
        // Notes are additive and do not touch anything outside the workspace.
        annotations = annotations.destructive(false).open_world(false);
    }
    Tool::new(name, description, Arc::new(schema)).with_annotations(annotations)
}

/// Checks `arguments` against the tool's published `inputSchema`.
///
/// Returns the JSON-RPC `-32602` message: it names the offending property, since a gateway
/// that maps REST fields onto schema properties needs to know which one it got wrong.
pub(crate) fn check_arguments(tool: &Tool, arguments: &JsonObject) -> Result<(), String> {
    let empty = JsonObject::new();
    let properties = tool
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, value) in arguments {
        let Some(schema) = properties.get(name) else {
            return Err(format!(
                "Invalid arguments for tool {}: unknown property '{name}'",
                tool.name
            ));
        };
        if !matches_schema(schema, value) {
            return Err(format!(
                "Invalid arguments for tool {}: property '{name}' must be {}",
                tool.name,
                describe(schema)
            ));
        }
    }
    let required = tool.input_schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        if !arguments.contains_key(name) {
            return Err(format!(
                "Invalid arguments for tool {}: missing required property '{name}'",
                tool.name
            ));
        }
    }
    Ok(())
}

fn matches_schema(schema: &Value, value: &Value) -> bool {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return false;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("object") => value.is_object(),
        Some("array") => value.as_array().is_some_and(|items| {
            let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
            items.iter().all(|item| matches_schema(&item_schema, item))
        }),
        _ => true,
    }
}

fn describe(schema: &Value) -> String {
    if let Some(allowed) = schema.get("enum") {
        return format!("one of {allowed}");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => {
            let item = schema.pointer("/items/type").and_then(Value::as_str);
            format!("an array of {}s", item.unwrap_or("value"))
        }
        Some("integer") => "an integer".to_owned(),
        Some("object") => "an object".to_owned(),
        Some(other) => format!("a {other}"),
        None => "valid".to_owned(),
    }
}
