//! The seed corpora and the fixture district, made by the code operators
//! use (`pki`'s CA, real signatures) rather than by hand: `write` makes a
//! district in a scratch directory, signs the statements, notes and grants
//! the tests use, and writes each target's seeds to `fuzz/corpus/<target>/`
//! and the district's public parts to `fuzz/fixtures/`.
//!
//! Run by `cargo test -p tests --test suite fuzz_corpus::write_seeds --
//! --ignored` (see docs/FUZZING.md); the corpus changes only when it runs.

use std::error::Error;
use std::path::Path;

use pki::{
    AccessRequest, CertificateAuthority, Checkpoint, ContentHash, DocumentId, DocumentKind, Grant,
    GrantBody, GrantId, GrantedDocument, Identity, IssueParams, IssueRecord, LogEntry, LogEvent,
    LogSigner, Name, Purpose, RequestId, RequestScope, ResidentId, Role, WitnessPolicy,
    WitnessSigner,
};
use serde::Serialize;
use vault_client::merkle::{leaf_hash, node_hash};
use vault_client::receipt::Receipt;
use vault_client::wire::{
    encode_frame_max, ByteRange, DocumentView, ErrorBody, GrantView, MembershipChange, NodeStatus,
    RaftRpc, Request, Response, StatusMember, RAFT_FRAME_LEN_MAX,
};
use vault_client::witness::AddCheckpoint;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The fixture district's log origin.
const ORIGIN: &str = "fuzz.district.example/vault";
/// The fixture witness's name.
const WITNESS: &str = "witness.fuzz.example/w1";

/// The signers and statements seeds are made of.
struct District {
    now: i64,
    ca: CertificateAuthority,
    node: Identity,
    civil: Identity,
    housing: Identity,
    resident: Identity,
    log_key: LogSigner,
    witness: WitnessSigner,
    crl: Vec<u8>,
}

/// Writes the fixtures into `fuzz_dir/fixtures/` and the seeds into
/// `fuzz_dir/corpus/<target>/` (replacing the files of the same names),
/// using `scratch` for the district's CA and identities.
pub fn write(scratch: &Path, fuzz_dir: &Path, now: i64) -> Result<()> {
    let district = District::new(scratch, now)?;
    district.write_fixtures(&fuzz_dir.join("fixtures"))?;
    let corpus = fuzz_dir.join("corpus");
    let seeds: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("request_frame", district.request_frames()?),
        ("response_frame", district.response_frames()?),
        ("frame_decoder", district.frame_streams()?),
        ("tree_decoder", tree_inputs()),
        ("grant_json", district.grant_files()?),
        ("grant_body", pairs(&district.grant_bodies())?),
        ("access_request", pairs(&district.access_requests())?),
        ("issue_record", pairs(&district.issue_records())?),
        (
            "log_entry",
            district
                .entries()
                .iter()
                .map(LogEntry::canonical_bytes)
                .collect(),
        ),
        ("audit_replay", district.replays()),
        ("checkpoint", district.notes()),
        ("cosignature", district.key_texts()?),
        ("witness_request", district.add_checkpoints()),
        ("receipt", district.receipts()),
        (
            "node_status",
            statuses().iter().map(json).collect::<Result<_>>()?,
        ),
        ("certificate", district.certificates()),
    ];
    for (target, inputs) in seeds {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), input)?;
        }
    }
    Ok(())
}

impl District {
    fn new(scratch: &Path, now: i64) -> Result<District> {
        let ca = CertificateAuthority::init(&scratch.join("ca"), "Fuzz District", now)?;
        ca.create_log_key(ORIGIN, false, now)?;
        let issue = |name: &str, role: Role| -> Result<Identity> {
            let mut params = IssueParams::new(role, Name::parse(name)?, now);
            if role == Role::Node {
                params.sans = vec!["localhost".into(), "127.0.0.1".into()];
                params.cluster = Some(Name::parse("fuzz-cluster")?);
            }
            let dir = scratch.join("identities").join(name);
            ca.issue(&params, &dir)?;
            Ok(Identity::load(&dir)?)
        };
        let node = issue("node-1", Role::Node)?;
        let civil = issue("civil-affairs", Role::Department)?;
        let housing = issue("housing-bureau", Role::Department)?;
        let resident = issue("resident-1", Role::Resident)?;
        issue("auditor", Role::Auditor)?;
        ca.revoke_name(&Name::parse("auditor")?, now)?;
        let crl = pki::load_crls(&ca.crl_path())?.remove(0);
        let log_key = LogSigner::load(&ca.log_key_path(), &ca.log_verifiers()?)?;
        let (witness, _) = WitnessSigner::generate(WITNESS)?;
        Ok(District {
            now,
            ca,
            node,
            civil,
            housing,
            resident,
            log_key,
            witness,
            crl,
        })
    }

