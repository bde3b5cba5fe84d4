//! Document handlers: put (checked before the body is read, registered
//! after it is stored and, in a cluster, replicated), get (looked up,
//! authorised, its range resolved, its blob opened and its use committed
//! before the first byte) and list.
//!
//! The bytes themselves move in [`crate::net`]: a handler here says what to
//! receive or what to send, and net streams it.
//!
//! **Invariant:** an access is durable in the log (its `UseGrant` or
//! `RecordAccess` command committed) before [`Documents::prepare_get`]
//! returns the [`Download`], and that happens only after every check passed
//! and the blob opened; a refused get changes no state.

use std::sync::Arc;

use pki::{ContentHash, GrantId, IssueRecord, PeerCert, ResidentId, Signature};
use vault_client::tree::{self, Outboard};
use vault_client::wire::{ByteRange, DocumentView, Response};
use vault_client::{DocumentId, ErrorCode};

use crate::consensus::Consensus;
use crate::engine::state::{Applied, Command, DocumentEntry};
use crate::replication::Replication;
use crate::rules::access;
use crate::rules::clock::Clock;
use crate::service::consent::{self, Consent};
use crate::service::Caller;
use crate::storage::blobs::BlobReader;
use crate::storage::vault::Vault;
use crate::Refusal;

/// What the document handlers use.
pub struct Documents {
    /// This node's storage.
    pub vault: Arc<Vault>,
    /// How commands become durable.
    pub consensus: Arc<Consensus>,
    /// Blob copies across the cluster (cluster mode only).
    pub replication: Option<Arc<Replication>>,
    /// Grant checks for fetches under a grant.
    pub consent: Arc<Consent>,
    /// The clock records are dated by.
    pub clock: Arc<dyn Clock>,
}

/// A put that passed its checks, waiting for its body.
#[derive(Debug)]
pub struct PendingPut {
    /// The signed record.
    pub record: IssueRecord,
    /// The department's signature over it.
    pub signature: Signature,
    /// When the node accepted it (its registration time).
    pub at: i64,
    /// Whether this node held a registered blob of this hash before.
    pub had_blob: bool,
}

/// A get that passed every check and whose access is committed: what to
/// send, in this order: the `header` frame, then the pieces of `range`.
pub struct Download {
    /// The document.
    pub entry: Arc<DocumentEntry>,
    /// Its blob, open.
    pub reader: BlobReader,
    /// The blob's outboard (authenticated).
    pub outboard: Outboard,
    /// The bytes served.
    pub range: ByteRange,
    /// Length of the pieces that follow the header.
    pub encoded_len: u64,
    /// The `Document` response announcing them, encoded as a frame.
    pub header: Vec<u8>,
}

impl Documents {
    /// Checks a put before its body is read (role, issuer, signature, clock,
    /// size, and that the issuer registry lets the department issue the kind). The body must be sent even when the blob is stored already:
    /// knowing a hash must not be enough to register (and then read) a
    /// document.
    pub fn begin_put(
        &self,
        caller: &PeerCert,
        record: IssueRecord,
        signature: Signature,
    ) -> Result<PendingPut, Refusal> {
        let at = self.clock.now_unix();
        access::check_put(caller, &record, &signature, at)?;
        self.consent
            .issuers
            .check_issue(&record.issuer, &record.kind)?;
        let had_blob = self.vault.has_blob(&record.content_hash)?;
        Ok(PendingPut {
            record,
            signature,
            at,
            had_blob,
        })
    }

    /// Registers a put whose body is stored (`fresh_blob`: the store did not
    /// hold it before), once enough replicas hold the bytes in a cluster.
    pub async fn finish_put(
        &self,
        caller: &Caller,
        put: PendingPut,
        fresh_blob: bool,
    ) -> Result<Response, Refusal> {
        let fresh_blob = fresh_blob && !put.had_blob;
        if let Some(replication) = &self.replication {
            replication.replicate(put.record.content_hash).await?;
        }
        let entry = DocumentEntry {
            document_id: put.record.document_id(&put.signature),
            record: put.record,
            signature: put.signature,
            issuer_cert: caller.der.clone(),
            registered_at: put.at,
        };
        let command = Command::RegisterDocument(entry.clone());
        let applied = self.consensus.submit(command, &*self.clock).await?;
        let Applied::DocumentRegistered { blob_existed, .. } = applied else {
            return Err(Refusal::new(ErrorCode::Internal, "unexpected apply result"));
        };
        let deduplicated = !fresh_blob || blob_existed;
        tracing::info!(size = entry.record.size, deduplicated, "document stored");
        Ok(Response::Stored {
            document: view(&entry),
            deduplicated,
        })
    }

