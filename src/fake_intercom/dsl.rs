//! Parser for the query language of Intercom's `search` tool.
//!
//! Intercom documents it as space-separated `key[:op]:value` tokens, double quotes around values
//! with spaces or special characters, a mandatory `object_type:conversations|contacts`, the
//! operators `eq` (default) `neq gt gte lt lte in nin contains`, and the control tokens `limit:`,
//! `starting_after:` and `q:`. It "validates field names and operators, returning specific error
//! messages", so this parser rejects what it does not know instead of ignoring it.

use std::fmt;

/// Fields Intercom's guide lists for `object_type:conversations` (flattened names).
pub(crate) const CONVERSATION_FIELDS: &[&str] = &[
    "id",
    "state",
    "priority",
    "source_type",
    "source_author_name",
    "source_author_email",
    "source_subject",
    "source_body",
    "contact_ids",
    "team_assignee_id",
    "admin_assignee_id",
    "statistics_time_to_assignment",
    "statistics_time_to_admin_reply",
    "statistics_time_to_first_close",
    "created_at",
    "updated_at",
];

/// Fields for `object_type:contacts`; `custom_attributes.<name>` is accepted for any name.
pub(crate) const CONTACT_FIELDS: &[&str] = &[
    "id",
    "name",
    "email",
    "email_domain",
    "phone",
    "role",
    "created_at",
    "updated_at",
];

pub(crate) const DEFAULT_LIMIT: usize = 5;
pub(crate) const MAX_LIMIT: usize = 150;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectType {
    Conversations,
    Contacts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    Contains,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "in" => Op::In,
            "nin" => Op::Nin,
            "contains" => Op::Contains,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub field: String,
    pub op: Op,
    /// One value, or the comma-separated members for `in` / `nin`.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub object_type: ObjectType,
    pub conditions: Vec<Condition>,
    pub limit: usize,
    pub starting_after: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DslError {
    MissingObjectType,
    InvalidObjectType(String),
    UnterminatedQuote,
    MalformedToken(String),
    UnknownField {
        field: String,
        object_type: &'static str,
    },
    UnknownOperator {
        op: String,
        token: String,
    },
    InvalidLimit(String),
}

impl fmt::Display for DslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DslError::MissingObjectType => {
                f.write_str("Must specify object_type:conversations or object_type:contacts")
            }
            DslError::InvalidObjectType(v) => write!(
                f,
                "Invalid object_type '{v}'. Must specify object_type:conversations or object_type:contacts"
            ),
            DslError::UnterminatedQuote => f.write_str("Unterminated double quote in query"),
            DslError::MalformedToken(t) => write!(
                f,
                "Invalid query token '{t}': expected field:value or field:operator:value"
            ),
            DslError::UnknownField { field, object_type } => {
                let valid = match *object_type {
                    "contacts" => CONTACT_FIELDS.join(", ") + ", custom_attributes.<name>",
                    _ => CONVERSATION_FIELDS.join(", "),
                };
                write!(
                    f,
                    "Unknown field '{field}' for object_type:{object_type}. Valid fields: {valid}"
                )
            }
            DslError::UnknownOperator { op, token } => write!(
                f,
                "Unknown operator '{op}' in '{token}'. Valid operators: eq, neq, gt, gte, lt, lte, in, nin, contains"
            ),
            DslError::InvalidLimit(v) => write!(
                f,
                "Invalid limit '{v}': must be an integer between 1 and {MAX_LIMIT}"
            ),
        }
    }
}

/// Parses a whole `search` query string.
pub(crate) fn parse(input: &str) -> Result<Query, DslError> {
    let mut object_type = None;
    let mut raw_conditions = Vec::new();
    let mut limit = DEFAULT_LIMIT;
    let mut starting_after = None;
    let mut text = None;

    for token in tokenize(input)? {
        let (key, rest) = token
            .split_once(':')
            .ok_or_else(|| DslError::MalformedToken(token.clone()))?;
        if key.is_empty() || rest.is_empty() {
            return Err(DslError::MalformedToken(token));
        }
        // Control tokens take the rest verbatim: a cursor or free text may contain ':'.
        match key {
            "object_type" => {
                object_type = Some(match unquote(rest) {
                    "conversations" | "conversation" => ObjectType::Conversations,
                    "contacts" | "contact" => ObjectType::Contacts,
                    other => return Err(DslError::InvalidObjectType(other.to_owned())),
                })
            }
            "limit" => {
                let value = unquote(rest);
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| DslError::InvalidLimit(value.to_owned()))?;
            }
            "starting_after" => starting_after = Some(unquote(rest).to_owned()),
            "q" => text = Some(unquote(rest).to_owned()),
            field => raw_conditions.push(parse_condition(&token, field, rest)?),
        }
    }

    let object_type = object_type.ok_or(DslError::MissingObjectType)?;
    for condition in &raw_conditions {
        check_field(object_type, &condition.field)?;
    }
    Ok(Query {
        object_type,
        conditions: raw_conditions,
        limit,
        starting_after,
        text,
    })
}

fn parse_condition(token: &str, field: &str, rest: &str) -> Result<Condition, DslError> {
    // `field:"a:b"` is a quoted value; `field:op:value` names an operator; `field:value` is eq.
    let (op, value) = match rest.split_once(':') {
        Some((op, value)) if !rest.starts_with('"') => {
            let op = Op::parse(op).ok_or_else(|| DslError::UnknownOperator {
                op: op.to_owned(),
                token: token.to_owned(),
            })?;
            (op, value)
        }
        _ => (Op::Eq, rest),
    };
    if value.is_empty() {
        return Err(DslError::MalformedToken(token.to_owned()));
    }
    let value = unquote(value);
    let values = match op {
        Op::In | Op::Nin => value.split(',').map(|v| v.trim().to_owned()).collect(),
        _ => vec![value.to_owned()],
    };
    Ok(Condition {
        field: field.to_owned(),
        op,
        values,
    })
}

fn check_field(object_type: ObjectType, field: &str) -> Result<(), DslError> {
    let (known, name) = match object_type {
        ObjectType::Conversations => (CONVERSATION_FIELDS, "conversations"),
        ObjectType::Contacts => (CONTACT_FIELDS, "contacts"),
    };
    let custom = object_type == ObjectType::Contacts
        && field
            .strip_prefix("custom_attributes.")
            .is_some_and(|name| !name.is_empty());
    if known.contains(&field) || custom {
        Ok(())
    } else {
        Err(DslError::UnknownField {
            field: field.to_owned(),
            object_type: name,
        })
    }
}

/// Splits on whitespace outside double quotes; quotes stay in the token for `unquote`.
fn tokenize(input: &str) -> Result<Vec<String>, DslError> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in input.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(DslError::UnterminatedQuote);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests;
