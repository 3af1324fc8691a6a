//! Building tool arguments from REST input, guided by the tool's `inputSchema`.
//!
//! Intercom does not publish its argument names, and they differ between tools
//! (`conversation_id`, `contact_id`, `id`), so the typed endpoints read them from the schema:
//! a path id goes to the tool's single required string property, and query parameters are
//! converted to the JSON types the schema declares (`per_page=5` becomes the number 5).

use serde_json::{Map, Number, Value};

use super::ToolSpec;

/// Why REST input could not become arguments; the message is for the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgumentError {
    #[error("`{name}` must be {expected}")]
    WrongType {
        name: String,
        expected: &'static str,
    },
    #[error("this tenant's `{tool}` tool does not accept `{name}`")]
    NotAccepted { tool: String, name: String },
    #[error("the upstream `{0}` tool has no single required string parameter to take the id")]
    NoIdParameter(String),
}

/// The name of the property that takes the resource id: the single required string property,
/// else the only string property called `id` or ending in `_id`.
pub fn id_parameter(tool: &ToolSpec) -> Result<String, ArgumentError> {
    let props = properties(tool);
    let is_string = |name: &str| {
        props
            .and_then(|p| p.get(name))
            .and_then(|s| s.get("type"))
            .is_some_and(|t| t == "string")
    };
    let required: Vec<&str> = tool
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .filter(|n| is_string(n))
                .collect()
        })
        .unwrap_or_default();
    if let [only] = required.as_slice() {
        return Ok((*only).to_owned());
    }
    let candidates: Vec<&String> = props
        .map(|p| {
            p.keys()
                .filter(|k| (k.as_str() == "id" || k.ends_with("_id")) && is_string(k))
                .collect()
        })
        .unwrap_or_default();
    match candidates.as_slice() {
        [only] => Ok((*only).clone()),
        _ => Err(ArgumentError::NoIdParameter(tool.name.clone())),
    }
}

/// Converts query parameters to arguments typed as the schema says. A parameter the schema
/// does not list is refused, so typos do not silently widen a search.
pub fn arguments_from_query(
    tool: &ToolSpec,
    params: &[(&str, &str)],
) -> Result<Map<String, Value>, ArgumentError> {
    let props = properties(tool);
    let mut args = Map::new();
    for &(name, raw) in params {
        let schema = props
            .and_then(|p| p.get(name))
            .ok_or_else(|| ArgumentError::NotAccepted {
                tool: tool.name.clone(),
                name: name.to_owned(),
            })?;
        args.insert(name.to_owned(), convert(name, raw, schema)?);
    }
    Ok(args)
}

fn properties(tool: &ToolSpec) -> Option<&Map<String, Value>> {
    tool.input_schema
        .get("properties")
        .and_then(Value::as_object)
}

/// The JSON type a property declares; `["integer", "null"]` counts as `integer`.
fn declared_type(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(s) => Some(s),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

fn convert(name: &str, raw: &str, schema: &Value) -> Result<Value, ArgumentError> {
    let wrong = |expected| ArgumentError::WrongType {
        name: name.to_owned(),
        expected,
    };
    Ok(match declared_type(schema) {
        Some("integer") => Value::Number(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| wrong("an integer"))?
                .into(),
        ),
        Some("number") => {
            let n: f64 = raw.trim().parse().map_err(|_| wrong("a number"))?;
            match raw.trim().parse::<i64>() {
                Ok(i) => Value::Number(i.into()),
                Err(_) => {
                    Value::Number(Number::from_f64(n).ok_or_else(|| wrong("a finite number"))?)
                }
            }
        }
        Some("boolean") => match raw.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(wrong("true or false")),
        },
        Some("array") => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            let parts = raw.split(',').map(str::trim).filter(|s| !s.is_empty());
            Value::Array(
                parts
                    .map(|p| convert(name, p, &items))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some("object") => serde_json::from_str::<Map<String, Value>>(raw)
            .map(Value::Object)
            .map_err(|_| wrong("a JSON object"))?,
        // `string`, or no declared type: pass the text through.
        _ => Value::String(raw.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn tool(name: &str, schema: Value) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            title: None,
            description: None,
            input_schema: Arc::new(schema.as_object().unwrap().clone()),
            read_only: true,
        }
    }

    #[test]
    fn the_id_goes_to_the_single_required_string_property() {
        let t = tool(
            "get_conversation",
            json!({"type":"object","properties":{"conversation_id":{"type":"string"},"display_as":{"type":"string"}},"required":["conversation_id"]}),
        );
        assert_eq!(id_parameter(&t).unwrap(), "conversation_id");
    }

    #[test]
    fn without_required_a_lone_id_like_property_is_used() {
        let t = tool(
            "fetch",
            json!({"type":"object","properties":{"id":{"type":"string"}}}),
        );
        assert_eq!(id_parameter(&t).unwrap(), "id");
        let none = tool(
            "x",
            json!({"type":"object","properties":{"q":{"type":"string"}}}),
        );
        assert!(matches!(
            id_parameter(&none),
            Err(ArgumentError::NoIdParameter(_))
        ));
    }

    #[test]
    fn query_values_take_the_schema_types() {
        let t = tool(
            "search_conversations",
            json!({"type":"object","properties":{
                "per_page":{"type":"integer"},"admin_assignee_id":{"type":["number","null"]},
                "state":{"type":"string","enum":["open","closed"]},"ids":{"type":"array","items":{"type":"string"}},
                "with_parts":{"type":"boolean"}}}),
        );
        let args = arguments_from_query(
            &t,
            &[
                ("per_page", "5"),
                ("admin_assignee_id", "42"),
                ("state", "open"),
                ("ids", "1, 2"),
                ("with_parts", "true"),
            ],
        )
        .unwrap();
        assert_eq!(
            Value::Object(args),
            json!({"per_page":5,"admin_assignee_id":42,"state":"open","ids":["1","2"],"with_parts":true})
        );
    }

    #[test]
    fn badly_typed_or_unknown_parameters_are_refused() {
        let t = tool(
            "s",
            json!({"type":"object","properties":{"per_page":{"type":"integer"}}}),
        );
        assert_eq!(
            arguments_from_query(&t, &[("per_page", "five")]),
            Err(ArgumentError::WrongType {
                name: "per_page".into(),
                expected: "an integer"
            })
        );
        assert!(matches!(
            arguments_from_query(&t, &[("pre_page", "5")]),
            Err(ArgumentError::NotAccepted { .. })
        ));
    }
}
