//! The portal's HTML, rendered on the server (maud escapes every value),
//! working without JavaScript. Each page is a pure function of what was
//! fetched and verified, so its markup — the test contract's `data-*`
//! attributes among it — is tested without a browser.
//!
//! The test contract (automated browser tests rely on it; keep it): each
//! pending request carries `data-request-id`, with a form whose submit
//! control has `data-action="approve"` and a number input `max_uses`, and
//! a control `data-action="deny"`; each grant `data-grant-id` and
//! `data-state`, with a control `data-action="revoke"`; each access
//! `data-access-index` and `data-verified` ("true" once its proof
//! checked) and `data-use-number`; each document `data-document-id`.

use std::collections::HashMap;

use maud::{html, Markup, DOCTYPE};
use time::UtcOffset;
use vault_client::wire::{GrantView, RequestView};
use vault_client::{DocumentId, DocumentView};

use super::model::{self, AccessRow, Filters, Names};
use super::text::{self, Lang, Words};

/// What every page needs to know about the request and the run.
#[derive(Debug, Clone)]
pub struct View {
    /// The page's language.
    pub lang: Lang,
    /// The session's CSRF token (absent on error pages before sign-in).
    pub csrf: Option<String>,
    /// The resident.
    pub me: String,
    /// Where times are shown.
    pub offset: UtcOffset,
    /// Service-hall mode: large targets, inactivity sign-out.
    pub kiosk: bool,
    /// Seconds without activity before sign-out.
    pub idle_s: u64,
    /// The page's path (the navigation and the language switch).
    pub path: String,
}

impl View {
    fn words(&self) -> &'static Words {
        self.lang.words()
    }

    fn time(&self, unix: i64) -> Markup {
        html! {
            time datetime=(text::rfc3339(unix)) { (text::datetime(self.lang, unix, self.offset)) }
        }
    }

    fn date(&self, unix: i64) -> Markup {
        html! {
            time datetime=(text::rfc3339(unix)) { (text::date(self.lang, unix, self.offset)) }
        }
    }

    fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf.clone().unwrap_or_default()); }
    }
}

/// A notice shown once after a form was answered.
pub fn notice_text(lang: Lang, notice: &str) -> Option<&'static str> {
    let words = lang.words();
    match notice {
        "approved" => Some(words.notice_approved),
        "denied" => Some(words.notice_denied),
        "revoked" => Some(words.notice_revoked),
        _ => None,
    }
}

