//! `vault-pki`: the district CA's command line (init, issue, revoke, inspect).
//!
//! Every command takes `--json` and then prints exactly one JSON object on stdout; errors are
//! `{"error":{"code":"...","message":"..."}}` (stdout with `--json`, stderr otherwise) and a
//! non-zero exit status.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{ArgGroup, Parser, Subcommand};
use pki::{parse_certificate, CertificateAuthority, IssueParams, Name, PeerCert, PkiError, Role};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde_json::{json, Value};

/// Seconds in a day.
const DAY_S: i64 = 24 * 60 * 60;
/// Longest certificate lifetime `--days` accepts (the root lives 10 years).
const DAYS_MAX: i64 = 10 * 365;

#[derive(Parser)]
#[command(
    name = "vault-pki",
    version,
    about = "District CA for the document vault"
)]
struct Cli {
    /// Print exactly one JSON object on stdout (errors too).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new CA directory with a self-signed Ed25519 root and an empty CRL.
    Init {
        /// The CA directory to create.
        #[arg(long)]
        dir: PathBuf,
        /// The district's name (subject O of every certificate).
        #[arg(long, default_value = "Vault District")]
        district: String,
    },
    /// Issue a certificate and key into an identity directory.
    Issue {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// node, department, auditor or resident.
        #[arg(long)]
        role: Role,
        /// The holder's name (certificate CN).
        #[arg(long)]
        name: Name,
        /// The identity directory to write cert.pem, key.pem and ca.pem into.
        #[arg(long)]
        out: PathBuf,
        /// A DNS name or IP address for the certificate (repeatable; for nodes).
        #[arg(long = "san")]
        sans: Vec<String>,
        /// The cluster a node belongs to: a node whose certificate names a
        /// cluster takes Raft messages and blob copies only from nodes of
        /// the same cluster (for nodes).
        #[arg(long)]
        cluster: Option<Name>,
        /// Lifetime in days (default 365; residents 5 years).
        #[arg(long)]
        days: Option<i64>,
    },
    /// Create the district's log key (`log.key.pem`, secret, 0600) and its C2SP verifier key
    /// (`log.pub`) in the CA directory. Every node signs checkpoints with it under ORIGIN;
    /// `issue` copies `log.pub` into every identity and `log.key.pem` into node identities.
    /// The first time, it also creates the district salt key (`salt.key.pem`, RSA, 0600, and
    /// `salt.pub`), copied the same way and never rotated.
    LogKey {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The log's origin, the key's name: a schema-less URL without spaces, e.g.
        /// district.example/vault.
        #[arg(long)]
        origin: String,
        /// Replace an existing log key: the old key file is retired and its verifier key
        /// kept in log.pub after the new one (the new origin must differ).
        #[arg(long)]
        rotate: bool,
    },
    /// Create the district salt key (`salt.key.pem`, RSA, secret, 0600, and `salt.pub`) in a
    /// CA directory made before it existed (`log-key` makes it with the log key). Never
    /// replaced: every resident's log salt is fixed by it. `pki.exists` if the CA has one.
    SaltKey {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke certificates and rewrite the CA's crl.pem (one serial, one certificate file,
    /// or every unexpired certificate of a name).
    #[command(group(ArgGroup::new("which").required(true).args(["serial", "name", "cert"])))]
    Revoke {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Serial number, hex.
        #[arg(long)]
        serial: Option<String>,
        /// Holder name: revokes every unexpired certificate issued to it, not only the
        /// newest (expired ones are left as they are; revoke those by --serial).
        #[arg(long)]
        name: Option<Name>,
        /// A certificate file (PEM or DER).
        #[arg(long)]
        cert: Option<PathBuf>,
    },
    /// Show what a certificate or CRL file says.
    Inspect {
        /// A certificate or CRL, PEM or DER.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let json_mode = std::env::args().any(|arg| arg == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if json_mode && err.use_stderr() => {
            report_error(true, "cli.usage", &usage_message(&err.render().to_string()));
            return ExitCode::from(EXIT_USAGE);
        }
        Err(err) => err.exit(),
    };
    match run(&cli.command) {
        Ok((value, text)) => {
            if cli.json {
                println!("{value}");
            } else {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            let code = err
                .downcast_ref::<PkiError>()
                .map_or("cli.error", PkiError::code);
            report_error(cli.json, code, &format!("{err:#}"))
        }
    }
}

/// Exit status of a bad command line (as `vault` and `vault-node`).
const EXIT_USAGE: u8 = 2;

/// clap's error text as one sentence: without `error: ` and the usage
/// lines, keeping the names of missing arguments.
fn usage_message(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("error: "))
        .collect();
    if parts.is_empty() {
        "bad command line".to_string()
    } else {
        parts.join(" ")
    }
}

