//! `callgrid tenant ...`: load a tenant file into a running router (a new tenant, or a new
//! version of one: its calls in progress keep the version they arrived under) and list the
//! tenants, over the router's Admin API. In a cluster this is how configuration changes: the
//! router writes it to the log and every SIP edge takes it from the router.

use std::path::PathBuf;

use anyhow::Context;
use callgrid_proto::api::v1 as api;
use clap::{Args, Subcommand};

use crate::client::ClientArgs;

#[derive(Args)]
pub(crate) struct TenantArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Load tenant files (YAML; schemas/tenant.schema.json): each a new tenant or a new version.
    Load {
        /// Tenant files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the tenants the token may see, with their versions.
    List,
}

pub(crate) async fn run(a: TenantArgs) -> anyhow::Result<()> {
    let mut admin = api::admin_client::AdminClient::new(a.client.connect().await?)
        .max_encoding_message_size(callgrid_router::grpc::MAX_ADMIN_MESSAGE);
    match a.action {
        Action::Load { files } => {
            let mut failed = false;
            for f in files {
                let yaml = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                let r = admin
                    .load_tenant(api::LoadTenantRequest {
                        yaml,
                        source_name: f.display().to_string(),
                    })
                    .await;
                match r {
                    Ok(r) => {
                        let r = r.into_inner();
                        println!(
                            "{}: tenant {} version {} ({} agents, {} queues)",
                            f.display(),
                            r.tenant,
                            r.version,
                            r.agents,
                            r.queues
                        );
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("{}: {}", f.display(), e.message());
                    }
                }
            }
            if failed {
                anyhow::bail!("some files were not loaded");
            }
        }
        Action::List => {
            let r = admin
                .list_tenants(api::ListTenantsRequest {})
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?
                .into_inner();
            for t in r.tenants {
                println!(
                    "{:<20} version {:<4} {} agents, {} queues, {} calls",
                    t.tenant, t.version, t.agents, t.queues, t.calls
                );
            }
        }
    }
    Ok(())
}