/// The frame of every page: language, navigation, sign-out, footer.
fn layout(view: &View, title: &str, error: Option<&str>, body: Markup) -> Markup {
    let words = view.words();
    let other = view.lang.other();
    let nav = [
        ("/requests", words.nav_requests),
        ("/grants", words.nav_grants),
        ("/accesses", words.nav_accesses),
        ("/documents", words.nav_documents),
    ];
    html! {
        (DOCTYPE)
        html lang=(view.lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if view.kiosk && view.csrf.is_some() {
                    meta http-equiv="refresh" content=(format!("{};url=/signed-out", view.idle_s));
                }
                title { (title) " · " (words.portal) }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/portal.js" defer {}
            }
            body.kiosk[view.kiosk] {
                a.skip href="#main" { (words.skip_to_content) }
                header {
                    p.brand { (words.portal) }
                    @if view.csrf.is_some() {
                        nav aria-label=(words.portal) {
                            ul {
                                @for (href, label) in nav {
                                    li {
                                        a href=(href) aria-current=[(view.path == href).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.tools {
                        a href=(format!("{}?lang={}", same_page(&view.path), other.tag())) hreflang=(other.tag()) lang=(other.tag()) data-action="language" {
                            (other.words().language_name)
                        }
                        @if view.csrf.is_some() {
                            span.who { (words.signed_in_as) " " strong { (view.me) } }
                            form method="post" action="/sign-out" {
                                (view.csrf_field())
                                button type="submit" data-action="sign-out" { (words.sign_out) }
                            }
                        }
                    }
                }
                main #main data-error=[error] {
                    h1 { (title) }
                    (body)
                }
                footer {
                    p { (words.times_in.replace("{offset}", &text::offset_name(view.offset))) }
                    @if view.kiosk { p { (words.kiosk_idle) } }
                }
            }
        }
    }
}

/// The path a link back to this page may use: a path of the portal's own
/// (a 404's path is whatever was asked, and `//host/…` or `/\host/…`
/// would be a link to another site); else the portal's root.
fn same_page(path: &str) -> &str {
    let own = path.is_empty()
        || (path.starts_with('/')
            && !path.starts_with("//")
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)));
    if own {
        path
    } else {
        "/"
    }
}

/// A notice block, when there is one.
fn notice(view: &View, notice: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = notice.and_then(|n| notice_text(view.lang, n)) {
            p.notice role="status" data-notice=(notice.unwrap_or_default()) { (text) }
        }
    }
}

/// `/requests`.
pub fn requests_page(
    view: &View,
    requests: &[RequestView],
    names: &Names,
    documents: &HashMap<DocumentId, DocumentView>,
    shown_notice: Option<&str>,
) -> Markup {
    let words = view.words();
    let body = html! {
        (notice(view, shown_notice))
        p.intro { (words.requests_intro) }
        @if requests.is_empty() {
            p.empty { (words.no_requests) }
        }
        @for r in requests {
            @let id = r.request_id.to_string();
            @let department = names.department(view.lang, r.department.as_str());
            @let purpose = names.purposes.get(r.purpose.as_str()).and_then(|p| p.description.get(view.lang)).map(str::to_string).unwrap_or_else(|| r.purpose_description.clone());
            @let basis = names.legal_basis(view.lang, r.purpose.as_str()).unwrap_or_else(|| r.legal_basis.clone());
            article.card data-request-id=(id) aria-labelledby=(format!("r-{id}")) {
                h2 #(format!("r-{id}")) { (department) " " span.quiet { (words.asks_for) } }
                dl {
                    dt { (words.purpose) } dd { (purpose) " " code { (r.purpose.as_str()) } }
                    dt { (words.legal_basis) } dd { (basis) }
                    dt { (words.access_for) } dd { (text::duration(view.lang, r.ttl_s)) }
                    dt { (words.asked_at) } dd { (view.time(r.created_at)) }
                    @if let Some(at) = r.expires_at {
                        dt { (words.open_until) } dd { (view.time(at)) }
                    }
                }
                h3 { (words.documents_asked) }
                table {
                    thead { tr { th scope="col" { (words.kind) } th scope="col" { (words.issuer) } th scope="col" { (words.issued) } } }
                    tbody {
                        @for d in &r.documents {
                            // The kind, issuer and date the issuer signed; the
                            // request's own words only for a document that is
                            // not one of the resident's signed ones (which
                            // cannot be approved), marked so.
                            @let signed = documents.get(&d.document_id);
                            tr data-document-id=(d.document_id.to_string()) {
                                @if let Some(doc) = signed {
                                    td { (text::kind_name(view.lang, doc.kind().as_str())) }
                                    td { (names.department(view.lang, doc.issuer().as_str())) }
                                    td { (view.date(doc.record.issued_at)) }
                                } @else {
                                    td { (text::kind_name(view.lang, d.kind.as_str())) " " strong.bad { (words.not_verified) } }
                                    td { (names.department(view.lang, d.issuer.as_str())) }
                                    td { "—" }
                                }
                            }
                        }
                    }
                }
                div.answer {
                    form.approve method="post" action=(format!("/requests/{id}/approve")) {
                        (view.csrf_field())
                        p {
                            label for=(format!("uses-{id}")) { (words.max_uses_label) }
                            input #(format!("uses-{id}")) type="number" name="max_uses" min="1" max=(pki::GRANT_USES_MAX) value="1" required inputmode="numeric";
                        }
                        p {
                            label for=(format!("ttl-{id}")) { (words.ttl_days_label) }
                            input #(format!("ttl-{id}")) type="number" name="ttl_days" min="1" max=(r.ttl_s.div_ceil(86_400).max(1)) inputmode="numeric" aria-describedby=(format!("ttl-hint-{id}"));
                            small #(format!("ttl-hint-{id}")) { (words.ttl_days_hint) }
                        }
                        button.primary type="submit" data-action="approve" { (words.approve) }
                    }
                    form.deny method="post" action=(format!("/requests/{id}/deny")) {
                        (view.csrf_field())
                        button.secondary type="submit" data-action="deny" { (words.deny) }
                    }
                }
            }
        }
    };
    layout(view, words.requests_title, None, body)
}

/// `/grants`.
pub fn grants_page(
    view: &View,
    grants: &[GrantView],
    names: &Names,
    documents: &HashMap<DocumentId, DocumentView>,
    now: i64,
    shown_notice: Option<&str>,
) -> Markup {
    let words = view.words();
    let state_name = |state: &str| match state {
        "revoked" => words.state_revoked,
        "exhausted" => words.state_exhausted,
        "expired" => words.state_expired,
        "not-yet-valid" => words.state_not_yet_valid,
        _ => words.state_active,
    };
    let body = html! {
        (notice(view, shown_notice))
        p.intro { (words.grants_intro) }
        @if grants.is_empty() { p.empty { (words.no_grants) } }
        @for g in grants {
            @let id = g.grant_id.to_string();
            @let state = model::grant_state(g, now);
            article.card data-grant-id=(id) data-state=(state) {
                h2 { (names.department(view.lang, g.grantee.as_str())) }
                dl {
                    dt { (words.purpose) } dd { (names.purpose(view.lang, g.purpose.as_str())) " " code { (g.purpose.as_str()) } }
                    dt { (words.documents) }
                    dd {
                        ul {
                            @for d in &g.documents {
                                li {
                                    @if let Some(doc) = documents.get(&d.document_id) {
                                        (text::kind_name(view.lang, doc.kind().as_str())) " · "
                                    }
                                    code { (short(&d.document_id.to_string())) }
                                }
                            }
                        }
                    }
                    dt { (words.window) } dd { (view.time(g.not_before)) " – " (view.time(g.not_after)) }
                    dt { (words.uses) } dd { (g.uses) " / " (g.max_uses) }
                    dt { (words.state) } dd { span class=(format!("state state-{state}")) { (state_name(state)) } }
                    dt { (words.grant) } dd { code { (short(&id)) } }
                }
                @if state == "active" || state == "not-yet-valid" {
                    form method="post" action=(format!("/grants/{id}/revoke")) {
                        (view.csrf_field())
                        button.danger type="submit" data-action="revoke" { (words.revoke) }
                    }
                }
            }
        }
    };
    layout(view, words.grants_title, None, body)
}

/// What the data tracker shows.
#[derive(Debug)]
pub struct AccessesView<'a> {
    /// The rows after the filters, newest first (all pages).
    pub rows: &'a [AccessRow],
    /// The filters.
    pub filters: &'a Filters,
    /// Departments that appear in the resident's entries (the filter).
    pub departments: Vec<String>,
    /// The resident's documents (the filter and their kinds).
    pub documents: &'a HashMap<DocumentId, DocumentView>,
    /// The signed checkpoint's size the proofs were checked against.
    pub tree_size: u64,
    /// `None` when the list is proven complete; else the reason's code.
    pub incomplete: Option<String>,
    /// The names from the registries.
    pub names: &'a Names,
}

