//! `search_conversations`, `get_conversation` and `add_internal_note`.

use serde_json::{Value, json};

use super::call::{Call, NO_FILTER, Outcome, Output, text_of};
use super::ids::{self, Kind};
use super::paging;

const FILTERS: &[&str] = &[
    "ids",
    "state",
    "source_type",
    "source_author_name",
    "source_author_email",
    "team_assignee_id",
    "admin_assignee_id",
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
        .conversations
        .iter()
        .filter(|c| matches(call, c))
        .map(without_parts)
        .collect();
    let page = paging::page(&found, offset, per_page, &call.data.app_id).with_note(|cursor| {
        format!("To get the next page, call search_conversations again with starting_after: \"{cursor}\"")
    });
    Ok(Output::Text(page.into_json("conversations")))
}

fn matches(call: &Call<'_>, c: &Value) -> bool {
    let eq = |key: &str, actual: &Value| {
        call.str(key)
            .is_none_or(|want| text_of(actual) == want.to_lowercase())
    };
    let ids_ok = call.strings("ids").is_none_or(|ids| {
        ids.iter()
            .filter_map(|raw| ids::normalize_as(raw, Kind::Conversation))
            .any(|id| c["id"] == id.as_str())
    });
    let name_ok = call
        .str("source_author_name")
        .is_none_or(|name| text_of(&c["source"]["author"]["name"]).contains(&name.to_lowercase()));
    let admin_ok = call
        .int("admin_assignee_id")
        .is_none_or(|id| c["admin_assignee_id"].as_i64() == Some(id));
    ids_ok
        && name_ok
        && admin_ok
        && eq("state", &c["state"])
        && eq("source_type", &c["source"]["type"])
        && eq("source_author_email", &c["source"]["author"]["email"])
        && eq("team_assignee_id", &c["team_assignee_id"])
}

/// Search results carry conversation objects without their parts, as Intercom's search does.
fn without_parts(c: &Value) -> Value {
    let mut c = c.clone();
    if let Some(obj) = c.as_object_mut() {
        obj.remove("conversation_parts");
    }
    c
}

pub(crate) fn get(call: &Call<'_>) -> Outcome {
    let raw = call.str("conversation_id").unwrap_or_default();
    find(call, raw).map(Output::Text)
}

/// The full conversation, including notes added through `add_internal_note`.
pub(crate) fn find(call: &Call<'_>, raw: &str) -> Result<Value, String> {
    let id = ids::normalize_as(raw, Kind::Conversation);
    let found = id
        .as_deref()
        .and_then(|id| call.data.conversations.iter().find(|c| c["id"] == id));
    let Some(conversation) = found else {
        return Err(format!(
            "Conversation not found: {}",
            id.as_deref().unwrap_or(raw)
        ));
    };
    let mut conversation = conversation.clone();
    let notes = call
        .state
        .notes(call.workspace, id.as_deref().unwrap_or(raw));
    if !notes.is_empty() {
        let parts = &mut conversation["conversation_parts"];
        if let Some(list) = parts["conversation_parts"].as_array_mut() {
            list.extend(notes);
            let total = list.len();
            parts["total_count"] = json!(total);
        }
    }
    Ok(conversation)
}

pub(crate) fn add_note(call: &Call<'_>) -> Outcome {
    let raw = call.str("conversation_id").unwrap_or_default();
    let body = call.str("body").unwrap_or_default().trim();
    if body.is_empty() {
        return Err("Note body must not be empty".to_owned());
    }
    let conversation = find(call, raw)?;
    let id = conversation["id"].as_str().unwrap_or_default().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Intercom unsnoozes a snoozed conversation when a note is added and says so.
    let part_type = if conversation["state"] == "snoozed" {
        "note_and_unsnooze"
    } else {
        "note"
    };
    let body = if body.starts_with('<') {
        body.to_owned()
    } else {
        format!("<p>{body}</p>")
    };
    let admin = &call.data.admin;
    let part = json!({
        "type": "conversation_part",
        "id": (uuid::Uuid::new_v4().as_u128() % 900_000_000 + 100_000_000).to_string(),
        "part_type": part_type,
        "body": body,
        "created_at": now, "updated_at": now, "notified_at": now,
        "author": {"type": "admin", "id": admin["id"], "name": admin["name"], "email": admin["email"]},
        "attachments": [],
        "redacted": false,
        "conversation_id": id,
        "workspace": call.data.name,
    });
    call.state.add_note(call.workspace, &id, part.clone());
    Ok(Output::Text(part))
}
