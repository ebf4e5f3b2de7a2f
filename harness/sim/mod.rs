//! The embedded simulated Microsoft 365 tenant.
//!
//! An SMTP front end (STARTTLS port and implicit-TLS port) with EOP's replies, IP throttling,
//! inbound Partner connectors, DBEB and tenant attribution, Maildir delivery with EOP's headers,
//! a JSONL message trace and a loopback admin API. Behaviour follows
//! `shared/reference/m365-inbound.md`; the tenant file is documented in `scenarios/SIMULATOR.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mailharness::sim::SimError> {
//! let dir = std::path::Path::new("/tmp/sim");
//! let sim = mailharness::sim::start(Default::default(), dir).await?;
//! println!("SMTP on {}", sim.smtp_addr());
//! sim.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod config;
pub mod delivery;
pub mod imap;
pub mod policy;
pub mod reply;
pub mod smtp;
pub mod store;
pub mod tls;
pub mod trace;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use config::{ConnectorPatch, ConnectorSpec, TenantConfig};
pub use delivery::StatsSnapshot;
pub use policy::{BucketView, ConnectorError, ConnectorState, ConnectorView, Decision, Rule};
pub use trace::TraceRecord;

use delivery::{QueueMsg, Stats};
use policy::{Clock, Policy};
use store::MaildirStore;
use trace::TraceLog;

/// Pending-connection queue of the SMTP listeners.
const LISTEN_BACKLOG: u32 = 1024;
/// How long shutdown waits for open SMTP sessions to say goodbye.
const SESSION_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The tenant file or a setting is invalid.
    #[error("tenant configuration: {0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate or TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A connector administration request was refused.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SimError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SimError::Io {
            context: context.into(),
            source,
        }
    }
}

/// State shared by the listeners, sessions, admin API and delivery worker.
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) fqdn: String,
    pub(crate) trailer_host: String,
    pub(crate) auth_source: String,
    pub(crate) max_size: usize,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) trace: Arc<TraceLog>,
    pub(crate) queue: mpsc::Sender<QueueMsg>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) session_base: u32,
    pub(crate) session_seq: AtomicU64,
    pub(crate) internal_base: u64,
    pub(crate) internal_seq: AtomicU64,
    pub(crate) nmid_seed: u128,
    pub(crate) junk: store::JunkRules,
}

