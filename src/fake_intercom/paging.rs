//! Intercom-style cursor pagination: `pages{type,page,per_page,total_pages,next{page,starting_after}}`.
//!
//! Cursors look like Intercom's (base64 of a JSON array) and are bound to the workspace, so a
//! gateway that replays one tenant's cursor for another tenant gets an error, not data.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub(crate) const DEFAULT_PER_PAGE: usize = 5;
pub(crate) const MAX_PER_PAGE: usize = 150;

/// One page of `items` plus the `pages` object and the `_note` Intercom adds when more exist.
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub pages: Value,
    pub note: Option<String>,
    pub next_cursor: Option<String>,
}

/// Validates `per_page` (1..=max, default when absent).
pub(crate) fn per_page(
    requested: Option<i64>,
    default: usize,
    max: usize,
) -> Result<usize, String> {
    match requested {
        None => Ok(default),
        Some(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
        Some(n) => Err(format!("per_page must be between 1 and {max}, got {n}")),
    }
}

/// Decodes `starting_after` into an offset; the cursor must come from this workspace.
pub(crate) fn offset(cursor: Option<&str>, app_id: &str) -> Result<usize, String> {
    let Some(cursor) = cursor else { return Ok(0) };
    let invalid = || format!("Invalid starting_after cursor: {cursor}");
    let bytes = STANDARD.decode(cursor).map_err(|_| invalid())?;
    let (offset, owner): (usize, String) = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if owner != app_id {
        return Err(invalid());
    }
    Ok(offset)
}

fn cursor(offset: usize, app_id: &str) -> String {
    STANDARD.encode(json!([offset, app_id]).to_string())
}

pub(crate) fn page<T: Clone>(items: &[T], offset: usize, per_page: usize, app_id: &str) -> Page<T> {
    let total = items.len();
    let slice: Vec<T> = items.iter().skip(offset).take(per_page).cloned().collect();
    let end = offset + slice.len();
    let page_number = offset / per_page + 1;
    let mut pages = json!({
        "type": "pages",
        "page": page_number,
        "per_page": per_page,
        "total_pages": total.div_ceil(per_page),
    });
    let next_cursor = (end < total).then(|| cursor(end, app_id));
    if let Some(next) = &next_cursor {
        pages["next"] = json!({"page": page_number + 1, "starting_after": next});
    }
    Page {
        items: slice,
        pages,
        note: None,
        next_cursor,
    }
}

impl<T> Page<T> {
    /// Adds Intercom's `_note`, phrased for how the caller asks for the next page.
    pub(crate) fn with_note(mut self, how: impl FnOnce(&str) -> String) -> Self {
        self.note = self
            .next_cursor
            .as_deref()
            .map(|c| format!("More results available. {}", how(c)));
        self
    }

    /// `{total_in_page, <key>: items, pages, _note?}` as Intercom's MCP tools answer.
    pub(crate) fn into_json(self, key: &str) -> Value
    where
        T: serde::Serialize,
    {
        let mut out = json!({"total_in_page": self.items.len()});
        out[key] = json!(self.items);
        out["pages"] = self.pages;
        if let Some(note) = self.note {
            out["_note"] = json!(note);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_a_cursor_until_the_last_one() {
        let items: Vec<u32> = (0..12).collect();
        let first = page(&items, 0, 5, "app1");
        assert_eq!(first.items, vec![0, 1, 2, 3, 4]);
        assert_eq!(first.pages["total_pages"], 3);
        let next = first.next_cursor.clone().unwrap();
        assert_eq!(first.pages["next"]["starting_after"], json!(next));
        let third = page(&items, offset(Some(&next), "app1").unwrap() + 5, 5, "app1");
        assert_eq!(third.items, vec![10, 11]);
        assert_eq!(third.pages["page"], 3);
        assert!(third.next_cursor.is_none() && third.pages.get("next").is_none());
    }

    #[test]
    fn cursors_from_another_workspace_or_garbage_are_rejected() {
        let items: Vec<u32> = (0..12).collect();
        let next = page(&items, 0, 5, "app1").next_cursor.unwrap();
        assert!(offset(Some(&next), "app2").is_err());
        assert!(offset(Some("not-a-cursor"), "app1").is_err());
    }
}
