//! `search_contacts` and `get_contact`: the two tools that also answer with `structuredContent`.

use serde_json::Value;

use super::call::{Call, NO_FILTER, Outcome, Output, text_of};
use super::ids::{self, Kind};
use super::paging;

const FILTERS: &[&str] = &[
    "contact_ids",
    "name",
    "email",
    "email_domain",
    "phone",
    "custom_attributes",
];

pub(crate) fn search(call: &Call<'_>) -> Outcome {
    if !call.has_any(FILTERS) {
        return Err(NO_FILTER.to_owned());
    }
    let per_page = paging::per_page(
        call.int("per_page"),
        paging::DEFAULT_PER_PAGE,
        paging::MAX_PER_PAGE,
    )?;
    let offset = paging::offset(call.str("starting_after"), &call.data.app_id)?;
    let found: Vec<Value> = call
        .data
        .contacts
        .iter()
        .filter(|c| matches(call, c))
        .cloned()
        .collect();
    let page = paging::page(&found, offset, per_page, &call.data.app_id).with_note(|cursor| {
        format!(
            "To get the next page, call search_contacts again with starting_after: \"{cursor}\""
        )
    });
    Ok(Output::Structured(page.into_json("data")))
}

fn matches(call: &Call<'_>, c: &Value) -> bool {
    let ids_ok = call.strings("contact_ids").is_none_or(|ids| {
        ids.iter()
            .filter_map(|raw| ids::normalize_as(raw, Kind::Contact))
            .any(|id| c["id"] == id.as_str())
    });
    // Intercom: name is a partial match, email an exact one.
    let name_ok = call
        .str("name")
        .is_none_or(|name| text_of(&c["name"]).contains(&name.to_lowercase()));
    let email_ok = call
        .str("email")
        .is_none_or(|email| text_of(&c["email"]) == email.to_lowercase());
    let domain_ok = call.str("email_domain").is_none_or(|domain| {
        text_of(&c["email_domain"]) == domain.trim_start_matches('@').to_lowercase()
    });
    let phone_ok = call
        .str("phone")
        .is_none_or(|phone| digits(&text_of(&c["phone"])) == digits(phone));
    let attributes_ok = call
        .args
        .get("custom_attributes")
        .and_then(Value::as_object)
        .is_none_or(|wanted| {
            wanted.iter().all(|(key, want)| {
                let have = &c["custom_attributes"][key];
                have == want || text_of(have) == text_of(want)
            })
        });
    ids_ok && name_ok && email_ok && domain_ok && phone_ok && attributes_ok
}

fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

pub(crate) fn get(call: &Call<'_>) -> Outcome {
    let raw = call.str("contact_id").unwrap_or_default();
    find(call, raw)
        .map(|c| Output::Structured(c.clone()))
        .ok_or_else(|| {
            let id = ids::normalize_as(raw, Kind::Contact);
            format!("Contact not found: {}", id.as_deref().unwrap_or(raw))
        })
}

pub(crate) fn find<'a>(call: &Call<'a>, raw: &str) -> Option<&'a Value> {
    let id = ids::normalize_as(raw, Kind::Contact)?;
    call.data.contacts.iter().find(|c| c["id"] == id.as_str())
}
