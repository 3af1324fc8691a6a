//! Id normalisation shared by `fetch`, `get_*` and `add_internal_note`.
//!
//! Intercom's tool descriptions promise that a raw id (`123456789`), a type-prefixed id
//! (`conversation_123456789`, `contact_<id>`, `company_<id>`) and an Intercom app URL
//! (`https://app.intercom.com/a/inbox/_/inbox/conversation/123456789`,
//! `https://app.intercom.com/a/apps/<app>/users/<id>/all-conversations`) "normalize automatically".

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Conversation,
    Contact,
    Company,
}

impl Kind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Kind::Conversation => "conversation_",
            Kind::Contact => "contact_",
            Kind::Company => "company_",
        }
    }
}

/// An id after normalisation; `kind` is `None` when the input was a bare id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdRef {
    pub kind: Option<Kind>,
    pub id: String,
}

/// Normalises any accepted spelling; `None` when nothing id-like is left.
pub(crate) fn normalize(raw: &str) -> Option<IdRef> {
    let raw = raw.trim();
    if raw.starts_with("http://") || raw.starts_with("https://") {
        return from_url(raw);
    }
    for kind in [Kind::Conversation, Kind::Contact, Kind::Company] {
        if let Some(id) = raw.strip_prefix(kind.prefix()) {
            return non_empty(Some(kind), id);
        }
    }
    non_empty(None, raw)
}

/// Normalises an id that must name `expected`: a prefix or URL of another kind is rejected.
pub(crate) fn normalize_as(raw: &str, expected: Kind) -> Option<String> {
    normalize(raw)
        .filter(|r| r.kind.is_none_or(|k| k == expected))
        .map(|r| r.id)
}

fn from_url(url: &str) -> Option<IdRef> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Take the last marker segment so `/a/apps/x/users/<id>/all-conversations` is a contact
    // while `/a/inbox/_/inbox/conversation/<id>` is a conversation.
    segments
        .windows(2)
        .rev()
        .find_map(|pair| {
            let kind = match pair[0] {
                "conversation" | "conversations" => Kind::Conversation,
                "users" | "user" | "leads" | "contacts" | "contact" => Kind::Contact,
                "companies" | "company" => Kind::Company,
                _ => return None,
            };
            Some((kind, pair[1]))
        })
        .and_then(|(kind, id)| non_empty(Some(kind), id))
}

fn non_empty(kind: Option<Kind>, id: &str) -> Option<IdRef> {
    (!id.is_empty()).then(|| IdRef {
        kind,
        id: id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: Option<Kind>, id: &str) -> Option<IdRef> {
        Some(IdRef {
            kind,
            id: id.into(),
        })
    }

    #[test]
    fn raw_and_prefixed_ids_are_accepted() {
        assert_eq!(normalize(" 123456789 "), id(None, "123456789"));
        assert_eq!(
            normalize("conversation_123456789"),
            id(Some(Kind::Conversation), "123456789")
        );
        assert_eq!(
            normalize("contact_5ba682d23d7cf92bef87bfd4"),
            id(Some(Kind::Contact), "5ba682d23d7cf92bef87bfd4")
        );
        assert_eq!(normalize("company_abc"), id(Some(Kind::Company), "abc"));
    }

    #[test]
    fn intercom_app_urls_are_accepted() {
        assert_eq!(
            normalize("https://app.intercom.com/a/inbox/_/inbox/conversation/123?view=x#part"),
            id(Some(Kind::Conversation), "123")
        );
        assert_eq!(
            normalize("https://app.intercom.com/a/apps/abc123/users/5ba6/all-conversations"),
            id(Some(Kind::Contact), "5ba6")
        );
        assert_eq!(
            normalize("https://app.intercom.com/a/apps/abc123/companies/c1"),
            id(Some(Kind::Company), "c1")
        );
    }

    #[test]
    fn empty_input_and_urls_without_an_id_are_rejected() {
        assert_eq!(normalize("  "), None);
        assert_eq!(normalize("conversation_"), None);
        assert_eq!(normalize("https://app.intercom.com/a/inbox"), None);
    }

    #[test]
    fn an_id_of_another_kind_does_not_normalize_as_this_kind() {
        assert_eq!(
            normalize_as("conversation_1", Kind::Conversation).as_deref(),
            Some("1")
        );
        assert_eq!(normalize_as("1", Kind::Contact).as_deref(), Some("1"));
        assert_eq!(normalize_as("contact_1", Kind::Conversation), None);
    }
}
