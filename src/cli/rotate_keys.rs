//! `rotate-keys`: re-seal every credential with the first key of `GATEWAY_ENCRYPTION_KEYS`,
//! printing progress, and say which old keys may now be removed. `--dry-run` only counts.

use std::time::Duration;

use crate::config::{ConfigError, RotateKeysArgs};
use crate::db;
use crate::tenants::repo;
use crate::tenants::rotation::reseal_pass;

pub async fn run(args: RotateKeysArgs) -> anyhow::Result<()> {
    let keyring = args.keyring()?;
    let url = args
        .database
        .database_url
        .as_ref()
        .ok_or_else(|| ConfigError::new("DATABASE_URL", "is required"))?;
    let pool = db::pool(db::connect_options(url)?, db::CheckoutCounter::default());
    let primary = keyring.primary_kid().to_owned();
    println!("primary key: {primary}");
    print_usage(&pool, &keyring).await?;
    if args.dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }
    let mut total = 0;
    let mut failed = 0;
    // Rows a concurrent writer held are skipped by a pass; a few passes pick them up.
    for pass in 1..=3 {
        let report = reseal_pass(&pool, &keyring, args.batch_size, Duration::ZERO, |r| {
            println!("pass {pass}: re-sealed {} credentials", r.resealed);
        })
        .await?;
        total += report.resealed;
        failed = report.failed;
        if report.resealed == 0 {
            break;
        }
    }
    println!("re-sealed {total} credentials with key `{primary}`");
    let left = print_usage(&pool, &keyring).await?;
    if failed > 0 || left > 0 {
        anyhow::bail!(
            "{left} credentials are still sealed with another key ({failed} could not be opened: \
             is their key missing from GATEWAY_ENCRYPTION_KEYS? see the log)"
        );
    }
    println!("done: every credential uses `{primary}`");
    Ok(())
}

/// Prints rows per key id and what may be removed; returns how many rows use another key.
async fn print_usage(
    pool: &sqlx::PgPool,
    keyring: &crate::tenants::crypto::Keyring,
) -> anyhow::Result<i64> {
    let primary = keyring.primary_kid();
    let usage = repo::count_by_key(pool).await?;
    let mut other = 0;
    for (kid, rows) in &usage {
        let note = if kid == primary {
            "primary"
        } else if keyring.has_key(kid) {
            "old key: still needed"
        } else {
            "NOT in GATEWAY_ENCRYPTION_KEYS: these rows cannot be opened"
        };
        println!("  key {kid}: {rows} credentials ({note})");
        if kid != primary {
            other += rows;
        }
    }
    for kid in keyring.kids().filter(|k| *k != primary) {
        if !usage.iter().any(|(k, _)| k == kid) {
            println!(
                "  key {kid}: 0 credentials (no row uses it: it may be removed from GATEWAY_ENCRYPTION_KEYS)"
            );
        }
    }
    Ok(other)
}
