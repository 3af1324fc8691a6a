//! The tenant-labelled families — `gateway_tool_calls_total{tenant,tool,outcome}`,
//! `gateway_rate_limited_total{tenant,reason}`, `gateway_upstream_sessions{tenant}` and
//! `gateway_circuit_open{tenant}` — kept as one small record per tenant and turned into
//! Prometheus series only when scraped.
//!
//! prometheus's own vectors store, in every series, a copy of the family's name, help text and
//! label names besides its label pairs: 350–550 bytes a series, 1.2 KiB for the three series
//! every tenant has (issue 8, heap profile of 1,000 idle tenants). Here a tenant costs its map
//! entry, a ~120-byte record and its (tool, outcome) and reason strings.
//!
//! Series appear as the vectors' did: a counter at its first increment, a gauge at its first
//! set; with the tenant label off, one record aggregates every tenant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use crate::tenants::TenantId;

const TOOL_CALLS: (&str, &str) = (
    "gateway_tool_calls_total",
    "Tool calls by outcome (`ok` or the error code).",
);
const RATE_LIMITED: (&str, &str) = ("gateway_rate_limited_total", "Calls refused by a limit.");
const SESSIONS: (&str, &str) = ("gateway_upstream_sessions", "Open upstream MCP sessions.");
const CIRCUIT_OPEN: (&str, &str) = (
    "gateway_circuit_open",
    "1 while a tenant's upstream circuit is open.",
);

/// Which of a record's two gauges.
#[derive(Clone, Copy)]
pub(super) enum TenantGauge {
    Sessions = 0,
    CircuitOpen = 1,
}

pub(super) struct TenantSeries {
    tenant_label: bool,
    descs: [Desc; 4],
    tenants: RwLock<HashMap<TenantId, Box<Record>>>,
    /// Every tenant's, when the tenant label is off.
    all: Record,
}

#[derive(Default)]
struct Record {
    /// By (tool, outcome).
    calls: Counts,
    /// By (reason, "").
    refused: Counts,
    /// `TenantGauge`-indexed; `None` until first set (no series yet).
    gauges: Mutex<[Option<i64>; 2]>,
}

#[derive(Default)]
struct Counts(RwLock<Vec<Count>>);

struct Count {
    a: Box<str>,
    b: Box<str>,
    n: AtomicU64,
}

