//! The `vault-pki` binary: every command with `--json` prints exactly one JSON object.

#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::TestResult;

/// Runs `vault-pki --json ARGS` and returns (success, the one JSON object on stdout).
fn run(args: &[&str]) -> Result<(bool, Value), Box<dyn Error>> {
    let output = Command::new(env!("CARGO_BIN_EXE_vault-pki"))
        .arg("--json")
        .args(args)
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one line of JSON, got {stdout:?}"
    );
    Ok((output.status.success(), serde_json::from_str(&stdout)?))
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn init_issue_revoke_inspect() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = tmp.path().join("ca");
    let out = tmp.path().join("civil");
    let (ok, init) = run(&["init", "--dir", s(&ca), "--district", "North District"])?;
    assert!(ok, "{init}");
    assert_eq!(init["district"], "North District");

    let (ok, again) = run(&["init", "--dir", s(&ca)])?;
    assert!(!ok);
    assert_eq!(again["error"]["code"], "pki.exists");

    let (ok, issued) = run(&[
        "issue",
        "--dir",
        s(&ca),
        "--role",
        "department",
        "--name",
        "civil-affairs",
        "--out",
        s(&out),
        "--days",
        "30",
    ])?;
    assert!(ok, "{issued}");
    let cert = &issued["certificate"];
    assert_eq!(cert["role"], "department");
    assert_eq!(cert["name"], "civil-affairs");
    assert_eq!(cert["issuer"], "North District Root CA");
    assert_eq!(
        cert["not_after"].as_i64().unwrap() - cert["not_before"].as_i64().unwrap(),
        30 * 86_400 + 60
    );
    let serial = cert["serial"].as_str().unwrap().to_owned();

    let (ok, inspected) = run(&["inspect", s(&out.join("cert.pem"))])?;
    assert!(ok, "{inspected}");
    assert_eq!(inspected["certificate"], *cert);

    let (ok, revoked) = run(&["revoke", "--dir", s(&ca), "--name", "civil-affairs"])?;
    assert!(ok, "{revoked}");
    assert_eq!(revoked["revoked"], serial.as_str());

    let (ok, crl) = run(&["inspect", s(&ca.join("crl.pem"))])?;
    assert!(ok, "{crl}");
    assert_eq!(crl["crl"]["revoked"], serde_json::json!([serial]));
    assert_eq!(crl["crl"]["crl_number"], "2");

    let (ok, by_cert) = run(&[
        "revoke",
        "--dir",
        s(&ca),
        "--cert",
        s(&out.join("cert.pem")),
    ])?;
    assert!(ok, "{by_cert}");
    Ok(())
}

#[test]
fn errors_are_json_with_codes() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = tmp.path().join("ca");
    run(&["init", "--dir", s(&ca)])?;
    let (ok, unknown) = run(&["revoke", "--dir", s(&ca), "--serial", "abcdef"])?;
    assert!(!ok);
    assert_eq!(unknown["error"]["code"], "pki.unknown_serial");
    let (ok, bad_role) = run(&[
        "issue",
        "--dir",
        s(&ca),
        "--role",
        "mayor",
        "--name",
        "x",
        "--out",
        s(&tmp.path().join("x")),
    ])?;
    assert!(!ok);
    assert_eq!(bad_role["error"]["code"], "cli.usage");
    assert!(bad_role["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mayor"));
    let (ok, missing) = run(&["inspect", s(&tmp.path().join("nope.pem"))])?;
    assert!(!ok);
    assert!(missing["error"]["message"].is_string());
    Ok(())
}
