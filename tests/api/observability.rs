//! Metrics, traces and logs, observed the way an operator's tools see them: `/metrics` through a
//! text-format parser, spans through an OTLP/HTTP receiver, logs as captured JSON lines.

use std::collections::BTreeSet;
use std::time::Duration;

use intercom_mcp_gateway::fake_intercom::Fault;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{
    JWT_SECRET, TestApp, admin, assert_problem, captured_logs, intercom_token, mint, mint_with,
    spawn_app, spawn_app_with,
};
use crate::otlp::{SpanRecord, spans_of};
use crate::prom::Exposition;

const CONVERSATIONS: &str = "/v1/tenants/{tenant_id}/conversations";

async fn scrape(app: &crate::helpers::TestApp) -> Exposition {
    let text = app.metrics().await;
    Exposition::parse(&text).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{text}"))
}

#[sqlx::test(migrations = false)]
async fn every_named_series_is_exported_with_its_labels_and_moves_after_calls(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let start = scrape(&app).await;
    // Exported from start-up, so rate() and absent() work before the first event.
    for name in [
        "gateway_usage_events_written_total",
        "gateway_usage_events_dropped_total",
    ] {
        assert_eq!(start.types.get(name).map(String::as_str), Some("counter"));
        assert_eq!(start.value(name, &[]), Some(0.0), "{name}");
    }
    for event in [
        "initialized",
        "expired",
        "reinitialized",
        "closed",
        "failed",
    ] {
        assert_eq!(
            start.value("gateway_upstream_session_events_total", &[("event", event)]),
            Some(0.0),
            "{event}"
        );
    }
    assert_eq!(
        start.value(
            "gateway_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(!start.find(name, &[]).is_empty(), "{name} missing");
    }
    assert_eq!(
        start.value("gateway_db_pool_max_connections", &[]),
        Some(16.0)
    );
    assert!(
        start
            .value("gateway_db_pool_connections", &[("state", "idle")])
            .is_some_and(|v| v >= 1.0),
        "the migration left an idle connection"
    );
    assert!(
        start
            .value("gateway_db_pool_connections", &[("state", "in_use")])
            .is_some()
    );

    let token = app.add_tenant("acme").await;
    for _ in 0..2 {
        let res = app
            .get("/v1/tenants/acme/conversations?state=open", &token)
            .await;
        assert_eq!(res.status(), 200);
    }
    let res = app
        .post(
            "/v1/tenants/acme/tools/no_such_tool/calls",
            &token,
            json!({"arguments": {}}),
        )
        .await;
    assert_problem(res, 404, "tool_not_found").await;
    app.fake.inject_fault(Fault {
        status: 429,
        count: 1,
        retry_after_secs: Some(1),
        token: None,
    });
    let res = app
        .get("/v1/tenants/acme/conversations?state=open", &token)
        .await;
    assert_problem(res, 429, "upstream_rate_limited").await;
    // The tenant is held back until Intercom's Retry-After has passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mid = scrape(&app).await;
    let route = [
        ("route", CONVERSATIONS),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(mid.value("gateway_http_requests_total", &route), Some(2.0));
    assert_eq!(
        mid.types["gateway_http_request_duration_seconds"],
        "histogram"
    );
    let count = mid
        .value(
            "gateway_http_request_duration_seconds_count",
            &[("route", CONVERSATIONS)],
        )
        .unwrap();
    assert_eq!(count, 3.0, "two 200s and a 429");
    // Buckets resolve both a sub-millisecond refusal and a call near the upstream timeout.
    let les: BTreeSet<String> = mid
        .find("gateway_http_request_duration_seconds_bucket", &[])
        .iter()
        .map(|s| s.labels["le"].clone())
        .collect();
    for le in ["0.0001", "0.0005", "1", "30", "60", "+Inf"] {
        assert!(les.contains(le), "no le={le} bucket in {les:?}");
    }
    let ok = [
        ("tenant", "acme"),
        ("tool", "search_conversations"),
        ("outcome", "ok"),
    ];
    assert_eq!(mid.value("gateway_tool_calls_total", &ok), Some(2.0));
    assert_eq!(
        mid.value(
            "gateway_tool_calls_total",
            &[
                ("tenant", "acme"),
                ("tool", "unknown"),
                ("outcome", "tool_not_found")
            ]
        ),
        Some(1.0),
        "a tool the upstream does not list is `unknown`: callers cannot mint series"
    );
    assert!(
        mid.value(
            "gateway_tool_call_duration_seconds_count",
            &[("tool", "search_conversations")]
        )
        .is_some_and(|c| c >= 2.0)
    );
    assert_eq!(
        mid.value(
            "gateway_rate_limited_total",
            &[("tenant", "acme"), ("reason", "upstream")]
        ),
        Some(1.0)
    );
    assert_eq!(
        mid.value("gateway_upstream_sessions", &[("tenant", "acme")]),
        Some(1.0)
    );
    assert_eq!(
        mid.value(
            "gateway_upstream_session_events_total",
            &[("event", "initialized")]
        ),
        Some(1.0)
    );
    assert!(mid.find("gateway_credentials_rejected", &[]).is_empty());

    // Intercom revokes the token: the tenant shows up as needing re-auth, its sessions close.
    app.fake.revoke_token(&intercom_token("acme"));
    let res = app
        .get("/v1/tenants/acme/conversations?state=open", &token)
        .await;
    assert_problem(res, 409, "intercom_reauth_required").await;
    let end = scrape(&app).await;
    assert_eq!(
        end.value("gateway_credentials_rejected", &[("tenant", "acme")]),
        Some(1.0)
    );
    assert_eq!(
        end.value("gateway_upstream_sessions", &[("tenant", "acme")]),
        Some(0.0)
    );
    assert!(
        end.value(
            "gateway_upstream_session_events_total",
            &[("event", "closed")]
        )
        .is_some_and(|v| v >= 1.0)
    );

    // Label sets as PRODUCT.md names them; no concrete path ever becomes a label value.
    for (name, labels) in [
        ("gateway_http_requests_total", "method,route,status"),
        ("gateway_http_request_duration_seconds_count", "route"),
        ("gateway_tool_calls_total", "outcome,tenant,tool"),
        ("gateway_tool_call_duration_seconds_count", "tool"),
        ("gateway_upstream_sessions", "tenant"),
        ("gateway_upstream_session_events_total", "event"),
        ("gateway_rate_limited_total", "reason,tenant"),
        ("gateway_credentials_rejected", "tenant"),
        ("gateway_build_info", "version"),
    ] {
        assert_eq!(end.label_names(name).join(","), labels, "{name}");
    }
    for s in &end.samples {
        if let Some(route) = s.labels.get("route") {
            assert!(
                route == "unmatched" || route.starts_with('/') && !route.contains("acme"),
                "route label {route} is not a template"
            );
        }
    }
}

#[sqlx::test(migrations = false)]
async fn the_tenant_label_can_be_dropped_for_large_fleets(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with(db, Default::default(), &["--metrics-tenant-label", "false"]).await;
    let token = app.add_tenant("acme").await;
    app.get("/v1/tenants/acme/conversations?state=open", &token)
        .await;
    app.fake.revoke_token(&intercom_token("acme"));
    app.get("/v1/tenants/acme/conversations?state=open", &token)
        .await;
    let m = scrape(&app).await;
    assert!(
        m.samples.iter().all(|s| !s.labels.contains_key("tenant")),
        "a tenant label is left"
    );
    assert_eq!(
        m.value(
            "gateway_tool_calls_total",
            &[("tool", "search_conversations"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(m.value("gateway_credentials_rejected", &[]), Some(1.0));
}

fn span<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        panic!("no span {name} in {names:?}")
    })
}

/// A caller's traced `GET conversations` (parent span `CALLER_SPAN` of a fresh trace): its
/// trace id and the spans exported for it, once the server and `mcp.tools_call` spans are in.
async fn traced_call(app: &TestApp, token: &str) -> (String, Vec<SpanRecord>) {
    let trace_id = format!("{:032x}", rand_u128());
    let res = app
        .http
        .get(format!(
            "{}/v1/tenants/acme/conversations?state=open",
            app.base
        ))
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let server_name = format!("GET {CONVERSATIONS}");
    let spans = spans_of(&trace_id, |s| {
        s.iter().any(|s| s.name == server_name) && s.iter().any(|s| s.name == "mcp.tools_call")
    })
    .await;
    (trace_id, spans)
}

const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A tenant served from the directory's cache has no `db.load_tenant` span: the span belongs
/// to the Postgres read, which only a miss makes (before, every call built and exported one).
/// Likewise `auth` belongs to verifying a token the cache does not hold, and `pool.acquire` to
/// opening a session or waiting for a slot: a steady-state call has neither.
#[sqlx::test(migrations = false)]
async fn only_a_cache_miss_or_a_wait_has_its_own_span(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let mut counts = Vec::new();
    for _ in 0..2 {
        let (_, spans) = traced_call(&app, &token).await;
        let count = |name: &str| spans.iter().filter(|s| s.name == name).count();
        counts.push([
            count("db.load_tenant"),
            count("auth"),
            count("pool.acquire"),
        ]);
        assert_eq!(count("mcp.tools_call"), 1);
    }
    assert_eq!(counts, [[1, 1, 1], [0, 0, 0]], "misses, then cache hits");
}

#[sqlx::test(migrations = false)]
async fn one_trace_runs_from_the_caller_through_the_gateway_to_intercom(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let token = app.add_tenant("acme").await;
    let (trace_id, spans) = traced_call(&app, &token).await;
    let server_name = format!("GET {CONVERSATIONS}");
    let server = span(&spans, &server_name);
    assert_eq!(
        server.parent_span_id, CALLER_SPAN,
        "continues the caller's span"
    );
    assert_eq!(server.attr("http.route"), Some(CONVERSATIONS));
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    assert_eq!(server.attr("tenant"), Some("acme"));
    assert_eq!(server.attr("caller"), Some("svc-acme"));
    assert_eq!(server.attr("tool"), Some("search_conversations"));
    assert_eq!(server.attr("outcome"), Some("ok"));
    assert_eq!(
        server.resource.get("service.name").map(String::as_str),
        Some("intercom-mcp-gateway")
    );
    assert_eq!(span(&spans, "auth").attr("outcome"), Some("ok"));
    span(&spans, "db.load_tenant");
    span(&spans, "pool.acquire");
    let init = span(&spans, "mcp.initialize");
    assert_eq!(init.attr("outcome"), Some("ok"));
    assert!(
        init.events
            .iter()
            .any(|e| e == "upstream session initialized"),
        "the session event is on the span: {:?}",
        init.events
    );
    span(&spans, "mcp.tools_list");
    let call = span(&spans, "mcp.tools_call");
    assert_eq!(call.attr("tool"), Some("search_conversations"));
    assert_eq!(call.attr("tenant"), Some("acme"));
    assert_eq!(call.attr("outcome"), Some("ok"));
    for s in &spans {
        assert!(
            s.span_id == server.span_id || !s.parent_span_id.is_empty(),
            "{} has no parent",
            s.name
        );
    }

    // Intercom received our spans' trace context on the wire.
    let received = app.fake.traceparents();
    let of = |method: &str| -> Vec<String> {
        received
            .iter()
            .filter(|(m, tp)| m == method && tp.contains(&trace_id))
            .map(|(_, tp)| tp.clone())
            .collect()
    };
    assert_eq!(
        of("tools/call"),
        vec![format!("00-{trace_id}-{}-01", call.span_id)],
        "the tools/call POST carries the mcp.tools_call span: {received:?}"
    );
    assert_eq!(
        of("initialize"),
        vec![format!("00-{trace_id}-{}-01", init.span_id)]
    );
    assert!(!of("tools/list").is_empty());

    // The access-log line names the same trace.
    let logs = captured_logs();
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "request" && l["trace_id"] == trace_id.as_str())
        .expect("an access-log line with the trace id");
    assert_eq!(line["route"], CONVERSATIONS);
    assert_eq!(line["tenant"], "acme");
    assert_eq!(line["tool"], "search_conversations");
    assert_eq!(line["outcome"], "ok");
    assert!(line["latency_ms"].as_f64().is_some());
    assert!(line["request_id"].as_str().is_some_and(|r| !r.is_empty()));
}

fn rand_u128() -> u128 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    now ^ (u128::from(std::process::id()) << 64) | 1
}

#[sqlx::test(migrations = false)]
async fn no_secret_reaches_the_logs_on_any_error_path(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with(db, Default::default(), &["--upstream-timeout", "400ms"]).await;
    let token = app.add_tenant("hushco").await;
    let other = app.add_tenant("globex").await;
    let secret = intercom_token("hushco");
    let expired = mint_with(
        "svc-hushco",
        Some("hushco"),
        "intercom:read",
        Duration::ZERO,
    );
    let forged = {
        let mut t = token.clone();
        t.pop();
        t.push('x');
        t
    };
    let read_only = mint("ro", Some("hushco"), "intercom:read");
    let conv = "/v1/tenants/hushco/conversations?state=open";

    let mut statuses = Vec::new();
    let mut send = async |method: Method, path: &str, tok: Option<&str>, body: Option<Value>| {
        let res = app.request(method, path, tok, body).await;
        statuses.push(res.status().as_u16());
    };
    send(Method::GET, conv, None, None).await; // 401: no token
    send(Method::GET, conv, Some(&forged), None).await; // 401: bad signature
    send(Method::GET, conv, Some(&expired), None).await; // 401: expired
    send(Method::GET, conv, Some("not-a-jwt"), None).await; // 401: garbage
    send(Method::GET, conv, Some(&other), None).await; // 403: another tenant
    send(Method::GET, "/v1/tenants/nope/tools", Some(&admin()), None).await; // 403: admin
    let nope = mint("n", Some("nope"), "intercom:read");
    send(Method::GET, "/v1/tenants/nope/tools", Some(&nope), None).await; // 404 tenant
    let create = json!({"name": 1, "region": secret});
    send(Method::POST, "/v1/tenants", Some(&admin()), Some(create)).await; // 400
    let path = "/v1/tenants/hushco/tools/create_ticket/calls";
    let body = json!({"arguments": {}});
    send(Method::POST, path, Some(&read_only), Some(body)).await; // 403 or 404: scope
    app.fake.inject_fault(Fault {
        status: 500,
        count: 2,
        retry_after_secs: None,
        token: None,
    });
    send(Method::GET, conv, Some(&token), None).await; // 502
    app.fake.inject_fault(Fault {
        status: 429,
        count: 1,
        retry_after_secs: Some(1),
        token: None,
    });
    send(Method::GET, conv, Some(&token), None).await; // 429
    tokio::time::sleep(Duration::from_millis(1100)).await; // held back until Retry-After passes
    app.fake.set_latency(Duration::from_secs(1));
    send(Method::GET, conv, Some(&token), None).await; // 504
    app.fake.set_latency(Duration::ZERO);
    app.fake.revoke_token(&secret);
    send(Method::GET, conv, Some(&token), None).await; // 409: Intercom said 401
    send(Method::GET, conv, Some(&token), None).await; // 409: known rejected
    let put = json!({"access_token": 5, "token": secret});
    let cred = "/v1/tenants/hushco/intercom/credential";
    send(Method::PUT, cred, Some(&admin()), Some(put)).await; // 400
    for s in [401, 403, 404, 400, 502, 429, 504, 409] {
        assert!(statuses.contains(&s), "no {s} in {statuses:?}");
    }

    let logs = captured_logs();
    assert!(logs.contains("upstream_timeout"), "logs were captured");
    for (what, needle) in [
        ("the Intercom token", secret.as_str()),
        ("a caller JWT", token.as_str()),
        ("an expired JWT", expired.as_str()),
        ("a forged JWT", forged.as_str()),
        ("the JWT signing secret", JWT_SECRET),
        ("the encryption key", app.encryption_key.as_str()),
        (
            "the encryption key",
            app.encryption_key.split_once(':').map_or("", |k| k.1),
        ),
    ] {
        assert!(!needle.is_empty());
        assert!(!logs.contains(needle), "a log line contains {what}");
    }
    let lower = logs.to_lowercase();
    assert!(
        !lower.contains("bearer ey"),
        "a log line contains a bearer JWT"
    );
    assert!(
        !lower.contains("\"authorization\":"),
        "a log line contains an Authorization header"
    );
    // JWTs all start with the base64url of `{"`; none may appear in any form.
    assert!(
        !logs.contains("eyJ"),
        "a log line contains something JWT-shaped"
    );

    // Each error is logged once, by the access-log line, with its cause chain.
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l.to_string().contains("hushco"))
        .collect();
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(!errors.is_empty());
    for line in errors {
        assert_eq!(
            line["message"], "request",
            "logged outside the edge: {line}"
        );
        let status = line["status"].as_u64().unwrap();
        assert!(status >= 500, "{line}");
        assert!(
            line["cause"].as_str().is_some_and(|c| !c.is_empty()),
            "{line}"
        );
    }
}