/// `/accesses`: the data tracker.
pub fn accesses_page(view: &View, a: &AccessesView<'_>) -> Markup {
    let words = view.words();
    let page = a.filters.page(a.rows.len());
    let shown = a
        .rows
        .iter()
        .skip((page - 1) * model::ROWS_PER_PAGE)
        .take(model::ROWS_PER_PAGE);
    let failed = a.rows.iter().filter(|r| !r.verified).count();
    let query = a.filters.query();
    let export = |ext: &str| {
        if query.is_empty() {
            format!("/accesses.{ext}")
        } else {
            format!("/accesses.{ext}?{query}")
        }
    };
    let page_link = |n: usize| {
        if query.is_empty() {
            format!("/accesses?page={n}")
        } else {
            format!("/accesses?{query}&page={n}")
        }
    };
    let pages = a.rows.len().div_ceil(model::ROWS_PER_PAGE).max(1);
    let selected = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    let body = html! {
        @if failed > 0 {
            div.warning role="alert" data-verify-failed=(failed) { strong { (words.verify_failed_warning) } }
        }
        p.intro { (words.accesses_intro) }
        @match &a.incomplete {
            None => {
                div.complete role="status" data-complete="true" { strong { (words.complete_yes) } }
            }
            Some(code) => {
                div.warning role="alert" data-complete="false" data-code=(code) {
                    strong { (words.complete_no) } " " code { (code) }
                }
            }
        }
        p.checked data-tree-size=(a.tree_size) {
            (words.checked_against) " " (a.tree_size) (if view.lang == Lang::Zh { "。" } else { "." })
        }
        form.filters method="get" action="/accesses" {
            fieldset {
                legend { (words.filters) }
                p {
                    label for="f-department" { (words.department) }
                    select #f-department name="department" {
                        option value="" { (words.any) }
                        @for d in &a.departments {
                            option value=(d) selected[selected(&a.filters.department, d)] { (a.names.department(view.lang, d)) }
                        }
                    }
                }
                p {
                    label for="f-document" { (words.document) }
                    select #f-document name="document" {
                        option value="" { (words.any) }
                        @for (id, doc) in sorted_documents(a.documents) {
                            @let id = id.to_string();
                            option value=(id) selected[selected(&a.filters.document, &id)] {
                                (text::kind_name(view.lang, doc.kind().as_str())) " (" (text::date(view.lang, doc.record.issued_at, view.offset)) ")"
                            }
                        }
                    }
                }
                p {
                    label for="f-from" { (words.from_date) }
                    input #f-from type="date" name="from" value=(a.filters.from.clone().unwrap_or_default());
                }
                p {
                    label for="f-to" { (words.to_date) }
                    input #f-to type="date" name="to" value=(a.filters.to.clone().unwrap_or_default());
                }
                p {
                    label for="f-events" { (words.events) }
                    select #f-events name="events" {
                        option value="" { (words.events_fetches) }
                        option value="all" selected[a.filters.all_events()] { (words.events_all) }
                    }
                }
                button type="submit" data-action="filter" { (words.apply) }
            }
        }
        p.export {
            (words.export) ": "
            // In the service hall the link opens the question first (a
            // `download` link would save the question page itself, unasked).
            a href=(export("csv")) data-action="export-csv" download[!view.kiosk] { "CSV" } " · "
            a href=(export("json")) data-action="export-json" download[!view.kiosk] { "JSON" }
        }
        @if a.rows.is_empty() {
            p.empty { (words.no_accesses) }
        } @else {
            table.accesses {
                caption.visually-hidden { (words.accesses_title) }
                thead {
                    tr {
                        th scope="col" { (words.when) }
                        th scope="col" { (words.who) }
                        th scope="col" { (words.document) }
                        th scope="col" { (words.purpose) }
                        th scope="col" { (words.grant) }
                        th scope="col" { (words.use_number) }
                        th scope="col" { (words.proof) }
                    }
                }
                tbody {
                    @for r in shown {
                        (access_row(view, a, r))
                    }
                }
            }
            @if pages > 1 {
                nav.pages aria-label=(words.page) {
                    @if page > 1 { a href=(page_link(page - 1)) rel="prev" { "← " (words.newer) } }
                    span { (words.page) " " (page) " / " (pages) }
                    @if page < pages { a href=(page_link(page + 1)) rel="next" { (words.older) " →" } }
                }
            }
        }
    };
    layout(view, words.accesses_title, None, body)
}

