//! What `callgrid sip-edge` needs to speak to a router elsewhere: its call-control link,
//! showing the edge's token, and a [`Verifier`] that asks the router who a caller of the
//! edge's own API (metrics) is: the edge keeps no credentials of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callgrid_access::{Denied, Principal, Role, Verifier};
use callgrid_proto::api::v1 as api;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::client::Bearer;

/// The call-control client, showing the edge's token.
pub(crate) struct AuthedLink(
    pub(crate) api::call_control_client::CallControlClient<InterceptedService<Channel, Bearer>>,
);

#[async_trait::async_trait]
impl callgrid_sip_edge::RouterLink for AuthedLink {
    async fn call(
        &self,
        reports: tokio_stream::wrappers::ReceiverStream<api::EdgeReport>,
    ) -> Result<callgrid_sip_edge::Instructions, tonic::Status> {
        let mut client = self.0.clone();
        let response = client.call(reports).await?;
        Ok(Box::pin(response.into_inner()))
    }

    async fn originations(&self) -> Result<callgrid_sip_edge::Originations, tonic::Status> {
        let mut client = self.0.clone();
        let response = client.originations(api::OriginationsRequest {}).await?;
        Ok(Box::pin(response.into_inner()))
    }
}

/// How long the router's answer about a token is kept: a revoked token keeps working here
/// for at most this long.
const KEEP: Duration = Duration::from_secs(30);
/// How long a refusal is kept.
const KEEP_REFUSAL: Duration = Duration::from_secs(5);
/// Most answers kept.
const MAX_KEPT: usize = 1024;

/// The router's answer about a token, and when it came.
type Answer = (Result<Principal, Denied>, Instant);

/// Asks the router's `Access/WhoAmI` who a token is, and keeps the answer a while.
pub(crate) struct RouterVerifier {
    channel: Channel,
    kept: Mutex<HashMap<String, Answer>>,
}

impl RouterVerifier {
    pub(crate) fn new(channel: Channel) -> RouterVerifier {
        RouterVerifier {
            channel,
            kept: Mutex::new(HashMap::new()),
        }
    }

    async fn ask(&self, token: &str) -> Result<Principal, Denied> {
        let header = format!("Bearer {token}")
            .parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>()
            .map_err(|_| Denied::Unauthenticated("invalid token".into()))?;
        let mut req = tonic::Request::new(api::WhoAmIRequest {});
        req.metadata_mut().insert("authorization", header);
        let mut client = api::access_client::AccessClient::new(self.channel.clone());
        match client.who_am_i(req).await {
            Ok(r) => {
                let id = r.into_inner();
                let role = Role::parse(&id.role)
                    .ok_or_else(|| Denied::Unauthenticated("unknown role".into()))?;
                let opt = |s: String| (!s.is_empty()).then(|| Arc::from(s.as_str()));
                Ok(Principal {
                    id: Arc::from(id.id.as_str()),
                    role,
                    tenant: opt(id.tenant),
                    agent: opt(id.agent),
                    session: None,
                })
            }
            Err(s) if s.code() == tonic::Code::PermissionDenied => {
                Err(Denied::Forbidden(s.message().to_owned()))
            }
            Err(s) if s.code() == tonic::Code::Unauthenticated => {
                Err(Denied::Unauthenticated(s.message().to_owned()))
            }
            Err(s) => Err(Denied::Unauthenticated(format!(
                "cannot verify credentials now (router: {})",
                s.message()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Verifier for RouterVerifier {
    async fn token(&self, token: &str) -> Result<Principal, Denied> {
        if let Some((answer, at)) = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
        {
            let keep = if answer.is_ok() { KEEP } else { KEEP_REFUSAL };
            if at.elapsed() < keep {
                return answer.clone();
            }
        }
        let answer = self.ask(token).await;
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_KEPT {
            kept.retain(|_, (_, at)| at.elapsed() < KEEP);
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
        }
        kept.insert(token.to_owned(), (answer.clone(), Instant::now()));
        answer
    }

    async fn session(&self, _: &str, _: Option<Option<&str>>) -> Result<Principal, Denied> {
        Err(Denied::Unauthenticated(
            "sign in at the supervisor service; here, show a bearer token".into(),
        ))
    }
}
