//! The Postgres pool and migrations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Counts connection checkouts: every query the gateway runs takes one, so tests and the
/// benchmark can prove the hot path makes none.
#[derive(Clone, Default)]
pub struct CheckoutCounter(Arc<AtomicU64>);

impl CheckoutCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub fn connect_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    url.expose_secret()
        .parse::<PgConnectOptions>()
        .map_err(|_| anyhow::anyhow!("DATABASE_URL: not a valid postgres:// URL"))
}

/// A lazily connecting pool, so the process starts (and `/healthz` answers) while Postgres is
/// still coming up; `/readyz` tells when it is usable.
pub fn pool(options: PgConnectOptions, counter: CheckoutCounter) -> PgPool {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .before_acquire(move |_, _| {
            let counter = counter.clone();
            Box::pin(async move {
                counter.0.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            })
        })
        .connect_lazy_with(options)
}

/// Applies pending migrations. sqlx takes a Postgres advisory lock for the duration, so
/// replicas starting at once apply them one at a time.
pub async fn migrate(db: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(db)
        .await
        .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))
}

pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Whether `e` means Postgres could not be reached (as opposed to a query it refused).
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    )
}

/// Whether any cause in `e`'s chain is [`is_unreachable`].
pub fn is_unreachable_chain(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<sqlx::Error>().is_some_and(is_unreachable))
}

#[cfg(test)]
mod tests {
    use std::os::fd::RawFd;

    use super::*;

    /// The TCP port of the peer of socket `fd`, if `fd` is a connected TCP socket.
    fn tcp_peer_port(fd: RawFd) -> Option<u16> {
        // SAFETY: getsockopt/getpeername only write into the buffers passed, sized as declared;
        // on a descriptor that is not a TCP socket they fail and nothing is read.
        unsafe {
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getpeername(fd, (&raw mut addr).cast(), &mut len) != 0 {
                return None;
            }
            let port = match i32::from(addr.ss_family) {
                libc::AF_INET => (*(&raw const addr).cast::<libc::sockaddr_in>()).sin_port,
                libc::AF_INET6 => (*(&raw const addr).cast::<libc::sockaddr_in6>()).sin6_port,
                _ => return None,
            };
            Some(u16::from_be(port))
        }
    }

    fn nodelay(fd: RawFd) -> bool {
        let mut on: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above; `on` is a c_int and `len` says so.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw mut on).cast(),
                &mut len,
            )
        };
        rc == 0 && on != 0
    }

    /// The pool's connections send each message at once. Without TCP_NODELAY a query larger
    /// than one TCP segment (a 500-row usage batch) waits ~40 ms for the server's delayed ACK:
    /// sqlx 0.9.0 stopped setting it, and a usage batch took 50 ms instead of 5.
    #[tokio::test]
    async fn postgres_connections_send_without_nagle_delay() {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let options = connect_options(&SecretString::from(url)).unwrap();
        let port = options.get_port();
        let db = pool(options, CheckoutCounter::default());
        sqlx::query("SELECT 1").execute(&db).await.unwrap();
        let mut connections = 0;
        for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
            let Ok(fd) = entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .parse::<RawFd>()
            else {
                continue;
            };
            if tcp_peer_port(fd) == Some(port) {
                connections += 1;
                assert!(nodelay(fd), "a Postgres connection without TCP_NODELAY");
            }
        }
        assert!(connections > 0, "no TCP connection to Postgres found");
        db.close().await;
    }
}
