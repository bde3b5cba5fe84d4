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

/// Issues a department certificate named `name` into `out`; returns its serial.
fn issue_department(ca: &Path, name: &str, out: &Path) -> Result<String, Box<dyn Error>> {
    let args = [
        "issue",
        "--dir",
        s(ca),
        "--role",
        "department",
        "--name",
        name,
    ];
    let (ok, issued) = run(&[&args[..], &["--out", s(out)]].concat())?;
    assert!(ok, "{issued}");
    Ok(issued["certificate"]["serial"]
        .as_str()
        .ok_or("no serial")?
        .to_owned())
}

#[test]
fn revoking_a_name_revokes_every_certificate_of_it_once() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = tmp.path().join("ca");
    let (ok, init) = run(&["init", "--dir", s(&ca)])?;
    assert!(ok, "{init}");
    let x1 = issue_department(&ca, "tax-office", &tmp.path().join("x1"))?;
    let x2 = issue_department(&ca, "tax-office", &tmp.path().join("x2"))?;
    let y = issue_department(&ca, "housing-bureau", &tmp.path().join("y"))?;
    let sorted = |v: &Value| -> Vec<String> {
        let mut all: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        all.sort();
        all
    };
    let mut both = vec![x1.clone(), x2.clone()];
    both.sort();

    let (ok, revoked) = run(&["revoke", "--dir", s(&ca), "--name", "tax-office"])?;
    assert!(ok, "{revoked}");
    assert_eq!(sorted(&revoked["serials"]), both, "{revoked}");
    assert_eq!(revoked["revoked"], revoked["serials"][0], "{revoked}");
    let (ok, crl) = run(&["inspect", s(&ca.join("crl.pem"))])?;
    assert!(ok, "{crl}");
    assert_eq!(sorted(&crl["crl"]["revoked"]), both, "{crl}");
    assert_eq!(crl["crl"]["crl_number"], "2");

    // Again: the same serials, no new CRL entries.
    let (ok, again) = run(&["revoke", "--dir", s(&ca), "--name", "tax-office"])?;
    assert!(ok, "{again}");
    assert_eq!(sorted(&again["serials"]), both, "{again}");
    let (_, crl) = run(&["inspect", s(&ca.join("crl.pem"))])?;
    assert_eq!(sorted(&crl["crl"]["revoked"]), both, "{crl}");
    assert_eq!(crl["crl"]["crl_number"], "2");

    let (ok, nobody) = run(&["revoke", "--dir", s(&ca), "--name", "nobody"])?;
    assert!(!ok);
    assert_eq!(nobody["error"]["code"], "pki.unknown_name");

    let (ok, by_serial) = run(&["revoke", "--dir", s(&ca), "--serial", &y])?;
    assert!(ok, "{by_serial}");
    assert_eq!(by_serial["serials"], serde_json::json!([y]));
    Ok(())
}
