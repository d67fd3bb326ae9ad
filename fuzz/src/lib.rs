//! The harness of auditlake's fuzz targets. Stable Rust on the project's machines has no
//! coverage-guided fuzzing, so inputs are generated: `proptest` cuts a run of lines out of a seed
//! file (`sample-logs/`, `../shared/real-audit-logs/`, the rule pack...) and edits it (bytes
//! flipped, inserted, deleted, duplicated, spliced from another seed, a target's tokens and deep
//! nesting inserted, truncated), gzipping some inputs when the target reads gzip. Each input runs
//! under `catch_unwind` and `allocation-counter`: a panic fails the run with the input written to
//! a file, and so does a heap peak beyond 16 MiB plus 64 bytes per input byte (per inflated byte
//! for gzip).
//!
//! Every test run fuzzes each target for 3 seconds; `AUDITLAKE_FUZZ_SECONDS=600` for ten minutes,
//! and `AUDITLAKE_FUZZ_SEED` repeats a run (each run prints its seed).
//!
//! ```no_run
//! let target = auditlake_fuzz::Target::new("echo", auditlake_fuzz::seed_files(&["../sample-logs"], &["log"]));
//! let report = target.run(|input| { let _ = std::str::from_utf8(input); });
//! assert!(report.executions > 0);
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Tokens every target's inputs get: JSON and YAML structure, escapes, odd numbers, line ends.
const COMMON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"18446744073709551616",
    b"\n",
    b"\r\n",
    b"\xff\xfe",
    b"\t",
    b"- ",
    b"&a ",
    b"*a",
    b"'",
    b"--",
    b"/*",
    b";",
];

/// The files with one of `extensions` under `dirs` (recursively), relative to the crate that
/// calls, read whole.
pub fn seed_files(dirs: &[impl AsRef<Path>], extensions: &[&str]) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = dirs.iter().map(|d| d.as_ref().to_path_buf()).collect();
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                files.push(std::fs::read(&path).expect("a seed file"));
            }
        }
    }
    files
}

/// A fuzz target: its name, its seeds and the tokens its inputs get.
pub struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    tokens: Vec<&'static [u8]>,
    gzip: bool,
    whole: bool,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// Inputs run.
    pub executions: u64,
    /// Seeds.
    pub corpus: usize,
    /// The largest heap peak of one input, bytes.
    pub largest_peak: u64,
}

impl Target {
    /// A target named `name` (in its report) over `seeds`.
    pub fn new(name: &'static str, seeds: Vec<Vec<u8>>) -> Self {
        assert!(!seeds.is_empty(), "{name}: no seed files");
        Self {
            name,
            seeds,
            tokens: COMMON_TOKENS.to_vec(),
            gzip: false,
            whole: false,
        }
    }

    /// Also inserts `tokens` (a target's keywords).
    pub fn with_tokens(mut self, tokens: &[&'static [u8]]) -> Self {
        self.tokens.extend_from_slice(tokens);
        self
    }

    /// Gzips about one input in seven.
    pub fn with_gzip(mut self) -> Self {
        self.gzip = true;
        self
    }

    /// Edits whole seeds rather than runs of their lines (for a format whose structure spans
    /// the file, as YAML's does).
    pub fn with_whole_seeds(mut self) -> Self {
        self.whole = true;
        self
    }

    /// Runs `one` on generated inputs for the time budget; panics with the failing input's file
    /// when `one` panics or holds too much heap.
    pub fn run(&self, mut one: impl FnMut(&[u8])) -> Report {
        let seconds: u64 = std::env::var("AUDITLAKE_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        let strategy = case(self.seeds.len(), self.tokens.len(), self.gzip, self.whole);
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed(self.name)),
        );
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut report = Report {
            executions: 0,
            corpus: self.seeds.len(),
            largest_peak: 0,
        };
        while Instant::now() < deadline {
            let case = strategy.new_tree(&mut runner).expect("a case").current();
            let (input, plain_len) = case.bytes(&self.seeds, &self.tokens);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                allocation_counter::measure(|| one(&input)).bytes_max
            }));
            let fail = |why: String| -> ! {
                let file = std::env::temp_dir().join(format!(
                    "auditlake-fuzz-{}-{}.bin",
                    self.name, report.executions
                ));
                std::fs::write(&file, &input).expect("write the failing input");
                panic!("{}: input {} {why}", self.name, file.display());
            };
            let peak = match outcome {
                Ok(peak) => peak,
                Err(panic) => fail(format!(
                    "panicked: {}",
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                )),
            };
            let allowed = (16u64 << 20) + 64 * plain_len.max(1) as u64;
            if peak > allowed {
                fail(format!(
                    "({plain_len} bytes) held {peak} bytes of heap, more than {allowed}"
                ));
            }
            report.largest_peak = report.largest_peak.max(peak);
            report.executions += 1;
        }
        println!(
            "fuzz {}: {} executions in {seconds} s, {} seeds, largest heap peak {} KiB",
            self.name,
            report.executions,
            report.corpus,
            report.largest_peak >> 10
        );
        report
    }
}

