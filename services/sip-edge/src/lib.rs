//! The SIP edge of callgrid: a back-to-back user agent (B2BUA) between carrier trunks and
//! agent phones. It owns SIP dialogs and media and never routes: for every inbound call it
//! opens the router's `CallControl.Call` stream, reports what happens (arrived, ringing,
//! answered, digits, hang-up) and executes what the router says (answer, play, collect digits,
//! ring agents, bridge, record, hang up).
//!
//! Built on `rsipstack` (transport, transactions, dialogs; its in-tree copy of rsip's message
//! types is used as `rsipstack::sip`, see docs/DECISIONS.md) and `callgrid-media` (RTP, G.711,
//! prompts, bridging, recording).
//!
//! Entry point: [`SipEdge::start`].

mod auth;
mod call;
pub mod defences;
pub mod digest;
pub mod directory;
mod dispatch;
mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod metrics;
pub mod registrar;
mod transport;
mod trunks;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use callgrid_config::TenantFile;
use callgrid_proto::api::v1 as api;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::transport::{udp::UdpConnection, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub use defences::{AuthBan, Rate, SourceLimits};
pub use error::EdgeError;
pub use metrics::{Metrics, MetricsSnapshot};
pub use transport::ALLOW;

use defences::Defences;
use directory::SharedDirectory;
use registrar::Registrar;

/// 64 random bits: std's per-process random hash keys (from the OS) over a counter.
pub(crate) fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEYS: std::collections::hash_map::RandomState = std::collections::hash_map::RandomState::new();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    KEYS.with(|k| k.hash_one(n))
}

/// The router's instructions for one call, as the edge reads them.
pub type Instructions = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<api::RouterInstruction, tonic::Status>> + Send>,
>;

/// The edge's way to the router's `CallControl.Call`: one stream of reports per call in, the
/// router's instructions out. Over gRPC in a cluster ([`CallControlClient`] over a
/// [`Channel`]); `callgrid serve` plugs the router's service in directly (same messages, no
/// HTTP/2 between two parts of one process).
///
/// [`CallControlClient`]: api::call_control_client::CallControlClient
#[async_trait::async_trait]
pub trait RouterLink: Send + Sync + 'static {
    /// Opens one call's stream; the first report is the arrival.
    async fn call(
        &self,
        reports: tokio_stream::wrappers::ReceiverStream<api::EdgeReport>,
    ) -> Result<Instructions, tonic::Status>;

    /// The calls the router hands this edge to place (click-to-call): each is opened at
    /// once with a `Call` stream whose first report is `originated`.
    async fn originations(&self) -> Result<Originations, tonic::Status>;
}

/// The calls the router hands an edge (`CallControl.Originations`).
pub type Originations =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<api::Origination, tonic::Status>> + Send>>;

#[async_trait::async_trait]
impl RouterLink for api::call_control_client::CallControlClient<Channel> {
    async fn call(
        &self,
        reports: tokio_stream::wrappers::ReceiverStream<api::EdgeReport>,
    ) -> Result<Instructions, tonic::Status> {
        let mut client = self.clone();
        let response =
            api::call_control_client::CallControlClient::call(&mut client, reports).await?;
        Ok(Box::pin(response.into_inner()))
    }

    async fn originations(&self) -> Result<Originations, tonic::Status> {
        let mut client = self.clone();
        let response = api::call_control_client::CallControlClient::originations(
            &mut client,
            api::OriginationsRequest {},
        )
        .await?;
        Ok(Box::pin(response.into_inner()))
    }
}

/// Socket buffer asked for the SIP UDP socket, each way.
const UDP_BUFFER: usize = 4 << 20;