/// Metric names a PromQL-bearing file references: `gateway_*` and `process_*`, leaving out
/// recording-rule names (`job:gateway_…:rate5m`).
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["gateway_", "process_"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix).map(|i| i + from) {
            let before = text[..i].chars().next_back();
            let len = text[i..]
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(text.len() - i);
            let after = text[i + len..].chars().next();
            let word_start =
                !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            if word_start && after != Some(':') {
                out.insert(text[i..i + len].to_owned());
            }
            from = i + len;
        }
    }
    out
}

/// Set when the lead's usage ledger lands on this branch; until then the dashboard may name it.
const EXPORTED_BY_THE_USAGE_LEDGER: &[&str] = &[];

#[sqlx::test(migrations = false)]
async fn the_dashboard_and_alerts_reference_only_metrics_the_gateway_exports(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let exported = scrape(&app).await;
    let mut known: BTreeSet<String> = app.metrics.family_names().into_iter().collect();
    known.extend(exported.types.keys().cloned());
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/helm/intercom-mcp-gateway/files"
    );
    let mut checked = 0;
    for file in ["dashboard.json", "alerts.yaml"] {
        let text = std::fs::read_to_string(format!("{chart}/{file}")).unwrap();
        for name in referenced_metrics(&text) {
            checked += 1;
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| known.contains(*b)))
                .unwrap_or(&name);
            assert!(
                known.contains(base) || EXPORTED_BY_THE_USAGE_LEDGER.contains(&base),
                "{file} references {name}, which the gateway does not export"
            );
        }
    }
    assert!(checked > 10, "the files reference metrics at all");
    assert_eq!(
        referenced_metrics("rate(gateway_a_total[5m]) / job:gateway_b:rate5m + process_c"),
        ["gateway_a_total", "process_c"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
