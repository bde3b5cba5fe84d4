//! The command line's grammar: every command, flag and argument of `vault`
//! (clap derive), and the parsers of durations and byte ranges.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use pki::{DocumentKind, GrantId, Purpose, RequestId, ResidentId};
use vault_client::{ByteRange, DocumentId};

/// The district document vault's command line.
#[derive(Parser)]
#[command(name = "vault", version, about)]
pub struct Cli {
    /// Identity directory (cert.pem, key.pem, ca.pem) to connect as.
    #[arg(long, global = true, env = "VAULT_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// The node(s) to talk to: HOST:PORT, or several comma separated,
    /// preferred in order (the next is tried when one does not answer
    /// within 250 ms). Default: the identity's `nodes` file, else
    /// 127.0.0.1:7443.
    #[arg(long, global = true, env = "VAULT_NODE")]
    pub node: Option<String>,
    /// Print one JSON object (or a JSON error) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Clone)]
pub enum Command {
    /// Put a document issued by your department into the vault.
    Put {
        /// The file to store.
        file: PathBuf,
        /// The resident the document belongs to.
        #[arg(long)]
        resident: ResidentId,
        /// The kind of document, e.g. marriage-certificate.
        #[arg(long)]
        kind: DocumentKind,
    },
    /// Fetch a document, verified against the issuer's signed hash.
    Get {
        /// The document id printed by `vault put` or `vault list`.
        document_id: DocumentId,
        /// Where to write it (written to FILE.part, renamed when verified).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Fetch only bytes START..END.
        #[arg(long, value_parser = parse_range)]
        range: Option<ByteRange>,
        /// Start over instead of resuming an interrupted download.
        #[arg(long)]
        no_resume: bool,
        /// Fetch under this grant (a department other than the issuer).
        #[arg(long)]
        grant: Option<pki::GrantId>,
        /// Also save the fetch's receipt here: its log entry with the proof
        /// that it is in the signed log (C2SP tlog-proof; check it anywhere
        /// with `vault receipt verify`).
        #[arg(long)]
        receipt: Option<PathBuf>,
    },
    /// List a resident's documents you may see.
    List {
        /// Whose documents.
        #[arg(long)]
        resident: ResidentId,
        #[command(flatten)]
        page: PageArgs,
    },
    /// (Department) Ask a resident for documents, for a purpose.
    Request {
        /// Whose documents.
        #[arg(long)]
        resident: ResidentId,
        /// Exact documents, comma separated.
        #[arg(
            long,
            value_delimiter = ',',
            conflicts_with = "kinds",
            required_unless_present = "kinds"
        )]
        documents: Vec<DocumentId>,
        /// Kinds of document (the resident's current one of each), comma separated.
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<DocumentKind>,
        /// Purpose code from the district's registry, e.g. housing-subsidy.
        #[arg(long)]
        purpose: Purpose,
        /// How long access is asked for: 3600, 90m, 12h, 30d.
        #[arg(long, value_parser = parse_duration)]
        ttl: u64,
        /// With --kinds: only documents this department issued (default:
        /// any department the district's issuer registry lets issue the kind).
        #[arg(long, requires = "kinds")]
        issuer: Option<pki::Name>,
    },
    /// (Resident) List pending requests addressed to you.
    Requests {
        #[command(flatten)]
        page: PageArgs,
    },
    /// (Resident) Approve a request: sign a grant, possibly narrowed.
    Approve {
        /// The request id shown by `vault requests`.
        request_id: RequestId,
        /// Fetches the grant allows.
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
        /// Shorter validity than asked: 3600, 90m, 12h, 30d.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<u64>,
    },
    /// (Resident) Deny a request.
    Deny {
        /// The request id.
        request_id: RequestId,
    },
    /// Grants you gave (resident) or hold (department).
    Grants {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show, verify or give up one grant.
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// (Resident) Revoke a grant; effective for the next fetch.
    Revoke {
        /// The grant id.
        grant_id: GrantId,
    },
    /// The transparency log: checkpoints, proofs, and the auditor's check.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Receipts: a log entry with the proof that it is in the signed log,
    /// as a C2SP tlog-proof file anyone can check offline.
    ///
    /// Examples:
    ///   vault --identity ~/.vault/me receipt export --index 42 -o fetch.tlog-proof
    ///   vault receipt verify fetch.tlog-proof --log-pub log.pub
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// (Resident) Open your portal in a browser: requests, grants, every
    /// access and your documents, served on this machine only.
    ///
    /// Prints one line, {"url": "http://127.0.0.1:PORT/?token=…"}: open it
    /// (or pass --open). Your key stays here; the page works only with that
    /// address's secret, and stops once you sign out or leave it idle.
    ///
    /// Examples:
    ///   vault --identity ~/.vault/me portal --open
    ///   vault --identity ~/.vault/me portal --kiosk --utc-offset +08:00
    Portal(PortalArgs),
    /// (Resident) Every access to your documents, each checked against an
    /// inclusion proof in the signed log.
    Accesses {
        /// Every log entry about you, not only fetches.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// The district's purposes and departments, with their English and
    /// Chinese names (any identity).
    Registry,
    /// Run a witness of the district's log (C2SP tlog-witness): it cosigns
    /// checkpoints the log key signed that are consistent with everything it
    /// cosigned before. Needs no identity.
    ///
    /// Examples:
    ///   vault witness init --dir /var/lib/vault-witness --name witness.district.example/w1
    ///   vault witness serve --dir /var/lib/vault-witness --listen 10.0.0.9:7380 --log-pub log.pub
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
    },
}

