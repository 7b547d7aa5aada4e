//! Secrets stay secret (docs/SECURITY.md): agents' SIP passwords are kept as digest HA1s and
//! trunk secrets encrypted with the node's secrets key, so no plain secret of a tenant file is
//! in the event log, the snapshot, the projections or the log output; the phones still
//! register (the SIPp tests), and loading an unchanged file again is no new version.

mod common;

use std::path::Path;
use std::time::Duration;

use callgrid_proto::api::v1 as api;
use callgrid_testkit::{eventually, lists_tenant, Node};

/// Every byte of the files under `dir`, with their names.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plain_secret_of_a_tenant_file_is_kept_anywhere() {
    let mut node = Node::serve(env!("CARGO_BIN_EXE_callgrid"))
        .args(["--snapshot-every", "1", "--projector-write-every-ms", "0"])
        .rust_log("debug,rsipstack=warn,h2=info,hyper=info,tower=info")
        .start()
        .await;
    let data = node.data_dir().to_owned();
    let token = node.admin_token();
    let ch = node.connect().await;
    // a tenant whose trunk authenticates with a secret
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip/siptest.yaml"),
    )
    .expect("siptest.yaml")
    .replace(
        "address: \"127.0.0.1:5080\",",
        "address: \"127.0.0.1:5080\", username: carrier-one, password: carrier-secret-4711,",
    );
    assert!(yaml.contains("carrier-secret-4711"));
    let mut admin = api::admin_client::AdminClient::new(ch);
    let load = || api::LoadTenantRequest {
        yaml: yaml.clone(),
        source_name: "siptest.yaml".into(),
    };
    let first = admin.load_tenant(load()).await.expect("loads").into_inner();
    let again = admin
        .load_tenant(load())
        .await
        .expect("loads again")
        .into_inner();
    assert_eq!(
        first.version, again.version,
        "an unchanged file is no new version"
    );
    // wait for the projector to have written it and for a snapshot
    eventually(
        "a projection and a snapshot",
        Duration::from_secs(60),
        async || {
            lists_tenant(node.http_port(), &token, "siptest").await
                && data.join("snapshot.bin").exists()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.stop();

    let secrets = [
        "alice-demo-secret",
        "bob-demo-secret",
        "ann-test-secret",
        "carrier-secret-4711",
        "sip_password",
    ];
    let mut seen = files(&data);
    seen.push((
        "the log output".into(),
        std::fs::read(node.log_path()).expect("serve log"),
    ));
    assert!(seen.iter().any(|(n, _)| n.ends_with("events.sqlite")));
    assert!(seen.iter().any(|(n, _)| n.ends_with("projections.sqlite")));
    assert!(seen.iter().any(|(n, _)| n.ends_with("snapshot.bin")));
    for (name, bytes) in &seen {
        for s in secrets {
            assert!(!contains(bytes, s), "{s} in {name}");
        }
    }
    // what is kept instead
    let events = common::read_events(&data.join("events.sqlite")).await;
    let kept: Vec<&str> = events
        .iter()
        .filter_map(|e| match e.event.as_ref().and_then(|ev| ev.kind.as_ref()) {
            Some(callgrid_proto::events::v1::event::Kind::TenantConfigured(c)) => {
                Some(c.yaml.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(kept.len(), 2, "demo and siptest, once each");
    let siptest = kept
        .iter()
        .find(|y| y.contains("siptest"))
        .expect("siptest's configuration");
    assert!(siptest.contains("sip_ha1"), "{siptest}");
    assert!(siptest.contains("password_enc: v1."), "{siptest}");
    let key = callgrid_config::secrets::SecretsKey::read(&data.join("secrets.key"))
        .expect("the node's key");
    let file = callgrid_config::load_str("kept.yaml", siptest).expect("a valid tenant file");
    let sealed = file.trunks[0].password_enc.as_deref().expect("sealed");
    assert_eq!(key.open(sealed).expect("opens"), "carrier-secret-4711");
    let ann = file
        .agent("ann")
        .and_then(|a| a.sip_ha1.clone())
        .expect("ann's ha1");
    assert_eq!(
        ann.ha1,
        callgrid_config::secrets::ha1("siptest.ann", "callgrid", "ann-test-secret")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("secrets.key"))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