impl Counts {
    fn inc(&self, a: &str, b: &str) {
        let hit = |c: &&Count| *c.a == *a && *c.b == *b;
        if let Some(c) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(hit)
        {
            c.n.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut all = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = all.iter().find(hit) {
            c.n.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // A tenant has a few (tool, outcome) pairs: grow by one, not by doubling.
        all.reserve_exact(1);
        all.push(Count {
            a: a.into(),
            b: b.into(),
            n: AtomicU64::new(1),
        });
    }

    fn snapshot(&self) -> Vec<(String, String, u64)> {
        let all = self.0.read().unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .map(|c| {
                (
                    c.a.to_string(),
                    c.b.to_string(),
                    c.n.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

impl Record {
    fn gauges(&self) -> [Option<i64>; 2] {
        *self.gauges.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TenantSeries {
    pub(super) fn new(tenant_label: bool) -> prometheus::Result<Self> {
        let desc = |(name, help): (&str, &str), rest: &[&str]| {
            let mut labels: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
            if tenant_label {
                labels.insert(0, "tenant".to_owned());
            }
            Desc::new(name.to_owned(), help.to_owned(), labels, HashMap::new())
        };
        Ok(Self {
            tenant_label,
            descs: [
                desc(TOOL_CALLS, &["tool", "outcome"])?,
                desc(RATE_LIMITED, &["reason"])?,
                desc(SESSIONS, &[])?,
                desc(CIRCUIT_OPEN, &[])?,
            ],
            tenants: RwLock::default(),
            all: Record::default(),
        })
    }

    /// Runs `f` on the tenant's record (made on first use).
    fn with<T>(&self, tenant: &TenantId, f: impl Fn(&Record) -> T) -> T {
        if !self.tenant_label {
            return f(&self.all);
        }
        if let Some(r) = self
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
        {
            return f(r);
        }
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        f(tenants.entry(tenant.clone()).or_default())
    }

    pub(super) fn tool_call(&self, tenant: &TenantId, tool: &str, outcome: &str) {
        self.with(tenant, |r| r.calls.inc(tool, outcome));
    }

    pub(super) fn rate_limited(&self, tenant: &TenantId, reason: &str) {
        self.with(tenant, |r| r.refused.inc(reason, ""));
    }

    /// Applies `f` to the gauge's value (0 before its first set).
    pub(super) fn update(&self, tenant: &TenantId, g: TenantGauge, f: impl Fn(i64) -> i64) {
        self.with(tenant, |r| {
            let mut gauges = r.gauges.lock().unwrap_or_else(PoisonError::into_inner);
            let v = &mut gauges[g as usize];
            *v = Some(f(v.unwrap_or(0)));
        });
    }

    /// Every tenant's record, the tenant's label pair beside it (none with the label off).
    fn records(&self) -> Vec<(Option<LabelPair>, Snapshot)> {
        if !self.tenant_label {
            return vec![(None, Snapshot::of(&self.all))];
        }
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        tenants
            .iter()
            .map(|(t, r)| (Some(pair("tenant", t.as_str())), Snapshot::of(r)))
            .collect()
    }
}

struct Snapshot {
    calls: Vec<(String, String, u64)>,
    refused: Vec<(String, String, u64)>,
    gauges: [Option<i64>; 2],
}

impl Snapshot {
    fn of(r: &Record) -> Self {
        Self {
            calls: r.calls.snapshot(),
            refused: r.refused.snapshot(),
            gauges: r.gauges(),
        }
    }
}

fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.to_owned());
    p.set_value(value.to_owned());
    p
}

/// A series: its label pairs (sorted by name, as prometheus's vectors keep them) and value.
fn series(mut labels: Vec<LabelPair>, kind: MetricType, value: f64) -> Metric {
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    let mut m = Metric::from_label(labels);
    if kind == MetricType::COUNTER {
        let mut c = Counter::default();
        c.set_value(value);
        m.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    }
    m
}

impl Collector for TenantSeries {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let kinds = [
            MetricType::COUNTER,
            MetricType::COUNTER,
            MetricType::GAUGE,
            MetricType::GAUGE,
        ];
        let mut series_of: [Vec<Metric>; 4] = Default::default();
        for (tenant, s) in self.records() {
            let with_tenant = |mut labels: Vec<LabelPair>| {
                labels.extend(tenant.clone());
                labels
            };
            for (tool, outcome, n) in s.calls {
                let labels = with_tenant(vec![pair("tool", &tool), pair("outcome", &outcome)]);
                series_of[0].push(series(labels, kinds[0], n as f64));
            }
            for (reason, _, n) in s.refused {
                let labels = with_tenant(vec![pair("reason", &reason)]);
                series_of[1].push(series(labels, kinds[1], n as f64));
            }
            for (i, v) in s.gauges.into_iter().enumerate() {
                if let Some(v) = v {
                    series_of[2 + i].push(series(with_tenant(Vec::new()), kinds[2 + i], v as f64));
                }
            }
        }
        self.descs
            .iter()
            .zip(kinds)
            .zip(series_of)
            .map(|((d, kind), metrics)| {
                let mut f = MetricFamily::default();
                f.set_name(d.fq_name.clone());
                f.set_help(d.help.clone());
                f.set_field_type(kind);
                f.set_metric(metrics);
                f
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

    use super::*;

    fn text(r: &Registry) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    /// The same events through prometheus's vectors and through `TenantSeries` give the same
    /// exposition, byte for byte, with the tenant label and without.
    #[test]
    fn the_exposition_is_the_one_prometheus_vectors_give() {
        for tenant_label in [true, false] {
            let (ours, theirs) = (Registry::new(), Registry::new());
            let series = TenantSeries::new(tenant_label).unwrap();
            let labels = |rest: &[&str]| -> Vec<String> {
                let mut v: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
                if tenant_label {
                    v.insert(0, "tenant".into());
                }
                v
            };
            let calls = IntCounterVec::new(
                Opts::new(TOOL_CALLS.0, TOOL_CALLS.1),
                &refs(&labels(&["tool", "outcome"])),
            )
            .unwrap();
            let refused = IntCounterVec::new(
                Opts::new(RATE_LIMITED.0, RATE_LIMITED.1),
                &refs(&labels(&["reason"])),
            )
            .unwrap();
            let sessions =
                IntGaugeVec::new(Opts::new(SESSIONS.0, SESSIONS.1), &refs(&labels(&[]))).unwrap();
            let circuit = IntGaugeVec::new(
                Opts::new(CIRCUIT_OPEN.0, CIRCUIT_OPEN.1),
                &refs(&labels(&[])),
            )
            .unwrap();
            let values = |tenant: &str, rest: &[&str]| -> Vec<String> {
                let mut v: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
                if tenant_label {
                    v.insert(0, tenant.into());
                }
                v
            };
            for (tenant, tool, outcome) in [
                ("globex", "get_contact", "ok"),
                ("acme", "search_conversations", "ok"),
                ("acme", "search_conversations", "ok"),
                ("acme", "get_contact", "not_found"),
                ("acme", "search_conversations", "upstream_timeout"),
            ] {
                series.tool_call(&t(tenant), tool, outcome);
                calls
                    .with_label_values(&refs(&values(tenant, &[tool, outcome])))
                    .inc();
            }
            for (tenant, reason) in [("acme", "tenant"), ("acme", "caller"), ("zeta", "quota")] {
                series.rate_limited(&t(tenant), reason);
                refused
                    .with_label_values(&refs(&values(tenant, &[reason])))
                    .inc();
            }
            for (tenant, delta) in [("acme", 2), ("globex", 1), ("acme", -1)] {
                series.update(&t(tenant), TenantGauge::Sessions, |v| v + delta);
                sessions
                    .with_label_values(&refs(&values(tenant, &[])))
                    .add(delta);
            }
            for (tenant, open) in [("acme", 1), ("beta", 0)] {
                series.update(&t(tenant), TenantGauge::CircuitOpen, |_| open);
                circuit
                    .with_label_values(&refs(&values(tenant, &[])))
                    .set(open);
            }
            ours.register(Box::new(series)).unwrap();
            for c in [calls, refused] {
                theirs.register(Box::new(c)).unwrap();
            }
            for g in [sessions, circuit] {
                theirs.register(Box::new(g)).unwrap();
            }
            let expected = text(&theirs);
            assert!(expected.contains("gateway_circuit_open"), "{expected}");
            assert_eq!(text(&ours), expected, "tenant label {tenant_label}");
        }
    }

    #[test]
    fn families_without_series_are_left_out() {
        let r = Registry::new();
        let series = TenantSeries::new(true).unwrap();
        series.tool_call(&t("acme"), "get_contact", "ok");
        r.register(Box::new(series)).unwrap();
        let out = text(&r);
        assert!(out.contains("gateway_tool_calls_total{"), "{out}");
        for absent in [RATE_LIMITED.0, SESSIONS.0, CIRCUIT_OPEN.0] {
            assert!(!out.contains(absent), "{absent} in {out}");
        }
    }
}
