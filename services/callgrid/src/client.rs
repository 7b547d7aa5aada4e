//! What every command that talks to a running callgrid shares: where it is and the bearer
//! token to show (`CALLGRID_TOKEN`, `--token-file`, or the admin token a local
//! `callgrid serve` wrote in its data directory).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Where the router is, and the credentials to show it.
#[derive(Args, Clone, Debug)]
pub(crate) struct ClientArgs {
    /// The router's gRPC address (`https://` for TLS: see --tls-ca).
    #[arg(
        long,
        env = "CALLGRID_ROUTER",
        default_value = "http://127.0.0.1:7300",
        global = true
    )]
    pub(crate) router: String,
    #[command(flatten)]
    pub(crate) token: TokenArgs,
    #[command(flatten)]
    pub(crate) tls: ClientTlsArgs,
}

/// TLS toward a server (`https://` addresses).
#[derive(Args, Clone, Debug)]
pub(crate) struct ClientTlsArgs {
    /// CA certificate (PEM) the server's certificate must be signed by (`callgrid certs`
    /// writes ca.pem).
    #[arg(long, env = "CALLGRID_TLS_CA", global = true)]
    pub(crate) tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM), for a server that asks for one (mutual TLS between
    /// nodes).
    #[arg(
        long,
        env = "CALLGRID_TLS_CLIENT_CERT",
        requires = "tls_client_key",
        global = true
    )]
    pub(crate) tls_client_cert: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(
        long,
        env = "CALLGRID_TLS_CLIENT_KEY",
        requires = "tls_client_cert",
        global = true
    )]
    pub(crate) tls_client_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The TLS of a tonic channel to `url` (`None` for `http://`).
    pub(crate) fn tonic(
        &self,
        url: &str,
    ) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
        if !url.starts_with("https://") {
            return Ok(None);
        }
        let ca = self.tls_ca.as_ref().context(
            "an https:// address needs --tls-ca (the CA that signed the server's certificate)",
        )?;
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&self.tls_client_cert, &self.tls_client_key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        Ok(Some(tls))
    }

    /// A rustls client configuration for HTTP/1.1 (`callgrid watch` over https).
    pub(crate) fn rustls(&self) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
        let ca = self.tls_ca.as_ref().context(
            "an https:// address needs --tls-ca (the CA that signed the server's certificate)",
        )?;
        let identity = self
            .tls_client_cert
            .as_deref()
            .zip(self.tls_client_key.as_deref());
        Ok(callgrid_http::tls::client_config(
            ca,
            identity,
            &[b"http/1.1"],
        )?)
    }
}

/// A tonic endpoint for `url`, with TLS when it is `https://`.
pub(crate) fn endpoint(
    url: &str,
    tls: &ClientTlsArgs,
) -> anyhow::Result<tonic::transport::Endpoint> {
    let mut e = tonic::transport::Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("bad router address {url}"))?
        .tcp_nodelay(true);
    if let Some(t) = tls.tonic(url)? {
        e = e
            .tls_config(t)
            .with_context(|| format!("tls toward {url}"))?;
    }
    Ok(e)
}

/// The bearer token a command shows.
#[derive(Args, Clone, Debug)]
pub(crate) struct TokenArgs {
    /// A file holding the bearer token [default: DATA_DIR/admin.token, which `callgrid serve`
    /// writes on its first start].
    #[arg(long, env = "CALLGRID_TOKEN_FILE", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// The bearer token itself (prefer CALLGRID_TOKEN to a flag: flags show in `ps`).
    #[arg(
        long = "token",
        env = "CALLGRID_TOKEN",
        hide = true,
        hide_env_values = true,
        global = true
    )]
    pub(crate) token: Option<String>,
    /// The data directory of a local `callgrid serve`, for its admin.token.
    #[arg(
        long = "token-data-dir",
        env = "CALLGRID_DATA_DIR",
        default_value = "data",
        hide = true,
        global = true
    )]
    pub(crate) data_dir: PathBuf,
}

impl TokenArgs {
    /// The token: CALLGRID_TOKEN, else the token file, else DATA_DIR/admin.token if there is
    /// one; `None` if none of them.
    pub(crate) fn resolve(&self) -> anyhow::Result<Option<String>> {
        if let Some(t) = self.token.as_deref().filter(|t| !t.trim().is_empty()) {
            return Ok(Some(t.trim().to_owned()));
        }
        let (path, required) = match &self.token_file {
            Some(p) => (p.clone(), true),
            None => (self.data_dir.join("admin.token"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_owned())),
            Err(e) if required => {
                Err(e).with_context(|| format!("cannot read the token file {}", path.display()))
            }
            Err(_) => Ok(None),
        }
    }

    /// The `authorization` header value to send, if there is a token.
    pub(crate) fn header(&self) -> anyhow::Result<Bearer> {
        let value = match self.resolve()? {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .context("the token holds characters a header cannot carry")?,
            ),
            None => None,
        };
        Ok(Bearer(value))
    }
}

/// Adds `authorization: Bearer TOKEN` to every request.
#[derive(Clone, Debug)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel to the router that shows the token.
pub(crate) type Authed = InterceptedService<Channel, Bearer>;

impl ClientArgs {
    /// Connects to the router (fails at once when it cannot be reached).
    pub(crate) async fn connect(&self) -> anyhow::Result<Authed> {
        let bearer = self.token.header()?;
        let channel = endpoint(&self.router, &self.tls)?
            .connect()
            .await
            .with_context(|| format!("cannot reach the router at {}", self.router))?;
        Ok(InterceptedService::new(channel, bearer))
    }
}
