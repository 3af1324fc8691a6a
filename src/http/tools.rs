//! Tenant-scoped tool endpoints: typed ones for Intercom's search/get tools, the tool list, and
//! the generic call for any tool the tenant's upstream lists.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::Authenticated;
use super::edge::CallSlot;
use super::extract::{Json, Path, Query, RawJson};
use super::toolcall::{list_tools as catalog_of, run_tool};
use crate::error::ApiError;
use crate::mcp::schema::{arguments_from_query, id_parameter};
use crate::mcp::{ToolResult, ToolSpec};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(search_contacts))
        .routes(routes!(get_contact))
        .routes(routes!(search))
        .routes(routes!(fetch_resource))
        .routes(routes!(list_tools))
        .routes(routes!(call_tool))
}

/// Filters for `search_conversations`; at least one besides paging is required.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConversationFilters {
    /// `open`, `closed` or `snoozed`.
    state: Option<String>,
    /// e.g. `email`, `conversation` (Messenger), `phone_call`.
    source_type: Option<String>,
    source_author_email: Option<String>,
    team_assignee_id: Option<String>,
    admin_assignee_id: Option<String>,
    /// Page size (Intercom: default 5, max 150).
    per_page: Option<String>,
    /// Cursor from the previous page's `pages.next.starting_after`.
    starting_after: Option<String>,
}

/// Filters for `search_contacts`; at least one besides paging is required.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactFilters {
    email: Option<String>,
    email_domain: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    per_page: Option<String>,
    starting_after: Option<String>,
}

const PAGING: [&str; 2] = ["per_page", "starting_after"];

/// The non-empty parameters, refusing a request with no filter besides paging (Intercom
/// rejects those at runtime; we do not spend an upstream call to learn it).
fn filters<'a>(
    pairs: &[(&'static str, &'a Option<String>)],
) -> Result<Vec<(&'static str, &'a str)>, ApiError> {
    let present: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    if present.iter().all(|(k, _)| PAGING.contains(k)) {
        let names: Vec<&str> = pairs
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !PAGING.contains(k))
            .collect();
        return Err(ApiError::InvalidRequest(format!(
            "at least one search filter is required: {}",
            names.join(", ")
        )));
    }
    Ok(present)
}

fn query_args(spec: &ToolSpec, params: &[(&str, &str)]) -> Result<Map<String, Value>, ApiError> {
    arguments_from_query(spec, params).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

fn id_args(spec: &ToolSpec, id: &str) -> Result<Map<String, Value>, ApiError> {
    let name = id_parameter(spec).map_err(|e| ApiError::Upstream(e.to_string()))?;
    let mut args = Map::new();
    args.insert(name, Value::String(id.to_owned()));
    Ok(args)
}

/// Ids arrive percent-decoded; Intercom URLs are accepted as ids, so only length and control
/// characters are checked here.
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 2048 || id.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(
            "`id` must be 1-2048 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// A typed endpoint's answer: `structuredContent`, else the first text block as JSON, else
/// `{"text": ...}` for a tool that answered plain text.
fn typed_body(result: &ToolResult) -> Result<RawJson, ApiError> {
    match result.json() {
        Some(raw) => Ok(RawJson(raw)),
        None => serde_json::value::to_raw_value(
            &serde_json::json!({ "text": result.first_text().unwrap_or_default() }),
        )
        .map(RawJson)
        .map_err(|e| ApiError::Internal(e.into())),
    }
}

/// Search conversations (`search_conversations`).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/conversations", tag = "intercom",
    params(("tenant_id" = String, Path), ConversationFilters),
    responses((status = 200, description = "the tool's JSON result (`total_in_page`, `conversations`, `pages`)", body = Object), crate::http::openapi::ToolErrors),
    security(("bearer" = [])))]
async fn search_conversations(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Extension(slot): Extension<CallSlot>,
    Path(tenant): Path<String>,
    Query(f): Query<ConversationFilters>,
) -> Result<RawJson, ApiError> {
    let params = filters(&[
        ("state", &f.state),
        ("source_type", &f.source_type),
        ("source_author_email", &f.source_author_email),
        ("team_assignee_id", &f.team_assignee_id),
        ("admin_assignee_id", &f.admin_assignee_id),
        ("per_page", &f.per_page),
        ("starting_after", &f.starting_after),
    ])?;
    let (_, r) = run_tool(
        &state,
        &caller,
        &slot,
        &tenant,
        "search_conversations",
        |s| query_args(s, &params),
    )
    .await?;
    typed_body(&r)
}

