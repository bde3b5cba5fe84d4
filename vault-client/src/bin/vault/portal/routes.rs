//! One handler per page and form. Each fetches what it shows through the
//! client library (which verifies it), renders with `pages`, and answers
//! a form with a redirect back to its page (303), so reloading never sends
//! a form twice. A failure is a page with the stable code and what to do.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use serde::Deserialize;
use vault_client::{ClientError, DocumentId, DocumentView, ErrorCode, VaultClient};

use super::guard::{self, lock, Csrf};
use super::model::{self, AccessRow, Filters, Names};
use super::pages::{self, View};
use super::text::Lang;
use super::{Portal, DOWNLOAD_BYTES_MAX, FORM_BYTES_MAX, LANG_COOKIE};

/// The portal's routes behind its guard.
pub fn router(portal: Arc<Portal>) -> Router {
    Router::new()
        .route("/", get(enter))
        .route("/requests", get(requests))
        .route("/requests/{id}/approve", post(approve))
        .route("/requests/{id}/deny", post(deny))
        .route("/grants", get(grants))
        .route("/grants/{id}/revoke", post(revoke))
        .route("/accesses", get(accesses))
        .route("/accesses.csv", get(accesses_csv))
        .route("/accesses.json", get(accesses_json))
        .route("/accesses/{index}/receipt", get(receipt))
        .route("/documents", get(documents))
        .route("/documents/{id}/download", get(download))
        .route("/sign-out", post(sign_out))
        .route("/signed-out", get(signed_out))
        .route("/assets/style.css", get(style))
        .route("/assets/portal.js", get(script))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(FORM_BYTES_MAX))
        .layer(middleware::from_fn(remember_language))
        .layer(middleware::from_fn_with_state(portal.clone(), guard::guard))
        .with_state(portal)
}

/// What a handler needs: the portal and the page's view.
struct Ctx {
    portal: Arc<Portal>,
    view: View,
}

impl FromRequestParts<Arc<Portal>> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Self, Infallible> {
        let lang = parts.extensions.get::<Lang>().copied().unwrap_or(Lang::En);
        let csrf = parts.extensions.get::<Csrf>().map(|c| c.0.clone());
        let mut view = portal.view(lang, csrf);
        view.path = parts.uri.path().to_string();
        Ok(Ctx {
            portal: portal.clone(),
            view,
        })
    }
}

impl Ctx {
    /// A page, or the failure's page.
    async fn answer(&self, result: Result<Markup, ClientError>) -> Response {
        match self.portal.settle(result).await {
            Ok(page) => page.into_response(),
            Err(e) => self.failure(&e),
        }
    }

    /// A form's outcome: back to `to` with `notice`, or the failure's page.
    async fn after_form(
        &self,
        result: Result<(), ClientError>,
        to: &str,
        notice: &str,
    ) -> Response {
        match self.portal.settle(result).await {
            Ok(()) => Redirect::to(&format!("{to}?notice={notice}")).into_response(),
            Err(e) => self.failure(&e),
        }
    }

    /// The page for a failure: its code, what to do, the vault's message.
    fn failure(&self, e: &ClientError) -> Response {
        // The route and the code only: messages and paths may name
        // documents, requests, grants or departments.
        eprintln!(
            "vault portal: {} failed: {}",
            logged_route(&self.view.path),
            e.code()
        );
        let status = match e {
            ClientError::Refused { code, .. } if code.starts_with("auth.") => StatusCode::FORBIDDEN,
            ClientError::Refused { .. } => StatusCode::CONFLICT,
            ClientError::Local { code, .. } if *code == ErrorCode::InvalidArgument => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::BAD_GATEWAY,
        };
        let words = self.view.lang.words();
        let message = if e.code() == ErrorCode::InvalidArgument.as_str() {
            words.bad_form
        } else {
            words.vault_error
        };
        let page = pages::error_page(&self.view, e.code(), message, Some(&e.to_string()));
        (status, page).into_response()
    }
}

