//! What the gateway does with the upstream's own messages on a session: it listens for
//! `notifications/tools/list_changed` (MCP server features §Tools, "List Changed
//! Notification") and marks the tenant's cached tool catalog stale, so the next read refetches
//! it. Everything else keeps rmcp's defaults (the gateway offers no client capabilities).
//!
//! Where the notification arrives: it is not tied to a request, so a server sends it on the
//! session's standalone SSE stream (the `GET` rmcp opens right after `initialize`; MCP
//! transports §Listening for Messages from the Server). A server without that stream (405 on
//! the `GET`) can only put it on the SSE answer of a POST that is in flight; rmcp hands both to
//! this handler the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rmcp::ClientHandler;
use rmcp::model::ClientConfig;
use rmcp::service::{NotificationContext, RoleClient};

use crate::tenants::TenantId;

/// Set by any session of a pool when its upstream says the tool list changed; cleared by the
/// pool when it refetches the list.
#[derive(Debug, Default, Clone)]
pub(super) struct CatalogStale(Arc<AtomicBool>);

impl CatalogStale {
    pub(super) fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the list changed since the last call; clears the mark.
    pub(super) fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

pub(super) struct Handler {
    pub(super) info: ClientConfig,
    pub(super) tenant: TenantId,
    pub(super) stale: CatalogStale,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::info!(tenant = %self.tenant, "upstream tool list changed; catalog will be refetched");
        self.stale.mark();
    }
}