    /// One page of the caller's view of a resident's documents, newest
    /// first, from `cursor` on (see [`crate::storage::vault::Vault::list`]).
    pub fn list(
        &self,
        caller: &PeerCert,
        resident: &ResidentId,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Response, Refusal> {
        let scope = access::check_list(caller, resident)?;
        let page = self.vault.list(resident, &scope, cursor, limit, &view)?;
        Ok(Response::Documents {
            documents: page.items,
            next_cursor: page.next_cursor,
        })
    }

    /// Everything a get does before its first byte: look the document up,
    /// authorise the caller (grant or issuer/resident), resolve the range,
    /// make sure the local copy is authentic, open it, and commit the access.
    pub async fn prepare_get(
        &self,
        caller: &PeerCert,
        document_id: DocumentId,
        range: Option<ByteRange>,
        grant: Option<GrantId>,
    ) -> Result<Download, Refusal> {
        let entry = self.lookup(document_id).await?;
        self.authorize(caller, &entry, grant).await?;
        let size = entry.record.size;
        let range =
            ByteRange::resolve(range, size).map_err(|e| Refusal::new(e.code(), e.to_string()))?;
        let encoded_len = tree::Plan::encoded_len(size, range.start..range.end)
            .map_err(|e| Refusal::new(ErrorCode::InvalidArgument, e.to_string()))?;
        self.ensure_authentic(entry.record.content_hash, size, range)
            .await?;
        let reader = self.vault.blobs().reader(&entry.record.content_hash)?;
        let outboard = reader.outboard()?;
        // The header is encoded before the use is spent: a header that
        // cannot be sent must refuse the get, not cost a use.
        let header = |log_index| {
            vault_client::wire::encode_frame(&Response::Document {
                document: view(&entry),
                range,
                encoded_len,
                log_index,
            })
        };
        let unindexed =
            header(None).map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
        // Only now, with the request valid and the blob readable, is the
        // access counted; it is durable in the log before the first byte.
        let log_index = self.commit_access(caller, document_id, grant).await?;
        // The header names the fetch's entry (for its receipt); the same
        // header without it was encoded before the use was spent, and is
        // sent should this one not encode.
        let header = header(log_index).unwrap_or(unindexed);
        Ok(Download {
            entry,
            reader,
            outboard,
            range,
            encoded_len,
            header,
        })
    }

    /// A document by id; a follower that has not applied a document just
    /// registered elsewhere catches up with the cluster before answering
    /// not found.
    async fn lookup(&self, document_id: DocumentId) -> Result<Arc<DocumentEntry>, Refusal> {
        match self.vault.document(document_id) {
            Err(refusal) if refusal.code == ErrorCode::NotFound && self.in_cluster() => {
                self.consensus.linearize().await?;
                self.vault.document(document_id)
            }
            other => other,
        }
    }

    /// The read check: under a grant, every grant check; without one, the
    /// issuer or the resident only.
    ///
    /// No read-index round before a grant is used: the checks made here on
    /// this node's state are of what never changes (signatures, holder,
    /// scope, window) or only ever tightens (revocation, uses), and the use
    /// itself is a Raft command whose apply refuses a revoked or exhausted
    /// grant in log order. A stale node can therefore refuse early, never
    /// honour late.
    async fn authorize(
        &self,
        caller: &PeerCert,
        entry: &DocumentEntry,
        grant: Option<GrantId>,
    ) -> Result<(), Refusal> {
        let Some(grant_id) = grant else {
            return access::check_read(caller, entry);
        };
        match consent::check_use(&self.consent, caller, entry, grant_id) {
            // A grant issued elsewhere that this node has not applied yet.
            Err(refusal) if refusal.code == ErrorCode::GrantNotFound && self.in_cluster() => {
                self.consensus.linearize().await?;
                consent::check_use(&self.consent, caller, entry, grant_id)
            }
            other => other,
        }
    }

    /// In a cluster, never serve a corrupt copy: a missing or corrupt one is
    /// replaced by a verified copy from a member first.
    async fn ensure_authentic(
        &self,
        hash: ContentHash,
        size: u64,
        range: ByteRange,
    ) -> Result<(), Refusal> {
        let Some(replication) = &self.replication else {
            return Ok(());
        };
        let groups = crate::replication::repair::groups_for(size, range.start, range.end);
        let fetched = replication
            .ensure_authentic(hash, size, Some(groups))
            .await
            .map_err(|refusal| match refusal.code {
                // This node's copy failed and no member supplied a verified
                // one: to the caller that is a corrupt document, as on a
                // single node (it fails closed either way).
                ErrorCode::ClusterUnavailable => Refusal::new(
                    ErrorCode::Integrity,
                    format!(
                        "no verified copy of this document is reachable: {}",
                        refusal.message
                    ),
                ),
                _ => refusal,
            })?;
        if fetched {
            replication.note(|totals| totals.read_repaired += 1);
        }
        Ok(())
    }

    /// Commits the access: a grant use, or a grant-less fetch by the issuer
    /// or the resident.
    async fn commit_access(
        &self,
        caller: &PeerCert,
        document_id: DocumentId,
        grant: Option<GrantId>,
    ) -> Result<Option<u64>, Refusal> {
        let command = match grant {
            Some(grant_id) => Command::UseGrant {
                grant_id,
                document_id,
                at: self.clock.now_unix(),
            },
            None => Command::RecordAccess {
                document_id,
                role: caller.role,
                by: caller.name.clone(),
            },
        };
        let applied = self.consensus.submit(command, &*self.clock).await?;
        Ok(match applied {
            Applied::GrantUsed {
                use_number,
                log_index,
            } => {
                tracing::info!(use_number, role = caller.role.as_str(), "fetch under grant");
                log_index
            }
            Applied::AccessRecorded { log_index } => Some(log_index),
            _ => None,
        })
    }

    fn in_cluster(&self) -> bool {
        self.replication.is_some()
    }
}

/// A document as the wire shows it.
pub fn view(entry: &DocumentEntry) -> DocumentView {
    DocumentView {
        document_id: entry.document_id,
        record: entry.record.clone(),
        signature: entry.signature,
        issuer_cert: entry.issuer_cert.clone(),
    }
}
