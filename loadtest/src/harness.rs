//! What the benchmark programs share: child processes (spawned into a work directory, killed
//! when dropped, their CPU time read from /proc), kernel UDP drop counters, free ports, the
//! load tenant of `callgrid serve` with its SIPp agents registered and made available, SIPp
//! statistics files, and `GET /metrics` scrapes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use callgrid_proto::api::v1 as api;
use callgrid_testkit::Child;

// ------------------------------------------------------------------ processes and CPU time

/// Log files of every child, newest last; their tails are printed when something fails.
static LOGS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A process's parent and CPU time.
pub struct PStat {
    /// Parent process id.
    pub ppid: u32,
    /// User + system CPU seconds.
    pub cpu_s: f64,
}

/// Parent and user+system CPU seconds of a process, from /proc/PID/stat (a zombie
/// still has its entry until it is reaped).
pub fn proc_stat(pid: u32) -> Option<PStat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is the state, f[1] the parent, f[11] and f[12] utime and stime in clock ticks
    let ppid = f.get(1)?.parse().ok()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some(PStat {
        ppid,
        cpu_s: (utime + stime) / clk_tck(),
    })
}

/// CPU seconds of a process and all its descendants that are alive (e.g. Kamailio's workers).
pub fn tree_cpu_s(root: u32) -> f64 {
    let mut parent_cpu: HashMap<u32, (u32, f64)> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if let Some(st) = proc_stat(pid) {
                    parent_cpu.insert(pid, (st.ppid, st.cpu_s));
                }
            }
        }
    }
    let mut total = 0.0;
    for (&pid, &(_, cpu)) in &parent_cpu {
        let mut p = pid;
        for _ in 0..64 {
            if p == root {
                total += cpu;
                break;
            }
            match parent_cpu.get(&p) {
                Some(&(pp, _)) if pp != 0 && pp != p => p = pp,
                _ => break,
            }
        }
    }
    total
}

/// CPU seconds of this process.
pub fn self_cpu_s() -> f64 {
    proc_stat(std::process::id()).map_or(0.0, |s| s.cpu_s)
}

/// Drops counted by the kernel on UDP sockets bound to 127.0.0.1, by local port (socket
/// receive buffer full), from /proc/net/udp.
pub fn udp_drops() -> HashMap<u16, u64> {
    let mut out = HashMap::new();
    let text = fs::read_to_string("/proc/net/udp").unwrap_or_default();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(drops)) = (f.get(1), f.last()) else {
            continue;
        };
        let Some((_, port)) = local.split_once(':') else {
            continue;
        };
        if let (Ok(port), Ok(drops)) = (u16::from_str_radix(port, 16), drops.parse::<u64>()) {
            *out.entry(port).or_insert(0) += drops;
        }
    }
    out
}

/// The drops of `ports` in a [`udp_drops`] reading.
pub fn drops_of(d: &HashMap<u16, u64>, ports: &[u16]) -> u64 {
    ports.iter().filter_map(|p| d.get(p)).sum()
}

/// CPU time of every process on the machine, sampled during a step, to tell how much CPU
/// other processes took (a build running next to the benchmark spoils its figures).
/// Per-process times are what the scheduler charged; /proc/stat's machine-wide idle time is
/// not usable on this VM (it misses most of the busy time of short bursts).
pub struct Census {
    /// (pid, start time) -> (parent, CPU seconds at the first sample)
    first: HashMap<(u32, u64), (u32, f64)>,
    /// (pid, start time) -> (parent, CPU seconds at the last sample)
    last: HashMap<(u32, u64), (u32, f64)>,
}

impl Census {
    /// Takes the first sample.
    pub fn start() -> Census {
        let mut c = Census {
            first: HashMap::new(),
            last: HashMap::new(),
        };
        c.sample();
        c.first = c.last.clone();
        c
    }

    /// Takes another sample (the last one counts).
    pub fn sample(&mut self) {
        let Ok(dir) = fs::read_dir("/proc") else {
            return;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(text) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = text.rfind(')').and_then(|i| text.get(i + 1..)) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            // f[1] parent, f[11] utime, f[12] stime, f[19] start time (ticks since boot)
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            if let (Some(ppid), Some(ut), Some(st), Some(start)) =
                (num(1), num(11), num(12), num(19))
            {
                self.last
                    .insert((pid, start as u64), (ppid as u32, (ut + st) / clk_tck()));
            }
        }
    }