/// How the edge runs.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// SIP address, for UDP and TCP alike (port 0 picks one).
    pub listen: SocketAddr,
    /// Address put in SDP and Contact headers (defaults to the listen address's IP).
    pub advertise_ip: Option<IpAddr>,
    /// First and last RTP port.
    pub rtp_ports: (u16, u16),
    /// Digest realm for agent phones and trunks.
    pub realm: String,
    /// Directory of WAV prompts (16-bit PCM, 8 kHz, mono) that replace or add to the shipped
    /// ones.
    pub prompts_dir: Option<PathBuf>,
    /// Directory for call recordings (C4).
    pub recordings_dir: PathBuf,
    /// Shortest registration accepted; shorter requests get 423.
    pub min_expires: Duration,
    /// Longest registration granted.
    pub max_expires: Duration,
    /// How long to wait for the router's answer to a new call before refusing it with 503.
    pub router_timeout: Duration,
    /// RFC 3261's 64×T1 for this edge: how long a transaction stays after its final response
    /// to absorb retransmissions (timers D, J, L, M), how long a request without any response
    /// is retransmitted before it fails (timers B, F), and how long the edge waits for the ACK
    /// of a 200 (timer H's role for 2xx). 32 s in the RFC; 5 s by default here, as Kamailio's
    /// and OpenSIPS' wait timer (docs/DECISIONS.md, "SIP transaction timer").
    pub transaction_timeout: Duration,
    /// What one source address that is not a trunk's may send (`defences.rs`; docs/DECISIONS.md
    /// "SIP defences"): 300 messages/s with bursts of 1,500, 20 new TCP connections/s with
    /// bursts of 200, 256 TCP connections open.
    pub source_limits: SourceLimits,
    /// What a trunk's address (any tenant's trunk, any port) may send: no message or accept
    /// rate, 1,024 TCP connections open.
    pub trunk_limits: SourceLimits,
    /// Bans after repeated digest failures: 10 from one address or 5 for one user within
    /// 60 s ban it for 300 s.
    pub auth_ban: AuthBan,
    /// Most addresses (and users) the defences keep track of (65,536); beyond, new
    /// addresses share one rate until tracked ones fall idle.
    pub tracked_sources: usize,
    /// Most nonces whose nonce counts are kept (65,536); beyond, the oldest are forgotten
    /// and answered with a fresh challenge.
    pub tracked_nonces: usize,
    /// The key trunk secrets are kept encrypted with (`password_enc` in tenant files); the
    /// same as the router's.
    pub secrets_key: Option<callgrid_config::secrets::SecretsKey>,
    /// Sheds new INVITEs (503 with Retry-After) from the measured backlog (docs/DECISIONS.md,
    /// "Overload"). `None`: the edge makes one that watches its own tokio runtime;
    /// `callgrid serve` gives the one its router also feeds with its actor threads' and
    /// journal's delays.
    pub shedder: Option<callgrid_overload::Shedder>,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        EdgeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            advertise_ip: None,
            rtp_ports: (20000, 29999),
            realm: "callgrid".into(),
            prompts_dir: None,
            recordings_dir: PathBuf::from("recordings"),
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            router_timeout: Duration::from_secs(5),
            transaction_timeout: Duration::from_secs(5),
            source_limits: SourceLimits::SOURCES,
            trunk_limits: SourceLimits::TRUNKS,
            auth_ban: AuthBan::default(),
            tracked_sources: 65_536,
            tracked_nonces: 65_536,
            secrets_key: None,
            shedder: None,
        }
    }
}

/// What every task of the edge shares.
pub(crate) struct Shared {
    pub(crate) options: EdgeOptions,
    pub(crate) local: SocketAddr,
    pub(crate) advertise_ip: IpAddr,
    /// Our Contact URI (`sip:callgrid@ADVERTISE_IP:PORT`), built once.
    pub(crate) contact: rsipstack::sip::Uri,
    pub(crate) dialogs: Arc<DialogLayer>,
    pub(crate) directory: Arc<SharedDirectory>,
    pub(crate) registrar: Registrar,
    pub(crate) nonces: digest::Nonces,
    /// Nonce counts seen, against replays.
    pub(crate) nonce_counts: digest::NonceCounts,
    pub(crate) defences: Arc<Defences>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) router: Arc<dyn RouterLink>,
    pub(crate) media: call::MediaContext,
    pub(crate) shedder: callgrid_overload::Shedder,
}

/// A running edge.
pub struct SipEdge {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl SipEdge {
    /// Binds UDP and TCP on `options.listen`, and serves until [`SipEdge::shutdown`].
    /// `router` is a channel to the router's gRPC services (it may connect lazily).
    pub async fn start(
        options: EdgeOptions,
        tenants: Vec<TenantFile>,
        router: Channel,
    ) -> Result<SipEdge, EdgeError> {
        let client = api::call_control_client::CallControlClient::new(router);
        SipEdge::start_with(options, tenants, Arc::new(client)).await
    }

