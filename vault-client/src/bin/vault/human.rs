//! Text for people at a terminal: times in this machine's local time as
//! ISO 8601 without seconds (`2026-12-04 11:51`), durations in days and
//! hours (`30 days`), sizes in binary units (`35 B`, `256 MiB`), and
//! tables with a header row. `--json` output never goes through here.

use std::sync::OnceLock;

use time::{OffsetDateTime, UtcOffset};

/// This machine's offset from UTC, read before the runtime starts its
/// threads (the `time` crate refuses once a process is multi-threaded).
static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads and keeps the local offset; call first thing in `main`.
pub fn remember_local_offset() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

/// The local offset (UTC if it could not be read).
pub fn local_offset() -> UtcOffset {
    LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC)
}

/// A unix time as local ISO 8601 to the minute: `2026-12-04 11:51`.
pub fn time(unix: i64) -> String {
    time_at(unix, local_offset())
}

/// [`time`] at a given offset.
pub fn time_at(unix: i64, offset: UtcOffset) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => {
            let t = t.to_offset(offset);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
        Err(_) => unix.to_string(),
    }
}

/// A duration as people say it: `30 days`, `2 days 5 hours`, `45 minutes`.
pub fn duration(seconds: u64) -> String {
    let days = seconds / 86_400;
    let hours = (seconds % 86_400) / 3600;
    let minutes = (seconds % 3600) / 60;
    let n = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    match (days, hours) {
        (0, 0) if minutes == 0 => n(seconds, "second"),
        (0, 0) => n(minutes, "minute"),
        (0, h) => n(h, "hour"),
        (d, 0) => n(d, "day"),
        (d, h) => format!("{} {}", n(d, "day"), n(h, "hour")),
    }
}

/// A size in binary units: `35 B`, `12.1 KiB`, `256 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() < 0.05 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The first 12 hex digits of an id, then `…` (the full id is in `--json`).
pub fn short(id: &str) -> String {
    match id.get(..12) {
        Some(head) if id.len() > 12 => format!("{head}…"),
        _ => id.to_string(),
    }
}

/// A table: a header row, then the rows, columns padded to their widest
/// cell (counted in characters), two spaces apart; no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_durations_and_sizes_read_as_people_write_them() {
        let cst = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
        assert_eq!(time_at(1_796_420_000, UtcOffset::UTC), "2026-12-04 21:33");
        assert_eq!(time_at(1_796_420_000, cst), "2026-12-05 05:33");
        assert_eq!(duration(2_592_000), "30 days");
        assert_eq!(duration(86_400 + 3600), "1 day 1 hour");
        assert_eq!(duration(5400), "1 hour");
        assert_eq!(duration(2700), "45 minutes");
        assert_eq!(duration(5), "5 seconds");
        assert_eq!(size(35), "35 B");
        assert_eq!(size(12_390), "12.1 KiB");
        assert_eq!(size(256 * 1024 * 1024), "256 MiB");
        assert_eq!(size(4 * 1024 * 1024 * 1024), "4 GiB");
        assert_eq!(short("0123456789abcdef"), "0123456789ab…");
        assert_eq!(short("abc"), "abc");
    }

    #[test]
    fn tables_align_columns_under_their_header() {
        let rows = vec![
            vec!["a".to_string(), "结婚证".to_string(), "x".to_string()],
            vec!["long cell".to_string(), "b".to_string(), String::new()],
        ];
        let text = table(&["ID", "KIND", "NOTE"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID         KIND  NOTE");
        assert_eq!(lines[1], "a          结婚证   x");
        assert_eq!(lines[2], "long cell  b");
    }
}
