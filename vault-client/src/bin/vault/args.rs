//! The command line's grammar: every command, flag and argument of `vault`
//! (clap derive), and the parsers of durations and byte ranges.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use pki::{DocumentKind, GrantId, Purpose, RequestId, ResidentId};
use vault_client::{ByteRange, DocumentId};

/// What `vault --help` says first: what the tool is for.
const ABOUT: &str = "Your documents in the district's vault: departments put and fetch \
                     residents' documents, residents approve, revoke and see every access, \
                     auditors verify the log.";

/// The overview after the commands in `vault --help`.
const OVERVIEW: &str = "\
Every command talks to a node of the district's vault as an identity (a
directory with cert.pem, key.pem and ca.pem from the district PKI), given by
--identity DIR or VAULT_IDENTITY. `grant verify --ca`, `receipt verify
--log-pub` and `witness` need none. With --json every command prints one JSON
object (or {\"error\":{\"code\",\"message\"}}). Exit status: 0 done, 1 refused,
2 bad command line, 3 node or cluster unavailable (try again later), 4 a
verification failed (docs/PROTOCOL.md lists the codes).

Examples:
  # A department puts a document it issued, and lists a resident's documents
  vault --identity ids/civil-affairs put marriage.pdf --resident resident-1 --kind marriage-certificate
  vault --identity ids/civil-affairs list --resident resident-1

  # Another department asks; the resident approves; the department fetches
  vault --identity ids/housing-bureau request --resident resident-1 --kinds marriage-certificate --purpose housing-subsidy --ttl 30d
  vault --identity ids/resident-1 requests
  vault --identity ids/resident-1 approve REQUEST_ID --max-uses 2
  vault --identity ids/housing-bureau get DOCUMENT_ID --grant GRANT_ID -o marriage.pdf

  # The resident sees every access, in a terminal or in the browser
  vault --identity ids/resident-1 accesses
  vault --identity ids/resident-1 portal --open

Run `vault COMMAND --help` for a command's flags and examples.";

/// The district document vault's command line.
#[derive(Parser)]
#[command(name = "vault", version, about = ABOUT, after_long_help = OVERVIEW)]
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
    /// (Department) Put a document your department issued into the vault.
    ///
    /// The file is hashed (BLAKE3), the record (resident, kind, hash, size)
    /// signed with your key, and the bytes streamed; the same file put again
    /// gives the same document id. The district's issuer registry says which
    /// kinds your department may issue.
    #[command(after_help = "Examples:
  vault put marriage.pdf --resident resident-1 --kind marriage-certificate
  vault --json put id-card.png --resident resident-7 --kind id-card")]
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
    ///
    /// Bytes are checked as they arrive and written to FILE.part, renamed to
    /// FILE only when the whole document verified. An interrupted download
    /// (Ctrl-C, a lost connection) keeps FILE.part: run the same command
    /// again to resume. Under --grant each fetch spends one use of the grant.
    #[command(after_help = "Examples:
  vault get 3f2a… -o marriage.pdf                      # your own, or one you issued
  vault get 3f2a… --grant c81e… -o marriage.pdf        # under a resident's grant
  vault get 3f2a… --grant c81e… -o m.pdf --receipt fetch.tlog-proof
  vault get 3f2a… -o head.bin --range 0..1024          # the first KiB")]
    Get {
        /// The document id printed by `vault put` or `vault list`.
        document_id: DocumentId,
        /// Where to write it (written to FILE.part, renamed when verified).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Fetch only bytes START..END, counted from 0 and half-open (START
        /// included, END not): 0..1024 is the first KiB; START.. runs to the
        /// end of the document.
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
    #[command(after_help = "Examples:
  vault list --resident resident-1
  vault --json list --resident resident-1 --limit 50       # one page; pass next_cursor back")]
    List {
        /// Whose documents.
        #[arg(long)]
        resident: ResidentId,
        #[command(flatten)]
        page: PageArgs,
    },
    /// (Department) Ask a resident for documents, for a purpose.
    ///
    /// Name the documents with --kinds (the resident's current one of each
    /// kind) or --documents (exact ids); one of the two is needed. The
    /// resident sees the request with your department's name and the
    /// purpose's description and legal basis, and approves or denies it.
    #[command(after_help = "Examples:
  vault request --resident resident-1 --kinds marriage-certificate,id-card --purpose housing-subsidy --ttl 30d
  vault request --resident resident-1 --documents 3f2a… --purpose housing-subsidy --ttl 12h")]
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
    #[command(after_help = "Example:
  vault --identity ids/resident-1 requests")]
    Requests {
        #[command(flatten)]
        page: PageArgs,
    },
    /// (Resident) Approve a request: sign a grant, possibly narrowed.
    #[command(after_help = "Examples:
  vault approve 9b1c… --max-uses 2
  vault approve 9b1c… --max-uses 1 --ttl 1d      # shorter than asked")]
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
    /// (Department) Order a resident's documents by law, without their
    /// consent, under a statutory purpose; sealed for --seal, then shown to
    /// the resident. `vault order approve|deny|extend|show` decide on one.
    ///
    /// Examples:
    ///   vault --identity police order --resident resident-1 --kinds tax-record \
    ///       --purpose criminal-investigation --case CASE-2026-17 --seal 30s --ttl 1h
    ///   vault --identity court order approve ORDER_ID --max-uses 1
    Order(OrderArgs),
    /// Orders you may see: a department its own, authorities and auditors
    /// every one.
    Orders {
        #[command(flatten)]
        page: PageArgs,
    },
    /// (Resident) Deny a request.
    #[command(after_help = "Example:
  vault deny 9b1c…")]
    Deny {
        /// The request id.
        request_id: RequestId,
    },
    /// Grants you gave (resident) or hold (department).
    #[command(after_help = "Example:
  vault grants")]
    Grants {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show, verify or give up one grant.
    #[command(after_help = "Examples:
  vault grant show c81e… -o grant.json
  vault grant verify grant.json --ca ca.pem      # offline, no identity needed
  vault grant release c81e…")]
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// (Resident) Revoke a grant; effective for the next fetch.
    #[command(after_help = "Example:
  vault revoke c81e…")]
    Revoke {
        /// The grant id.
        grant_id: GrantId,
    },
    /// The transparency log: checkpoints, proofs, and the auditor's check.
    #[command(after_help = "Examples:
  vault audit checkpoint
  vault audit proof --index 12
  vault audit consistency --from 10 --to 42
  vault --identity ids/auditor audit verify --state audit-state")]
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Receipts: a log entry with the proof that it is in the signed log,
    /// as a C2SP tlog-proof file anyone can check offline.
    #[command(after_help = "Examples:
  vault --identity ids/resident-1 receipt export --index 42 -o fetch.tlog-proof
  vault receipt verify fetch.tlog-proof --log-pub log.pub     # offline, no identity needed")]
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
    #[command(after_help = "Examples:
  vault --identity ids/resident-1 portal --open
  vault --identity ids/resident-1 portal --kiosk --utc-offset +08:00")]
    Portal(PortalArgs),
    /// (Resident) Every access to your documents, each checked against an
    /// inclusion proof in the signed log.
    #[command(after_help = "Examples:
  vault --identity ids/resident-1 accesses
  vault --identity ids/resident-1 accesses --all         # requests, grants and revocations too
  vault --identity ids/resident-1 --json accesses")]
    Accesses {
        /// Every log entry about you, not only fetches.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// The district's purposes and departments, with their English and
    /// Chinese names (any identity).
    #[command(after_help = "Example:
  vault registry")]
    Registry,
    /// Run a witness of the district's log (C2SP tlog-witness): it cosigns
    /// checkpoints the log key signed that are consistent with everything it
    /// cosigned before. Needs no identity.
    #[command(after_help = "Examples:
  vault witness init --dir /var/lib/vault-witness --name witness.district.example/w1
  vault witness serve --dir /var/lib/vault-witness --listen 10.0.0.9:7380 --log-pub log.pub")]
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
    },
    /// Print a shell completion script for `vault` (needs no identity).
    #[command(after_help = "Install (bash, zsh, fish):
  vault completions bash > ~/.local/share/bash-completion/completions/vault
  vault completions zsh > ~/.zfunc/_vault        # with fpath+=(~/.zfunc) in ~/.zshrc
  vault completions fish > ~/.config/fish/completions/vault.fish")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for `vault` and each of its commands into DIR
    /// (vault.1, vault-get.1, …; needs no identity).
    #[command(after_help = "Install:
  vault manpages ~/.local/share/man/man1 && man vault-get")]
    Manpages {
        /// Where to write them (created when missing).
        dir: PathBuf,
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

/// `vault order`: file an order (the flags), or decide on one (a subcommand).
#[derive(clap::Args, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct OrderArgs {
    /// Decide on an order instead of filing one.
    #[command(subcommand)]
    pub command: Option<OrderCommand>,
    /// Whose documents.
    #[arg(long, required = true)]
    pub resident: Option<ResidentId>,
    /// Exact documents, comma separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "kinds")]
    pub documents: Vec<DocumentId>,
    /// Kinds of document (the resident's current one of each), comma separated.
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<DocumentKind>,
    /// A statutory purpose from the district's registry, e.g. criminal-investigation.
    #[arg(long, required = true)]
    pub purpose: Option<Purpose>,
    /// The case reference, shown to the resident on disclosure.
    #[arg(long = "case", required = true)]
    pub case_ref: Option<String>,
    /// How long the access stays hidden from the resident: 30s, 90m, 12h, 30d.
    #[arg(long, value_parser = parse_duration, required = true)]
    pub seal: Option<u64>,
    /// How long the grant is valid: 3600, 90m, 12h, 30d.
    #[arg(long, value_parser = parse_duration, required = true)]
    pub ttl: Option<u64>,
    /// With --kinds: only documents this department issued.
    #[arg(long, requires = "kinds")]
    pub issuer: Option<pki::Name>,
}

/// `vault order`'s decisions.
#[derive(Subcommand, Clone, Debug)]
pub enum OrderCommand {
    /// (Authority; or the ordering department where the purpose needs no
    /// authority) Approve an order: the node issues the grant.
    Approve {
        /// The order id printed by `vault order` or `vault orders`.
        order_id: RequestId,
        /// Fetches the grant allows.
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
    },
    /// (Authority) Deny an order.
    Deny {
        /// The order id.
        order_id: RequestId,
    },
    /// (Authority) Keep an order sealed longer: the seal then ends this
    /// long from now (30s, 90m, 12h, 30d).
    Extend {
        /// The order id.
        order_id: RequestId,
        /// The new seal, from now.
        #[arg(long, value_parser = parse_duration)]
        seal: u64,
    },
    /// Show one order.
    Show {
        /// The order id.
        order_id: RequestId,
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

/// Byte ranges: `START..END` (half-open) or `START..` (to the end).
pub fn parse_range(text: &str) -> Result<ByteRange, String> {
    let (start, end) = text.split_once("..").ok_or_else(|| {
        "expected START..END (END not included) or START.., e.g. 0..1024".to_string()
    })?;
    let start: u64 = start.parse().map_err(|_| format!("bad start {start:?}"))?;
    let end: u64 = if end.is_empty() {
        u64::MAX
    } else {
        end.parse().map_err(|_| format!("bad end {end:?}"))?
    };
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
        assert_eq!(
            parse_range("100.."),
            Ok(ByteRange {
                start: 100,
                end: u64::MAX
            })
        );
        assert!(parse_range("9..3").is_err());
        assert!(parse_range("..9").is_err());
        assert!(parse_range("1-2").is_err());
        assert!(parse_range("a..2").is_err());
    }
}
