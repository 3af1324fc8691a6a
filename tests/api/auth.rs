//! Caller authentication and tenant isolation (PRODUCT.md "Callers and auth").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{admin, assert_problem, mint, spawn_app, spawn_app_with};

async fn assert_unauthenticated(res: reqwest::Response) {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let challenge = challenge.expect("401 carries WWW-Authenticate");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert_problem(res, 401, "unauthenticated").await;
}

fn forge(header: &str, claims: &str, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

#[sqlx::test(migrations = false)]
async fn every_bad_token_is_a_401_with_a_challenge(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let good = app.add_tenant("acme").await;
    let path = "/v1/tenants/acme/tools";

    let bare = app.request(Method::GET, path, None, None).await;
    // RFC 6750 §3.1: no credentials, no error code in the challenge.
    assert_eq!(
        bare.headers()["www-authenticate"],
        r#"Bearer realm="intercom-mcp-gateway""#
    );
    assert_unauthenticated(bare).await;
    let basic = app
        .http
        .get(format!("{}{path}", app.base))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_unauthenticated(basic).await;
    let bad = app.get(path, "not-a-jwt").await;
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    assert_unauthenticated(bad).await;

    // Expired an hour ago (well beyond the clock-skew leeway).
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() - 3600;
    let claims =
        format!(r#"{{"sub":"svc","tenant_id":"acme","scope":"intercom:read","exp":{exp}}}"#);
    let signed = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let v: serde_json::Value = serde_json::from_str(&claims).unwrap();
        encode(
            &Header::default(),
            &v,
            &EncodingKey::from_secret(crate::helpers::JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    assert_unauthenticated(app.get(path, &signed).await).await;

    // Bad signature: a valid token with its signature replaced.
    let mut parts: Vec<&str> = good.split('.').collect();
    let bad_sig = URL_SAFE_NO_PAD.encode([7u8; 32]);
    parts[2] = &bad_sig;
    assert_unauthenticated(app.get(path, &parts.join(".")).await).await;

    // alg none.
    let far = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let none = forge(
        r#"{"alg":"none","typ":"JWT"}"#,
        &format!(r#"{{"sub":"x","tenant_id":"acme","scope":"intercom:read","exp":{far}}}"#),
        "",
    );
    assert_unauthenticated(app.get(path, &none).await).await;

    // Signed with another secret.
    let other = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let v = serde_json::json!({"sub":"x","tenant_id":"acme","scope":"intercom:read","exp":far});
        encode(
            &Header::default(),
            &v,
            &EncodingKey::from_secret(b"another-secret-another-secret-another"),
        )
        .unwrap()
    };
    assert_unauthenticated(app.get(path, &other).await).await;
    // The good token still works.
    assert_eq!(app.get(path, &good).await.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn issuer_and_audience_are_checked_when_configured(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with(
        db,
        Default::default(),
        &[
            "--jwt-issuer",
            "https://idp.example",
            "--jwt-audience",
            "intercom-gateway",
        ],
    )
    .await;
    let far = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let sign = |claims: serde_json::Value| {
        use jsonwebtoken::{EncodingKey, Header, encode};
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(crate::helpers::JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    let ok = sign(
        serde_json::json!({"sub":"a","scope":"gateway:admin","exp":far,"iss":"https://idp.example","aud":"intercom-gateway"}),
    );
    assert_eq!(app.get("/v1/tenants", &ok).await.status(), 200);
    let wrong_iss = sign(
        serde_json::json!({"sub":"a","scope":"gateway:admin","exp":far,"iss":"https://evil.example","aud":"intercom-gateway"}),
    );
    assert_unauthenticated(app.get("/v1/tenants", &wrong_iss).await).await;
    let wrong_aud = sign(
        serde_json::json!({"sub":"a","scope":"gateway:admin","exp":far,"iss":"https://idp.example","aud":"someone-else"}),
    );
    assert_unauthenticated(app.get("/v1/tenants", &wrong_aud).await).await;
}

#[sqlx::test(migrations = false)]
async fn callers_see_only_their_own_tenant_and_admins_do_not_read_customer_data(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let acme = app.add_tenant("acme").await;
    app.add_tenant("globex").await;

    // Another tenant's path looks exactly like a tenant that does not exist.
    let other = assert_problem(
        app.get("/v1/tenants/globex/tools", &acme).await,
        404,
        "tenant_not_found",
    )
    .await;
    let missing = assert_problem(
        app.get("/v1/tenants/nope/tools", &acme).await,
        404,
        "tenant_not_found",
    )
    .await;
    assert_eq!(other["detail"], missing["detail"]);
    assert_problem(
        app.get("/v1/tenants/globex", &acme).await,
        404,
        "tenant_not_found",
    )
    .await;

    // A tenant token on an admin route of its own tenant: 403.
    assert_problem(app.get("/v1/tenants/acme", &acme).await, 403, "forbidden").await;
    assert_problem(app.get("/v1/tenants", &acme).await, 403, "forbidden").await;
    assert_problem(
        app.get("/v1/tenants/acme/intercom/credential", &acme).await,
        403,
        "forbidden",
    )
    .await;

    // Admin tokens administer every tenant but cannot call tools.
    assert_eq!(app.get("/v1/tenants/globex", &admin()).await.status(), 200);
    assert_problem(
        app.get("/v1/tenants/acme/conversations?state=open", &admin())
            .await,
        403,
        "forbidden",
    )
    .await;

    // A token of the tenant with no intercom scope.
    let scopeless = mint("svc", Some("acme"), "profile");
    assert_problem(
        app.get("/v1/tenants/acme/conversations?state=open", &scopeless)
            .await,
        403,
        "forbidden",
    )
    .await;
}