/// One conversation with its parts (`get_conversation`). `id` may be raw,
/// `conversation_<id>`, or a (percent-encoded) Intercom URL.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/conversations/{id}", tag = "intercom",
    params(("tenant_id" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "the conversation", body = Object), crate::http::openapi::ToolErrors),
    security(("bearer" = [])))]
async fn get_conversation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Extension(slot): Extension<CallSlot>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<RawJson, ApiError> {
    check_id(&id)?;
    let (_, r) = run_tool(&state, &caller, &slot, &tenant, "get_conversation", |s| {
        id_args(s, &id)
    })
    .await?;
    typed_body(&r)
}

/// Search contacts (`search_contacts`).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/contacts", tag = "intercom",
    params(("tenant_id" = String, Path), ContactFilters),
    responses((status = 200, description = "the tool's JSON result (`total_in_page`, `data`, `pages`)", body = Object), crate::http::openapi::ToolErrors),
    security(("bearer" = [])))]
async fn search_contacts(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Extension(slot): Extension<CallSlot>,
    Path(tenant): Path<String>,
    Query(f): Query<ContactFilters>,
) -> Result<RawJson, ApiError> {
    let params = filters(&[
        ("email", &f.email),
        ("email_domain", &f.email_domain),
        ("name", &f.name),
        ("phone", &f.phone),
        ("per_page", &f.per_page),
        ("starting_after", &f.starting_after),
    ])?;
    let (_, r) = run_tool(&state, &caller, &slot, &tenant, "search_contacts", |s| {
        query_args(s, &params)
    })
    .await?;
    typed_body(&r)
}

/// One contact (`get_contact`).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/contacts/{id}", tag = "intercom",
    params(("tenant_id" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "the contact", body = Object), crate::http::openapi::ToolErrors),
    security(("bearer" = [])))]
async fn get_contact(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Extension(slot): Extension<CallSlot>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<RawJson, ApiError> {
    check_id(&id)?;
    let (_, r) = run_tool(&state, &caller, &slot, &tenant, "get_contact", |s| {
        id_args(s, &id)
    })
    .await?;
    typed_body(&r)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Intercom's search DSL; must name `object_type:conversations` or `object_type:contacts`.
    #[schema(example = "object_type:conversations state:open source_type:email")]
    query: String,
}

/// Whether the DSL query names an object type, reading whitespace-separated tokens outside
/// double quotes.
fn names_object_type(query: &str) -> bool {
    let mut token = String::new();
    let mut quoted = false;
    let mut found = false;
    for c in query.chars().chain(std::iter::once(' ')) {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                found |= token == "object_type:conversations" || token == "object_type:contacts";
                token.clear();
            }
            c => token.push(c),
        }
    }
    found
}

/// Universal search (`search`) with Intercom's query DSL.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/search", tag = "intercom",
    params(("tenant_id" = String, Path)), request_body = SearchRequest,
    responses((status = 200, description = "the tool's JSON result (`total_in_page`, `results`, `pages`)", body = Object), crate::http::openapi::ToolErrors),
    security(("bearer" = [])))]
async fn search(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Extension(slot): Extension<CallSlot>,
    Path(tenant): Path<String>,
    Json(body): Json<SearchRequest>,
) -> Result<RawJson, ApiError> {
    if body.query.len() > 4096 {
        return Err(ApiError::InvalidRequest(
            "`query` must be at most 4096 characters".into(),
        ));
    }
    if !names_object_type(&body.query) {
        return Err(ApiError::InvalidRequest(
            "`query` must contain `object_type:conversations` or `object_type:contacts`".into(),
        ));
    }
    let (_, r) = run_tool(&state, &caller, &slot, &tenant, "search", |s| {
        // The query goes to the tool's single required string property (`query` at Intercom).
        let name = id_parameter(s).unwrap_or_else(|_| "query".to_owned());
        let mut args = Map::new();
        args.insert(name, Value::String(body.query.clone()));
        Ok(args)
    })
    .await?;
    typed_body(&r)
}

/// Fetch any resource by prefixed id or URL (`fetch`).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/resources/{id}", tag = "intercom",
    params(("tenant_id" = String, Path), ("id" = String, Path, description = "`conversation_<id>`, `contact_<id>`, `company_<id>` or an Intercom URL")),
    responses((status = 200, description = "the resource", body = Object), crate::http::openapi::ToolErrors),
    security(("bearer" = [])))]
