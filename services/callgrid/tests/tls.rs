//! TLS on every API (docs/SECURITY.md): `callgrid certs` makes a development CA; `callgrid
//! serve --tls-cert/--tls-key` speaks TLS on gRPC, the supervisor service and metrics, and with
//! `--tls-client-ca` asks gRPC clients for a certificate of that CA (mutual TLS between nodes);
//! the CLI and `callgrid watch` reach it over `https://`; a plaintext client gets nowhere; a
//! session cookie served over TLS is `Secure`; without TLS the servers listen only on
//! loopback.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use callgrid_testkit::{eventually_blocking, free_tcp_port, Node, Ready};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn callgrid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(args)
        .output()
        .expect("callgrid runs")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One HTTPS/1.0 request to 127.0.0.1:`port`, trusting `ca`; the raw response.
async fn https(port: u16, ca: &Path, request: &str) -> std::io::Result<String> {
    let config: Arc<rustls::ClientConfig> =
        callgrid_http::tls::client_config(ca, None, &[b"http/1.1"]).expect("client config");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut s = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    s.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    // a TLS peer may close without close_notify: what was read counts
    let _ = s.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn every_api_speaks_tls_and_grpc_asks_nodes_for_their_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let out = callgrid(&[
        "certs",
        "--out",
        path(&certs),
        "--name",
        "node,cli",
        "--days",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.pem", "ca.key", "node.pem", "node.key", "cli.pem", "cli.key",
    ] {
        assert!(certs.join(f).exists(), "{f}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(certs.join("node.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "keys are the owner's only");

    let node = Node::serve(env!("CARGO_BIN_EXE_callgrid"))
        .metrics()
        .args(["--tls-cert", path(&certs.join("node.pem"))])
        .args(["--tls-key", path(&certs.join("node.key"))])
        .args(["--tls-client-ca", path(&certs.join("ca.pem"))])
        // no plaintext client reaches it: ready once it wrote its token
        .ready(Ready::Token)
        .start_blocking();
    let (grpc, http, metrics) = (node.grpc_port(), node.http_port(), node.metrics_port());
    let token_file = node.data_dir().join("admin.token");
    let router = format!("https://127.0.0.1:{grpc}");
    let agent_list = |with_cert: bool, url: &str| {
        let mut args = vec![
            "agent".to_owned(),
            "list".to_owned(),
            "--router".to_owned(),
            url.to_owned(),
            "--token-file".to_owned(),
            path(&token_file).to_owned(),
            "--tls-ca".to_owned(),
            path(&certs.join("ca.pem")).to_owned(),
        ];
        if with_cert {
            args.extend([
                "--tls-client-cert".to_owned(),
                path(&certs.join("cli.pem")).to_owned(),
                "--tls-client-key".to_owned(),
                path(&certs.join("cli.key")).to_owned(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        callgrid(&args)
    };
    // gRPC over mutual TLS
    let listed = eventually_blocking("gRPC over TLS", Duration::from_secs(60), || {
        let out = agent_list(true, &router);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    assert!(listed.contains("alice"), "{listed}");
    // without a client certificate, or in clear text: nothing
    assert!(!agent_list(false, &router).status.success());
    assert!(!agent_list(true, &format!("http://127.0.0.1:{grpc}"))
        .status
        .success());

    // the supervisor service and metrics over TLS (no client certificate asked)
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ca = certs.join("ca.pem");
    let token = node.admin_token();
    let r = rt
        .block_on(https(
            http,
            &ca,
            &format!("GET /api/v1/tenants HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"),
        ))
        .expect("https");
    assert!(
        r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"),
        "{r}"
    );
    assert!(r.contains("\"demo\""), "{r}");
    let r = rt
        .block_on(https(
            metrics,
            &ca,
            &format!("GET /metrics HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"),
        ))
        .expect("https metrics");
    assert!(r.contains(" 200 "), "{r}");
    // a session cookie over TLS is Secure
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args([
            "user",
            "add",
            "--tenant",
            "demo",
            "--role",
            "supervisor",
            "sue",
        ])
        .args(["--router", &router, "--token-file", path(&token_file)])
        .args(["--tls-ca", path(&ca)])
        .args(["--tls-client-cert", path(&certs.join("cli.pem"))])
        .args(["--tls-client-key", path(&certs.join("cli.key"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"sue's long password\n")?;
            c.wait_with_output()
        })
        .expect("user add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = r#"{"tenant":"demo","user":"sue","password":"sue's long password"}"#;
    let r = rt
        .block_on(https(
            http,
            &ca,
            &format!(
                "POST /api/v1/session HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        ))
        .expect("sign in");
    let cookie = r
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {r}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    // a plaintext HTTP client gets no answer from the TLS port
    let plain = rt.block_on(callgrid_testkit::http(http, "GET", "/healthz", &[], ""));
    assert!(plain.map_or(true, |r| r.status == 0), "a plaintext answer");
    // callgrid watch over https
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["watch", "--tenant", "demo", "--once", "--supervisor"])
        .arg(format!("https://127.0.0.1:{http}"))
        .args(["--token-file", path(&token_file), "--tls-ca", path(&ca)])
        .output()
        .expect("watch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tenant demo"));
}

#[test]
fn without_tls_the_apis_listen_only_on_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["serve", "--no-sip", "--data-dir", path(dir.path())])
        .args(["--listen", &format!("0.0.0.0:{}", free_tcp_port())])
        .env("RUST_LOG", "warn")
        .output()
        .expect("callgrid runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(
        !dir.path().join("events.sqlite").exists(),
        "refused before anything was written"
    );
}

/// A TLS-terminating proxy on `listener` in front of the plain TCP service at `to`.
async fn tls_proxy(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    to: String,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let to = to.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let Ok(mut plain) = tokio::net::TcpStream::connect(&to).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}

#[test]
fn the_router_reaches_a_kafka_broker_that_requires_tls() {
    use callgrid_eventlog::{tansu, EventLog, KafkaLog, KafkaLogOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let out = callgrid(&["certs", "--out", path(&certs), "--name", "broker"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Tansu behind a TLS proxy: clients only ever reach the broker through the proxy
    let tls_port = free_tcp_port();
    let broker = tansu::start_advertising(Some(&format!("127.0.0.1:{tls_port}")));
    let config = callgrid_http::tls::server_config(
        &certs.join("broker.pem"),
        &certs.join("broker.key"),
        None,
    )
    .expect("server config");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", tls_port)))
        .expect("bind the proxy");
    rt.spawn(tls_proxy(listener, config, broker.brokers.clone()));

    let ca = certs.join("ca.pem");
    let tls_options = vec![
        ("security.protocol".to_owned(), "ssl".to_owned()),
        ("ssl.ca.location".to_owned(), path(&ca).to_owned()),
    ];
    let node = Node::router(env!("CARGO_BIN_EXE_callgrid"))
        .args(["--kafka", &format!("127.0.0.1:{tls_port}")])
        .args(["--kafka-option", "security.protocol=ssl"])
        .args(["--kafka-option", &format!("ssl.ca.location={}", path(&ca))])
        .args(["--partitions", "2"])
        .ready(Ready::Token)
        .start_blocking();
    let token_file = node.data_dir().join("admin.token");
    let router = format!("http://127.0.0.1:{}", node.grpc_port());
    eventually_blocking(
        "the router on Kafka over TLS to serve",
        Duration::from_secs(90),
        || {
            let out = callgrid(&[
                "agent",
                "login",
                "alice",
                "--router",
                &router,
                "--token-file",
                path(&token_file),
            ]);
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        },
    );
    // the login is in the topic, read through the proxy with TLS too
    let found = rt.block_on(async {
        let log = KafkaLog::new(KafkaLogOptions {
            client_config: tls_options,
            ..KafkaLogOptions::new(format!("127.0.0.1:{tls_port}"))
        })
        .expect("kafka over tls");
        let mut found = false;
        for p in 0..log
            .partition_count("callgrid.events.v1")
            .await
            .expect("topic")
        {
            for r in log
                .read("callgrid.events.v1", p, 0, usize::MAX)
                .await
                .expect("read")
            {
                let env = <callgrid_proto::events::v1::EventEnvelope as prost::Message>::decode(
                    r.value.as_slice(),
                )
                .expect("an envelope");
                found |= env.aggregate_id == "alice" && env.caused_by.starts_with("token:");
            }
        }
        found
    });
    assert!(
        found,
        "alice's login, caused by the admin token, is in the topic"
    );
}