    fn write_fixtures(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let log_pub = pki::verifiers_text(&self.ca.log_verifiers()?);
        let policy = format!(
            "log {}\n{}",
            self.log_key.verifier().vkey(),
            WitnessPolicy::requiring_all(std::slice::from_ref(self.witness.verifier()))
        );
        WitnessPolicy::parse(&policy)?;
        let files: [(&str, Vec<u8>); 6] = [
            ("ca.der", self.ca.ca_der()),
            ("node.der", self.node.cert_der().to_vec()),
            ("log.pub", log_pub.into_bytes()),
            ("witness-policy", policy.into_bytes()),
            ("cosigned-note", self.cosigned_note(7).into_bytes()),
            ("time", format!("{}\n", self.now).into_bytes()),
        ];
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(())
    }

    fn issue_records(&self) -> Vec<IssueRecord> {
        let record = |kind: &str, size: u64| IssueRecord {
            resident: self.resident_id(),
            kind: DocumentKind::parse(kind).unwrap(),
            content_hash: ContentHash(*blake3::hash(kind.as_bytes()).as_bytes()),
            size,
            issued_at: self.now,
            issuer: Name::parse("civil-affairs").unwrap(),
        };
        vec![record("marriage-certificate", 1024), record("deed", 0)]
    }

    fn access_requests(&self) -> Vec<AccessRequest> {
        let request = |scope: RequestScope| AccessRequest {
            resident: self.resident_id(),
            department: Name::parse("housing-bureau").unwrap(),
            scope,
            purpose: Purpose::parse("housing-subsidy").unwrap(),
            ttl_s: 3_600,
            created_at: self.now,
            nonce: [7; 16],
        };
        vec![
            request(RequestScope::Kinds(vec![
                DocumentKind::parse("deed").unwrap()
            ])),
            request(RequestScope::Documents(vec![doc_id(1), doc_id(2)])),
        ]
    }

    fn grant_bodies(&self) -> Vec<GrantBody> {
        let body = |documents: Vec<GrantedDocument>, max_uses| GrantBody {
            request_id: RequestId::from_bytes([3; 16]),
            resident: self.resident_id(),
            grantee: Name::parse("housing-bureau").unwrap(),
            grantee_key_id: [4; 32],
            documents,
            purpose: Purpose::parse("housing-subsidy").unwrap(),
            not_before: self.now,
            not_after: self.now + 3_600,
            max_uses,
        };
        let granted = |n| GrantedDocument {
            document_id: doc_id(n),
            content_hash: ContentHash([n; 32]),
        };
        vec![
            body(vec![granted(1)], 1),
            body(vec![granted(1), granted(2)], 5),
        ]
    }

    fn grant(&self, body: GrantBody) -> Grant {
        let consent = body.consent(&self.resident);
        let cert = self.resident.cert_der().to_vec();
        Grant::seal(body, consent, cert, &self.node)
    }

    fn grant_files(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for body in self.grant_bodies() {
            let grant = self.grant(body);
            grant.verify(&self.ca.ca_der(), &[])?;
            out.push(grant.to_json()?.into_bytes());
            out.push(serde_json::to_vec(&grant)?);
        }
        Ok(out)
    }

