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
//! price of discover-first is one extra POST per upstream URL against today's Intercom.
//!
//! The answer is a property of the server, so it is cached per upstream URL for every tenant
//! ([`Eras`]; versioning § Backward Compatibility: clients SHOULD cache the era per origin) and
//! later sessions, any tenant's, open in that mode directly; a cached mode that stops working is
//! forgotten and the next session probes again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// What each upstream URL turned out to speak, shared by every tenant's pool (versioning §
/// Backward Compatibility: clients SHOULD cache the era per origin). Without it, the first session
/// of every tenant probed again (`server/discover` before `initialize`: one more round trip on
/// each tenant's first call); with it only the first tenant per region probes. Bounded: the
/// gateway talks to a handful of URLs (Intercom's regions), so a full map is simply cleared.
#[derive(Default)]
pub(super) struct Eras(Mutex<HashMap<Arc<str>, (Mode, String)>>);

const MAX_ORIGINS: usize = 64;

impl Eras {
    fn get(&self, origin: &str) -> Option<(Mode, String)> {
        self.0.lock().ok()?.get(origin).cloned()
    }

    fn set(&self, origin: &Arc<str>, learned: Option<(Mode, String)>) {
        let Ok(mut map) = self.0.lock() else { return };
        match learned {
            Some(l) => {
                if map.len() >= MAX_ORIGINS && !map.contains_key(origin) {
                    map.clear();
                }
                map.insert(origin.clone(), l);
            }
            None => {
                map.remove(origin);
            }
        }
    }
}

/// One pool's negotiation state: the setting, and what its upstream URL turned out to speak.
pub(super) struct Negotiation {
    setting: UpstreamProtocol,
    origin: Arc<str>,
    eras: Arc<Eras>,
}

impl Negotiation {
    pub(super) fn new(setting: UpstreamProtocol, origin: Arc<str>, eras: Arc<Eras>) -> Self {
        Self {
            setting,
            origin,
            eras,
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
        self.eras
            .set(&self.origin, Some((mode, version.to_owned())));
    }

    /// A session opened in the cached mode failed for a protocol reason (not an outage): the
    /// server may have changed generation, so the next session (of any tenant on that URL)
    /// probes again.
    pub(super) fn forget(&self) {
        if self.setting == UpstreamProtocol::Auto {
            self.eras.set(&self.origin, None);
        }
    }

    fn learned(&self) -> Option<(Mode, String)> {
        self.eras.get(&self.origin)
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
        let n = Negotiation::new(UpstreamProtocol::Auto, "u".into(), Arc::default());
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
        let n = Negotiation::new(UpstreamProtocol::Session, "u".into(), Arc::default());
        assert_eq!(n.plan(), Plan::Initialize);
        n.forget();
        assert_eq!(n.plan(), Plan::Initialize);
        assert_eq!(
            Negotiation::new(UpstreamProtocol::Stateless, "u".into(), Arc::default()).plan(),
            Plan::Discover
        );
    }

    #[test]
    fn what_one_pool_learns_is_shared_by_every_pool_on_the_same_url() {
        let eras = Arc::new(Eras::default());
        let a = Negotiation::new(UpstreamProtocol::Auto, "us".into(), eras.clone());
        let b = Negotiation::new(UpstreamProtocol::Auto, "us".into(), eras.clone());
        let eu = Negotiation::new(UpstreamProtocol::Auto, "eu".into(), eras.clone());
        a.learn(Mode::Session, "2025-11-25");
        assert_eq!(b.plan(), Plan::Initialize);
        assert_eq!(b.info().unwrap().version, "2025-11-25");
        assert_eq!(eu.plan(), Plan::Probe);
        // A protocol failure in one pool makes every pool on that URL probe again.
        b.forget();
        assert_eq!(a.plan(), Plan::Probe);
        assert_eq!(eu.plan(), Plan::Probe);
    }

    #[test]
    fn the_mode_follows_whether_the_revision_has_a_handshake() {
        assert_eq!(Mode::of(&ProtocolVersion::V_2025_11_25), Mode::Session);
        assert_eq!(Mode::of(&ProtocolVersion::V_2025_03_26), Mode::Session);
        assert_eq!(Mode::of(&ProtocolVersion::V_2026_07_28), Mode::Stateless);
    }
}