#[derive(Subcommand, Clone)]
pub enum WitnessCommand {
    /// Make a witness key (DIR/witness.key.pem, 0600) and print its verifier
    /// key (also written to DIR/witness.pub).
    Init {
        /// The witness's directory (created 0700 when missing).
        #[arg(long)]
        dir: PathBuf,
        /// The witness's name: a schema-less URL without spaces, e.g.
        /// witness.district.example/w1.
        #[arg(long)]
        name: String,
    },
    /// Serve POST /add-checkpoint over HTTP/1.1 until SIGINT or SIGTERM;
    /// prints one JSON line {"addr","logs","pid","vkey"} when it listens.
    Serve {
        /// The witness's directory (from `vault witness init`; its state is
        /// kept there, in state.json).
        #[arg(long)]
        dir: PathBuf,
        /// Where to listen (HOST:PORT; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: String,
        /// The logs it witnesses: the district's log.pub.
        #[arg(long)]
        log_pub: PathBuf,
    },
}

/// `vault portal`'s options.
#[derive(clap::Args, Clone, Debug)]
pub struct PortalArgs {
    /// Where to listen: loopback only (127.0.0.1 or [::1]); port 0 picks a
    /// free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Open the address in this machine's browser.
    #[arg(long)]
    pub open: bool,
    /// For a shared machine in the service hall: larger targets, sign-out
    /// after 3 minutes without activity, and a question before any file
    /// is saved on the machine.
    #[arg(long)]
    pub kiosk: bool,
    /// Sign out after this long without activity: 90s, 10m, 1h (default
    /// 30m; 3m with --kiosk).
    #[arg(long, value_parser = parse_duration)]
    pub idle: Option<u64>,
    /// Show times at this offset from UTC, e.g. +08:00 (default: this
    /// machine's time zone).
    #[arg(long, value_parser = parse_utc_offset, allow_hyphen_values = true)]
    pub utc_offset: Option<time::UtcOffset>,
}

/// An offset from UTC: +08:00, -03:30, +8, Z.
pub fn parse_utc_offset(text: &str) -> Result<time::UtcOffset, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("z") || text.eq_ignore_ascii_case("utc") {
        return Ok(time::UtcOffset::UTC);
    }
    let bad = || format!("bad offset {text:?}: use e.g. +08:00 or -03:30");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1i8, &text[1..]),
        Some(b'-') => (-1i8, &text[1..]),
        _ => return Err(bad()),
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let hours: i8 = hours.parse().map_err(|_| bad())?;
    let minutes: i8 = minutes.parse().map_err(|_| bad())?;
    if !(0..=14).contains(&hours) || !(0..60).contains(&minutes) {
        return Err(bad());
    }
    time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).map_err(|_| bad())
}

/// One page of a listing, for scripts. Without either flag the whole
/// listing is read, page by page; with one, a single page is printed and,
/// under `--json`, its `next_cursor` (null at the end) to pass back.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct PageArgs {
    /// Read one page of at most this many items (the node may send fewer
    /// to keep each answer within its byte budget).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Read one page from here: a previous page's `next_cursor`.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl PageArgs {
    /// Whether one page was asked for (else every page is read).
    pub fn single(&self) -> bool {
        self.limit.is_some() || self.cursor.is_some()
    }
}