fn access_row(view: &View, a: &AccessesView<'_>, r: &AccessRow) -> Markup {
    let words = view.words();
    if !r.verified {
        return html! {
            tr.failed data-access-index=(r.log_index) data-verified="false" data-use-number=(r.use_number) {
                td colspan="6" { "#" (r.log_index) ": " (r.problem.clone().unwrap_or_default()) " " code { (r.code) } }
                td { strong.bad { (words.not_verified) } }
            }
        };
    }
    let who = if r.actor_role == Some(pki::Role::Department) {
        a.names.department(view.lang, &r.actor)
    } else {
        r.actor_role
            .map(|role| role.to_string())
            .unwrap_or_default()
    };
    let kind = r
        .document_id
        .and_then(|d| {
            a.documents
                .get(&d)
                .map(|doc| doc.kind().as_str().to_string())
        })
        .or_else(|| r.kind.clone());
    html! {
        tr data-access-index=(r.log_index) data-verified="true" data-use-number=(r.use_number) data-event=(r.event) {
            td { (view.time(r.time)) @if !r.is_fetch() { br; small { (model::event_name(view.lang, &r.event)) } } }
            td { (who) }
            td {
                @if let Some(kind) = &kind { (text::kind_name(view.lang, kind)) br; }
                @if let Some(d) = r.document_id { code { (short(&d.to_string())) } }
            }
            td {
                @if let Some(p) = &r.purpose { (a.names.purpose(view.lang, p)) }
                @if let Some(law) = &r.by_law {
                    br; strong.by-law { (words.by_law) }
                    br; small { (law.legal_basis) " · " (words.case) " " (law.case_ref) }
                    @if let (Some(by), Some(at)) = (&law.authorised_by, law.authorised_at) {
                        br; small { (words.authorised_by) " " (by) ", " (view.time(at)) }
                    }
                } @else if r.grant_id.is_some() { br; small { (words.by_consent) } }
            }
            td { @if let Some(g) = r.grant_id { code { (short(&g.to_string())) } } }
            td { @if r.use_number > 0 { (r.use_number) } }
            td {
                span.ok title=(format!("#{}", r.log_index)) { "✓ " (words.verified) }
                br;
                a href=(format!("/accesses/{}/receipt", r.log_index)) data-action="receipt" { small { (words.receipt) } }
            }
        }
    }
}

