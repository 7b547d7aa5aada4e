//! `callgrid token ...` and `callgrid user ...`: bearer tokens and users, over the router's
//! access API (docs/SECURITY.md). Secrets never go on the command line: a new token is printed
//! once on standard output, a password is read from standard input.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{bail, Context};
use callgrid_proto::api::v1 as api;
use clap::{Args, Subcommand};

use crate::client::ClientArgs;

#[derive(Args)]
pub(crate) struct TokenCmd {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Issue a token; prints it on standard output (shown this once: only its hash is kept).
    Create {
        /// Tenant the token is for (none: platform-wide roles).
        #[arg(long)]
        tenant: Option<String>,
        /// platform_admin, tenant_admin, supervisor, agent, edge, dialer, wallboard, metrics.
        #[arg(long)]
        role: String,
        /// The agent an agent token acts as.
        #[arg(long)]
        agent: Option<String>,
        /// Lifetime: `30d`, `12h`, `90m`, `3600s` or seconds; none: never expires.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
        /// A note for operators ("edge node 2", "CRM integration").
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a token by its id (from `token list`).
    Revoke {
        /// Token id.
        id: String,
    },
    /// List tokens (ids, roles, scopes; never secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Args)]
pub(crate) struct UserCmd {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    action: UserAction,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user; the password is read from standard input.
    Add {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// tenant_admin, supervisor, agent or wallboard.
        #[arg(long)]
        role: String,
        /// An agent user's agent id (default: NAME).
        #[arg(long)]
        agent: Option<String>,
        /// Sign-in name.
        name: String,
    },
    /// Set a user's password, read from standard input.
    Passwd {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Sign-in name.
        name: String,
    },
    /// Remove a user (and end its sessions).
    Remove {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Sign-in name.
        name: String,
    },
    /// List users.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `30d`, `12h`, `90m`, `3600s`, or seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("expected a number and d, h, m or s, got {s:?}"))?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        "s" => Some(n),
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use d, h, m or s")),
    }
    .filter(|&s| s > 0)
    .ok_or_else(|| format!("{s:?} is not a positive duration"))?;
    Ok(Duration::from_secs(secs))
}

/// One line of standard input, the password.
fn read_password() -> anyhow::Result<String> {
    eprint!("password (from standard input): ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    eprintln!();
    let p = line.trim_end_matches(['\n', '\r']).to_owned();
    if p.is_empty() {
        bail!("no password on standard input");
    }
    Ok(p)
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", e.code(), e.message())
}

fn print_token(t: &api::TokenInfo) {
    let expires = if t.expires_ms == 0 {
        "never".to_owned()
    } else {
        format!("{} ms", t.expires_ms)
    };
    println!(
        "{}  {:<14} tenant={:<12} agent={:<10} expires={}  by={}  {}",
        t.id,
        t.role,
        if t.tenant.is_empty() { "*" } else { &t.tenant },
        if t.agent.is_empty() { "-" } else { &t.agent },
        expires,
        t.created_by,
        t.label
    );
}

pub(crate) async fn token(c: TokenCmd) -> anyhow::Result<()> {
    let mut client = api::access_client::AccessClient::new(c.client.connect().await?);
    match c.action {
        TokenAction::Create {
            tenant,
            role,
            agent,
            expires,
            label,
        } => {
            let r = client
                .create_token(api::CreateTokenRequest {
                    role,
                    tenant: tenant.unwrap_or_default(),
                    agent: agent.unwrap_or_default(),
                    expires_in_s: expires.map_or(0, |d| d.as_secs()),
                    label,
                })
                .await
                .map_err(status)?
                .into_inner();
            if let Some(info) = &r.info {
                print_token_to_stderr(info);
            }
            println!("{}", r.token);
        }
        TokenAction::Revoke { id } => {
            client
                .revoke_token(api::RevokeTokenRequest { id: id.clone() })
                .await
                .map_err(status)?;
            eprintln!("revoked {id}");
        }
        TokenAction::List { tenant } => {
            let r = client
                .list_tokens(api::ListTokensRequest {
                    tenant: tenant.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            for t in &r.tokens {
                print_token(t);
            }
        }
    }
    Ok(())
}

fn print_token_to_stderr(t: &api::TokenInfo) {
    eprintln!(
        "issued {} role={} tenant={} agent={}",
        t.id,
        t.role,
        if t.tenant.is_empty() { "*" } else { &t.tenant },
        if t.agent.is_empty() { "-" } else { &t.agent },
    );
}

pub(crate) async fn user(c: UserCmd) -> anyhow::Result<()> {
    let mut client = api::access_client::AccessClient::new(c.client.connect().await?);
    let print = |u: &api::UserInfo| {
        println!(
            "{}/{}  {}{}",
            u.tenant,
            u.name,
            u.role,
            if u.agent.is_empty() {
                String::new()
            } else {
                format!(" (agent {})", u.agent)
            }
        );
    };
    match c.action {
        UserAction::Add {
            tenant,
            role,
            agent,
            name,
        } => {
            let password = read_password()?;
            let u = client
                .add_user(api::AddUserRequest {
                    tenant,
                    name,
                    role,
                    agent: agent.unwrap_or_default(),
                    password,
                })
                .await
                .map_err(status)?
                .into_inner();
            print(&u);
        }
        UserAction::Passwd { tenant, name } => {
            let password = read_password()?;
            let u = client
                .set_password(api::SetPasswordRequest {
                    tenant,
                    name,
                    password,
                })
                .await
                .map_err(status)?
                .into_inner();
            print(&u);
        }
        UserAction::Remove { tenant, name } => {
            client
                .remove_user(api::RemoveUserRequest {
                    tenant: tenant.clone(),
                    name: name.clone(),
                })
                .await
                .map_err(status)?;
            eprintln!("removed {tenant}/{name}");
        }
        UserAction::List { tenant } => {
            let r = client
                .list_users(api::ListUsersRequest {
                    tenant: tenant.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            for u in &r.users {
                print(u);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3_600)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("").is_err());
    }
}