/// A running simulator. Drop it or call [`SimHandle::shutdown`] to stop it.
pub struct SimHandle {
    shared: Arc<Shared>,
    smtp_addr: SocketAddr,
    smtps_addr: Option<SocketAddr>,
    admin_addr: SocketAddr,
    maildir_root: PathBuf,
    trace_path: PathBuf,
    ca_cert_pem: Option<String>,
    shutdown_tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
    draining: Arc<AtomicBool>,
    worker: Option<std::thread::JoinHandle<()>>,
    front_end: Option<std::thread::JoinHandle<()>>,
    imap: Option<imap::ImapServer>,
    imap_addr: Option<SocketAddr>,
    imaps_addr: Option<SocketAddr>,
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, SimError> {
    if !addr.ip().is_loopback() {
        return Err(SimError::Config(format!(
            "listen.address {}: the simulator listens on loopback only (127.0.0.0/8)",
            addr.ip()
        )));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|e| SimError::io(format!("binding the {what} listener on {addr}"), e))
}

/// Starts the simulator in-process: listeners on loopback, delivery worker, admin API.
///
/// `state_dir` receives `maildir/`, `trace.jsonl` and `tls/` (generated certificate and CA).
pub async fn start(config: TenantConfig, state_dir: &Path) -> Result<SimHandle, SimError> {
    config.validate()?;
    std::fs::create_dir_all(state_dir)
        .map_err(|e| SimError::io(format!("creating state dir {}", state_dir.display()), e))?;
    let maildir_root = state_dir.join("maildir");
    let trace_path = state_dir.join("trace.jsonl");
    let store = Arc::new(MaildirStore::create(
        &maildir_root,
        &config.mailbox_addresses(),
        config.delivery.fsync,
    )?);
    let trace = Arc::new(TraceLog::open(&trace_path, config.delivery.fsync)?);
    let fqdn = config.front_end.fqdn();
    let tls = if config.tls.enabled {
        Some(tls::build(&config.tls, &fqdn, &state_dir.join("tls"))?)
    } else {
        None
    };

    let sockets = Sockets::bind(&config, tls.is_some()).await?;
    // IMAP over the same Maildirs, sharing the front end's certificate.
    let imap_prepared = if config.imap.enabled {
        Some(imap::prepare(
            &config,
            &maildir_root,
            tls.as_ref().map(|t| t.acceptor.clone()),
        )?)
    } else {
        None
    };
    let front_end_threads = config.front_end.worker_threads;

    let (queue_tx, queue_rx) = mpsc::channel(config.delivery.queue_capacity);
    let stats = Arc::new(Stats::default());
    let draining = Arc::new(AtomicBool::new(false));
    let clock = Clock::new();
    let shared = Arc::new(Shared::new(
        config,
        fqdn,
        tls.as_ref().map(|t| t.acceptor.clone()),
        (trace.clone(), queue_tx, stats.clone()),
        clock,
    ));
    let worker = delivery::spawn_worker(queue_rx, store, trace, clock, stats, draining.clone())
        .map_err(|e| SimError::io("starting the delivery thread", e))?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let front_end = spawn_front_end(
        front_end_threads,
        sockets.smtp,
        sockets.smtps,
        shared.clone(),
        shutdown_rx.clone(),
    )
    .await?;
    let imap = match imap_prepared {
        Some(p) => Some(p.spawn(shutdown_rx.clone()).await?),
        None => None,
    };
    let tasks = spawn_admin(sockets.admin, shared.clone(), shutdown_rx.clone());

    Ok(SimHandle {
        shared,
        smtp_addr: sockets.smtp_addr,
        smtps_addr: sockets.smtps_addr,
        admin_addr: sockets.admin_addr,
        maildir_root,
        trace_path,
        ca_cert_pem: tls.map(|t| t.ca_pem),
        shutdown_tx,
        tasks,
        draining,
        worker: Some(worker),
        front_end: Some(front_end),
        imap_addr: imap.as_ref().map(|s| s.imap_addr),
        imaps_addr: imap.as_ref().and_then(|s| s.imaps_addr),
        imap,
    })
}

/// The front end's and the admin API's sockets, bound, with their addresses.
struct Sockets {
    smtp: TcpSocket,
    smtps: Option<TcpSocket>,
    admin: TcpListener,
    smtp_addr: SocketAddr,
    smtps_addr: Option<SocketAddr>,
    admin_addr: SocketAddr,
}

impl Sockets {
    /// Binds SMTP, SMTPS (with TLS) and the admin API on the configured loopback address.
    async fn bind(config: &TenantConfig, tls: bool) -> Result<Sockets, SimError> {
        let listen = &config.listen;
        let smtp = bind_socket(SocketAddr::from((listen.address, listen.smtp_port)), "SMTP")?;
        let smtps = if tls {
            Some(bind_socket(
                SocketAddr::from((listen.address, listen.smtps_port)),
                "SMTPS",
            )?)
        } else {
            None
        };
        let admin = bind(
            SocketAddr::from((listen.address, listen.admin_port)),
            "admin API",
        )
        .await?;
        let read_err = |what: &str| {
            let what = what.to_string();
            move |e| SimError::io(format!("reading the {what} listener address"), e)
        };
        Ok(Sockets {
            smtp_addr: smtp.local_addr().map_err(read_err("SMTP"))?,
            smtps_addr: smtps
                .as_ref()
                .map(|l| l.local_addr().map_err(read_err("SMTPS")))
                .transpose()?,
            admin_addr: admin.local_addr().map_err(read_err("admin API"))?,
            smtp,
            smtps,
            admin,
        })
    }
}

impl Shared {
    /// The front end's state: names and ids derived from the configuration and the start time.
    fn new(
        config: TenantConfig,
        fqdn: String,
        tls: Option<TlsAcceptor>,
        (trace, queue, stats): (Arc<TraceLog>, mpsc::Sender<QueueMsg>, Arc<Stats>),
        clock: Clock,
    ) -> Shared {
        let now_unix = Utc::now().timestamp();
        Shared {
            trailer_host: config.front_end.trailer_host(),
            auth_source: format!(
                "{}.eop-{}.prod.protection.outlook.com",
                config.front_end.host, config.front_end.region
            ),
            max_size: usize::try_from(config.front_end.max_message_size.0).unwrap_or(usize::MAX),
            tls,
            trace,
            queue,
            stats,
            session_base: now_unix as u32,
            session_seq: AtomicU64::new(0),
            internal_base: (now_unix as u64 % 100_000) * 1_000_000_000,
            internal_seq: AtomicU64::new(1),
            nmid_seed: uuid::Uuid::new_v4().as_u128(),
            junk: store::JunkRules::new(&config.junk),
            policy: Policy::new(config, clock, Instant::now()),
            fqdn,
        }
    }
}

/// Serves the admin API until shutdown.
fn spawn_admin(
    admin: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let router = admin::router(shared);
    tasks.spawn(async move {
        let r = axum::serve(admin, router)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|v| *v).await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!("admin API stopped: {e}");
        }
    });
    tasks
}