    fn request_frames(&self) -> Result<Vec<Vec<u8>>> {
        let record = self.issue_records().remove(0);
        let signature = record.sign(&self.civil);
        let request = self.access_requests().remove(0);
        let body = self.grant_bodies().remove(0);
        let page = |cursor: Option<&str>| (cursor.map(str::to_string), Some(50));
        let (cursor, limit) = page(Some("00ff"));
        let requests = vec![
            Request::Put { record, signature },
            Request::Get {
                document_id: doc_id(1),
                range: Some(ByteRange { start: 0, end: 100 }),
                grant: Some(GrantId::from_bytes([5; 16])),
            },
            Request::CreateRequest {
                signature: request.sign(&self.housing),
                request,
                issuer: Some(Name::parse("civil-affairs")?),
            },
            Request::PendingRequests {
                cursor: cursor.clone(),
                limit,
            },
            Request::ShowRequest {
                request_id: RequestId::from_bytes([3; 16]),
            },
            Request::Approve {
                request_id: body.request_id,
                consent: body.consent(&self.resident),
                body,
            },
            Request::Deny {
                request_id: RequestId::from_bytes([3; 16]),
            },
            Request::Grants {
                cursor: None,
                limit: None,
            },
            Request::ShowGrant {
                grant_id: GrantId::from_bytes([5; 16]),
            },
            Request::RevokeGrant {
                grant_id: GrantId::from_bytes([5; 16]),
            },
            Request::Checkpoint,
            Request::LogEntries {
                start: 0,
                count: 1_000,
            },
            Request::Receipt { index: 3 },
            Request::InclusionProof {
                index: 3,
                tree_size: Some(9),
            },
            Request::ConsistencyProof { from: 4, to: 9 },
            Request::Accesses {
                all: true,
                cursor,
                limit,
                tree_size: Some(9),
            },
            Request::List {
                resident: self.resident_id(),
                cursor: None,
                limit: Some(10),
            },
            Request::Raft {
                rpc: RaftRpc::ReadIndex,
            },
            Request::PushBlob {
                content_hash: ContentHash([9; 32]),
                size: 77,
            },
            Request::FetchBlob {
                content_hash: ContentHash([9; 32]),
            },
            Request::Status,
            Request::ChangeMembership {
                change: MembershipChange::Add {
                    id: 4,
                    addr: "127.0.0.1:7504".into(),
                },
            },
            Request::ChangeMembership {
                change: MembershipChange::Remove { id: 4 },
            },
            Request::Registry,
        ];
        requests.iter().map(frame).collect()
    }

    fn response_frames(&self) -> Result<Vec<Vec<u8>>> {
        let record = self.issue_records().remove(0);
        let document = DocumentView {
            document_id: record.document_id(&record.sign(&self.civil)),
            signature: record.sign(&self.civil),
            record,
            issuer_cert: self.civil.cert_der().to_vec(),
        };
        let grant = self.grant(self.grant_bodies().remove(1));
        let view = GrantView {
            grant_id: grant.id(),
            request_id: grant.body.request_id,
            resident: grant.body.resident.clone(),
            grantee: grant.body.grantee.clone(),
            purpose: grant.body.purpose.clone(),
            documents: grant.body.documents.clone(),
            not_before: grant.body.not_before,
            not_after: grant.body.not_after,
            max_uses: grant.body.max_uses,
            uses: 1,
            revoked: false,
        };
        let hex32 = hex::encode([6u8; 32]);
        let entries = self
            .entries()
            .iter()
            .map(|e| hex::encode(e.canonical_bytes()))
            .collect();
        let responses = vec![
            Response::SendBody { send: true },
            Response::Stored {
                document: document.clone(),
                deduplicated: false,
            },
            Response::Document {
                document: document.clone(),
                range: ByteRange {
                    start: 0,
                    end: 1024,
                },
                encoded_len: 1024,
                log_index: Some(4),
            },
            Response::Documents {
                documents: vec![document],
                next_cursor: Some("0a".into()),
            },
            Response::RequestCreated {
                request_id: RequestId::from_bytes([3; 16]),
            },
            Response::GrantIssued {
                grant: grant.clone(),
            },
            Response::GrantList {
                grants: vec![view.clone()],
                next_cursor: None,
            },
            Response::GrantDetail {
                grant: view,
                sealed: grant,
            },
            Response::Denied {
                request_id: RequestId::from_bytes([3; 16]),
            },
            Response::GrantRevoked {
                grant_id: GrantId::from_bytes([5; 16]),
            },
            Response::Checkpoint {
                note: self.cosigned_note(3),
            },
            Response::LogEntries { start: 0, entries },
            Response::InclusionProof {
                leaf_index: 0,
                tree_size: 2,
                leaf_hash: hex32.clone(),
                root_hash: hex32.clone(),
                inclusion_proof: vec![hex32.clone()],
            },
            Response::ConsistencyProof {
                old_size: 1,
                new_size: 2,
                old_root: hex32.clone(),
                new_root: hex32.clone(),
                consistency_proof: vec![hex32],
            },
            Response::Raft {
                reply: serde_json::json!({"Ok": {"Success": null}}),
            },
            Response::BlobStored {
                content_hash: ContentHash([9; 32]),
            },
            Response::BlobFollows { size: 77 },
            Response::Status {
                status: statuses().remove(1),
            },
            Response::Membership {
                members: statuses().remove(1).members,
                log_index: 12,
            },
            Response::Error(ErrorBody {
                code: "grant.exhausted".into(),
                message: "the grant allows 1 use".into(),
            }),
        ];
        responses.iter().map(frame).collect()
    }