/// A path as the log may show it: the route's own words, every other
/// segment (an id of a document, request or grant) as `{id}`.
fn logged_route(path: &str) -> String {
    const WORDS: [&str; 12] = [
        "requests",
        "approve",
        "deny",
        "grants",
        "revoke",
        "accesses",
        "accesses.csv",
        "accesses.json",
        "documents",
        "download",
        "receipt",
        "sign-out",
    ];
    path.split('/')
        .map(|segment| {
            if segment.is_empty() || WORDS.contains(&segment) {
                segment
            } else {
                "{id}"
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sets the language cookie when a page was asked for with `?lang=`.
async fn remember_language(request: axum::extract::Request, next: middleware::Next) -> Response {
    let asked = request
        .uri()
        .query()
        .and_then(|q| guard::form_field(q.as_bytes(), "lang"))
        .and_then(|tag| Lang::from_tag(&tag));
    let mut response = next.run(request).await;
    if let Some(lang) = asked {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
            lang.tag()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /?token=T`: exchanges the run's token for the session cookie
/// (once) and goes on to `/requests`.
async fn enter(ctx: Ctx, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let portal = &ctx.portal;
    if let Some(token) = q.token.as_deref() {
        let session = lock(&portal.secrets).exchange(token, portal.idle);
        if let Some(id) = session {
            let cookie = format!(
                "{}={id}; Path=/; HttpOnly; SameSite=Strict",
                portal.cookie_name
            );
            // Arriving from another site (the `--open` launcher is a
            // file:// page), a redirect would still count as cross-site and
            // the browser would not send the SameSite=Strict cookie to
            // /requests: a page of ours moves on instead.
            let cross_site = headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes() == b"cross-site");
            let mut response = if cross_site {
                pages::continue_page(&ctx.view, "/requests").into_response()
            } else {
                Redirect::to("/requests").into_response()
            };
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            return response;
        }
    }
    let signed_in = guard::session_csrf(
        &mut lock(&portal.secrets),
        &headers,
        &portal.cookie_name,
        portal.idle,
    )
    .is_some();
    if signed_in {
        return Redirect::to("/requests").into_response();
    }
    guard::refuse(
        StatusCode::UNAUTHORIZED,
        "portal.unauthorized",
        ctx.view.lang,
        portal,
    )
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

/// The resident's documents whose issuer's signature checks, by id (the
/// kinds, issuers and issue dates the pages show come from these signed
/// records).
async fn my_documents(
    portal: &Portal,
    client: &VaultClient,
) -> Result<HashMap<DocumentId, DocumentView>, ClientError> {
    Ok(client
        .list(&portal.me)
        .await?
        .into_iter()
        .filter(|d| vault_client::client::verify_provenance(&portal.identity, d).is_ok())
        .map(|d| (d.document_id, d))
        .collect())
}

/// Every document a request names must be one of the resident's own,
/// signed by its issuer, with the same content hash: the resident signs
/// consent only to bytes an issuer vouched for.
fn check_requested(
    request: &vault_client::wire::RequestView,
    mine: &HashMap<DocumentId, DocumentView>,
) -> Result<(), ClientError> {
    for asked in &request.documents {
        let signed = mine.get(&asked.document_id);
        if signed.is_none_or(|d| d.content_hash() != asked.content_hash) {
            return Err(ClientError::local(
                ErrorCode::Integrity,
                format!(
                    "document {} in this request is not one of your documents signed by its issuer; \
                     nothing was approved",
                    asked.document_id
                ),
            ));
        }
    }
    Ok(())
}

/// Departments' and purposes' names from the district's registries,
/// asked once per run (a node reads its registries when it starts); codes
/// alone, and asked again next time, when the node does not answer.
async fn names(portal: &Portal, client: &VaultClient) -> Names {
    if let Some(names) = lock(&portal.names).as_ref() {
        return names.clone();
    }
    match client.registry().await {
        Ok(registry) => {
            let names = Names::from_registry(&registry);
            *lock(&portal.names) = Some(names.clone());
            names
        }
        Err(e) => {
            eprintln!("vault portal: the registry could not be read: {}", e.code());
            Names::default()
        }
    }
}

/// `GET /requests`.
async fn requests(ctx: Ctx, Query(q): Query<NoticeQuery>) -> Response {
    let result = async {
        let client = ctx.portal.client().await?;
        let requests = client.pending_requests().await?;
        let documents = my_documents(&ctx.portal, &client).await?;
        let names = names(&ctx.portal, &client).await;
        Ok(pages::requests_page(
            &ctx.view,
            &requests,
            &names,
            &documents,
            q.notice.as_deref(),
        ))
    }
    .await;
    ctx.answer(result).await
}

#[derive(Deserialize)]
struct ApproveForm {
    max_uses: String,
    #[serde(default)]
    ttl_days: String,
}

fn bad_form(message: impl Into<String>) -> ClientError {
    ClientError::local(ErrorCode::InvalidArgument, message)
}

fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T, ClientError> {
    text.parse()
        .map_err(|_| bad_form(format!("{text:?} is not an id")))
}

/// `POST /requests/{id}/approve`: signs the grant here, with the
/// resident's key, for the uses and (optionally shorter) validity asked.
async fn approve(ctx: Ctx, Path(id): Path<String>, Form(form): Form<ApproveForm>) -> Response {
    let result = async {
        let request_id: pki::RequestId = parse_id(&id)?;
        let max_uses: u32 = form
            .max_uses
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=pki::GRANT_USES_MAX).contains(n))
            .ok_or_else(|| {
                bad_form(format!(
                    "the number of uses must be 1 to {}",
                    pki::GRANT_USES_MAX
                ))
            })?;
        let ttl_s = match form.ttl_days.trim() {
            "" => None,
            days => Some(
                days.parse::<u64>()
                    .ok()
                    .filter(|d| (1..=3650).contains(d))
                    .map(|d| d * 86_400)
                    .ok_or_else(|| {
                        bad_form("the shorter access must be a number of days, 1 or more")
                    })?,
            ),
        };
        let client = ctx.portal.client().await?;
        let request = client.pending_request(request_id).await?;
        check_requested(&request, &my_documents(&ctx.portal, &client).await?)?;
        let body = client.approval_body(&request, max_uses, ttl_s)?;
        client.approve(body).await.map(|_| ())
    }
    .await;
    ctx.after_form(result, "/requests", "approved").await
}

/// `POST /requests/{id}/deny`.
async fn deny(ctx: Ctx, Path(id): Path<String>) -> Response {
    let result = async {
        let request_id: pki::RequestId = parse_id(&id)?;
        ctx.portal.client().await?.deny(request_id).await
    }
    .await;
    ctx.after_form(result, "/requests", "denied").await
}

/// `GET /grants`.
async fn grants(ctx: Ctx, Query(q): Query<NoticeQuery>) -> Response {
    let result = async {
        let client = ctx.portal.client().await?;
        let mut grants = client.grants().await?;
        grants.sort_by_key(|g| std::cmp::Reverse(g.not_before));
        let documents = my_documents(&ctx.portal, &client).await?;
        let names = names(&ctx.portal, &client).await;
        let now = vault_client::client::now_unix();
        Ok(pages::grants_page(
            &ctx.view,
            &grants,
            &names,
            &documents,
            now,
            q.notice.as_deref(),
        ))
    }
    .await;
    ctx.answer(result).await
}

/// `POST /grants/{id}/revoke`.
async fn revoke(ctx: Ctx, Path(id): Path<String>) -> Response {
    let result = async {
        let grant_id: pki::GrantId = parse_id(&id)?;
        ctx.portal.client().await?.revoke_grant(grant_id).await
    }
    .await;
    ctx.after_form(result, "/grants", "revoked").await
}

/// Every entry about the resident, each checked, as rows; the
/// checkpoint's size and root; and `None` when the list is proven complete,
/// else the reason's code.
async fn access_rows(client: &VaultClient) -> Result<AccessRows, ClientError> {
    let checked = client.accesses_checked(true).await?;
    let mut rows: Vec<AccessRow> = checked
        .entries
        .iter()
        .map(AccessRow::from_checked)
        .collect();
    // Accesses by law: each disclosed order's sealed entries, verified.
    let verified: Vec<_> = checked
        .entries
        .iter()
        .filter_map(|a| a.verified.as_ref().ok().cloned())
        .collect();
    for d in client.disclosures(&checked.checkpoint, &verified).await? {
        rows.extend(AccessRow::from_disclosed(&d));
    }
    rows.sort_by_key(|r| r.log_index);
    Ok((
        rows,
        checked.checkpoint.size,
        hex::encode(checked.checkpoint.root),
        checked.complete.err().map(|e| e.code().to_string()),
    ))
}

/// What [`access_rows`] returns.
type AccessRows = (Vec<AccessRow>, u64, String, Option<String>);

/// `GET /accesses`: the data tracker.
async fn accesses(ctx: Ctx, Query(filters): Query<Filters>) -> Response {
    let result = async {
        let client = ctx.portal.client().await?;
        let (rows, tree_size, _, incomplete) = access_rows(&client).await?;
        let documents = my_documents(&ctx.portal, &client).await?;
        let names = names(&ctx.portal, &client).await;
        let mut departments: Vec<String> = rows
            .iter()
            .filter(|r| r.actor_role == Some(pki::Role::Department))
            .map(|r| r.actor.clone())
            .collect();
        departments.sort();
        departments.dedup();
        let kept = filters.apply(&rows, ctx.portal.offset);
        let view = pages::AccessesView {
            rows: &kept,
            filters: &filters,
            departments,
            documents: &documents,
            tree_size,
            incomplete,
            names: &names,
        };
        Ok(pages::accesses_page(&ctx.view, &view))
    }
    .await;
    ctx.answer(result).await
}

#[derive(Deserialize)]
struct SaveQuery {
    #[serde(default)]
    save: Option<String>,
}

impl SaveQuery {
    fn confirmed(&self) -> bool {
        self.save.as_deref() == Some("1")
    }
}

/// With `--kiosk`, a file is saved only once the resident confirmed it
/// (the page asks, then links to the same address with `save=1`).
fn kiosk_question(ctx: &Ctx, save: &SaveQuery, query: Option<&str>) -> Option<Response> {
    if !ctx.portal.kiosk || save.confirmed() {
        return None;
    }
    let href = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{}?{q}&save=1", ctx.view.path),
        None => format!("{}?save=1", ctx.view.path),
    };
    Some(pages::kiosk_save_page(&ctx.view, &href).into_response())
}

fn attachment(content_type: &'static str, filename: &str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The two export formats of the data tracker.
#[derive(Clone, Copy)]
enum Export {
    Csv,
    Json,
}

/// `GET /accesses.csv`: the filtered rows (every page) as CSV.
async fn accesses_csv(
    ctx: Ctx,
    Query(filters): Query<Filters>,
    Query(save): Query<SaveQuery>,
    uri: axum::http::Uri,
) -> Response {
    export(ctx, filters, save, uri, Export::Csv).await
}

/// `GET /accesses.json`: the filtered rows (every page) as JSON, with the
/// checkpoint they were checked against.
async fn accesses_json(
    ctx: Ctx,
    Query(filters): Query<Filters>,
    Query(save): Query<SaveQuery>,
    uri: axum::http::Uri,
) -> Response {
    export(ctx, filters, save, uri, Export::Json).await
}

/// An export: asked first with `--kiosk`, every row checked as on the page.
async fn export(
    ctx: Ctx,
    filters: Filters,
    save: SaveQuery,
    uri: axum::http::Uri,
    format: Export,
) -> Response {
    if let Some(question) = kiosk_question(&ctx, &save, uri.query()) {
        return question;
    }
    let result = async {
        let client = ctx.portal.client().await?;
        let (rows, size, root, incomplete) = access_rows(&client).await?;
        let kept = filters.apply(&rows, ctx.portal.offset);
        Ok(match format {
            Export::Csv => model::csv(&kept),
            Export::Json => {
                let mut json = model::json(&kept, size, &root);
                json["complete"] = incomplete.is_none().into();
                if let Some(code) = incomplete {
                    json["incomplete_code"] = code.into();
                }
                json.to_string()
            }
        })
    }
    .await;
    let (content_type, name) = match format {
        Export::Csv => ("text/csv; charset=utf-8", "vault-accesses.csv"),
        Export::Json => ("application/json", "vault-accesses.json"),
    };
    match ctx.portal.settle(result).await {
        Ok(body) => attachment(content_type, name, body.into_bytes()),
        Err(e) => ctx.failure(&e),
    }
}

/// `GET /accesses/{index}/receipt`: one of the resident's entries as a
/// C2SP tlog-proof (checked before it is handed out), to keep or show
/// anyone; `vault receipt verify` checks it offline.
async fn receipt(
    ctx: Ctx,
    Path(index): Path<String>,
    Query(save): Query<SaveQuery>,
    uri: axum::http::Uri,
) -> Response {
    if let Some(question) = kiosk_question(&ctx, &save, uri.query()) {
        return question;
    }
    let result = async {
        let index: u64 = parse_id(&index)?;
        let client = ctx.portal.client().await?;
        Ok((index, client.receipt(index).await?.encode()))
    }
    .await;
    match ctx.portal.settle(result).await {
        Ok((index, text)) => attachment(
            "text/plain; charset=utf-8",
            &format!("vault-entry-{index}.tlog-proof"),
            text.into_bytes(),
        ),
        Err(e) => ctx.failure(&e),
    }
}

/// `GET /documents`: each document with its issuer's signature checked.
async fn documents(ctx: Ctx) -> Response {
    let result = async {
        let client = ctx.portal.client().await?;
        let mut list = client.list(&ctx.portal.me).await?;
        list.sort_by_key(|d| std::cmp::Reverse(d.record.issued_at));
        let names = names(&ctx.portal, &client).await;
        let rows: Vec<pages::DocumentRow<'_>> = list
            .iter()
            .map(|document| pages::DocumentRow {
                document,
                provenance_ok: vault_client::client::verify_provenance(
                    &ctx.portal.identity,
                    document,
                )
                .is_ok(),
            })
            .collect();
        Ok(pages::documents_page(&ctx.view, &rows, &names))
    }
    .await;
    ctx.answer(result).await
}

/// `GET /documents/{id}/download`: the document, verified piece by piece
/// against its issuer's signed hash before any of it is handed over.
async fn download(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(save): Query<SaveQuery>,
    uri: axum::http::Uri,
) -> Response {
    if let Some(question) = kiosk_question(&ctx, &save, uri.query()) {
        return question;
    }
    let result = async {
        let document_id: DocumentId = parse_id(&id)?;
        let client = ctx.portal.client().await?;
        let documents = my_documents(&ctx.portal, &client).await?;
        let Some(document) = documents.get(&document_id) else {
            return Err(ClientError::local(ErrorCode::NotFound, "no such document of yours"));
        };
        if document.record.size > DOWNLOAD_BYTES_MAX {
            return Err(bad_form(format!(
                "this document is too large for the portal; fetch it with `vault get {document_id} -o FILE`"
            )));
        }
        let kind = document.kind().as_str().to_string();
        let (_, bytes) = client.get_bytes(document_id, None, None).await?;
        Ok((kind, bytes))
    }
    .await;
    match ctx.portal.settle(result).await {
        Ok((kind, bytes)) => {
            let short = id.get(..12).unwrap_or(&id);
            attachment(
                "application/octet-stream",
                &format!("{kind}-{short}"),
                bytes,
            )
        }
        Err(e) => ctx.failure(&e),
    }
}

/// `POST /sign-out`: ends the session; the agent stops shortly after.
async fn sign_out(ctx: Ctx) -> Response {
    ctx.portal.end_session();
    let mut response = Redirect::to("/signed-out").into_response();
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ctx.portal.cookie_name
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /signed-out`.
async fn signed_out(mut ctx: Ctx) -> Response {
    ctx.view.csrf = None;
    pages::signed_out_page(&ctx.view).into_response()
}

/// `GET /assets/style.css`.
async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("style.css"))
}

/// `GET /assets/portal.js`.
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("portal.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Anything else.
async fn not_found(ctx: Ctx, State(_): State<Arc<Portal>>) -> Response {
    let words = ctx.view.lang.words();
    let page = pages::error_page(&ctx.view, "portal.not_found", words.not_found, None);
    (StatusCode::NOT_FOUND, page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki::{ContentHash, IssueRecord, Name, Purpose, RequestId, ResidentId, Signature};
    use vault_client::wire::{RequestView, RequestedDocument};

    fn parse<T: std::str::FromStr>(text: &str) -> T {
        text.parse()
            .unwrap_or_else(|_| unreachable!("a fixed test value"))
    }

    fn document(id: u8, hash: u8) -> DocumentView {
        DocumentView {
            document_id: DocumentId::from_bytes([id; 16]),
            record: IssueRecord {
                resident: parse::<ResidentId>("resident-1"),
                kind: parse("marriage-certificate"),
                content_hash: ContentHash([hash; 32]),
                size: 1,
                issued_at: 0,
                issuer: parse::<Name>("civil-affairs"),
            },
            signature: Signature([0; 64]),
            issuer_cert: Vec::new(),
        }
    }

    fn request(id: u8, hash: u8) -> RequestView {
        RequestView {
            request_id: RequestId::from_bytes([9; 16]),
            department: parse("housing-bureau"),
            department_key_id: String::new(),
            purpose: parse::<Purpose>("housing-subsidy"),
            purpose_description: String::new(),
            legal_basis: String::new(),
            documents: vec![RequestedDocument {
                document_id: DocumentId::from_bytes([id; 16]),
                content_hash: ContentHash([hash; 32]),
                kind: parse("marriage-certificate"),
                issuer: parse("civil-affairs"),
            }],
            ttl_s: 60,
            created_at: 0,
            expires_at: None,
        }
    }

    #[test]
    fn the_log_names_routes_not_ids() {
        assert_eq!(
            logged_route("/documents/ded95ca022b6813a75456fa0e1b7b444/download"),
            "/documents/{id}/download"
        );
        assert_eq!(
            logged_route("/requests/4290b865ce016730193e0027a415435f/approve"),
            "/requests/{id}/approve"
        );
        assert_eq!(logged_route("/accesses.csv"), "/accesses.csv");
    }

    #[test]
    fn an_approval_covers_only_signed_documents_of_ones_own_with_their_hash() {
        let mine: HashMap<DocumentId, DocumentView> = [document(1, 7)]
            .into_iter()
            .map(|d| (d.document_id, d))
            .collect();
        assert!(check_requested(&request(1, 7), &mine).is_ok());
        let other_bytes = check_requested(&request(1, 8), &mine);
        assert!(other_bytes.is_err(), "a hash the issuer did not sign");
        assert!(
            check_requested(&request(2, 7), &mine).is_err(),
            "not one of mine"
        );
    }
}