async fn fetch_resource(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Extension(slot): Extension<CallSlot>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<RawJson, ApiError> {
    check_id(&id)?;
    let (_, r) = run_tool(&state, &caller, &slot, &tenant, "fetch", |s| {
        id_args(s, &id)
    })
    .await?;
    typed_body(&r)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolView {
    name: String,
    title: Option<String>,
    description: Option<String>,
    /// The tool's JSON Schema for its arguments, as the upstream declares it.
    #[schema(value_type = Object)]
    input_schema: Value,
    /// From the upstream's `readOnlyHint`; `false` tools need `intercom:write`.
    read_only: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolList {
    tools: Vec<ToolView>,
}

/// The tools this tenant's Intercom workspace offers (all pages, cached per tenant).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/tools", tag = "intercom",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = ToolList), crate::http::openapi::ToolErrors),
    security(("bearer" = [])))]
async fn list_tools(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Extension(slot): Extension<CallSlot>,
    Path(tenant): Path<String>,
) -> Result<Json<ToolList>, ApiError> {
    let tools = catalog_of(&state, &caller, &slot, &tenant).await?;
    Ok(Json(ToolList {
        tools: tools
            .into_iter()
            .map(|t| ToolView {
                name: t.name,
                title: t.title,
                description: t.description,
                input_schema: Value::Object((*t.input_schema).clone()),
                read_only: t.read_only,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The tool's arguments, as its `input_schema` describes them.
    #[serde(default)]
    #[schema(value_type = Object)]
    arguments: Map<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallResponse {
    tool: String,
    /// The MCP content blocks, unchanged.
    #[schema(value_type = Vec<Object>)]
    content: Box<RawValue>,
    /// The tool's `structuredContent`, if any.
    #[schema(value_type = Option<Object>)]
    structured_content: Option<Box<RawValue>>,
    /// `structured_content`, else the first text block parsed as JSON, else null.
    #[schema(value_type = Option<Object>)]
    data: Option<Box<RawValue>>,
}

impl IntoResponse for CallResponse {
    /// Serialized into a buffer of its final size: the result's text is most of the body
    /// (often twice: escaped in `content`, as JSON in `data`), and a growing buffer would copy
    /// it at every doubling.
    fn into_response(self) -> Response {
        let raw = |r: &Option<Box<RawValue>>| r.as_ref().map_or(4, |r| r.get().len());
        let size = 64
            + self.tool.len()
            + self.content.get().len()
            + raw(&self.structured_content)
            + raw(&self.data);
        let mut body = Vec::with_capacity(size);
        match serde_json::to_writer(&mut body, &self) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => ApiError::Internal(e.into()).into_response(),
        }
    }
}

/// MCP tool names (SEP-986): 1-128 characters of letters, digits, `_`, `-`, `.`.
fn check_tool_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(
            "`tool_name` must be 1-128 characters of letters, digits, `_`, `-`, `.`".into(),
        ))
    }
}

/// Call any tool the tenant's upstream lists. Tools without `readOnlyHint: true` need
/// `intercom:write`.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/tools/{tool_name}/calls", tag = "intercom",
    params(("tenant_id" = String, Path), ("tool_name" = String, Path)), request_body = CallRequest,
    responses((status = 200, body = CallResponse), crate::http::openapi::ToolErrors),
    security(("bearer" = [])))]
async fn call_tool(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Extension(slot): Extension<CallSlot>,
    Path((tenant, tool)): Path<(String, String)>,
    Json(body): Json<CallRequest>,
) -> Result<CallResponse, ApiError> {
    check_tool_name(&tool)?;
    let (spec, r) = run_tool(&state, &caller, &slot, &tenant, &tool, |_| {
        Ok(body.arguments)
    })
    .await?;
    let data = r.json();
    Ok(CallResponse {
        tool: spec.name,
        content: r.content,
        structured_content: r.structured_content,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::names_object_type;

    #[test]
    fn object_type_must_be_a_token_of_its_own() {
        assert!(names_object_type("object_type:conversations state:open"));
        assert!(names_object_type(
            "email_domain:\"a b\" object_type:contacts"
        ));
        assert!(!names_object_type("state:open"));
        assert!(!names_object_type("q:\"object_type:contacts\""));
        assert!(!names_object_type("object_type:companies"));
    }
}
