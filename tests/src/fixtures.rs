//! Small fixtures every test and the benchmark share: the clock, names
//! parsed from test literals, deterministic bytes, files on disk, and the
//! peak memory of a child process.
//!
//! The name helpers panic on a bad literal (a bug in the test, not input);
//! nothing here talks to a node.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use pki::{DocumentKind, Purpose, ResidentId};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    vault_client::client::now_unix()
}

/// The resident called `name` (a test literal such as `"resident-1"`).
pub fn resident(name: &str) -> ResidentId {
    ResidentId::parse(name).expect("a resident name literal")
}

/// The document kind called `name` (a test literal such as `"id-card"`).
pub fn kind(name: &str) -> DocumentKind {
    DocumentKind::parse(name).expect("a document kind literal")
}

/// The purpose called `name` (a test literal such as `"housing-subsidy"`).
pub fn purpose(name: &str) -> Purpose {
    Purpose::parse(name).expect("a purpose literal")
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for GiBs.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // Every seed its own non-zero start (`seed | 1` made 2k and 2k + 1
    // equal): splitmix64's finalizer is a bijection.
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    state = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    state = (state ^ (state >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    state ^= state >> 31;
    if state == 0 {
        state = 1;
    }
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Files (recursively) under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Writes `size` bytes of [`pseudo_random_bytes`] to `path` in 16 MiB
/// chunks (seeds 1, 2, ...), so a GiB file never sits in memory whole.
pub fn write_large_file(path: &Path, size: u64) -> std::io::Result<()> {
    use std::io::Write;
    const CHUNK_BYTES: u64 = 16 * 1024 * 1024;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for seed in 0..size.div_ceil(CHUNK_BYTES) {
        let n = CHUNK_BYTES.min(size - seed * CHUNK_BYTES) as usize;
        file.write_all(&pseudo_random_bytes(n, seed + 1))?;
    }
    file.flush()
}

/// Flips bit 6 of the byte at `offset` of the file at `path`; answers the
/// damaged file's bytes.
pub fn flip_byte(path: &Path, offset: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("the file to damage");
    bytes[offset] ^= 0x40;
    std::fs::write(path, &bytes).expect("the damaged file written back");
    bytes
}

/// Peak resident set (VmHWM) of a running process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for `child` to exit, sampling its peak resident set every
/// `every`; answers its exit status and the highest peak seen, in KiB.
pub fn wait_sampling_peak_rss(
    child: &mut Child,
    every: Duration,
) -> std::io::Result<(ExitStatus, u64)> {
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status, peak));
        }
        std::thread::sleep(every);
    }
}
