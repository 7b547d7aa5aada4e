//! `callgrid call AGENT NUMBER`: click-to-call (C1) over the router's gRPC API, as a CRM
//! does it: the agent's phones ring, and when the agent answers the customer is dialled.

use callgrid_proto::api::v1 as api;
use clap::Args;

use crate::client::ClientArgs;

#[derive(Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Tenant of the agent.
    #[arg(long, default_value = "demo")]
    tenant: String,
    /// A correlation id echoed in the call's events and record (the CRM's record id).
    #[arg(long)]
    correlation: Option<String>,
    /// The agent who places the call (its phones ring first).
    agent: String,
    /// The customer's number, in any written form (`0912345678`, `+84 91 234 5678`);
    /// `*CODE*NUMBER` or a number's short prefix forces the caller number.
    number: String,
}

/// Places the call; prints the call id, the destination, the caller number and the trunks.
pub(crate) async fn run(a: CallArgs) -> anyhow::Result<()> {
    let mut client = api::agent_service_client::AgentServiceClient::new(a.client.connect().await?);
    let r = client
        .click_to_call(api::ClickToCallRequest {
            tenant: a.tenant,
            agent: a.agent,
            number: a.number,
            correlation_id: a.correlation.unwrap_or_default(),
        })
        .await;
    match r {
        Ok(r) => {
            let r = r.into_inner();
            println!(
                "{} to {} ({}) as {} on {}",
                r.call,
                r.destination,
                r.class,
                if r.caller_number.is_empty() {
                    "the trunk's identity"
                } else {
                    &r.caller_number
                },
                r.trunks.join(", ")
            );
            Ok(())
        }
        Err(e) => anyhow::bail!("{}", e.message()),
    }
}
