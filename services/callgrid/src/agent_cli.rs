//! `callgrid agent ...`: log agents in and out and change their state over the router's gRPC
//! API, for operators, the README's softphone walk-through and load tests.

use callgrid_proto::api::v1 as api;
use clap::{Args, Subcommand};

use crate::client::ClientArgs;

#[derive(Args)]
pub(crate) struct AgentArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Tenant of the agents.
    #[arg(long, default_value = "demo")]
    tenant: String,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Log agents in, available (or not ready with --not-ready REASON).
    Login {
        /// Agent ids.
        #[arg(required = true)]
        agents: Vec<String>,
        /// Start not ready with this reason code.
        #[arg(long)]
        not_ready: Option<String>,
        /// SIP URIs to ring when the agent has no registered phone.
        #[arg(long = "device")]
        devices: Vec<String>,
    },
    /// Make agents available.
    Ready {
        /// Agent ids.
        #[arg(required = true)]
        agents: Vec<String>,
    },
    /// Make agents not ready with a reason code.
    NotReady {
        /// Reason code of the tenant.
        reason: String,
        /// Agent ids.
        #[arg(required = true)]
        agents: Vec<String>,
    },
    /// Log agents out.
    Logout {
        /// Agent ids.
        #[arg(required = true)]
        agents: Vec<String>,
    },
    /// List the tenant's agents and their states.
    List,
}

fn print(s: &api::AgentStatus) {
    let reason = if s.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", s.reason)
    };
    println!("{:<20} {}{}", s.agent, s.state, reason);
}

pub(crate) async fn run(a: AgentArgs) -> anyhow::Result<()> {
    let mut client = api::agent_service_client::AgentServiceClient::new(a.client.connect().await?);
    let t = a.tenant.clone();
    let mut failed = false;
    let mut report =
        |r: Result<tonic::Response<api::AgentStatus>, tonic::Status>, agent: &str| match r {
            Ok(s) => print(&s.into_inner()),
            Err(e) => {
                failed = true;
                eprintln!("{agent}: {}", e.message());
            }
        };
    match a.action {
        Action::Login {
            agents,
            not_ready,
            devices,
        } => {
            for agent in agents {
                let r = client
                    .login(api::LoginRequest {
                        tenant: t.clone(),
                        agent: agent.clone(),
                        devices: devices.clone(),
                        not_ready_reason: not_ready.clone().unwrap_or_default(),
                    })
                    .await;
                report(r, &agent);
            }
        }
        Action::Ready { agents } => {
            for agent in agents {
                let r = client
                    .set_state(api::SetStateRequest {
                        tenant: t.clone(),
                        agent: agent.clone(),
                        state: Some(api::set_state_request::State::Available(true)),
                    })
                    .await;
                report(r, &agent);
            }
        }
        Action::NotReady { reason, agents } => {
            for agent in agents {
                let r = client
                    .set_state(api::SetStateRequest {
                        tenant: t.clone(),
                        agent: agent.clone(),
                        state: Some(api::set_state_request::State::NotReadyReason(
                            reason.clone(),
                        )),
                    })
                    .await;
                report(r, &agent);
            }
        }
        Action::Logout { agents } => {
            for agent in agents {
                let r = client
                    .logout(api::AgentRef {
                        tenant: t.clone(),
                        agent: agent.clone(),
                    })
                    .await;
                report(r, &agent);
            }
        }
        Action::List => {
            let list = client
                .list_agents(api::ListAgentsRequest { tenant: t.clone() })
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            for s in &list.into_inner().agents {
                print(s);
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