    /// CPU seconds used since the first sample by processes that are neither in `ours` nor
    /// descendants of them.
    pub fn others_cpu_s(&self, ours: &[u32]) -> f64 {
        let parent: HashMap<u32, u32> = self
            .last
            .iter()
            .map(|(&(pid, _), &(pp, _))| (pid, pp))
            .collect();
        let is_ours = |pid: u32| {
            let mut p = pid;
            for _ in 0..64 {
                if ours.contains(&p) {
                    return true;
                }
                match parent.get(&p) {
                    Some(&pp) if pp != 0 && pp != p => p = pp,
                    _ => return false,
                }
            }
            false
        };
        self.last
            .iter()
            .filter(|((pid, _), _)| !is_ours(*pid))
            .map(|(k, &(_, cpu))| cpu - self.first.get(k).map_or(0.0, |f| f.1))
            .sum::<f64>()
            .max(0.0)
    }
}

/// A child process we started. Dropping it kills it (with its process group when `group`;
/// the process itself in any case, as the test kit's [`Child`] does), so every exit path,
/// including errors and panics, ends the children.
pub struct Proc {
    /// Its name in logs and messages (and its log file's).
    pub name: String,
    child: Child,
    group: bool,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// CPU seconds at the last poll (kept after it exited: read from the zombie's entry).
    pub last_cpu: f64,
    /// Its exit status, once reaped.
    pub status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` in `dir` with stdout and stderr in `dir/NAME.log` (its own process group
    /// when `group`: stopping it then stops its children too).
    pub fn spawn(name: &str, cmd: &mut Command, dir: &Path, group: bool) -> anyhow::Result<Proc> {
        fs::create_dir_all(dir)?;
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if group {
            cmd.process_group(0);
        }
        let child = Child::spawn(cmd).with_context(|| {
            format!(
                "cannot start {name} ({})",
                cmd.get_program().to_string_lossy()
            )
        })?;
        if let Ok(mut logs) = LOGS.lock() {
            logs.push(log.clone());
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            group,
            log,
            last_cpu: 0.0,
            status: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if it has exited (reaping it); records its CPU time first.
    pub fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        if let Some(st) = proc_stat(self.pid()) {
            self.last_cpu = st.cpu_s;
        }
        if let Some(s) = self.child.exited() {
            self.status = Some(s);
        }
        self.status
    }

    /// CPU seconds of the process (and its descendants for a group) while it runs.
    pub fn cpu_s(&mut self) -> f64 {
        if self.status.is_none() {
            self.last_cpu = if self.group {
                tree_cpu_s(self.pid())
            } else {
                proc_stat(self.pid()).map_or(self.last_cpu, |s| s.cpu_s)
            };
        }
        self.last_cpu
    }

    /// Ends the process (SIGTERM to a group first), and reaps it.
    pub fn stop(&mut self) {
        if self.poll().is_some() && !self.group {
            return;
        }
        let pgid = format!("-{}", self.pid());
        if self.group {
            // SIGTERM lets Kamailio stop its workers; then make sure the group is gone
            let _ = quiet(Command::new("kill").args(["-TERM", "--", &pgid])).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while self.poll().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = quiet(Command::new("kill").args(["-KILL", "--", &pgid])).status();
        }
        if self.poll().is_none() {
            self.child.kill();
            self.status = self.child.exited();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// No stdin, stdout or stderr.
pub fn quiet(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Prints the tails of the last children's logs (when something failed).
pub fn print_log_tails() {
    let logs = LOGS.lock().map(|l| l.clone()).unwrap_or_default();
    for log in logs.iter().rev().take(8).rev() {
        let t = tail(log, 15);
        if !t.is_empty() {
            eprintln!("---- tail of {}\n{t}", log.display());
        }
    }
}

/// A binary on PATH, or in one of `extra` directories.
pub fn find_bin(name: &Path, extra: &[&str]) -> PathBuf {
    if name.components().count() > 1 {
        return name.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| name.to_path_buf())
}

/// The first non-empty line a command prints (its version).
pub fn first_line(cmd: &mut Command) -> String {
    cmd.stdin(Stdio::null())
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|e| format!("unavailable: {e}"))
}

// ------------------------------------------------------------------ ports

/// A UDP port free now on 127.0.0.1.
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port free for both UDP and TCP (the callgrid edge listens on both).
pub fn free_udp_tcp_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free UDP+TCP port")
}

/// A TCP port free now on 127.0.0.1.
pub fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `n` consecutive free UDP ports.
pub fn free_udp_range(n: usize) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let base = free_udp_port()?;
        if usize::from(base) + n >= 65_000 {
            continue;
        }
        let held: Vec<_> = (0..n)
            .map_while(|i| UdpSocket::bind(("127.0.0.1", base + i as u16)).ok())
            .collect();
        if held.len() == n {
            return Ok(base);
        }
    }
    bail!("no {n} consecutive free UDP ports")
}

/// Waits until something listens on 127.0.0.1:port (UDP) while `proc` still runs.
pub async fn wait_udp_bound(port: u16, proc: &mut Proc, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return Ok(());
        }
        if let Some(st) = proc.poll() {
            bail!("{} exited ({st}) before listening on UDP {port}", proc.name);
        }
        ensure!(
            Instant::now() < deadline,
            "{} does not listen on UDP {port} after {limit:?}",
            proc.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The SIP digest password of a load agent (the tenant YAML and the registration CSV).
pub fn agent_password(i: usize) -> String {
    format!("pw-a{i:04}-load")
}

/// The trunk of the load tenant: the SIPp callers send from 127.0.0.1, each process from a
/// port of its own, so the trunk is matched by address only (the edge tries the exact port
/// first, then any port of the address). Checked against the trunk schema of the SIP edge
/// commit (schemas/tenant.schema.json, `trunks`); no call limit.
const TRUNK_YAML: &str = "trunks:\n  - { id: load-carrier, name: Load carrier, address: \"127.0.0.1\", max_concurrent_calls: 1000000 }\n";

/// The tenant of a callgrid load test: `agents` agents a0001.. with extensions and SIP
/// passwords, all members of queue 200 (longest idle, no wrap-up), the number routed to it.
/// (The brief said queue `q1`; queue ids must be `2` and 2-6 digits, hence `200`.)
pub fn load_tenant_yaml(agents: usize, number: &str) -> String {
    let mut y = String::from(
        "tenant: load\nname: SIP load test\ntimezone: UTC\nreason_codes: [break]\n\
         limits: { max_concurrent_calls: 1000000 }\n\
         defaults: { wrapup_seconds: 0, max_missed_offers: 0, service_level_seconds: 20 }\nagents:\n",
    );
    for i in 1..=agents {
        y.push_str(&format!(
            "  - {{ id: a{i:04}, name: Agent {i}, extension: \"{}\", sip_password: \"{}\" }}\n",
            10_000 + i,
            agent_password(i)
        ));
    }
    y.push_str(
        "queues:\n  - id: \"200\"\n    name: Load\n    strategy: longest_idle\n    wrapup_seconds: 0\n    members:\n",
    );
    for i in 1..=agents {
        y.push_str(&format!("      - {{ agent: a{i:04} }}\n"));
    }
    y.push_str(&format!(
        "numbers:\n  - {{ number: \"{number}\", name: load, route: {{ queue: \"200\" }} }}\n"
    ));
    y.push_str(TRUNK_YAML);
    y
}

// ------------------------------------------------------------------ access

/// Shows a bearer token with every gRPC request.
#[derive(Clone, Debug)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A gRPC connection showing a token.
pub type Authed =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

/// `channel`, showing `token`.
pub fn authed(channel: tonic::transport::Channel, token: &str) -> anyhow::Result<Authed> {
    let value = format!("Bearer {token}")
        .parse()
        .context("the token holds characters a header cannot carry")?;
    Ok(tonic::service::interceptor::InterceptedService::new(
        channel,
        Bearer(value),
    ))
}

/// Connects to the router at `grpc` (`http://HOST:PORT`), showing `token`.
pub async fn connect(grpc: &str, token: &str) -> anyhow::Result<Authed> {
    let channel = tonic::transport::Channel::from_shared(grpc.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await?;
    authed(channel, token)
}

/// The platform admin token `callgrid serve` writes to `DATA_DIR/admin.token` on its first
/// start, once it is there.
pub fn admin_token(data_dir: &Path) -> Option<String> {
    fs::read_to_string(data_dir.join("admin.token"))
        .ok()
        .filter(|t| t.ends_with('\n'))
        .map(|t| t.trim().to_owned())
}

/// Polls the router of `data_dir` until it answers Stats with at least `tenants` tenants;
/// returns the admin token it wrote there.
pub async fn until_serving(
    grpc: &str,
    data_dir: &Path,
    tenants: u32,
    proc: &mut Proc,
    limit: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(token) = admin_token(data_dir) {
            if let Ok(ch) = connect(grpc, &token).await {
                let mut admin = api::admin_client::AdminClient::new(ch);
                if let Ok(s) = admin.stats(api::StatsRequest::default()).await {
                    if s.into_inner().tenants >= tenants {
                        return Ok(token);
                    }
                }
            }
        }
        if let Some(st) = proc.poll() {
            bail!("callgrid exited ({st}) before serving");
        }
        ensure!(
            Instant::now() < deadline,
            "callgrid not serving after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------------ SIPp statistics

/// One row of a SIPp statistics CSV.
pub struct StatRow {
    /// Unix time of the row, seconds.
    pub t: f64,
    /// Calls created so far.
    pub created: u64,
    /// Successful calls so far.
    pub ok: u64,
    /// Failed calls so far.
    pub failed: u64,
    /// Retransmissions so far.
    pub retrans: u64,
    /// non-zero failure counters by reason (UnexpectedMessage, MaxUDPRetrans, ...)
    pub why: Vec<(String, u64)>,
}

/// Rows of a SIPp `-trace_stat` CSV (cumulative counters).
pub fn read_stat(path: &Path) -> anyhow::Result<Vec<StatRow>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .context("empty statistics file")?
        .split(';')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no column {name} in {}", path.display()))
    };
    let (ct, created, ok, failed, retrans) = (
        col("CurrentTime")?,
        col("TotalCallCreated")?,
        col("SuccessfulCall(C)")?,
        col("FailedCall(C)")?,
        col("Retransmissions(C)")?,
    );
    // the reasons of failed calls: the cumulative Failed...(C) counters
    let reasons: Vec<(usize, String)> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with("Failed") && h.ends_with("(C)") && **h != "FailedCall(C)")
        .map(|(i, h)| {
            (
                i,
                h.trim_start_matches("Failed")
                    .trim_end_matches("(C)")
                    .to_string(),
            )
        })
        .collect();
    let mut rows = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(';').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.trim().parse::<u64>().ok());
        let t = f
            .get(ct)
            .and_then(|v| v.rsplit('\t').next())
            .and_then(|v| v.trim().parse::<f64>().ok());
        if let (Some(t), Some(created), Some(ok), Some(failed), Some(retrans)) =
            (t, num(created), num(ok), num(failed), num(retrans))
        {
            let why = reasons
                .iter()
                .filter_map(|(i, name)| num(*i).filter(|&n| n > 0).map(|n| (name.clone(), n)))
                .collect();
            rows.push(StatRow {
                t,
                created,
                ok,
                failed,
                retrans,
                why,
            });
        }
    }
    Ok(rows)
}