/// The generator's seed: `AUDITLAKE_FUZZ_SEED`, else the clock; printed so a run can be repeated.
fn rng_seed(name: &str) -> [u8; 32] {
    let seed: u64 = std::env::var("AUDITLAKE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("fuzz {name}: AUDITLAKE_FUZZ_SEED={seed}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Token(usize, usize),
    Nest(usize, usize),
    Splice(usize, usize, usize),
    Truncate(usize),
}

fn edit(tokens: usize) -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        (at, any::<u8>()).prop_map(|(a, b)| Edit::Flip(a, b)),
        (at, any::<u8>()).prop_map(|(a, b)| Edit::Insert(a, b)),
        (at, 1..64usize).prop_map(|(a, n)| Edit::Delete(a, n)),
        (at, 1..256usize).prop_map(|(a, n)| Edit::Duplicate(a, n)),
        (at, 0..tokens).prop_map(|(a, t)| Edit::Token(a, t)),
        (at, 1..5000usize).prop_map(|(a, n)| Edit::Nest(a, n)),
        (at, any::<usize>(), 1..512usize).prop_map(|(a, s, n)| Edit::Splice(a, s, n)),
        at.prop_map(Edit::Truncate),
    ]
}

/// One input: a run of lines of a seed, edited, maybe gzipped.
#[derive(Debug, Clone)]
struct Case {
    seed: usize,
    other: usize,
    first_line: usize,
    lines: usize,
    edits: Vec<Edit>,
    gzip: bool,
}

fn case(seeds: usize, tokens: usize, gzip: bool, whole: bool) -> impl Strategy<Value = Case> {
    (
        0..seeds,
        0..seeds,
        if whole {
            Just(0).boxed()
        } else {
            any::<usize>().boxed()
        },
        if whole {
            Just(usize::MAX).boxed()
        } else {
            (1..60usize).boxed()
        },
        proptest::collection::vec(edit(tokens), 0..8),
        proptest::bool::weighted(if gzip { 0.15 } else { 0.0 }),
    )
        .prop_map(|(seed, other, first_line, lines, edits, gzip)| Case {
            seed,
            other,
            first_line,
            lines,
            edits,
            gzip,
        })
}

impl Case {
    /// The input, and its length before gzip.
    fn bytes(&self, seeds: &[Vec<u8>], tokens: &[&[u8]]) -> (Vec<u8>, usize) {
        let seed = &seeds[self.seed];
        let lines: Vec<&[u8]> = seed.split_inclusive(|b| *b == b'\n').collect();
        let mut body: Vec<u8> = if lines.is_empty() {
            Vec::new()
        } else {
            let start = self.first_line % lines.len();
            lines[start..start.saturating_add(self.lines).min(lines.len())].concat()
        };
        let other = &seeds[self.other];
        for edit in &self.edits {
            let at = |a: usize, len: usize| a % (len + 1);
            match *edit {
                Edit::Flip(a, b) if !body.is_empty() => {
                    let i = a % body.len();
                    body[i] ^= b.max(1);
                }
                Edit::Flip(..) => {}
                Edit::Insert(a, b) => body.insert(at(a, body.len()), b),
                Edit::Delete(a, n) => {
                    let i = at(a, body.len());
                    body.drain(i..(i + n).min(body.len()));
                }
                Edit::Duplicate(a, n) => {
                    let i = at(a, body.len());
                    let piece = body[i..(i + n).min(body.len())].to_vec();
                    body.splice(i..i, piece);
                }
                Edit::Token(a, t) => {
                    let i = at(a, body.len());
                    body.splice(i..i, tokens[t].iter().copied());
                }
                Edit::Nest(a, n) => {
                    let i = at(a, body.len());
                    let nested: Vec<u8> = std::iter::repeat_n(b'[', n)
                        .chain(std::iter::repeat_n(b']', n))
                        .collect();
                    body.splice(i..i, nested);
                }
                Edit::Splice(a, s, n) => {
                    let i = at(a, body.len());
                    let from = s % other.len().max(1);
                    let piece = &other[from.min(other.len())..(from + n).min(other.len())];
                    body.splice(i..i, piece.iter().copied());
                }
                Edit::Truncate(a) => body.truncate(at(a, body.len())),
            }
        }
        let plain = body.len();
        if self.gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&body).expect("gzip");
            body = gz.finish().expect("gzip");
        }
        (body, plain)
    }
}