fn report_error(json_mode: bool, code: &str, message: &str) -> ExitCode {
    let value = json!({ "error": { "code": code, "message": message } });
    if json_mode {
        println!("{value}");
    } else {
        eprintln!("error [{code}]: {message}");
    }
    ExitCode::FAILURE
}

/// Runs one command; returns its JSON result and the human-readable text.
fn run(command: &Command) -> anyhow::Result<(Value, String)> {
    let now = now_unix()?;
    match command {
        Command::Init { dir, district } => {
            let ca = CertificateAuthority::init(dir, district, now)?;
            let value = json!({ "dir": ca.dir(), "district": ca.district(), "ca": dir.join("ca.pem"), "crl": ca.crl_path() });
            let text = format!("created CA for {} in {}", ca.district(), ca.dir().display());
            Ok((value, text))
        }
        Command::Issue {
            dir,
            role,
            name,
            out,
            sans,
            cluster,
            days,
        } => {
            let ca = CertificateAuthority::open(dir)?;
            let mut params = IssueParams::new(*role, name.clone(), now);
            params.sans.clone_from(sans);
            params.cluster.clone_from(cluster);
            if let Some(days) = days {
                if !(1..=DAYS_MAX).contains(days) {
                    bail!("--days must be between 1 and {DAYS_MAX}");
                }
                params.not_after = now + days * DAY_S;
            }
            let cert = ca.issue(&params, out)?;
            let text = format!(
                "issued {} certificate for {} into {}\n{}",
                cert.role,
                cert.name,
                out.display(),
                cert_text(&cert)
            );
            Ok((json!({ "certificate": cert_json(&cert), "out": out }), text))
        }
        Command::Revoke {
            dir,
            serial,
            name,
            cert,
        } => revoke(dir, serial.as_deref(), name.as_ref(), cert.as_deref(), now),
        Command::Inspect { file } => inspect(file),
        Command::SaltKey { dir } => {
            let ca = CertificateAuthority::open(dir)?;
            let key = dir.join(pki::SALT_KEY_FILE);
            if !ca.create_salt_key()? {
                return Err(pki::PkiError::Exists { path: key }.into());
            }
            let public = dir.join(pki::SALT_PUB_FILE);
            let value = json!({ "key": key, "pub": public });
            let text = format!(
                "created the district salt key in {} (public half: {}); copy salt.pub into every \
                 identity and salt.key.pem (0600) beside every node's log key",
                key.display(),
                public.display()
            );
            Ok((value, text))
        }
        Command::LogKey {
            dir,
            origin,
            rotate,
        } => {
            let ca = CertificateAuthority::open(dir)?;
            let verifier = ca.create_log_key(origin, *rotate, now)?;
            let public = dir.join(pki::LOG_PUB_FILE);
            let value = json!({
                "origin": verifier.name(),
                "vkey": verifier.vkey(),
                "key": ca.log_key_path(),
                "pub": public,
                "salt_key": dir.join(pki::SALT_KEY_FILE),
                "salt_pub": dir.join(pki::SALT_PUB_FILE),
            });
            let text = format!(
                "created the log key for {} in {}\nverifier key (in {}): {}\n\
                 the district salt key (kept through rotations): {} and {}",
                verifier.name(),
                ca.log_key_path().display(),
                public.display(),
                verifier.vkey(),
                dir.join(pki::SALT_KEY_FILE).display(),
                dir.join(pki::SALT_PUB_FILE).display(),
            );
            Ok((value, text))
        }
    }
}