    /// As [`SipEdge::start`], with any way to the router's call control.
    pub async fn start_with(
        options: EdgeOptions,
        tenants: Vec<TenantFile>,
        router: Arc<dyn RouterLink>,
    ) -> Result<SipEdge, EdgeError> {
        let cancel = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let directory = Arc::new(SharedDirectory::new(tenants, options.secrets_key.clone()));
        let defences = Arc::new(Defences::new(
            defences::Guard::new(
                options.source_limits,
                options.trunk_limits,
                options.auth_ban,
                options.tracked_sources,
            ),
            directory.clone(),
            metrics.clone(),
        ));
        let transport = TransportLayer::new(cancel.child_token());

        let std_udp = std::net::UdpSocket::bind(options.listen)
            .map_err(|e| EdgeError::Bind(options.listen, e))?;
        std_udp
            .set_nonblocking(true)
            .map_err(|e| EdgeError::Bind(options.listen, e))?;
        // bursts of signalling must wait in the kernel, not be dropped (the kernel caps the
        // size at net.core.rmem_max; a smaller buffer only costs retransmissions)
        let sock = socket2::SockRef::from(&std_udp);
        if let Err(e) = sock.set_recv_buffer_size(UDP_BUFFER) {
            tracing::warn!(error = %e, "cannot enlarge the SIP UDP receive buffer");
        }
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
        let local = std_udp
            .local_addr()
            .map_err(|e| EdgeError::Bind(options.listen, e))?;
        let shedder = match &options.shedder {
            Some(s) => s.clone(),
            None => {
                let s = callgrid_overload::Shedder::new(Default::default());
                s.probe_runtime("sip-io", Duration::from_millis(5));
                s
            }
        };
        let (to_stack, inbound) = tokio::sync::mpsc::channel(transport::FRONT_QUEUE);
        let reader = std_udp
            .try_clone()
            .map_err(|e| EdgeError::Bind(options.listen, e))?;
        transport::spawn_front_door(
            reader,
            to_stack,
            metrics.clone(),
            defences.clone(),
            shedder.clone(),
            cancel.child_token(),
        )
        .map_err(|e| EdgeError::Bind(local, e))?;
        let screened: Arc<dyn rsipstack::platform::net::UdpSocket> = Arc::new(
            transport::ScreenedUdp::new(std_udp, inbound, Some(shedder.source("sip-udp")))
                .map_err(|e| EdgeError::Bind(local, e))?,
        );
        let udp = UdpConnection::from_socket(screened, None, Some(cancel.child_token()))
            .await
            .map_err(|e| EdgeError::Sip(e.to_string()))?;
        transport.add_transport(udp.into());
        // our own TCP listener, not rsipstack's: it refuses connections by the per-source
        // limits (transport::serve_tcp)
        let tcp = bind_tcp(local).map_err(|e| EdgeError::Bind(local, e))?;

        let endpoint = EndpointBuilder::new()
            .with_user_agent("callgrid")
            .with_transport_layer(transport)
            .with_cancel_token(cancel.child_token())
            .with_option(rsipstack::transaction::endpoint::EndpointOption {
                t1x64: options.transaction_timeout,
                ..Default::default()
            })
            .with_transport_inspector(Box::new(transport::StreamScreen {
                defences: defences.clone(),
            }))
            .with_allows(vec![
                rsipstack::sip::Method::Invite,
                rsipstack::sip::Method::Ack,
                rsipstack::sip::Method::Cancel,
                rsipstack::sip::Method::Bye,
                rsipstack::sip::Method::Options,
                rsipstack::sip::Method::Info,
                rsipstack::sip::Method::Refer,
                rsipstack::sip::Method::Register,
            ])
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| EdgeError::Sip(e.to_string()))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let advertise_ip = options.advertise_ip.unwrap_or(local.ip());
        let media = call::MediaContext::new(&options, advertise_ip)?;
        let contact = rsipstack::sip::Uri::try_from(
            format!(
                "sip:callgrid@{}",
                SocketAddr::new(advertise_ip, local.port())
            )
            .as_str(),
        )
        .map_err(|e| EdgeError::Sip(format!("contact uri: {e}")))?;
        let shared = Arc::new(Shared {
            shedder,
            local,
            advertise_ip,
            contact,
            dialogs,
            directory,
            registrar: Registrar::new(),
            nonces: digest::Nonces::new(),
            nonce_counts: digest::NonceCounts::new(options.tracked_nonces),
            defences: defences.clone(),
            metrics,
            router,
            media,
            options,
        });
        tokio::spawn(transport::serve_tcp(
            tcp,
            local,
            endpoint.inner.clone(),
            defences,
            cancel.child_token(),
        ));
        let ep = Arc::new(endpoint);
        let serve_cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = ep.serve() => {}
                _ = serve_cancel.cancelled() => {}
            }
        });
        tokio::spawn(dispatch::run(shared.clone(), incoming, cancel.clone()));
        tokio::spawn(call::take_originations(
            shared.clone(),
            cancel.child_token(),
        ));
        tokio::spawn(trunks::run(shared.clone(), cancel.child_token()));
        tracing::info!(sip = %local, "sip edge listening on udp and tcp");
        Ok(SipEdge { shared, cancel })
    }

    /// The bound SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The load shedder the edge asks about new calls (in `callgrid serve`, the process's).
    pub fn shedder(&self) -> &callgrid_overload::Shedder {
        &self.shared.shedder
    }

    /// Counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut m = self.shared.metrics.snapshot();
        let (addresses, users) = self.shared.defences.bans();
        m.address_bans_active = addresses as u64;
        m.user_bans_active = users as u64;
        m
    }

    /// RTP packet counters of every media leg so far (received, sent, relayed, dropped).
    pub fn media_counters(&self) -> callgrid_media::CounterSnapshot {
        self.shared.media.counters()
    }

    /// Media legs open now (RTP ports leased: two per bridged call, one per caller waiting).
    pub fn media_legs_active(&self) -> usize {
        self.shared.media.legs_active()
    }

    /// Replaces the configuration of one tenant (numbers, trunks, agents' passwords).
    pub fn upsert_tenant(&self, tenant: TenantFile) {
        self.shared.directory.upsert(tenant);
    }

    /// Live registrations of an agent: the contact URIs.
    pub fn registrations(&self, tenant: &str, agent: &str) -> Vec<String> {
        self.shared
            .registrar
            .lookup(
                &(Arc::from(tenant), Arc::from(agent)),
                std::time::Instant::now(),
            )
            .into_iter()
            .map(|b| b.contact)
            .collect()
    }

    /// Stops listening; calls in progress end with their sockets.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// The SIP TCP listener on `local` (the UDP socket's address and port).
fn bind_tcp(local: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(local),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

impl Drop for SipEdge {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