    fn frame_streams(&self) -> Result<Vec<Vec<u8>>> {
        let frames = self.request_frames()?;
        let mut out = Vec::new();
        for (first, take) in [(0x00, 3), (0x07, 5), (0x3f, 2), (0x81, 2)] {
            let mut stream = vec![first];
            frames
                .iter()
                .take(take)
                .for_each(|f| stream.extend_from_slice(f));
            out.push(stream);
        }
        Ok(out)
    }

    fn resident_id(&self) -> ResidentId {
        ResidentId::parse("resident-1").unwrap()
    }

    /// A small story: a document, a request, its approval and grant, two
    /// fetches under it, a revocation, a refusal.
    fn entries(&self) -> Vec<LogEntry> {
        let t = self.now;
        let grant = GrantId::from_bytes([5; 16]);
        let request = RequestId::from_bytes([3; 16]);
        let mut issued = LogEntry::new(
            LogEvent::DocumentIssued,
            t,
            Role::Department,
            "civil-affairs",
        );
        issued.document_id = Some(doc_id(1));
        issued.resident_tag = [8; 32];
        let mut made = LogEntry::new(LogEvent::RequestMade, t, Role::Department, "housing-bureau");
        made.request_id = Some(request);
        let mut approval = LogEntry::new(LogEvent::Approval, t, Role::Resident, "resident");
        approval.request_id = Some(request);
        let mut granted = LogEntry::new(LogEvent::GrantIssued, t, Role::Node, "node-1");
        granted.grant_id = Some(grant);
        granted.request_id = Some(request);
        granted.not_before = t;
        granted.not_after = t + 3_600;
        granted.max_uses = 2;
        granted.documents = vec![doc_id(1)];
        let fetch = |n: u32| {
            let mut fetch =
                LogEntry::new(LogEvent::Fetch, t + 1, Role::Department, "housing-bureau");
            fetch.grant_id = Some(grant);
            fetch.document_id = Some(doc_id(1));
            fetch.use_number = n;
            fetch
        };
        let mut revoke = LogEntry::new(LogEvent::Revoke, t + 2, Role::Resident, "resident");
        revoke.grant_id = Some(grant);
        let mut refusal = LogEntry::new(LogEvent::Refusal, t + 3, Role::Department, "tax-office");
        refusal.code = "grant.revoked".into();
        refusal.commitment = [1; 32];
        vec![
            issued,
            made,
            approval,
            granted,
            fetch(1),
            fetch(2),
            revoke,
            fetch(3),
            refusal,
        ]
    }

    fn replays(&self) -> Vec<Vec<u8>> {
        let entries = self.entries();
        let page = |first: u16, entries: &[LogEntry]| {
            let mut out = first.to_be_bytes().to_vec();
            for entry in entries {
                let bytes = entry.canonical_bytes();
                out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
            out
        };
        vec![
            page(0, &entries),
            page(3, &entries[3..]),
            page(0, &entries[..2]),
        ]
    }

    fn note(&self, size: u64) -> String {
        let root = *blake3::hash(&size.to_be_bytes()).as_bytes();
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root,
            resident_index: None,
        }
        .sign(&self.log_key)
    }

    fn cosigned_note(&self, size: u64) -> String {
        let note = self.note(size);
        let (body, _) = pki::split_note(&note).unwrap();
        let line = self.witness.cosign(&body, self.now as u64);
        format!("{note}{line}")
    }

    fn notes(&self) -> Vec<Vec<u8>> {
        let signed = self.note(5);
        let unsigned = signed.split_once("\n\n").unwrap().0.to_string() + "\n\n";
        let extended = signed.replacen("\n\n", "\nextension line\n\n", 1);
        [signed, self.cosigned_note(9), unsigned, extended]
            .into_iter()
            .map(String::into_bytes)
            .collect()
    }

    fn key_texts(&self) -> Result<Vec<Vec<u8>>> {
        let witness = self.witness.verifier().vkey();
        let log_pub = pki::verifiers_text(&self.ca.log_verifiers()?);
        let note = self.note(9);
        let (body, _) = pki::split_note(&note)?;
        let line = self.witness.cosign(&body, self.now as u64);
        let policy = WitnessPolicy::requiring_all(std::slice::from_ref(self.witness.verifier()));
        let texts = [
            witness,
            log_pub,
            policy,
            format!("{}{body}", line),
            "group g 1 a b\nquorum g\n".into(),
        ];
        Ok(texts.into_iter().map(String::into_bytes).collect())
    }

