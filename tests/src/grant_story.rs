//! The grant story every consent test tells: a department asks a resident
//! for documents for a purpose, the resident approves, the department
//! holds a grant. [`GrantStory`] is its one preamble, over the client API
//! (in-process or cluster nodes) and over the `vault` command line;
//! [`Parties`] are the three identities it usually involves.
//!
//! What varies between tests (scope, purpose, ttl, uses, the approval's
//! body) is set with the builder; the defaults are the story the README
//! tells: housing-bureau asks resident-1 for the marriage certificate, for
//! `housing-subsidy`, for an hour, to be used once. It checks nothing
//! itself: the tests assert on what it answers.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use pki::{DocumentId, Grant, GrantBody, RequestId, RequestScope};
use vault_client::wire::RequestView;
use vault_client::{ClientError, VaultClient};

use crate::fixtures::{kind, purpose, resident};
use crate::{vault_cli, CliOutput, TestPki};

/// How long [`GrantStory::pending`] waits for a request to reach the
/// resident's node (a cluster replicates it first).
pub const PENDING_WAIT: Duration = Duration::from_secs(30);
/// Pause between two looks at the resident's pending requests.
const PENDING_POLL: Duration = Duration::from_millis(20);

/// The story's three parties, each connected to one node: civil-affairs
/// issues documents, housing-bureau asks for them, resident-1 consents.
pub struct Parties {
    /// The issuing department.
    pub civil: VaultClient,
    /// The asking department (the grant's holder).
    pub housing: VaultClient,
    /// The resident the documents are about.
    pub resident: VaultClient,
}

impl Parties {
    /// Connects civil-affairs, housing-bureau and resident-1 to `addr`.
    pub async fn connect(pki: &TestPki, addr: SocketAddr) -> Result<Self, ClientError> {
        Ok(Parties {
            civil: crate::connect(pki, "civil-affairs", addr).await?,
            housing: crate::connect(pki, "housing-bureau", addr).await?,
            resident: crate::connect(pki, "resident-1", addr).await?,
        })
    }

    /// [`GrantStory::grant`] with housing-bureau asking resident-1.
    pub async fn grant(&self, story: &GrantStory) -> anyhow::Result<Grant> {
        story.grant(&self.housing, &self.resident).await
    }
}

/// What a department asks a resident for, and what the resident grants.
#[derive(Clone, Debug)]
pub struct GrantStory {
    department: String,
    resident: String,
    scope: Scope,
    purpose: String,
    ttl_s: u64,
    max_uses: u32,
}

/// A request's scope, kept as names until it is sent.
#[derive(Clone, Debug)]
enum Scope {
    Kinds(Vec<String>),
    Documents(Vec<DocumentId>),
}

impl Default for GrantStory {
    fn default() -> Self {
        GrantStory {
            department: "housing-bureau".into(),
            resident: "resident-1".into(),
            scope: Scope::Kinds(vec!["marriage-certificate".into()]),
            purpose: "housing-subsidy".into(),
            ttl_s: 3600,
            max_uses: 1,
        }
    }
}

impl GrantStory {
    /// The default story (see the module documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for the resident's newest document of each of `kinds`.
    pub fn kinds(mut self, kinds: &[&str]) -> Self {
        self.scope = Scope::Kinds(kinds.iter().map(|k| k.to_string()).collect());
        self
    }

    /// Asks for these documents.
    pub fn documents(mut self, documents: Vec<DocumentId>) -> Self {
        self.scope = Scope::Documents(documents);
        self
    }

    /// Asks for `purpose` (a purpose code, registered or not).
    pub fn purpose(mut self, purpose: &str) -> Self {
        self.purpose = purpose.into();
        self
    }

    /// Asks for access for `ttl_s` seconds.
    pub fn ttl_s(mut self, ttl_s: u64) -> Self {
        self.ttl_s = ttl_s;
        self
    }

    /// The resident approves `max_uses` fetches.
    pub fn max_uses(mut self, max_uses: u32) -> Self {
        self.max_uses = max_uses;
        self
    }

    /// The department asks (the command line's story; the client API's
    /// asks through whichever client it is given).
    pub fn department(mut self, name: &str) -> Self {
        self.department = name.into();
        self
    }

    /// `department` sends the request; answers its id.
    pub async fn request(&self, department: &VaultClient) -> Result<RequestId, ClientError> {
        let scope = match &self.scope {
            Scope::Kinds(kinds) => RequestScope::Kinds(kinds.iter().map(|k| kind(k)).collect()),
            Scope::Documents(documents) => RequestScope::Documents(documents.clone()),
        };
        department
            .request_access(
                &resident(&self.resident),
                scope,
                &purpose(&self.purpose),
                self.ttl_s,
            )
            .await
    }

