//! The portal's words in English and Chinese (zh-CN), and how dates,
//! durations and sizes are written for people in each. Every word is a
//! field of [`Words`], so a page cannot use a word one language lacks.

use time::{OffsetDateTime, UtcOffset};

/// The portal's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// The BCP 47 tag (`<html lang>`, the `lang` query parameter).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// A tag as given in `?lang=` or the language cookie.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag == "en" || tag.starts_with("en-") {
            Some(Lang::En)
        } else if tag == "zh" || tag.starts_with("zh-") {
            Some(Lang::Zh)
        } else {
            None
        }
    }

    /// The browser's preference (`Accept-Language`): the first of its
    /// languages we have, by quality; English when none.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',').take(32) {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or_default();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::from_tag(tag) {
                if best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, lang));
                }
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::En)
    }

    /// The other language (the switch's target).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// This language's words.
    pub fn words(self) -> &'static Words {
        match self {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }
}

/// Every fixed word and phrase of the portal.
pub struct Words {
    /// The language's own name (on the switch).
    pub language_name: &'static str,
    /// The portal's name.
    pub portal: &'static str,
    /// Navigation: requests.
    pub nav_requests: &'static str,
    /// Navigation: grants.
    pub nav_grants: &'static str,
    /// Navigation: accesses.
    pub nav_accesses: &'static str,
    /// Navigation: documents.
    pub nav_documents: &'static str,
    /// Sign out.
    pub sign_out: &'static str,
    /// Signed in as.
    pub signed_in_as: &'static str,
    /// Footer: where times are shown in (`{offset}` is replaced).
    pub times_in: &'static str,
    /// Skip link.
    pub skip_to_content: &'static str,
    /// Requests page heading.
    pub requests_title: &'static str,
    /// Requests page: what it is.
    pub requests_intro: &'static str,
    /// No pending requests.
    pub no_requests: &'static str,
    /// Asks for.
    pub asks_for: &'static str,
    /// Purpose.
    pub purpose: &'static str,
    /// Legal basis.
    pub legal_basis: &'static str,
    /// Documents asked for.
    pub documents_asked: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Issuer.
    pub issuer: &'static str,
    /// Issued on.
    pub issued: &'static str,
    /// Asked on.
    pub asked_at: &'static str,
    /// Access asked for, for how long.
    pub access_for: &'static str,
    /// The request expires.
    pub open_until: &'static str,
    /// Number of uses (approve form).
    pub max_uses_label: &'static str,
    /// Shorter validity (approve form).
    pub ttl_days_label: &'static str,
    /// Hint under the validity field.
    pub ttl_days_hint: &'static str,
    /// Approve.
    pub approve: &'static str,
    /// Deny.
    pub deny: &'static str,
    /// Grants page heading.
    pub grants_title: &'static str,
    /// Grants page: what it is.
    pub grants_intro: &'static str,
    /// No grants.
    pub no_grants: &'static str,
    /// Department.
    pub department: &'static str,
    /// Documents.
    pub documents: &'static str,
    /// Valid.
    pub window: &'static str,
    /// Uses.
    pub uses: &'static str,
    /// State.
    pub state: &'static str,
    /// Active.
    pub state_active: &'static str,
    /// Revoked.
    pub state_revoked: &'static str,
    /// Expired.
    pub state_expired: &'static str,
    /// All uses spent.
    pub state_exhausted: &'static str,
    /// Not yet valid.
    pub state_not_yet_valid: &'static str,
    /// Revoke.
    pub revoke: &'static str,
    /// Accesses page heading.
    pub accesses_title: &'static str,
    /// Accesses page: what it is.
    pub accesses_intro: &'static str,
    /// No accesses.
    pub no_accesses: &'static str,
    /// When.
    pub when: &'static str,
    /// Who.
    pub who: &'static str,
    /// Document.
    pub document: &'static str,
    /// Grant.
    pub grant: &'static str,
    /// Use number.
    pub use_number: &'static str,
    /// Proof.
    pub proof: &'static str,
    /// Verified.
    pub verified: &'static str,
    /// Not verified.
    pub not_verified: &'static str,
    /// A receipt (the entry with its proof, to keep or show).
    pub receipt: &'static str,
    /// Warning when entries failed their checks.
    pub verify_failed_warning: &'static str,
    /// The checkpoint the proofs were checked against.
    pub checked_against: &'static str,
    /// The list is proven complete (the resident index and the chain).
    pub complete_yes: &'static str,
    /// The list is not proven complete (followed by the reason's code).
    pub complete_no: &'static str,
    /// Filters.
    pub filters: &'static str,
    /// Any.
    pub any: &'static str,
    /// From (date).
    pub from_date: &'static str,
    /// To (date).
    pub to_date: &'static str,
    /// Events: fetches only / everything.
    pub events: &'static str,
    /// Fetches only.
    pub events_fetches: &'static str,
    /// Every entry.
    pub events_all: &'static str,
    /// Apply filters.
    pub apply: &'static str,
    /// Export.
    pub export: &'static str,
    /// Newer page.
    pub newer: &'static str,
    /// Older page.
    pub older: &'static str,
    /// Page.
    pub page: &'static str,
    /// Documents page heading.
    pub documents_title: &'static str,
    /// Documents page: what it is.
    pub documents_intro: &'static str,
    /// No documents.
    pub no_documents: &'static str,
    /// Size.
    pub size: &'static str,
    /// Signature.
    pub signature: &'static str,
    /// Issuer's signature checked.
    pub signature_ok: &'static str,
    /// Issuer's signature did not check.
    pub signature_bad: &'static str,
    /// Download.
    pub download: &'static str,
    /// Kiosk: confirm saving to a shared machine.
    pub kiosk_save_title: &'static str,
    /// Kiosk: why.
    pub kiosk_save_warning: &'static str,
    /// Kiosk: save anyway.
    pub kiosk_save_anyway: &'static str,
    /// Back.
    pub back: &'static str,
    /// Notice: approved.
    pub notice_approved: &'static str,
    /// Notice: denied.
    pub notice_denied: &'static str,
    /// Notice: revoked.
    pub notice_revoked: &'static str,
    /// Error page heading.
    pub error_title: &'static str,
    /// Unauthorized: what to do.
    pub unauthorized: &'static str,
    /// Foreign Host: what happened.
    pub bad_host: &'static str,
    /// CSRF: what happened.
    pub bad_csrf: &'static str,
    /// Not found.
    pub not_found: &'static str,
    /// The vault could not be reached or refused.
    pub vault_error: &'static str,
    /// A form's values were not valid.
    pub bad_form: &'static str,
    /// Signed out.
    pub signed_out: &'static str,
    /// Kiosk: sign-out after inactivity.
    pub kiosk_idle: &'static str,
    /// By consent.
    pub by_consent: &'static str,
    /// Marks an access by law (a disclosed statutory order), not by consent.
    pub by_law: &'static str,
    /// "case" before an order's case reference.
    pub case: &'static str,
    /// "authorised by" before the authority of an order.
    pub authorised_by: &'static str,
}

