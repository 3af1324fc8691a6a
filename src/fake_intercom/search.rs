//! The universal `search` (query DSL) and `fetch` tools.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::call::{Call, Outcome, Output, strip_html, text_of};
use super::dsl::{self, Condition, ObjectType, Op};
use super::ids::{self, Kind};
use super::{companies, contacts, conversations, paging};

pub(crate) fn search(call: &Call<'_>) -> Outcome {
    let query = dsl::parse(call.str("query").unwrap_or_default()).map_err(|e| e.to_string())?;
    let offset = paging::offset(query.starting_after.as_deref(), &call.data.app_id)?;
    let (objects, kind) = match query.object_type {
        ObjectType::Conversations => (&call.data.conversations, Kind::Conversation),
        ObjectType::Contacts => (&call.data.contacts, Kind::Contact),
    };
    let results: Vec<Value> = objects
        .iter()
        .filter(|o| {
            query
                .conditions
                .iter()
                .all(|c| holds(c, &field(o, query.object_type, &c.field)))
                && query
                    .text
                    .as_deref()
                    .is_none_or(|q| searchable_text(o).contains(&q.to_lowercase()))
        })
        .map(|o| light_result(call, kind, o))
        .collect();
    let page = paging::page(&results, offset, query.limit, &call.data.app_id).with_note(|cursor| {
        format!("To get the next page, add to your query: starting_after:{cursor}")
    });
    Ok(Output::Text(page.into_json("results")))
}

/// The flattened DSL field names map onto Intercom's nested objects.
fn field(object: &Value, object_type: ObjectType, name: &str) -> Value {
    let value = match (object_type, name) {
        (ObjectType::Conversations, "source_type") => &object["source"]["type"],
        (ObjectType::Conversations, "source_author_name") => &object["source"]["author"]["name"],
        (ObjectType::Conversations, "source_author_email") => &object["source"]["author"]["email"],
        (ObjectType::Conversations, "source_subject") => &object["source"]["subject"],
        (ObjectType::Conversations, "source_body") => &object["source"]["body"],
        (ObjectType::Conversations, "contact_ids") => {
            let contacts = object["contacts"]["contacts"].as_array();
            let ids = contacts.into_iter().flatten().map(|c| c["id"].clone());
            return Value::Array(ids.collect());
        }
        (ObjectType::Conversations, stat) if stat.starts_with("statistics_") => {
            &object["statistics"][&stat["statistics_".len()..]]
        }
        (ObjectType::Contacts, attr) if attr.starts_with("custom_attributes.") => {
            &object["custom_attributes"][&attr["custom_attributes.".len()..]]
        }
        (_, other) => &object[other],
    };
    value.clone()
}

/// A condition holds when any value of the field satisfies it (`neq`/`nin`: none matches).
fn holds(condition: &Condition, actual: &Value) -> bool {
    let candidates: Vec<&Value> = match actual {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let any = |test: &dyn Fn(&Value, &str) -> bool| {
        candidates
            .iter()
            .any(|v| condition.values.iter().any(|want| test(v, want)))
    };
    match condition.op {
        Op::Eq | Op::In => any(&equals),
        Op::Neq | Op::Nin => !any(&equals),
        Op::Contains => any(&|v, want| text_of(v).contains(&want.to_lowercase())),
        Op::Gt => any(&|v, want| compare(v, want) == Some(Ordering::Greater)),
        Op::Gte => any(&|v, want| compare(v, want).is_some_and(Ordering::is_ge)),
        Op::Lt => any(&|v, want| compare(v, want) == Some(Ordering::Less)),
        Op::Lte => any(&|v, want| compare(v, want).is_some_and(Ordering::is_le)),
    }
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| value.as_str()?.parse().ok())
}

fn equals(value: &Value, want: &str) -> bool {
    match (value, number(value), want.parse::<f64>()) {
        (Value::Null, _, _) => want == "null",
        (_, Some(have), Ok(want)) => have == want,
        _ => text_of(value) == want.to_lowercase(),
    }
}

fn compare(value: &Value, want: &str) -> Option<Ordering> {
    match (number(value), want.parse::<f64>()) {
        (Some(have), Ok(want)) => have.partial_cmp(&want),
        _ if value.is_null() => None,
        _ => Some(text_of(value).as_str().cmp(want.to_lowercase().as_str())),
    }
}

fn searchable_text(object: &Value) -> String {
    [
        &object["source"]["subject"],
        &object["source"]["body"],
        &object["source"]["author"]["name"],
        &object["name"],
        &object["email"],
    ]
    .iter()
    .map(|v| text_of(v))
    .collect::<Vec<_>>()
    .join(" ")
}

/// `{id, title, text, url}` with a type-prefixed id, as Intercom's `search` answers.
fn light_result(call: &Call<'_>, kind: Kind, object: &Value) -> Value {
    let id = object["id"].as_str().unwrap_or_default();
    let (title, text) = describe(kind, object);
    json!({
        "id": format!("{}{id}", kind.prefix()),
        "title": title,
        "text": text,
        "url": call.data.url(kind, id),
    })
}

fn describe(kind: Kind, object: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match kind {
        Kind::Conversation => (
            s(&object["source"]["subject"]),
            format!(
                "[{}] {}",
                s(&object["state"]),
                strip_html(object["source"]["body"].as_str().unwrap_or_default())
            ),
        ),
        Kind::Contact => (
            s(&object["name"]),
            format!(
                "{} ({}) at {}",
                s(&object["email"]),
                s(&object["role"]),
                s(&object["workspace"])
            ),
        ),
        Kind::Company => (
            s(&object["name"]),
            format!(
                "{} company, {} users",
                s(&object["industry"]),
                object["user_count"]
            ),
        ),
    }
}

/// `fetch`: the full object plus the light fields, for any accepted id spelling.
pub(crate) fn fetch(call: &Call<'_>) -> Outcome {
    let raw = call.str("id").unwrap_or_default();
    let reference = ids::normalize(raw);
    let kinds: &[Kind] = match reference.as_ref().and_then(|r| r.kind) {
        Some(Kind::Conversation) => &[Kind::Conversation],
        Some(Kind::Contact) => &[Kind::Contact],
        Some(Kind::Company) => &[Kind::Company],
        None => &[Kind::Conversation, Kind::Contact, Kind::Company],
    };
    let id = reference.map(|r| r.id).unwrap_or_default();
    let found = kinds.iter().find_map(|&kind| {
        let object = match kind {
            Kind::Conversation => conversations::find(call, &id).ok(),
            Kind::Contact => contacts::find(call, &id).cloned(),
            Kind::Company => companies::find(call, &id).cloned(),
        };
        object.map(|o| (kind, o))
    });
    let Some((kind, object)) = found else {
        return Err(format!("Resource not found: {raw}"));
    };
    let object_id = object["id"].as_str().unwrap_or_default().to_owned();
    let (title, text) = describe(kind, &object);
    Ok(Output::Text(json!({
        "id": format!("{}{object_id}", kind.prefix()),
        "title": title,
        "text": text,
        "url": call.data.url(kind, &object_id),
        "metadata": object,
    })))
}