/// The latest cumulative (successful, failed) calls of an agent's statistics CSV.
pub fn agent_counts(dir: &Path) -> (u64, u64) {
    read_stat(&dir.join("stat.csv"))
        .ok()
        .and_then(|rows| rows.last().map(|r| (r.ok, r.failed)))
        .unwrap_or((0, 0))
}

/// Successful and failed calls of every SIPp agent so far.
pub fn agents_counts(dirs: &[PathBuf]) -> (u64, u64) {
    dirs.iter()
        .map(|d| agent_counts(d))
        .fold((0, 0), |(o, f), (a, b)| (o + a, f + b))
}

/// Paths given relative to the current directory (children run in their own directories).
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() || p.components().count() == 1 {
        // a bare name is looked up on PATH
        return p.to_path_buf();
    }
    std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
}

/// Registers the agents a0001..a`agents` of the load tenant with SIPp (`agent_register.xml`),
/// agent i's Contact on `agent_ports[(i - 1) % len]` (the SIPp UAS processes that answer).
/// Each port's agents register from that port (one SIPp per port, all at once), because the
/// edge reaches a phone where its REGISTER came from (RFC 3581): call this before the UAS
/// processes bind their ports.
pub async fn register_agents(
    sipp: &Path,
    scenarios: &Path,
    sip_port: u16,
    agent_ports: &[u16],
    agents: usize,
    work: &Path,
) -> anyhow::Result<()> {
    ensure!(!agent_ports.is_empty(), "no agent ports");
    let mut registering = Vec::new();
    for (slot, &port) in agent_ports.iter().enumerate() {
        let mine: Vec<usize> = (1..=agents)
            .filter(|i| (i - 1) % agent_ports.len() == slot)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let dir = work.join(format!("register-{slot}"));
        fs::create_dir_all(&dir)?;
        let csv = dir.join("agents.csv");
        let mut text = String::from("SEQUENTIAL\n");
        for i in &mine {
            text.push_str(&format!("a{i:04};{};{port}\n", agent_password(*i)));
        }
        fs::write(&csv, text)?;
        let mut cmd = Command::new(sipp);
        cmd.arg(format!("127.0.0.1:{sip_port}"))
            .arg("-sf")
            .arg(scenarios.join("agent_register.xml"))
            .arg("-inf")
            .arg(&csv)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-m",
                &mine.len().to_string(),
                "-r",
                "50",
                "-rp",
                "1000",
                "-l",
                "50",
            ])
            .args(["-nostdin", "-timeout", "120s", "-timeout_error"]);
        registering.push(Proc::spawn(
            &format!("register-{slot}"),
            &mut cmd,
            &dir,
            false,
        )?);
    }
    let deadline = Instant::now() + Duration::from_secs(130);
    for reg in &mut registering {
        let status = loop {
            if let Some(s) = reg.poll() {
                break s;
            }
            ensure!(
                Instant::now() < deadline,
                "agent registration did not finish"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ensure!(
            status.success(),
            "agent registration failed ({status}); see {}",
            reg.log.display()
        );
    }
    Ok(())
}

/// Logs the agents a0001..a`agents` of the load tenant in over gRPC and makes them
/// available (devices stay empty: the edge rings the agents' registered contacts).
pub async fn make_available(grpc: &str, token: &str, agents: usize) -> anyhow::Result<()> {
    let mut agents_api =
        api::agent_service_client::AgentServiceClient::new(connect(grpc, token).await?);
    for i in 1..=agents {
        let agent = format!("a{i:04}");
        let status = match agents_api
            .login(api::LoginRequest {
                tenant: "load".into(),
                agent: agent.clone(),
                devices: vec![],
                not_ready_reason: String::new(),
            })
            .await
        {
            Ok(r) => r.into_inner().state,
            Err(st) if st.code() == tonic::Code::FailedPrecondition => String::new(),
            Err(st) => bail!("login of {agent}: {st}"),
        };
        if status != "available" {
            agents_api
                .set_state(api::SetStateRequest {
                    tenant: "load".into(),
                    agent: agent.clone(),
                    state: Some(api::set_state_request::State::Available(true)),
                })
                .await
                .map_err(|st| anyhow::anyhow!("{agent} available: {st}"))?;
        }
    }
    Ok(())
}

/// The kernel's UDP counters (/proc/net/snmp, `Udp:` lines): InDatagrams, InErrors,
/// RcvbufErrors, SndbufErrors...; machine-wide.
pub fn udp_snmp() -> HashMap<String, u64> {
    let text = fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut rows = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (rows.next(), rows.next()) else {
        return HashMap::new();
    };
    names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

/// One scrape of a Prometheus text endpoint (`GET /metrics`) with `token`: sample name
/// (with its labels, as written) → value.
pub async fn scrape_metrics(addr: SocketAddr, token: &str) -> anyhow::Result<HashMap<String, f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!(
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        anyhow::Ok(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .with_context(|| format!("no answer from {addr}/metrics"))??;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("bad HTTP answer from {addr}"))?;
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{addr}/metrics: {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect())
}

/// The main of a load program: runs `run` in a work directory (`work_dir`, else a new one
/// under the system temp dir named after `program`) until it ends, Ctrl-C or SIGTERM
/// (dropping the run future drops its sessions, which kills the children). The directory is
/// removed after a success unless `keep`, and kept (with the logs' tails printed) after a
/// failure.
pub async fn main_in_work_dir<F>(
    program: &str,
    work_dir: Option<PathBuf>,
    keep: bool,
    run: impl FnOnce(PathBuf) -> F,
) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    use std::process::ExitCode;
    let work = work_dir.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        std::env::temp_dir().join(format!("{program}-{}-{nanos}", std::process::id()))
    });
    if let Err(e) = fs::create_dir_all(&work) {
        eprintln!("{program}: cannot create {}: {e}", work.display());
        return ExitCode::FAILURE;
    }
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        eprintln!("{program}: cannot handle SIGTERM");
        return ExitCode::FAILURE;
    };
    let result = tokio::select! {
        r = run(work.clone()) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = term.recv() => Err(anyhow::anyhow!("terminated")),
    };
    match &result {
        Ok(()) if !keep => {
            let _ = fs::remove_dir_all(&work);
            ExitCode::SUCCESS
        }
        Ok(()) => {
            println!("work dir kept: {}", work.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{program} failed: {e:#}");
            print_log_tails();
            eprintln!("work dir kept: {}", work.display());
            ExitCode::FAILURE
        }
    }
}

/// `GET path` on 127.0.0.1:`port` with `token` (HTTP/1.0, one request per connection):
/// the whole response, head and body.
pub async fn http_get(port: u16, token: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    Ok(text)
}