/// English.
pub static EN: Words = Words {
    language_name: "English",
    portal: "My documents",
    nav_requests: "Requests",
    nav_grants: "Grants",
    nav_accesses: "Who looked",
    nav_documents: "Documents",
    sign_out: "Sign out",
    signed_in_as: "Signed in as",
    times_in: "Times are shown in {offset}.",
    skip_to_content: "Skip to content",
    requests_title: "Requests waiting for you",
    requests_intro: "A department asks to see some of your documents. Nothing is shared unless you approve; you can approve fewer uses or a shorter time than asked.",
    no_requests: "No department is waiting for your answer.",
    asks_for: "asks to see your documents",
    purpose: "Purpose",
    legal_basis: "Legal basis",
    documents_asked: "Documents asked for",
    kind: "Kind",
    issuer: "Issued by",
    issued: "Issued on",
    asked_at: "Asked on",
    access_for: "Access asked for",
    open_until: "You can answer until",
    max_uses_label: "How many times they may fetch",
    ttl_days_label: "Shorter access, in days (optional)",
    ttl_days_hint: "Leave empty to give the time asked for.",
    approve: "Approve",
    deny: "Deny",
    grants_title: "What you have shared",
    grants_intro: "Each grant lets one department fetch the listed documents, for one purpose, within its dates and number of uses. Revoking takes effect for the next fetch.",
    no_grants: "You have not shared any documents.",
    department: "Department",
    documents: "Documents",
    window: "Valid",
    uses: "Uses",
    state: "State",
    state_active: "Active",
    state_revoked: "Revoked",
    state_expired: "Expired",
    state_exhausted: "All uses spent",
    state_not_yet_valid: "Not yet valid",
    revoke: "Revoke",
    accesses_title: "Who looked at your documents",
    accesses_intro: "Every fetch of your documents is written in the vault's tamper-evident log. Each line below was checked against the log's signed checkpoint on this device.",
    no_accesses: "Nobody has fetched your documents.",
    when: "When",
    who: "Who",
    document: "Document",
    grant: "Grant",
    use_number: "Use",
    proof: "Proof",
    verified: "Verified",
    not_verified: "NOT verified",
    receipt: "Receipt (proof file)",
    verify_failed_warning: "Warning: some entries did not verify against the signed log. The vault may have shown you something that is not in its log. Keep this page and tell the district's auditors.",
    checked_against: "Checked against the signed log at size",
    complete_yes: "This is every entry about you in the log: the list was proven complete against the log's signed resident index.",
    complete_no: "This list could not be proven complete: the vault may have left entries out. Keep this page and tell the district's auditors. Reason:",
    filters: "Filter",
    any: "Any",
    from_date: "From",
    to_date: "To",
    events: "Show",
    events_fetches: "Fetches",
    events_all: "Every entry about me",
    apply: "Apply",
    export: "Export",
    newer: "Newer",
    older: "Older",
    page: "Page",
    documents_title: "Your documents",
    documents_intro: "Documents departments have issued to you. Each copy you download is checked against the hash its issuer signed.",
    no_documents: "No documents have been issued to you yet.",
    size: "Size",
    signature: "Issuer's signature",
    signature_ok: "Checked",
    signature_bad: "Does NOT check",
    download: "Download",
    kiosk_save_title: "Save on this machine?",
    kiosk_save_warning: "This is a shared machine in the service hall. A file saved here may be seen by the next person. Save only if you will delete it or copy it to your own device.",
    kiosk_save_anyway: "Save on this machine",
    back: "Back",
    notice_approved: "Approved. The department can now fetch the documents as you allowed.",
    notice_denied: "Denied. The department was not given access.",
    notice_revoked: "Revoked. The department's next fetch will be refused.",
    error_title: "Something went wrong",
    unauthorized: "This portal needs the address it printed when it started (with its token). Open that address, or start `vault portal` again.",
    bad_host: "This request came through a different host name than the portal's, so it was refused (this protects you from other web sites).",
    bad_csrf: "This form was not sent by this portal's own page, so nothing was changed. Go back, reload the page and try again.",
    not_found: "There is no such page.",
    vault_error: "The vault refused or could not be reached. Nothing was changed.",
    bad_form: "Some of the values you entered are not valid. Nothing was changed; go back and correct them.",
    signed_out: "You are signed out and the portal has stopped. Close this window.",
    kiosk_idle: "For your privacy you will be signed out after a few minutes without activity.",
    by_consent: "with your consent",
    by_law: "by law, without your consent",
    case: "case",
    authorised_by: "authorised by",
};