fn revoke(
    dir: &Path,
    serial: Option<&str>,
    name: Option<&Name>,
    cert_file: Option<&Path>,
    now: i64,
) -> anyhow::Result<(Value, String)> {
    let ca = CertificateAuthority::open(dir)?;
    let serial = match (serial, name, cert_file) {
        (Some(serial), _, _) => serial.trim().to_ascii_lowercase(),
        (None, Some(name), _) => return revoke_name(&ca, name, now),
        (None, None, Some(path)) => parse_certificate(&read_cert(path)?)?.serial_hex,
        (None, None, None) => bail!("give one of --serial, --name or --cert"),
    };
    ca.revoke(&serial, now)?;
    let value = json!({ "revoked": serial, "serials": [serial], "crl": ca.crl_path() });
    let text = format!(
        "revoked {serial}; new CRL written to {}",
        ca.crl_path().display()
    );
    Ok((value, text))
}

/// `revoke --name`: every unexpired certificate of the name. JSON: `revoked` is the
/// newest serial, `serials` all of them, newest first.
fn revoke_name(
    ca: &CertificateAuthority,
    name: &Name,
    now: i64,
) -> anyhow::Result<(Value, String)> {
    let serials = ca.revoke_name(name, now)?;
    let newest = serials.first().cloned().unwrap_or_default();
    let value = json!({ "revoked": newest, "serials": serials, "crl": ca.crl_path() });
    let text = format!(
        "revoked {} certificate(s) of {name}: {}; new CRL written to {}",
        serials.len(),
        serials.join(", "),
        ca.crl_path().display()
    );
    Ok((value, text))
}

fn inspect(path: &Path) -> anyhow::Result<(Value, String)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(crl) = CertificateRevocationListDer::from_pem_slice(&bytes) {
        return inspect_crl(crl.as_ref());
    }
    let der = CertificateDer::from_pem_slice(&bytes).map_or_else(|_| bytes.clone(), |c| c.to_vec());
    match parse_certificate(&der) {
        Ok(cert) => Ok((json!({ "certificate": cert_json(&cert) }), cert_text(&cert))),
        Err(cert_err) => inspect_crl(&der).map_err(|_| cert_err.into()),
    }
}

fn inspect_crl(der: &[u8]) -> anyhow::Result<(Value, String)> {
    let (_, crl) = x509_parser::parse_x509_crl(der)
        .map_err(|e| anyhow::anyhow!("not a certificate or CRL: {e}"))?;
    let serials: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|revoked| hex::encode(revoked.raw_serial()))
        .collect();
    let value = json!({ "crl": {
        "issuer": crl.issuer().to_string(),
        "crl_number": crl.crl_number().map(ToString::to_string),
        "this_update": crl.last_update().timestamp(),
        "next_update": crl.next_update().map(|t| t.timestamp()),
        "revoked": serials,
    }});
    let text = format!(
        "CRL issued by {}\nrevoked serials ({}):\n{}",
        crl.issuer(),
        serials.len(),
        serials.join("\n")
    );
    Ok((value, text))
}

fn read_cert(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(CertificateDer::from_pem_slice(&bytes).map_or(bytes, |c| c.to_vec()))
}

fn cert_json(cert: &PeerCert) -> Value {
    json!({
        "role": cert.role,
        "name": cert.name,
        "serial": cert.serial_hex,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "key_id": cert.key_id_hex(),
        "issuer": cert.issuer_cn,
        "cluster": cert.cluster,
    })
}

fn cert_text(cert: &PeerCert) -> String {
    let mut text = format!(
        "role:       {}\nname:       {}\nserial:     {}\nnot before: {}\nnot after:  {}\nkey id:     {}\nissuer:     {}",
        cert.role, cert.name, cert.serial_hex, cert.not_before, cert.not_after, cert.key_id_hex(), cert.issuer_cn
    );
    if let Some(cluster) = &cert.cluster {
        text.push_str(&format!("\ncluster:    {cluster}"));
    }
    text
}

fn now_unix() -> anyhow::Result<i64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(i64::try_from(since.as_secs())?)
}
