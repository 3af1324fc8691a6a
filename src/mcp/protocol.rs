//! Which MCP generation a tenant's upstream speaks, and how a new session finds out.
//!
//! Two generations exist (`shared/research/intercom-mcp.md` §3):
//! - **session** (revisions ≤ 2025-11-25): `initialize` + `notifications/initialized`, then
//!   `Mcp-Session-Id` on every request, `DELETE` at the end;
//! - **stateless** (2026-07-28): no handshake and no session id; every request carries its
//!   protocol version and client capabilities in `_meta` plus the `Mcp-Method`/`Mcp-Name`
//!   headers, and `server/discover` says what the server supports.
//!
//! `GATEWAY_UPSTREAM_PROTOCOL=auto` probes the way the 2026-07-28 transport spec recommends
//! for a dual-era client (§Backward Compatibility: "attempt a modern request first"):
//! `server/discover` first; a 4xx without a recognised modern JSON-RPC error (or 10 s of
//! silence) means a session-based server, and `initialize` follows on the same transport. rmcp
//! implements exactly that (`ClientLifecycleMode::Auto`). Initialize-first would never reach a
//! stateless-only server and would pin a dual-era server to 2025-11-25 sessions forever; the
//! price of discover-first is one extra POST per tenant pool against today's Intercom.
//!
//! The answer is a property of the server, so it is cached per tenant pool (versioning §
//! Backward Compatibility: clients SHOULD cache the era per origin) and later sessions of the
//! pool open in that mode directly; a cached mode that stops working is forgotten and the next
//! session probes again.

use std::sync::Mutex;

use rmcp::model::ProtocolVersion;
use rmcp::service::ClientLifecycleMode;
use serde::Serialize;
use utoipa::ToSchema;

/// `GATEWAY_UPSTREAM_PROTOCOL`: which MCP generation the gateway speaks upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamProtocol {
    /// Probe with `server/discover`; fall back to `initialize` for session-based servers.
    #[default]
    Auto,
    /// Only the session-based revisions (`initialize`, `Mcp-Session-Id`; offers 2025-11-25).
    Session,
    /// Only the stateless 2026-07-28 revision (`server/discover`, no session id).
    Stateless,
}

impl UpstreamProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamProtocol::Auto => "auto",
            UpstreamProtocol::Session => "session",
            UpstreamProtocol::Stateless => "stateless",
        }
    }
}

/// The generation a session ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Session,
    Stateless,
}

impl Mode {
    pub(super) fn of(version: &ProtocolVersion) -> Mode {
        if version.has_initialize() {
            Mode::Session
        } else {
            Mode::Stateless
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Mode::Session => "session",
            Mode::Stateless => "stateless",
        }
    }
}

/// How the next session of a pool opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// `server/discover`, falling back to `initialize` (nothing learned yet).
    Probe,
    /// `initialize` only.
    Initialize,
    /// `server/discover` only.
    Discover,
}

impl Plan {
    pub(super) fn lifecycle(self) -> ClientLifecycleMode {
        let modern = vec![ProtocolVersion::V_2026_07_28];
        match self {
            Plan::Initialize => ClientLifecycleMode::Initialize,
            Plan::Discover => ClientLifecycleMode::Discover {
                preferred_versions: modern,
            },
            Plan::Probe => ClientLifecycleMode::Auto {
                preferred_versions: modern,
                legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
            },
        }
    }
}

/// What a tenant's upstream negotiated, as `GET .../sessions` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProtocolInfo {
    /// `GATEWAY_UPSTREAM_PROTOCOL`: `auto`, `session` or `stateless`.
    pub setting: &'static str,
    /// `session` (initialize + `Mcp-Session-Id`, revisions up to 2025-11-25) or `stateless`
    /// (2026-07-28: `server/discover`, no session id, per-request `_meta`).
    pub mode: &'static str,
    /// The negotiated MCP revision, e.g. `2025-11-25` or `2026-07-28`.
    pub version: String,
}

/// One pool's negotiation state: the setting and what the upstream turned out to speak.
pub(super) struct Negotiation {
    setting: UpstreamProtocol,
    learned: Mutex<Option<(Mode, String)>>,
}

impl Negotiation {
    pub(super) fn new(setting: UpstreamProtocol) -> Self {
        Self {
            setting,
            learned: Mutex::new(None),
        }
    }

    pub(super) fn plan(&self) -> Plan {
        match self.setting {
            UpstreamProtocol::Session => Plan::Initialize,
            UpstreamProtocol::Stateless => Plan::Discover,
            UpstreamProtocol::Auto => match self.learned().map(|(mode, _)| mode) {
                None => Plan::Probe,
                Some(Mode::Session) => Plan::Initialize,
                Some(Mode::Stateless) => Plan::Discover,
            },
        }
    }

    pub(super) fn learn(&self, mode: Mode, version: &str) {
        if let Ok(mut g) = self.learned.lock() {
            *g = Some((mode, version.to_owned()));
        }
    }

    /// A session opened in the cached mode failed for a protocol reason (not an outage): the
    /// server may have changed generation, so the next session probes again.
    pub(super) fn forget(&self) {
        if self.setting == UpstreamProtocol::Auto
            && let Ok(mut g) = self.learned.lock()
        {
            *g = None;
        }
    }

    fn learned(&self) -> Option<(Mode, String)> {
        self.learned.lock().ok().and_then(|g| g.clone())
    }

    pub(super) fn info(&self) -> Option<ProtocolInfo> {
        self.learned().map(|(mode, version)| ProtocolInfo {
            setting: self.setting.as_str(),
            mode: mode.as_str(),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_probes_until_it_learns_then_opens_in_the_learned_mode() {
        let n = Negotiation::new(UpstreamProtocol::Auto);
        assert_eq!(n.plan(), Plan::Probe);
        assert!(n.info().is_none());
        n.learn(Mode::Stateless, "2026-07-28");
        assert_eq!(n.plan(), Plan::Discover);
        let info = n.info().unwrap();
        assert_eq!((info.setting, info.mode), ("auto", "stateless"));
        assert_eq!(info.version, "2026-07-28");
        n.learn(Mode::Session, "2025-11-25");
        assert_eq!(n.plan(), Plan::Initialize);
        n.forget();
        assert_eq!(n.plan(), Plan::Probe);
    }

    #[test]
    fn a_fixed_setting_never_probes_and_never_forgets_its_mode() {
        let n = Negotiation::new(UpstreamProtocol::Session);
        assert_eq!(n.plan(), Plan::Initialize);
        n.forget();
        assert_eq!(n.plan(), Plan::Initialize);
        assert_eq!(
            Negotiation::new(UpstreamProtocol::Stateless).plan(),
            Plan::Discover
        );
    }

    #[test]
    fn the_mode_follows_whether_the_revision_has_a_handshake() {
        assert_eq!(Mode::of(&ProtocolVersion::V_2025_11_25), Mode::Session);
        assert_eq!(Mode::of(&ProtocolVersion::V_2025_03_26), Mode::Session);
        assert_eq!(Mode::of(&ProtocolVersion::V_2026_07_28), Mode::Stateless);
    }
}