#[derive(Subcommand, Clone)]
pub enum AuditCommand {
    /// Print the current signed checkpoint (C2SP signed note).
    Checkpoint,
    /// Inclusion proof of one entry (RFC 6962).
    Proof {
        /// The entry's index.
        #[arg(long)]
        index: u64,
        /// Prove against this tree size (default: the current size).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Consistency proof between two tree sizes (RFC 6962).
    Consistency {
        /// The older size.
        #[arg(long)]
        from: u64,
        /// The newer size.
        #[arg(long)]
        to: u64,
    },
    /// (Auditor) Verify the whole log: signature, consistency with the last
    /// trusted checkpoint, the tree, and the access rules.
    Verify {
        /// Where the trusted checkpoint is kept between runs.
        #[arg(long, default_value = ".vault-audit")]
        state: PathBuf,
        /// A signed checkpoint seen elsewhere to check against the log too
        /// (its root and its resident-index root): a note, or a JSON file
        /// with a "note" (a resident's checkpoints/trusted.json). Repeatable.
        #[arg(long = "note")]
        notes: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Clone)]
pub enum ReceiptCommand {
    /// (Auditor: any entry; resident: your own) Write a receipt for one
    /// log entry, checked before it is written.
    Export {
        /// The entry's index (`log_index` in `vault accesses`).
        #[arg(long)]
        index: u64,
        /// Where to write it (default vault-entry-INDEX.tlog-proof; never
        /// overwritten).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Verify a receipt offline: the checkpoint's signature by the
    /// district's log key, and the entry's inclusion proof. No network.
    Verify {
        /// The receipt file.
        file: PathBuf,
        /// The district's log keys (default: the identity's log.pub; with
        /// this flag no identity is needed).
        #[arg(long)]
        log_pub: Option<PathBuf>,
    },
}

#[derive(Subcommand, Clone)]
pub enum GrantCommand {
    /// Show a grant; with -o, save the sealed grant for offline checks.
    Show {
        /// The grant id.
        grant_id: GrantId,
        /// Write the sealed grant (JSON) here.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Verify a saved grant offline: chains to the district CA, consent and
    /// seal signatures, validity window. No network.
    Verify {
        /// The sealed grant (JSON, from `grant show -o`).
        file: PathBuf,
        /// The district CA certificate (defaults to the identity's ca.pem).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// (Department) Give up a grant you hold.
    Release {
        /// The grant id.
        grant_id: GrantId,
    },
}

/// Durations: plain seconds, or a number with s, m, h or d.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad duration {text:?}: use e.g. 3600, 90m, 12h, 30d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("bad duration unit {unit:?}: use s, m, h or d")),
    };
    n.checked_mul(scale)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("bad duration {text:?}"))
}

pub fn parse_range(text: &str) -> Result<ByteRange, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| "expected START..END, e.g. 0..1024".to_string())?;
    let start: u64 = start.parse().map_err(|_| format!("bad start {start:?}"))?;
    let end: u64 = end.parse().map_err(|_| format!("bad end {end:?}"))?;
    if start > end {
        return Err("START must not exceed END".into());
    }
    Ok(ByteRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration(" 12h "), Ok(43_200));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert_eq!(parse_duration("5s"), Ok(5));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration(&format!("{}d", u64::MAX)).is_err());
    }

    #[test]
    fn offsets_are_signed_hours_and_minutes() {
        let hm = |t: &str| parse_utc_offset(t).map(|o| o.as_hms());
        assert_eq!(hm("+08:00"), Ok((8, 0, 0)));
        assert_eq!(hm("-03:30"), Ok((-3, -30, 0)));
        assert_eq!(hm("+8"), Ok((8, 0, 0)));
        assert_eq!(hm("Z"), Ok((0, 0, 0)));
        assert!(parse_utc_offset("08:00").is_err());
        assert!(parse_utc_offset("+15:00").is_err());
        assert!(parse_utc_offset("+08:75").is_err());
    }

    #[test]
    fn ranges_are_start_dot_dot_end_in_order() {
        assert_eq!(
            parse_range("0..1024"),
            Ok(ByteRange {
                start: 0,
                end: 1024
            })
        );
        assert_eq!(parse_range("7..7"), Ok(ByteRange { start: 7, end: 7 }));
        assert!(parse_range("9..3").is_err());
        assert!(parse_range("1-2").is_err());
        assert!(parse_range("a..2").is_err());
    }
}