/// Simplified Chinese.
pub static ZH: Words = Words {
    language_name: "中文",
    portal: "我的证件",
    nav_requests: "申请",
    nav_grants: "授权",
    nav_accesses: "查阅记录",
    nav_documents: "证件",
    sign_out: "退出",
    signed_in_as: "当前用户",
    times_in: "时间均按 {offset} 显示。",
    skip_to_content: "跳到正文",
    requests_title: "等待您答复的申请",
    requests_intro: "有部门申请查看您的部分证件。未经您同意，不会共享任何内容；您可以批准比申请更少的次数或更短的期限。",
    no_requests: "目前没有等待您答复的申请。",
    asks_for: "申请查看您的证件",
    purpose: "用途",
    legal_basis: "法律依据",
    documents_asked: "申请的证件",
    kind: "类型",
    issuer: "签发部门",
    issued: "签发日期",
    asked_at: "申请时间",
    access_for: "申请期限",
    open_until: "答复截止",
    max_uses_label: "允许调取次数",
    ttl_days_label: "缩短期限（天，可不填）",
    ttl_days_hint: "不填则按申请的期限授权。",
    approve: "同意",
    deny: "拒绝",
    grants_title: "您已共享的内容",
    grants_intro: "每项授权允许一个部门为一个用途，在有效期和次数内调取所列证件。撤销后，该部门下一次调取即被拒绝。",
    no_grants: "您尚未共享任何证件。",
    department: "部门",
    documents: "证件",
    window: "有效期",
    uses: "已用次数",
    state: "状态",
    state_active: "有效",
    state_revoked: "已撤销",
    state_expired: "已过期",
    state_exhausted: "次数已用完",
    state_not_yet_valid: "尚未生效",
    revoke: "撤销",
    accesses_title: "谁查看了您的证件",
    accesses_intro: "您的证件每被调取一次，都会写入证件库防篡改的日志。下面每一条都已在本设备上对照日志的签名检查点核验。",
    no_accesses: "还没有人调取过您的证件。",
    when: "时间",
    who: "调取方",
    document: "证件",
    grant: "授权",
    use_number: "第几次",
    proof: "证明",
    verified: "已核验",
    not_verified: "未通过核验",
    receipt: "凭证（证明文件）",
    verify_failed_warning: "警告：部分记录未能对照签名日志核验通过。证件库可能向您显示了日志中没有的内容。请保存此页面并告知本区审计人员。",
    checked_against: "核验所依据的签名日志大小",
    complete_yes: "这是日志中与您有关的全部记录：已对照日志签名的居民索引证明此列表完整。",
    complete_no: "无法证明此列表完整：证件库可能遗漏了记录。请保存此页面并告知本区审计人员。原因：",
    filters: "筛选",
    any: "全部",
    from_date: "起始日期",
    to_date: "截止日期",
    events: "显示",
    events_fetches: "调取",
    events_all: "与我有关的全部记录",
    apply: "应用",
    export: "导出",
    newer: "较新",
    older: "较早",
    page: "页",
    documents_title: "您的证件",
    documents_intro: "各部门为您签发的证件。您下载的每份副本都会对照签发部门签名的哈希值核验。",
    no_documents: "尚无为您签发的证件。",
    size: "大小",
    signature: "签发部门签名",
    signature_ok: "已核验",
    signature_bad: "核验未通过",
    download: "下载",
    kiosk_save_title: "保存到这台机器？",
    kiosk_save_warning: "这是服务大厅的公用机器，保存在这里的文件可能被下一位使用者看到。只有在您会删除它或复制到自己的设备时才保存。",
    kiosk_save_anyway: "保存到这台机器",
    back: "返回",
    notice_approved: "已同意。该部门现在可以按您允许的范围调取证件。",
    notice_denied: "已拒绝。该部门未获得访问权限。",
    notice_revoked: "已撤销。该部门下一次调取将被拒绝。",
    error_title: "出现问题",
    unauthorized: "请打开本门户启动时显示的地址（含令牌），或重新运行 `vault portal`。",
    bad_host: "此请求使用的主机名与本门户不符，已被拒绝（这可防止其他网站操控本门户）。",
    bad_csrf: "此表单不是由本门户的页面提交的，未做任何更改。请返回、刷新页面后重试。",
    not_found: "没有这个页面。",
    vault_error: "证件库拒绝了请求或无法连接，未做任何更改。",
    bad_form: "您填写的部分内容无效，未做任何更改。请返回修改。",
    signed_out: "您已退出，门户已停止。请关闭此窗口。",
    kiosk_idle: "为保护您的隐私，一段时间无操作后将自动退出。",
    by_consent: "经您同意",
    by_law: "依法调取，未经您同意",
    case: "案件",
    authorised_by: "批准机关",
};

