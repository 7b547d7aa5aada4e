//! What machine a figure was measured on.

use std::fs;

/// One line: CPU model, cores, memory, kernel.
pub fn describe() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown cpu", str::trim)
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: {model}, {cores} cores, {mem_gib:.1} GiB, linux {}",
        kernel.trim()
    )
}

/// A machine-speed reference to print next to a figure (this machine's speed varies by 2×
/// from hour to hour, so a figure without one proves little): one thread computing
/// splitmix64 for 200 ms, and reading a 64 MiB table at random for 200 ms, in millions per
/// second. Higher is faster.
pub fn speed_reference() -> String {
    use std::hint::black_box;
    use std::time::{Duration, Instant};
    const SPAN: Duration = Duration::from_millis(200);
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let started = Instant::now();
    let (mut x, mut hashes) = (1u64, 0u64);
    while started.elapsed() < SPAN {
        for _ in 0..100_000 {
            x = mix(black_box(x));
        }
        hashes += 100_000;
    }
    let cpu = hashes as f64 / started.elapsed().as_secs_f64() / 1e6;
    let table: Vec<u64> = (0..8 << 20).map(|i| mix(i as u64)).collect();
    let started = Instant::now();
    let (mut at, mut reads) = (0usize, 0u64);
    while started.elapsed() < SPAN {
        for _ in 0..100_000 {
            at = (table[at] as usize ^ at) & (table.len() - 1);
        }
        reads += 100_000;
    }
    black_box((x, at));
    let mem = reads as f64 / started.elapsed().as_secs_f64() / 1e6;
    format!(
        "speed reference: {cpu:.0} M hashes/s, {mem:.1} M random 64 MiB reads/s (one thread, 200 ms each)"
    )
}