/// Binds (without listening yet) a loopback SMTP socket.
fn bind_socket(addr: SocketAddr, what: &str) -> Result<TcpSocket, SimError> {
    if !addr.ip().is_loopback() {
        return Err(SimError::Config(format!(
            "listen.address {}: the simulator listens on loopback only (127.0.0.0/8)",
            addr.ip()
        )));
    }
    let err = |e| SimError::io(format!("binding the {what} listener on {addr}"), e);
    let sock = TcpSocket::new_v4().map_err(err)?;
    sock.set_reuseaddr(true).map_err(err)?;
    sock.bind(addr).map_err(err)?;
    Ok(sock)
}

/// Runs the SMTP listeners and sessions on their own runtime thread(s), like an MTA's event
/// loop: `front_end.worker_threads = 1` is a single-threaded loop (no cross-thread wake-ups).
async fn spawn_front_end(
    threads: usize,
    smtp: TcpSocket,
    smtps: Option<TcpSocket>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>, SimError> {
    let runtime = move || {
        if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("sim-smtp-worker")
                .enable_all()
                .build()
        }
    };
    spawn_listeners(
        ("SMTP", "SMTPS"),
        runtime,
        (smtp, smtps),
        shared,
        shutdown,
        smtp::serve_connection,
    )
    .await
}

/// Serves a plain and an optional implicit-TLS listener on a thread of its own with its own
/// runtime (SMTP and IMAP alike), and returns once both sockets listen, or with what stopped them.
pub(crate) async fn spawn_listeners<S, F, Fut>(
    names: (&'static str, &'static str),
    runtime: impl FnOnce() -> std::io::Result<tokio::runtime::Runtime> + Send + 'static,
    sockets: (TcpSocket, Option<TcpSocket>),
    shared: Arc<S>,
    shutdown: watch::Receiver<bool>,
    serve: F,
) -> Result<std::thread::JoinHandle<()>, SimError>
where
    S: Send + Sync + 'static,
    F: Fn(tokio::net::TcpStream, SocketAddr, Arc<S>, bool, watch::Receiver<bool>) -> Fut
        + Copy
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (plain_name, tls_name) = names;
    let (plain, tls) = sockets;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), SimError>>();
    let handle = std::thread::Builder::new()
        .name(format!("sim-{}", plain_name.to_ascii_lowercase()))
        .spawn(move || {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(SimError::io(
                        format!("starting the {plain_name} runtime"),
                        e,
                    )));
                    return;
                }
            };
            rt.block_on(async move {
                let listen = |s: TcpSocket, what: &str| {
                    s.listen(LISTEN_BACKLOG)
                        .map_err(|e| SimError::io(format!("listening on the {what} socket"), e))
                };
                let plain = match listen(plain, plain_name) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let tls = match tls.map(|s| listen(s, tls_name)).transpose() {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut set = JoinSet::new();
                set.spawn(accept_loop(
                    plain_name,
                    plain,
                    shared.clone(),
                    false,
                    shutdown.clone(),
                    serve,
                ));
                if let Some(l) = tls {
                    set.spawn(accept_loop(tls_name, l, shared, true, shutdown, serve));
                }
                while set.join_next().await.is_some() {}
            });
        })
        .map_err(|e| SimError::io(format!("starting the {plain_name} thread"), e))?;
    match ready_rx.await {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(SimError::Internal(format!(
            "the {plain_name} thread stopped during start-up"
        ))),
    }
}