/// One document and whether its issuer's signature checked.
#[derive(Debug)]
pub struct DocumentRow<'a> {
    /// The document as the node described it.
    pub document: &'a DocumentView,
    /// Whether its issuer's certificate chains to the district CA and
    /// signed its record.
    pub provenance_ok: bool,
}

/// `/documents`.
pub fn documents_page(view: &View, rows: &[DocumentRow<'_>], names: &Names) -> Markup {
    let words = view.words();
    let body = html! {
        p.intro { (words.documents_intro) }
        @if rows.is_empty() {
            p.empty { (words.no_documents) }
        } @else {
            table.documents {
                thead {
                    tr {
                        th scope="col" { (words.kind) }
                        th scope="col" { (words.issuer) }
                        th scope="col" { (words.issued) }
                        th scope="col" { (words.size) }
                        th scope="col" { (words.signature) }
                        th scope="col" { span.visually-hidden { (words.download) } }
                    }
                }
                tbody {
                    @for row in rows {
                        @let d = row.document;
                        @let id = d.document_id.to_string();
                        tr data-document-id=(id) data-provenance=(row.provenance_ok) {
                            td { (text::kind_name(view.lang, d.kind().as_str())) br; code { (short(&id)) } }
                            td { (names.department(view.lang, d.issuer().as_str())) }
                            td { (view.date(d.record.issued_at)) }
                            td { (text::size(view.lang, d.record.size)) }
                            td {
                                @if row.provenance_ok { span.ok { "✓ " (words.signature_ok) } }
                                @else { strong.bad { (words.signature_bad) } }
                            }
                            td { a.button href=(format!("/documents/{id}/download")) data-action="download" { (words.download) } }
                        }
                    }
                }
            }
        }
    };
    layout(view, words.documents_title, None, body)
}

/// The kiosk's question before a file is saved on a shared machine.
pub fn kiosk_save_page(view: &View, href: &str) -> Markup {
    let words = view.words();
    let body = html! {
        p.warning { (words.kiosk_save_warning) }
        p {
            a.button.danger href=(href) data-action="save" download { (words.kiosk_save_anyway) }
            " "
            a.button href="/documents" { (words.back) }
        }
    };
    layout(view, words.kiosk_save_title, None, body)
}

/// A refusal or failure: its stable code, a sentence saying what to do,
/// and the vault's own message when there is one.
pub fn error_page(view: &View, code: &str, message: &str, detail: Option<&str>) -> Markup {
    let words = view.words();
    let body = html! {
        div.error data-error=(code) role="alert" {
            p { (message) }
            @if let Some(detail) = detail { p { code { (code) } ": " (detail) } } @else { p { code { (code) } } }
        }
        @if view.csrf.is_some() {
            p { a href="/requests" { (words.back) } }
        }
    };
    layout(view, words.error_title, Some(code), body)
}

/// A page that moves on to `to` at once (a same-origin navigation, so
/// the session cookie goes along), with a link for browsers that do not.
pub fn continue_page(view: &View, to: &str) -> Markup {
    let words = view.words();
    html! {
        (DOCTYPE)
        html lang=(view.lang.tag()) {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0;url={to}"));
                title { (words.portal) }
                link rel="stylesheet" href="/assets/style.css";
            }
            body { main #main { p { a href=(to) data-action="continue" { (words.portal) " →" } } } }
        }
    }
}

/// `/signed-out`.
pub fn signed_out_page(view: &View) -> Markup {
    let words = view.words();
    layout(
        view,
        words.sign_out,
        None,
        html! { p.notice data-signed-out="true" { (words.signed_out) } },
    )
}

/// The first 12 hex digits of an id (the full id is in the row's data-*).
fn short(id: &str) -> String {
    let end = id.len().min(12);
    format!("{}…", id.get(..end).unwrap_or(id))
}

/// Documents newest first.
fn sorted_documents(
    documents: &HashMap<DocumentId, DocumentView>,
) -> Vec<(&DocumentId, &DocumentView)> {
    let mut list: Vec<_> = documents.iter().collect();
    list.sort_by(|a, b| {
        b.1.record
            .issued_at
            .cmp(&a.1.record.issued_at)
            .then(a.0.cmp(b.0))
    });
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(lang: Lang) -> View {
        View {
            lang,
            csrf: Some("c".repeat(64)),
            me: "resident-1".into(),
            offset: UtcOffset::UTC,
            kiosk: false,
            idle_s: 1800,
            path: "/accesses".into(),
        }
    }

    fn row(index: u64, verified: bool) -> AccessRow {
        AccessRow {
            log_index: index,
            time: 1_796_420_000,
            event: "fetch".into(),
            actor_role: Some(pki::Role::Department),
            actor: "housing-bureau".into(),
            document_id: None,
            kind: Some("marriage-certificate".into()),
            purpose: Some("housing-subsidy".into()),
            grant_id: None,
            use_number: 2,
            code: if verified {
                String::new()
            } else {
                "integrity.mismatch".into()
            },
            verified,
            problem: (!verified).then(|| "<script>alert(1)</script>".to_string()),
            by_law: None,
        }
    }

    fn accesses_html(rows: &[AccessRow], lang: Lang) -> String {
        accesses_html_with(rows, lang, None)
    }

    fn accesses_html_with(rows: &[AccessRow], lang: Lang, incomplete: Option<String>) -> String {
        let names = Names::default();
        let documents = HashMap::new();
        let filters = Filters::default();
        let a = AccessesView {
            rows,
            filters: &filters,
            departments: vec!["housing-bureau".into()],
            documents: &documents,
            tree_size: 9,
            incomplete,
            names: &names,
        };
        accesses_page(&view(lang), &a).into_string()
    }

    #[test]
    fn the_banner_says_whether_the_list_is_complete() {
        let html = accesses_html(&[row(7, true)], Lang::En);
        assert!(
            html.contains(r#"<div class="complete" role="status" data-complete="true">"#),
            "{html}"
        );
        assert!(html.contains(r#"data-tree-size="9""#), "{html}");
        assert!(html.contains("This is every entry about you in the log"));
        let zh = accesses_html(&[row(7, true)], Lang::Zh);
        assert!(zh.contains("这是日志中与您有关的全部记录"), "{zh}");
        let html = accesses_html_with(&[row(7, true)], Lang::En, Some("log.chain_broken".into()));
        assert!(
            html.contains(r#"role="alert" data-complete="false" data-code="log.chain_broken""#),
            "{html}"
        );
        assert!(!html.contains(r#"data-complete="true""#));
        assert!(html.contains("could not be proven complete"));
        assert!(html.contains("<code>log.chain_broken</code>"));
        let zh = accesses_html_with(&[], Lang::Zh, Some("log.count_mismatch".into()));
        assert!(zh.contains("无法证明此列表完整"), "{zh}");
    }

    #[test]
    fn verified_rows_carry_the_contract_and_failed_rows_warn() {
        let html = accesses_html(&[row(7, true)], Lang::En);
        assert!(
            html.contains(r#"data-access-index="7" data-verified="true" data-use-number="2""#),
            "{html}"
        );
        assert!(!html.contains("data-verify-failed"));
        let html = accesses_html(&[row(7, true), row(8, false)], Lang::Zh);
        assert!(html.contains(r#"data-access-index="8" data-verified="false""#));
        assert!(html.contains(r#"data-verify-failed="1""#));
        assert!(html.contains("警告"));
        assert!(html.contains(r#"<html lang="zh-CN">"#));
        assert!(!html.contains("<script>alert"), "values are escaped");
    }

    #[test]
    fn every_form_carries_the_csrf_token_and_the_page_no_inline_script() {
        let v = view(Lang::En);
        let grant = GrantView {
            grant_id: pki::GrantId::from_bytes([1; 16]),
            request_id: pki::RequestId::from_bytes([2; 16]),
            resident: pki::ResidentId::parse("resident-1").unwrap_or_else(|_| unreachable!()),
            grantee: pki::Name::parse("housing-bureau").unwrap_or_else(|_| unreachable!()),
            purpose: pki::Purpose::parse("housing-subsidy").unwrap_or_else(|_| unreachable!()),
            documents: Vec::new(),
            not_before: 0,
            not_after: i64::MAX / 2,
            max_uses: 2,
            uses: 0,
            revoked: false,
        };
        let html =
            grants_page(&v, &[grant], &Names::default(), &HashMap::new(), 10, None).into_string();
        assert!(html.contains(r#"data-state="active""#));
        assert!(html.contains(r#"data-action="revoke""#));
        let forms = html.matches("<form").count();
        let tokens = html
            .matches(&format!(r#"name="csrf" value="{}""#, "c".repeat(64)))
            .count();
        assert_eq!(forms, tokens, "one token per form");
        assert!(!html.contains("<script>"), "scripts only from /assets");
    }

    #[test]
    fn a_request_shows_the_kind_and_issuer_its_issuer_signed() {
        use pki::{ContentHash, IssueRecord, Signature};
        use vault_client::wire::RequestedDocument;
        let parse_name = |s: &str| pki::Name::parse(s).unwrap_or_else(|_| unreachable!());
        let id = DocumentId::from_bytes([1; 16]);
        let signed = DocumentView {
            document_id: id,
            record: IssueRecord {
                resident: pki::ResidentId::parse("resident-1").unwrap_or_else(|_| unreachable!()),
                kind: "marriage-certificate"
                    .parse()
                    .unwrap_or_else(|_| unreachable!()),
                content_hash: ContentHash([7; 32]),
                size: 1,
                issued_at: 0,
                issuer: parse_name("civil-affairs"),
            },
            signature: Signature([0; 64]),
            issuer_cert: Vec::new(),
        };
        let request = RequestView {
            request_id: pki::RequestId::from_bytes([9; 16]),
            department: parse_name("housing-bureau"),
            department_key_id: String::new(),
            purpose: pki::Purpose::parse("housing-subsidy").unwrap_or_else(|_| unreachable!()),
            purpose_description: String::new(),
            legal_basis: String::new(),
            documents: vec![RequestedDocument {
                document_id: id,
                content_hash: ContentHash([7; 32]),
                // What the node says; not what the issuer signed.
                kind: "harmless-leaflet"
                    .parse()
                    .unwrap_or_else(|_| unreachable!()),
                issuer: parse_name("tax-office"),
            }],
            ttl_s: 60,
            created_at: 0,
            expires_at: None,
        };
        let documents: HashMap<DocumentId, DocumentView> = [(id, signed)].into_iter().collect();
        let html = requests_page(
            &view(Lang::En),
            std::slice::from_ref(&request),
            &Names::default(),
            &documents,
            None,
        )
        .into_string();
        let leaflet = text::kind_name(Lang::En, "harmless-leaflet");
        assert!(!html.contains(&leaflet), "{html}");
        assert!(!html.contains("tax-office"), "{html}");
        assert!(html.contains(&text::kind_name(Lang::En, "marriage-certificate")));
        assert!(html.contains("civil-affairs"));
        let html = requests_page(
            &view(Lang::En),
            &[request],
            &Names::default(),
            &HashMap::new(),
            None,
        )
        .into_string();
        assert!(
            html.contains("NOT verified"),
            "an unsigned document is marked"
        );
    }

    #[test]
    fn in_the_kiosk_the_exports_open_the_question_instead_of_saving() {
        let names = Names::default();
        let documents = HashMap::new();
        let filters = Filters::default();
        let a = AccessesView {
            rows: &[],
            filters: &filters,
            departments: Vec::new(),
            documents: &documents,
            tree_size: 0,
            incomplete: None,
            names: &names,
        };
        let mut v = view(Lang::En);
        let html = accesses_page(&v, &a).into_string();
        assert!(
            html.contains(r#"data-action="export-csv" download"#),
            "{html}"
        );
        v.kiosk = true;
        let html = accesses_page(&v, &a).into_string();
        assert!(html.contains(r#"data-action="export-csv""#));
        assert!(!html.contains(" download"), "{html}");
    }

    #[test]
    fn the_language_link_of_a_404_stays_on_the_portal() {
        for (asked, link) in [
            ("//evil.example/x", r#"href="/?lang=zh-CN""#),
            ("/\\evil.example/x", r#"href="/?lang=zh-CN""#),
            ("/%2F%2Fevil.example", r#"href="/?lang=zh-CN""#),
            ("/accesses", r#"href="/accesses?lang=zh-CN""#),
        ] {
            let mut v = view(Lang::En);
            v.path = asked.to_string();
            let html = error_page(&v, "portal.not_found", "no", None).into_string();
            assert!(html.contains(link), "{asked}: {html}");
            assert!(!html.contains("evil.example"), "{asked}");
        }
    }

    #[test]
    fn error_pages_put_the_code_on_main() {
        let mut v = view(Lang::En);
        v.csrf = None;
        let html = error_page(&v, "portal.csrf", "no", None).into_string();
        assert!(
            html.contains(r#"<main id="main" data-error="portal.csrf">"#),
            "{html}"
        );
        assert!(!html.contains("sign-out"), "no navigation before sign-in");
    }
}
