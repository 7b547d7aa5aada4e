//! gRPC connections that show a bearer token, and the admin token a node writes.

use std::path::Path;
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Shows a bearer token (or none) with every gRPC request.
#[derive(Clone, Debug)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Shows `token`; `None`: no credentials at all.
    pub fn new(token: Option<&str>) -> Bearer {
        Bearer(token.map(|t| format!("Bearer {t}").parse().expect("an ASCII token")))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A gRPC connection that shows a token (or none).
pub type Authed = InterceptedService<Channel, Bearer>;

/// `channel`, showing `token`.
pub fn authed(channel: Channel, token: &str) -> Authed {
    InterceptedService::new(channel, Bearer::new(Some(token)))
}

/// `channel`, showing no credentials at all.
pub fn unauthed(channel: Channel) -> Authed {
    InterceptedService::new(channel, Bearer::new(None))
}

/// A connection to the gRPC server on 127.0.0.1:`port`, showing `token` (`None`: no
/// credentials); an error while nothing listens there.
pub async fn try_connect(
    port: u16,
    token: Option<&str>,
) -> Result<Authed, tonic::transport::Error> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a valid URI")
        .connect()
        .await?;
    Ok(InterceptedService::new(channel, Bearer::new(token)))
}

/// A connection to the gRPC server on 127.0.0.1:`port`, showing `token`; panics when it
/// cannot connect. A channel serves only the tokio runtime it was made in.
pub async fn connect(port: u16, token: &str) -> Authed {
    try_connect(port, Some(token))
        .await
        .unwrap_or_else(|e| panic!("no gRPC connection to 127.0.0.1:{port}: {e}"))
}

/// The platform admin token `callgrid serve` (or `router`) writes to `DATA_DIR/admin.token`
/// on its first start; waits up to 60 s for it.
pub fn admin_token(data_dir: &Path) -> String {
    let path = data_dir.join("admin.token");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(token) = written_token(data_dir) {
            return token;
        }
        assert!(
            Instant::now() < deadline,
            "no admin token at {} after 60 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The admin token of `data_dir` once it is wholly written (its line ends).
pub(crate) fn written_token(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .ok()
        .filter(|t| t.ends_with('\n'))
        .map(|t| t.trim().to_owned())
}