/// Accepts connections until shutdown, one task per session; then gives sessions
/// `SESSION_DRAIN_TIMEOUT` to finish before aborting them. Shared by SMTP and IMAP.
async fn accept_loop<S, F, Fut>(
    name: &'static str,
    listener: TcpListener,
    shared: Arc<S>,
    implicit_tls: bool,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    S: Send + Sync + 'static,
    F: Fn(tokio::net::TcpStream, SocketAddr, Arc<S>, bool, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut sessions = JoinSet::new();
    let session_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    sessions.spawn(serve(
                        stream, peer, shared.clone(), implicit_tls, session_shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("{name} accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SESSION_DRAIN_TIMEOUT, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
}

impl SimHandle {
    /// The SMTP (STARTTLS) listener.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp_addr
    }

    /// The implicit-TLS listener (`None` when TLS is disabled).
    pub fn smtps_addr(&self) -> Option<SocketAddr> {
        self.smtps_addr
    }

    /// The IMAP listener, plain with STARTTLS (`None` when `imap.enabled = false`).
    pub fn imap_addr(&self) -> Option<SocketAddr> {
        self.imap_addr
    }

    /// The IMAP implicit-TLS listener (`None` when IMAP or TLS is disabled).
    pub fn imaps_addr(&self) -> Option<SocketAddr> {
        self.imaps_addr
    }

    /// The admin API listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// `http://<admin_addr>`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// `<state>/maildir`.
    pub fn maildir_root(&self) -> &Path {
        &self.maildir_root
    }

    /// `<state>/trace.jsonl`.
    pub fn trace_path(&self) -> &Path {
        &self.trace_path
    }

    /// The CA certificate clients should trust (`None` when TLS is disabled).
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca_cert_pem.as_deref()
    }

    /// The tenant configuration in force.
    pub fn config(&self) -> &TenantConfig {
        self.shared.policy.config()
    }

    /// Counters: sessions, accepted, delivered, ...
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Creates a connector (like `POST /connectors`).
    pub fn create_connector(&self, spec: ConnectorSpec) -> Result<ConnectorView, SimError> {
        Ok(self.shared.policy.create_connector(spec, Instant::now())?)
    }

    /// Changes a connector (like `PUT /connectors/{name}`).
    pub fn update_connector(
        &self,
        name: &str,
        patch: &ConnectorPatch,
    ) -> Result<ConnectorView, SimError> {
        Ok(self
            .shared
            .policy
            .update_connector(name, patch, Instant::now())?)
    }

    /// Deletes a connector (like `DELETE /connectors/{name}`).
    pub fn delete_connector(&self, name: &str) -> Result<ConnectorView, SimError> {
        Ok(self.shared.policy.delete_connector(name, Instant::now())?)
    }

    /// Every connector (like `GET /connectors`).
    pub fn list_connectors(&self) -> Vec<ConnectorView> {
        self.shared.policy.list_connectors(Instant::now())
    }

    /// One connector (like `GET /connectors/{name}`).
    pub fn get_connector(&self, name: &str) -> Option<ConnectorView> {
        self.shared.policy.get_connector(name, Instant::now())
    }

    /// Trace records (like `GET /trace?since=`).
    pub fn trace(&self, since: Option<DateTime<Utc>>) -> Result<Vec<TraceRecord>, SimError> {
        self.shared.trace.read(since)
    }

    /// Throttle state per source IP (like `GET /buckets`).
    pub fn buckets(&self) -> Vec<BucketView> {
        self.shared.policy.buckets(Instant::now())
    }

    /// Refills every bucket (like `POST /buckets/reset`); returns how many source IPs were reset.
    pub fn reset_buckets(&self) -> usize {
        self.shared.policy.reset_buckets()
    }

    /// Waits until every accepted message is stored and traced; false on timeout.
    pub async fn wait_delivered(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.stats();
            if s.delivered + s.delivery_failed >= s.accepted {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops accepting, ends open sessions (421), delivers everything queued, flushes the trace.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        let _ = self.shutdown_tx.send(true);
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                if e.is_panic() {
                    return Err(SimError::Internal(format!("a listener task panicked: {e}")));
                }
            }
        }
        if let Some(f) = self.front_end.take() {
            tokio::task::spawn_blocking(move || f.join())
                .await
                .map_err(|e| SimError::Internal(format!("joining the SMTP thread: {e}")))?
                .map_err(|_| SimError::Internal("the SMTP thread panicked".into()))?;
        }
        if let Some(s) = self.imap.take() {
            tokio::task::spawn_blocking(move || s.join())
                .await
                .map_err(|e| SimError::Internal(format!("joining the IMAP thread: {e}")))??;
        }
        self.draining.store(true, Ordering::Release);
        let _ = self.shared.queue.send(QueueMsg::Stop).await;
        if let Some(w) = self.worker.take() {
            tokio::task::spawn_blocking(move || w.join())
                .await
                .map_err(|e| SimError::Internal(format!("joining the delivery thread: {e}")))?
                .map_err(|_| SimError::Internal("the delivery thread panicked".into()))?;
        }
        // The last flush (and fsync, when on) off the caller's async thread, like every other.
        let trace = self.shared.trace.clone();
        tokio::task::spawn_blocking(move || trace.flush())
            .await
            .map_err(|e| SimError::Internal(format!("flushing the trace: {e}")))?
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        self.draining.store(true, Ordering::Release);
        let _ = self.shared.queue.try_send(QueueMsg::Stop);
    }
}

/// Listener overrides for a standalone simulator (the flags of `mailharness sim`): each one that
/// is set replaces the tenant file's `listen.*` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenOverrides {
    /// SMTP (STARTTLS) port; 0 = ephemeral.
    pub smtp_port: Option<u16>,
    /// Implicit-TLS port; 0 = ephemeral.
    pub smtps_port: Option<u16>,
    /// Admin API port; 0 = ephemeral.
    pub admin_port: Option<u16>,
    /// IMAP (STARTTLS) port; 0 = ephemeral.
    pub imap_port: Option<u16>,
    /// IMAP implicit-TLS port; 0 = ephemeral.
    pub imaps_port: Option<u16>,
    /// Loopback address to listen on.
    pub address: Option<std::net::Ipv4Addr>,
}

impl ListenOverrides {
    /// Writes the overrides that are set into `cfg.listen`.
    pub fn apply(&self, cfg: &mut TenantConfig) {
        let l = &mut cfg.listen;
        let pairs = [
            (self.smtp_port, &mut l.smtp_port),
            (self.smtps_port, &mut l.smtps_port),
            (self.admin_port, &mut l.admin_port),
            (self.imap_port, &mut l.imap_port),
            (self.imaps_port, &mut l.imaps_port),
        ];
        for (over, port) in pairs {
            if let Some(p) = over {
                *port = p;
            }
        }
        if let Some(a) = self.address {
            l.address = a;
        }
    }
}

impl SimHandle {
    /// [`SimHandle::shutdown`], then the final counters: taken after the queue drained, so
    /// `delivered` counts every message accepted before the stop.
    pub async fn shutdown_with_stats(self) -> Result<StatsSnapshot, SimError> {
        let stats = self.shared.stats.clone();
        self.shutdown().await?;
        Ok(stats.snapshot())
    }
}
