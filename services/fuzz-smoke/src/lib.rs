//! The CI smoke of callgrid's fuzz targets (docs/DECISIONS.md "Fuzzing").
//!
//! Each fuzz target is a plain function in the crate it tests (`fuzz` modules), run for real
//! by libFuzzer through the `fuzz/` crate and `scripts/fuzz.sh`. That build is too slow for
//! CI, so each crate also has a `#[test]` that calls [`run`]: the target's function on every
//! seed of `fuzz/corpus/<target>/`, then on a bounded number of inputs mutated from those
//! seeds by a small deterministic generator (bit flips, interesting bytes, deletions,
//! duplications, truncation, splicing two seeds, tokens of `fuzz/dict/<target>.dict`). The
//! same inputs every run: a failure is reproducible, and the input is saved to a file whose
//! path the failure names.
//!
//! No dependencies, no IO but reading the corpus and writing a failing input.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The repository's `fuzz/` directory (seed corpora and dictionaries).
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The seeds of a target: every file of `fuzz/corpus/<target>/`, in name order.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("seed {}: {e}", p.display())))
        .collect()
}

/// The tokens of `fuzz/dict/<target>.dict` (libFuzzer's format: one `name="value"` or
/// `"value"` a line, `#` comments, `\\`, `\"` and `\xHH` escapes); none if there is no file.
pub fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let path = fuzz_dir().join("dict").join(format!("{target}.dict"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let start = line.find('"')?;
            let end = line.rfind('"')?;
            (end > start).then(|| unescape(&line[start + 1..end]))
        })
        .collect()
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'x')) => {
                let hex = s
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 4;
                    }
                    None => {
                        out.push(b'\\');
                        i += 1;
                    }
                }
            }
            (b'\\', Some(&c)) => {
                out.push(c);
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Bytes that parsers of text protocols treat specially.
const INTERESTING: &[u8] = &[
    0, 0x7f, 0x80, 0xff, b'\r', b'\n', b' ', b'\t', b':', b';', b'=', b'"', b',', b'<', b'>', b'%',
    b'@', b'/', b'\\', b'[', b']', b'{', b'}', b'-', b'.', b'0', b'9',
];

/// Numbers that find off-by-ones and overflows.
const NUMBERS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"1",
    b"65535",
    b"65536",
    b"4294967295",
    b"4294967296",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999",
    b"-9223372036854775808",
];

/// Mutates inputs of one target from its seeds and dictionary.
pub struct Mutator {
    seeds: Vec<Vec<u8>>,
    dict: Vec<Vec<u8>>,
    max_len: usize,
    rng: Rng,
}

impl Mutator {
    /// Mutants of `seeds` (at least one) up to `max_len` bytes, with `dict` tokens.
    pub fn new(seeds: Vec<Vec<u8>>, dict: Vec<Vec<u8>>, max_len: usize, seed: u64) -> Mutator {
        let seeds = if seeds.is_empty() {
            vec![Vec::new()]
        } else {
            seeds
        };
        Mutator {
            seeds,
            dict,
            max_len: max_len.max(1),
            rng: Rng::new(seed),
        }
    }

    /// The next mutant: a seed with one to eight mutations.
    pub fn next_input(&mut self) -> Vec<u8> {
        let mut data = self.seeds[self.rng.below(self.seeds.len())].clone();
        let rounds = 1 + self.rng.below(8);
        for _ in 0..rounds {
            self.mutate(&mut data);
        }
        data.truncate(self.max_len);
        data
    }

    fn token(&mut self) -> Vec<u8> {
        match self.rng.below(3) {
            0 if !self.dict.is_empty() => self.dict[self.rng.below(self.dict.len())].clone(),
            1 => NUMBERS[self.rng.below(NUMBERS.len())].to_vec(),
            _ => vec![INTERESTING[self.rng.below(INTERESTING.len())]],
        }
    }

