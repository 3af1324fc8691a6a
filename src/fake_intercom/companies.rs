//! `list_companies` (page-numbered, unlike the search tools) and `get_company`.

use serde_json::{Value, json};

use super::call::{Call, Outcome, Output, text_of};
use super::ids::{self, Kind};
use super::paging;

const DEFAULT_PER_PAGE: usize = 15;
const MAX_PER_PAGE: usize = 60;

pub(crate) fn list(call: &Call<'_>) -> Outcome {
    let per_page = paging::per_page(call.int("per_page"), DEFAULT_PER_PAGE, MAX_PER_PAGE)?;
    let page = match call.int("page") {
        None => 1,
        Some(n) if n >= 1 => n as usize,
        Some(n) => return Err(format!("page must be 1 or more, got {n}")),
    };
    let found: Vec<&Value> = call
        .data
        .companies
        .iter()
        .filter(|c| {
            // Intercom: `name` is an exact match and returns a single company.
            call.str("name")
                .is_none_or(|name| text_of(&c["name"]) == name.to_lowercase())
                && call.str("tag_id").is_none_or(|tag| {
                    c["tags"]["tags"]
                        .as_array()
                        .is_some_and(|tags| tags.iter().any(|t| t["id"] == tag))
                })
        })
        .collect();
    let total = found.len();
    let total_pages = total.div_ceil(per_page);
    let data: Vec<&Value> = found
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut pages =
        json!({"type": "pages", "page": page, "per_page": per_page, "total_pages": total_pages});
    if page < total_pages {
        pages["next"] = json!({"page": page + 1});
    }
    Ok(Output::Text(json!({
        "type": "list",
        "data": data,
        "total_count": total,
        "pages": pages,
    })))
}

pub(crate) fn get(call: &Call<'_>) -> Outcome {
    let raw = call.str("company_id").unwrap_or_default();
    find(call, raw)
        .map(|c| Output::Text(c.clone()))
        .ok_or_else(|| {
            let id = ids::normalize_as(raw, Kind::Company);
            format!("Company not found: {}", id.as_deref().unwrap_or(raw))
        })
}

/// By Intercom id, or by the workspace's own `company_id`.
pub(crate) fn find<'a>(call: &Call<'a>, raw: &str) -> Option<&'a Value> {
    let id = ids::normalize_as(raw, Kind::Company)?;
    call.data
        .companies
        .iter()
        .find(|c| c["id"] == id.as_str() || c["company_id"] == id.as_str())
}
