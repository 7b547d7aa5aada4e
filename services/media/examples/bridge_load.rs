//! Load program (not a test): N bridged calls on 127.0.0.1, 50 packets/s each way per call,
//! for S seconds; prints packet rates, losses and the process's CPU time.
//!
//! `cargo run --release -p callgrid-media --example bridge_load -- [calls=200] [seconds=10]`
//!
//! Two plain sockets play every caller and every agent; callers send PCMU, agents PCMA, so
//! every packet is also transcoded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callgrid_media::{Codec, MediaConfig, MediaEngine, MediaParams, RtpHeader};
use tokio::net::UdpSocket;

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux)
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn receive(socket: Arc<UdpSocket>, count: Arc<AtomicU64>) {
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = socket.recv_from(&mut buf).await {
        if RtpHeader::parse(&buf[..n]).is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let engine = MediaEngine::new(MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        ports: 40000..=49999,
        symmetric_rtp: false,
        ..MediaConfig::default()
    })
    .unwrap();
    let callers = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let agents = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let (events_tx, mut events) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let mut legs = Vec::new();
    let mut targets: Vec<(SocketAddr, SocketAddr)> = Vec::new();
    for _ in 0..calls {
        let c = engine.open_leg(events_tx.clone()).await.unwrap();
        let a = engine.open_leg(events_tx.clone()).await.unwrap();
        c.set_params(MediaParams {
            remote: Some(callers.local_addr().unwrap()),
            codec: Codec::Pcmu,
            telephone_event: Some(101),
            signalling_peer: None,
        })
        .unwrap();
        a.set_params(MediaParams {
            remote: Some(agents.local_addr().unwrap()),
            codec: Codec::Pcma,
            telephone_event: Some(101),
            signalling_peer: None,
        })
        .unwrap();
        c.bridge(&a).unwrap();
        c.flush().await.unwrap();
        a.flush().await.unwrap();
        targets.push((c.local_addr(), a.local_addr()));
        legs.push((c, a));
    }
    let at_callers = Arc::new(AtomicU64::new(0));
    let at_agents = Arc::new(AtomicU64::new(0));
    tokio::spawn(receive(Arc::clone(&callers), Arc::clone(&at_callers)));
    tokio::spawn(receive(Arc::clone(&agents), Arc::clone(&at_agents)));

    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0u64;
    let payload_u = [0x55u8; 160];
    let payload_a = [0xD5u8; 160];
    let mut seq: HashMap<usize, u16> = HashMap::new();
    let ticks = seconds * 50;
    for tick in 0..ticks {
        clock.tick().await;
        for (i, (caller_leg, agent_leg)) in targets.iter().enumerate() {
            let s = seq.entry(i).or_insert(0);
            *s = s.wrapping_add(1);
            let h = |ssrc| RtpHeader {
                payload_type: 0,
                marker: tick == 0,
                sequence: *s,
                timestamp: (tick as u32) * 160,
                ssrc,
            };
            let _ = callers
                .send_to(&h(i as u32).to_packet(&payload_u), caller_leg)
                .await;
            let mut ha = h(0x8000_0000 | i as u32);
            ha.payload_type = 8;
            let _ = agents.send_to(&ha.to_packet(&payload_a), agent_leg).await;
            sent += 2;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let g = engine.counters();
    let received = at_callers.load(Ordering::Relaxed) + at_agents.load(Ordering::Relaxed);
    println!("calls                 {calls}");
    println!("seconds               {elapsed:.1}");
    println!(
        "packets sent to legs  {sent} ({:.0}/s)",
        sent as f64 / elapsed
    );
    println!("legs received         {}", g.received);
    println!("legs relayed          {}", g.relayed);
    println!("legs sent             {}", g.sent);
    println!("dropped at the legs   {}", g.dropped_total());
    println!("received back         {received}");
    println!("lost before the legs  {}", sent - g.received);
    println!("lost after the legs   {}", g.sent - received);
    println!(
        "cpu (whole process, generator included) {cpu:.2} s = {:.0}% of one core",
        100.0 * cpu / elapsed
    );
    for (c, a) in legs {
        c.close().await;
        a.close().await;
    }
}