    fn mutate(&mut self, data: &mut Vec<u8>) {
        let len = data.len();
        let at = self.rng.below(len + 1);
        match self.rng.below(11) {
            // flip a bit
            0 if len > 0 => {
                let i = self.rng.below(len);
                data[i] ^= 1 << self.rng.below(8);
            }
            // an interesting byte in place of one
            1 if len > 0 => {
                let i = self.rng.below(len);
                data[i] = INTERESTING[self.rng.below(INTERESTING.len())];
            }
            // a small change of a byte's value
            2 if len > 0 => {
                let i = self.rng.below(len);
                let d = 1 + self.rng.below(16) as u8;
                data[i] = if self.rng.below(2) == 0 {
                    data[i].wrapping_add(d)
                } else {
                    data[i].wrapping_sub(d)
                };
            }
            // delete a range
            3 if len > 0 => {
                let n = 1 + self.rng.below((len - at.min(len - 1)).min(64));
                let start = at.min(len - 1);
                data.drain(start..(start + n).min(len));
            }
            // duplicate a range of itself elsewhere
            4 if len > 0 => {
                let start = self.rng.below(len);
                let n = 1 + self.rng.below((len - start).min(256));
                let chunk = data[start..start + n].to_vec();
                let times = 1 + self.rng.below(4);
                for _ in 0..times {
                    data.splice(at..at, chunk.iter().copied());
                }
            }
            // insert a token
            5 => {
                let t = self.token();
                data.splice(at..at, t);
            }
            // replace a range with a token
            6 if len > 0 => {
                let start = at.min(len - 1);
                let n = 1 + self.rng.below((len - start).min(16));
                let t = self.token();
                data.splice(start..start + n, t);
            }
            // truncate
            7 => data.truncate(at),
            // splice: this input's head, another seed's tail
            8 => {
                let other = &self.seeds[self.rng.below(self.seeds.len())];
                let from = self.rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            // random bytes
            9 => {
                let n = 1 + self.rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            // a digit run replaced by a boundary number
            _ => {
                if let Some(start) = (at..len).find(|&i| data[i].is_ascii_digit()) {
                    let end = (start..len)
                        .find(|&i| !data[i].is_ascii_digit())
                        .unwrap_or(len);
                    let n = NUMBERS[self.rng.below(NUMBERS.len())];
                    data.splice(start..end, n.iter().copied());
                } else {
                    data.push(INTERESTING[self.rng.below(INTERESTING.len())]);
                }
            }
        }
    }
}

/// What [`run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Seeds run.
    pub seeds: usize,
    /// Mutants run.
    pub mutants: usize,
}

fn seed_of(target: &str) -> u64 {
    // FNV-1a: a fixed stream of mutants per target
    target.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs `f` on every seed of `target` and on `mutants` mutants of them (at most `max_len`
/// bytes each). A panic fails the test naming the input, which is saved under the system's
/// temporary directory (`callgrid-fuzz-smoke/`) for `cargo fuzz run <target> FILE`.
pub fn run(target: &str, mutants: usize, max_len: usize, f: impl Fn(&[u8])) -> Report {
    let seeds = seeds(target);
    assert!(
        !seeds.is_empty(),
        "fuzz/corpus/{target} has no seeds: the smoke would test nothing"
    );
    for (i, s) in seeds.iter().enumerate() {
        check(target, &format!("seed {i}"), s, &f);
    }
    let mut m = Mutator::new(seeds.clone(), dictionary(target), max_len, seed_of(target));
    for i in 0..mutants {
        let input = m.next_input();
        check(target, &format!("mutant {i}"), &input, &f);
    }
    Report {
        seeds: seeds.len(),
        mutants,
    }
}

fn check(target: &str, which: &str, input: &[u8], f: &impl Fn(&[u8])) {
    let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| f(input))) else {
        return;
    };
    let msg = e
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| e.downcast_ref::<&str>().copied())
        .unwrap_or("(not a string)");
    let dir = std::env::temp_dir().join("callgrid-fuzz-smoke");
    let path = dir.join(format!("{target}-{:016x}", seed_of_bytes(input)));
    let saved = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, input))
        .map_or_else(
            |e| format!("not saved: {e}"),
            |()| path.display().to_string(),
        );
    panic!(
        "fuzz target {target} failed on {which} ({} bytes, saved to {saved}): {msg}\ninput: {:?}",
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(2_000)])
    );
}

fn seed_of_bytes(input: &[u8]) -> u64 {
    input.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_are_deterministic_bounded_and_varied() {
        let seeds = vec![
            b"INVITE sip:1@h SIP/2.0\r\n\r\n".to_vec(),
            b"v=0\r\n".to_vec(),
        ];
        let dict = vec![b"Via".to_vec()];
        let mut a = Mutator::new(seeds.clone(), dict.clone(), 64, 1);
        let mut b = Mutator::new(seeds.clone(), dict, 64, 1);
        let xs: Vec<Vec<u8>> = (0..500).map(|_| a.next_input()).collect();
        let ys: Vec<Vec<u8>> = (0..500).map(|_| b.next_input()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| x.len() <= 64));
        let distinct: std::collections::HashSet<_> = xs.iter().collect();
        assert!(distinct.len() > 400, "{} distinct", distinct.len());
        assert!(xs.iter().any(|x| x.windows(3).any(|w| w == b"Via")));
    }

    #[test]
    fn dictionary_escapes() {
        assert_eq!(unescape(r#"a\"b\\c\x41\x4"#), b"a\"b\\cA\\x4".to_vec());
    }

    #[test]
    fn a_panicking_target_fails_naming_the_input() {
        let r = panic::catch_unwind(|| {
            check("demo", "seed 0", b"boom", &|d: &[u8]| {
                assert!(d != b"boom", "found it");
            })
        });
        let msg = r
            .err()
            .and_then(|e| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("fuzz target demo failed on seed 0"), "{msg}");
        assert!(msg.contains("found it"), "{msg}");
    }
}