    /// Request `id` as `resident` sees it, once it is pending there (asking
    /// again after an error or while it is not, for at most
    /// [`PENDING_WAIT`]).
    pub async fn pending(
        &self,
        resident: &VaultClient,
        id: RequestId,
    ) -> anyhow::Result<RequestView> {
        let start = Instant::now();
        loop {
            let last = match resident.pending_requests().await {
                Ok(pending) => match pending.into_iter().find(|r| r.request_id == id) {
                    Some(view) => return Ok(view),
                    None => "not pending".to_string(),
                },
                Err(e) => e.to_string(),
            };
            anyhow::ensure!(
                start.elapsed() < PENDING_WAIT,
                "request {id} at the resident: {last}"
            );
            tokio::time::sleep(PENDING_POLL).await;
        }
    }

    /// The body approving `view` as asked, with this story's uses.
    pub fn approval_body(
        &self,
        resident: &VaultClient,
        view: &RequestView,
    ) -> Result<GrantBody, ClientError> {
        resident.approval_body(view, self.max_uses, None)
    }

    /// `department` asks, `resident` approves as asked: the grant.
    pub async fn grant(
        &self,
        department: &VaultClient,
        resident: &VaultClient,
    ) -> anyhow::Result<Grant> {
        self.grant_edited(department, resident, |_| {}).await
    }

    /// [`GrantStory::grant`], with `edit` applied to the approval's body
    /// before the resident signs it (a later start, a shorter window...).
    pub async fn grant_edited(
        &self,
        department: &VaultClient,
        resident: &VaultClient,
        edit: impl FnOnce(&mut GrantBody),
    ) -> anyhow::Result<Grant> {
        let id = self.request(department).await?;
        let view = self.pending(resident, id).await?;
        let mut body = self.approval_body(resident, &view)?;
        edit(&mut body);
        Ok(resident.approve(body).await?)
    }

    /// `vault request` as the department against `node`.
    pub fn cli_request(&self, pki: &TestPki, node: SocketAddr) -> anyhow::Result<CliOutput> {
        let scope: Vec<String> = match &self.scope {
            Scope::Kinds(kinds) => vec!["--kinds".into(), kinds.join(",")],
            Scope::Documents(documents) => {
                let ids: Vec<String> = documents.iter().map(|d| d.to_string()).collect();
                vec!["--documents".into(), ids.join(",")]
            }
        };
        let ttl = cli_duration(self.ttl_s);
        let mut args = vec!["request", "--resident", &self.resident];
        args.extend(scope.iter().map(String::as_str));
        args.extend(["--purpose", &self.purpose, "--ttl", &ttl]);
        vault_cli(&pki.identity_dir(&self.department), node, &args)
    }

    /// `vault approve REQUEST --max-uses N` as the resident against `node`.
    pub fn cli_approve(
        &self,
        pki: &TestPki,
        node: SocketAddr,
        request_id: &str,
    ) -> anyhow::Result<CliOutput> {
        let uses = self.max_uses.to_string();
        let args = ["approve", request_id, "--max-uses", &uses];
        vault_cli(&pki.identity_dir(&self.resident), node, &args)
    }

    /// `vault request`, then `vault approve`: answers the grant id.
    pub fn cli_grant(&self, pki: &TestPki, node: SocketAddr) -> anyhow::Result<String> {
        let request = self.cli_request(pki, node)?;
        let request_id = json_text(&request, "request_id")?;
        let approved = self.cli_approve(pki, node, &request_id)?;
        json_text(&approved, "grant_id")
    }
}

/// civil-affairs issues `bytes` as resident-1's marriage certificate:
/// `vault put WORK/marriage.pdf` against `node` (the file written first).
pub fn cli_issue_marriage(
    pki: &TestPki,
    node: SocketAddr,
    work: &Path,
    bytes: &[u8],
) -> anyhow::Result<CliOutput> {
    let file = work.join("marriage.pdf");
    std::fs::write(&file, bytes)?;
    let kind = "marriage-certificate";
    crate::vault_put(pki, "civil-affairs", node, &file, "resident-1", kind)
}

/// String field `key` of a `vault --json` run's output.
pub fn json_text(out: &CliOutput, key: &str) -> anyhow::Result<String> {
    out.json[key]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no {key} in {out:?}"))
}

/// `seconds` as the command line's `--ttl` writes it: whole days as `Nd`,
/// whole hours as `Nh`, anything else in seconds.
fn cli_duration(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => s.to_string(),
    }
}