/// A time (unix seconds) as people read it, in `offset`: "2026-12-04
/// 21:31" in English, "2026年12月4日 21:31" in Chinese.
pub fn datetime(lang: Lang, unix: i64, offset: UtcOffset) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(unix) else {
        return unix.to_string();
    };
    let t = t.to_offset(offset);
    match lang {
        Lang::En => crate::human::time_at(unix, offset),
        Lang::Zh => format!(
            "{}年{}月{}日 {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
    }
}

/// A date (unix seconds) in `offset`, without the time of day.
pub fn date(lang: Lang, unix: i64, offset: UtcOffset) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(unix) else {
        return unix.to_string();
    };
    let t = t.to_offset(offset);
    match lang {
        Lang::En => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Lang::Zh => format!("{}年{}月{}日", t.year(), u8::from(t.month()), t.day()),
    }
}

/// RFC 3339 in UTC, for `<time datetime>` and the exports.
pub fn rfc3339(unix: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(unix) else {
        return unix.to_string();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An offset as "UTC+08:00".
pub fn offset_name(offset: UtcOffset) -> String {
    let (h, m, _) = offset.as_hms();
    let sign = if h < 0 || m < 0 { '-' } else { '+' };
    format!("UTC{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

/// A duration in days and hours ("30 days", "2 days 5 hours", "45
/// minutes"; "30 天", "2 天 5 小时", "45 分钟").
pub fn duration(lang: Lang, seconds: u64) -> String {
    let days = seconds / 86_400;
    let hours = (seconds % 86_400) / 3600;
    let minutes = (seconds % 3600) / 60;
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    match lang {
        Lang::En => match (days, hours) {
            (0, 0) => plural(minutes.max(1), "minute", "minutes"),
            (0, h) => plural(h, "hour", "hours"),
            (d, 0) => plural(d, "day", "days"),
            (d, h) => format!(
                "{} {}",
                plural(d, "day", "days"),
                plural(h, "hour", "hours")
            ),
        },
        Lang::Zh => match (days, hours) {
            (0, 0) => format!("{} 分钟", minutes.max(1)),
            (0, h) => format!("{h} 小时"),
            (d, 0) => format!("{d} 天"),
            (d, h) => format!("{d} 天 {h} 小时"),
        },
    }
}

/// A size as people read it: "35 bytes", "12.3 kB", "4.0 MB" (powers of
/// 1000).
pub fn size(lang: Lang, bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return match lang {
            Lang::En if bytes == 1 => "1 byte".to_string(),
            Lang::En => format!("{bytes} bytes"),
            Lang::Zh => format!("{bytes} 字节"),
        };
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A document kind's name where we know it, else its code made readable.
pub fn kind_name(lang: Lang, kind: &str) -> String {
    let known = match (kind, lang) {
        ("marriage-certificate", Lang::En) => "Marriage certificate",
        ("marriage-certificate", Lang::Zh) => "结婚证",
        ("birth-certificate", Lang::En) => "Birth certificate",
        ("birth-certificate", Lang::Zh) => "出生证明",
        ("death-certificate", Lang::En) => "Death certificate",
        ("death-certificate", Lang::Zh) => "死亡证明",
        ("id-card", Lang::En) => "Identity card",
        ("id-card", Lang::Zh) => "居民身份证",
        ("household-registration" | "household-register", Lang::En) => "Household registration",
        ("household-registration" | "household-register", Lang::Zh) => "户口簿",
        ("residence-permit", Lang::En) => "Residence permit",
        ("residence-permit", Lang::Zh) => "居住证",
        ("tenancy-contract", Lang::En) => "Tenancy contract",
        ("tenancy-contract", Lang::Zh) => "租赁合同",
        ("housing-subsidy-decision", Lang::En) => "Housing subsidy decision",
        ("housing-subsidy-decision", Lang::Zh) => "住房补贴决定书",
        ("deed", Lang::En) => "Property deed",
        ("deed", Lang::Zh) => "不动产权证书",
        ("tax-return", Lang::En) => "Tax return",
        ("tax-return", Lang::Zh) => "纳税申报表",
        ("tax-assessment", Lang::En) => "Tax assessment",
        ("tax-assessment", Lang::Zh) => "完税证明",
        ("income-statement", Lang::En) => "Income statement",
        ("income-statement", Lang::Zh) => "收入证明",
        ("vehicle-registration", Lang::En) => "Vehicle registration",
        ("vehicle-registration", Lang::Zh) => "机动车登记证书",
        ("driving-licence" | "driving-license", Lang::En) => "Driving licence",
        ("driving-licence" | "driving-license", Lang::Zh) => "驾驶证",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let mut out = kind.replace('-', " ");
    if let Some(first) = out.get(..1) {
        out = first.to_uppercase() + out.get(1..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_in_the_offset_for_each_language() {
        let t = 1_796_420_000; // 2026-12-04 21:33:20 UTC
        let utc = UtcOffset::UTC;
        let cst = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
        assert_eq!(datetime(Lang::En, t, utc), "2026-12-04 21:33");
        assert_eq!(datetime(Lang::En, t, cst), "2026-12-05 05:33");
        assert_eq!(datetime(Lang::Zh, t, cst), "2026年12月5日 05:33");
        assert_eq!(date(Lang::Zh, t, utc), "2026年12月4日");
        assert_eq!(rfc3339(t), "2026-12-04T21:33:20Z");
        assert_eq!(offset_name(cst), "UTC+08:00");
        let minus = UtcOffset::from_hms(-3, -30, 0).unwrap_or(UtcOffset::UTC);
        assert_eq!(offset_name(minus), "UTC-03:30");
    }

    #[test]
    fn durations_are_days_and_hours() {
        assert_eq!(duration(Lang::En, 30 * 86_400), "30 days");
        assert_eq!(duration(Lang::En, 86_400 + 3600), "1 day 1 hour");
        assert_eq!(
            duration(Lang::En, 2 * 86_400 + 5 * 3600 + 59),
            "2 days 5 hours"
        );
        assert_eq!(duration(Lang::En, 45 * 60), "45 minutes");
        assert_eq!(duration(Lang::En, 5), "1 minute");
        assert_eq!(duration(Lang::Zh, 2 * 86_400 + 5 * 3600), "2 天 5 小时");
        assert_eq!(duration(Lang::Zh, 3 * 3600), "3 小时");
    }

    #[test]
    fn sizes_are_bytes_then_powers_of_a_thousand() {
        assert_eq!(size(Lang::En, 1), "1 byte");
        assert_eq!(size(Lang::En, 35), "35 bytes");
        assert_eq!(size(Lang::Zh, 35), "35 字节");
        assert_eq!(size(Lang::En, 12_345), "12.3 kB");
        assert_eq!(size(Lang::En, 999_999), "1.0 MB");
        assert_eq!(size(Lang::En, 4_000_000_000), "4.0 GB");
    }

    #[test]
    fn the_browser_language_picks_chinese_or_english() {
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::Zh
        );
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,zh;q=0.8"),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language("fr-FR,zh-TW;q=0.5"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("fr-FR"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_tag("zh-CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_tag("de"), None);
    }

    #[test]
    fn kinds_have_names_or_readable_codes() {
        assert_eq!(kind_name(Lang::Zh, "marriage-certificate"), "结婚证");
        assert_eq!(kind_name(Lang::En, "boat-licence"), "Boat licence");
    }
}