    fn add_checkpoints(&self) -> Vec<Vec<u8>> {
        let request = |old, proof: Vec<[u8; 32]>, size| AddCheckpoint {
            old,
            proof,
            note: self.note(size),
        };
        [
            request(0, vec![], 3),
            request(3, vec![[1; 32], [2; 32]], 5),
            request(5, vec![], 5),
        ]
        .iter()
        .map(|r| r.encode().into_bytes())
        .collect()
    }

    /// Valid receipts for entries of a one-entry and a two-entry log.
    fn receipts(&self) -> Vec<Vec<u8>> {
        let entries = self.entries();
        let (a, b) = (entries[0].canonical_bytes(), entries[3].canonical_bytes());
        let (la, lb) = (leaf_hash(&a), leaf_hash(&b));
        let note = |size, root| {
            Checkpoint {
                origin: ORIGIN.into(),
                size,
                root,
                resident_index: None,
            }
            .sign(&self.log_key)
        };
        let one = Receipt {
            entry: a.clone(),
            index: 0,
            proof: vec![],
            note: note(1, la),
        };
        let two = Receipt {
            entry: b,
            index: 1,
            proof: vec![la],
            note: note(2, node_hash(&la, &lb)),
        };
        [one, two].iter().map(|r| r.encode().into_bytes()).collect()
    }

    fn certificates(&self) -> Vec<Vec<u8>> {
        vec![
            self.node.cert_der().to_vec(),
            self.civil.cert_der().to_vec(),
            self.resident.cert_der().to_vec(),
            self.ca.ca_der(),
            self.crl.clone(),
        ]
    }
}

fn doc_id(n: u8) -> DocumentId {
    DocumentId::from_bytes([n; 16])
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

fn frame<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(encode_frame_max(value, RAFT_FRAME_LEN_MAX)?)
}

/// Each statement alone, and each pair (NUL between) of them.
fn pairs<T: Serialize>(statements: &[T]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for a in statements {
        out.push(json(a)?);
        for b in statements {
            let mut pair = json(a)?;
            pair.push(0);
            pair.extend_from_slice(&json(b)?);
            out.push(pair);
        }
    }
    Ok(out)
}

/// Sizes of one, two and three groups, whole and partial ranges, and a
/// few edits (see `tree::tree_decoder` for the layout).
fn tree_inputs() -> Vec<Vec<u8>> {
    let input = |size: u16, big: bool, start: u16, end: u16, seed: u8, edits: &[u8]| {
        let mut out = size.to_be_bytes().to_vec();
        out.push(u8::from(big));
        out.extend_from_slice(&start.to_be_bytes());
        out.extend_from_slice(&end.to_be_bytes());
        out.push(seed);
        out.extend_from_slice(edits);
        out
    };
    vec![
        input(0, false, 0, 0, 1, &[]),
        input(300, false, 10, 200, 3, &[]),
        input(20_000, true, 0, 20_000, 5, &[]),
        input(40_000, true, 16_000, 33_000, 7, &[]),
        input(49_216, true, 0, 49_216, 9, &[]),
        input(40_000, true, 100, 39_000, 11, &[0, 1, 0, 10, 4]),
        input(40_000, true, 0, 40_000, 13, &[3, 2]),
        input(20_000, true, 5, 6, 15, &[6, 0, 1, 2, 3]),
    ]
}

fn statuses() -> Vec<NodeStatus> {
    let single = NodeStatus {
        node: "node-1".into(),
        cluster: false,
        node_id: None,
        leader: None,
        members: vec![],
        last_log_index: None,
        applied_index: 42,
        log_size: 17,
        blobs_local: 3,
        documents: 4,
        blobs_placed: None,
        snapshot_index: None,
        purged_index: None,
        replicas: None,
        write_quorum: None,
        repair: None,
    };
    let member = |id, voter| StatusMember {
        id,
        addr: format!("127.0.0.1:750{id}"),
        voter,
    };
    let cluster = NodeStatus {
        cluster: true,
        node_id: Some(1),
        leader: Some(2),
        members: vec![member(1, true), member(2, true), member(3, false)],
        last_log_index: Some(50),
        blobs_placed: Some(3),
        snapshot_index: Some(40),
        purged_index: Some(30),
        replicas: Some(2),
        write_quorum: Some(1),
        repair: Some(Default::default()),
        ..single.clone()
    };
    vec![single, cluster]
}
