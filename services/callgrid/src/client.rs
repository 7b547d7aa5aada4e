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
    /// The router's gRPC address.
    #[arg(
        long,
        env = "CALLGRID_ROUTER",
        default_value = "http://127.0.0.1:7300",
        global = true
    )]
    pub(crate) router: String,
    #[command(flatten)]
    pub(crate) token: TokenArgs,
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
        let channel = tonic::transport::Endpoint::from_shared(self.router.clone())
            .with_context(|| format!("bad router address {}", self.router))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot reach the router at {}", self.router))?;
        Ok(InterceptedService::new(channel, bearer))
    }
}
