//! The MCP side: an rmcp `ServerHandler` answering `tools/list` and `tools/call`.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::FakeProtocol;
use super::call::{self, Call, Output};
use super::state::AppState;
use super::tools::{self, ToolKind};

/// Request extension set by the auth middleware: the workspace the bearer token belongs to.
/// rmcp hands the HTTP `Parts` of each POST to the handler, so the workspace is resolved per
/// request, never per session.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub workspace: Arc<str>,
    /// The bearer token, for the per-token wire counters.
    pub token: Arc<str>,
}

#[derive(Clone)]
pub(crate) struct FakeServer {
    state: Arc<AppState>,
}

impl FakeServer {
    pub(crate) fn new(state: Arc<AppState>) -> FakeServer {
        FakeServer { state }
    }
}

fn tenant(context: &RequestContext<RoleServer>) -> Result<Tenant, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Tenant>())
        .cloned()
        .ok_or_else(|| {
            ErrorData::internal_error("request reached the tools without a tenant", None)
        })
}

impl ServerHandler for FakeServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
        .with_server_info(Implementation::new(
            "intercom-mcp-fake",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Fake Intercom MCP server for tests. Search and read conversations, contacts and \
                 companies of the workspace the bearer token belongs to.",
        )
    }

    /// Intercom advertises nothing about 2026-07-28 (stateless MCP), so by default neither do
    /// we: an `initialize` offering it is answered with 2025-11-25. The other modes serve the
    /// stateless revision only, or both (rmcp negotiates `initialize` down to the newest
    /// revision that still has the handshake, 2025-11-25, and serves 2026-07-28 `_meta`
    /// requests statelessly).
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        match self.state.protocol {
            FakeProtocol::Session => {
                Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
            }
            FakeProtocol::Stateless => Cow::Owned(vec![ProtocolVersion::V_2026_07_28]),
            FakeProtocol::Both => {
                Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2026_07_28))
            }
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let extra = self.state.extra_tools(&tenant(&context)?.workspace);
        let all: Vec<Tool> = tools::catalog().iter().cloned().chain(extra).collect();
        let size = self.state.tools_page_size;
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(cursor) => cursor
                .strip_prefix("tools:")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n < all.len())
                .ok_or_else(|| {
                    ErrorData::invalid_params(format!("Invalid cursor: {cursor}"), None)
                })?,
        };
        let end = (start + size).min(all.len());
        let mut result = ListToolsResult::with_all_items(all[start..end].to_vec());
        result.next_cursor = (end < all.len()).then(|| format!("tools:{end}"));
        Ok(result)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::find(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.as_ref();
        let (Some(tool), Some(kind)) = (tools::find(name), ToolKind::parse(name)) else {
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {name}"),
                None,
            ));
        };
        let arguments = request.arguments.clone().unwrap_or_default();
        tools::check_arguments(tool, &arguments)
            .map_err(|message| ErrorData::invalid_params(message, None))?;
        let tenant = tenant(&context)?;

        // Progress is only observable on an SSE answer; in JSON mode it would be dropped.
        let progress_token = context.meta.get_progress_token();
        if let (Some(token), false) = (&progress_token, self.state.json_response) {
            let note = ProgressNotificationParam::new(token.clone(), 1.0)
                .with_total(2.0)
                .with_message("querying Intercom");
            if context.peer.notify_progress(note).await.is_ok() {
                self.state
                    .count(&tenant.token, |s| s.progress_notifications += 1);
            }
        }
        let latency = self.state.latency();
        if !latency.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(latency) => {}
                () = context.ct.cancelled() => {
                    self.state.count(&tenant.token, |s| s.cancelled_calls += 1);
                    return Err(ErrorData::internal_error("request cancelled", None));
                }
            }
        }
        if let (Some(token), false) = (progress_token, self.state.json_response) {
            let note = ProgressNotificationParam::new(token, 2.0)
                .with_total(2.0)
                .with_message("formatting results");
            if context.peer.notify_progress(note).await.is_ok() {
                self.state
                    .count(&tenant.token, |s| s.progress_notifications += 1);
            }
        }

        let data = self.state.data(&tenant.workspace);
        let call = Call {
            state: &self.state,
            workspace: &tenant.workspace,
            data: &data,
            args: &arguments,
        };
        tracing::debug!(workspace = %tenant.workspace, tool = name, "fake tools/call");
        let result = match call::run(kind, &call) {
            Ok(Output::Text(value)) => {
                CallToolResult::success(vec![ContentBlock::text(value.to_string())])
            }
            Ok(Output::Structured(value)) => CallToolResult::structured(value),
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        Ok(result.into())
    }

    /// Remembers the session's peer, so the `add_tool` knob can tell it the list changed.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let tenant = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Tenant>())
            .cloned();
        if let Some(tenant) = tenant {
            self.state.register_peer(tenant.workspace, context.peer);
        }
    }
}
