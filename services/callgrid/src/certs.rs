//! `callgrid certs --out DIR`: a development certificate authority and certificates signed by
//! it, for TLS on every API and mutual TLS between nodes (docs/SECURITY.md). Not for
//! production: use your organisation's CA there.
//!
//! Writes `ca.pem` (give it to clients: `--tls-ca`, and to servers that ask nodes for
//! certificates: `--tls-client-ca`), `ca.key`, and for each `--name` (default `node`)
//! `NAME.pem` + `NAME.key`: a certificate for the `--host` names and addresses, usable both
//! by a server (`--tls-cert`/`--tls-key`) and by a client showing it (`--tls-client-cert`/
//! `--tls-client-key`). Keys are written with mode 0600.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

#[derive(Args)]
pub(crate) struct CertsArgs {
    /// Directory to write the files to (created if missing; existing files are replaced).
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// Names and addresses the certificates are valid for (repeat, or comma-separated).
    #[arg(long = "host", value_delimiter = ',', default_values = ["localhost", "127.0.0.1", "::1"])]
    hosts: Vec<String>,
    /// A certificate per name, e.g. `--name router --name edge1` (repeat, or comma-separated).
    #[arg(long = "name", value_delimiter = ',', default_values = ["node"])]
    names: Vec<String>,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

fn validity(p: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(i64::from(days));
}

pub(crate) fn run(a: CertsArgs) -> anyhow::Result<()> {
    for n in &a.names {
        anyhow::ensure!(
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "--name {n:?}: letters, digits, - and _ only (it names the files)"
        );
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let ca_key = KeyPair::generate().context("cannot make a key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "callgrid development CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca, a.days);
    let issuer = CertifiedIssuer::self_signed(ca, ca_key).context("cannot sign the CA")?;
    write(&a.out, "ca.pem", &issuer.pem(), false)?;
    write(&a.out, "ca.key", &issuer.key().serialize_pem(), true)?;
    for name in &a.names {
        let key = KeyPair::generate().context("cannot make a key")?;
        let mut p = CertificateParams::new(a.hosts.clone())
            .with_context(|| format!("--host {:?}", a.hosts))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name.as_str());
        p.distinguished_name = dn;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut p, a.days);
        let cert = p
            .signed_by(&key, &issuer)
            .with_context(|| format!("cannot sign {name}"))?;
        write(&a.out, &format!("{name}.pem"), &cert.pem(), false)?;
        write(&a.out, &format!("{name}.key"), &key.serialize_pem(), true)?;
    }
    println!(
        "wrote {}/ca.pem, ca.key and {} for {}",
        a.out.display(),
        a.names
            .iter()
            .map(|n| format!("{n}.pem/.key"))
            .collect::<Vec<_>>()
            .join(", "),
        a.hosts.join(", ")
    );
    Ok(())
}

fn write(dir: &std::path::Path, name: &str, text: &str, secret: bool) -> anyhow::Result<()> {
    let path = dir.join(name);
    if secret {
        callgrid_access::write_secret_file(&path, text)
    } else {
        std::fs::write(&path, text)
    }
    .with_context(|| format!("cannot write {}", path.display()))
}
