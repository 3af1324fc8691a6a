//! Unit tests of the `search` DSL parser.

use super::*;

fn cond(field: &str, op: Op, values: &[&str]) -> Condition {
    Condition {
        field: field.into(),
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn plain_tokens_are_equality_conditions() {
    let q = parse("object_type:conversations state:open source_type:email").unwrap();
    assert_eq!(q.object_type, ObjectType::Conversations);
    assert_eq!(
        q.conditions,
        vec![
            cond("state", Op::Eq, &["open"]),
            cond("source_type", Op::Eq, &["email"])
        ]
    );
    assert_eq!(q.limit, DEFAULT_LIMIT);
}

#[test]
fn operators_quotes_and_control_tokens_are_understood() {
    let q = parse(
        r#"object_type:conversations source_body:contains:"refund please" limit:20 statistics_time_to_admin_reply:gt:3600 starting_after:WzEwXQ== q:"late: again""#,
    )
    .unwrap();
    assert_eq!(
        q.conditions,
        vec![
            cond("source_body", Op::Contains, &["refund please"]),
            cond("statistics_time_to_admin_reply", Op::Gt, &["3600"]),
        ]
    );
    assert_eq!(q.limit, 20);
    assert_eq!(q.starting_after.as_deref(), Some("WzEwXQ=="));
    assert_eq!(q.text.as_deref(), Some("late: again"));
}

#[test]
fn quoted_values_may_contain_colons_and_in_takes_a_list() {
    let q = parse(r#"object_type:contacts email_domain:"a.example" role:in:user,lead name:"x:y""#)
        .unwrap();
    assert_eq!(q.object_type, ObjectType::Contacts);
    assert_eq!(
        q.conditions,
        vec![
            cond("email_domain", Op::Eq, &["a.example"]),
            cond("role", Op::In, &["user", "lead"]),
            cond("name", Op::Eq, &["x:y"]),
        ]
    );
}

#[test]
fn custom_attributes_are_contact_fields_only() {
    assert!(parse("object_type:contacts custom_attributes.plan:pro").is_ok());
    assert!(matches!(
        parse("object_type:conversations custom_attributes.plan:pro"),
        Err(DslError::UnknownField { .. })
    ));
}

#[test]
fn a_query_without_object_type_is_rejected_with_intercoms_message() {
    let err = parse("state:open").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Must specify object_type:conversations or object_type:contacts"
    );
}

#[test]
fn unknown_fields_operators_and_bad_limits_get_specific_messages() {
    let err = parse("object_type:contacts favourite_colour:blue").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Unknown field 'favourite_colour'")
    );
    let err = parse("object_type:conversations state:like:open").unwrap_err();
    assert!(err.to_string().starts_with("Unknown operator 'like'"));
    let err = parse("object_type:conversations limit:151").unwrap_err();
    assert_eq!(err, DslError::InvalidLimit("151".into()));
    let err = parse("object_type:tickets").unwrap_err();
    assert_eq!(err, DslError::InvalidObjectType("tickets".into()));
}

#[test]
fn malformed_tokens_and_quotes_are_rejected() {
    assert_eq!(
        parse("object_type:contacts refund").unwrap_err(),
        DslError::MalformedToken("refund".into())
    );
    assert_eq!(
        parse(r#"object_type:contacts name:"Ada"#).unwrap_err(),
        DslError::UnterminatedQuote
    );
    assert!(parse("object_type:contacts name:").is_err());
}
