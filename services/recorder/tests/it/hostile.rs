//! Hostile input, generated: more than 10,000 requests (random JSON,
//! mutated valid requests, huge numbers, deep nesting, odd Unicode with
//! bidirectional and zero-width characters) through the request decoder,
//! the clinic check, stamping and validation, exactly as a recording service
//! handles them. None panics; every refusal names a field and a code; what
//! is accepted is a valid event; identifiers and free text never carry a
//! bidirectional or invisible character.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use prolo_recorder::request::{check_clinic, parse, stamp};
use prolo_schemas::{ContractError, EventType};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Runs a body through everything a service does before publishing.
fn handle(event_type: EventType, body: &[u8]) -> Result<prolo_schemas::Envelope, ContractError> {
    let request = parse(event_type, body)?;
    check_clinic(event_type, &request, "prolo.cmd.riverside.x")?;
    let envelope = stamp(event_type, "test", request, chrono::Utc::now())?;
    envelope.validate()?;
    Ok(envelope)
}

/// Bidirectional controls and invisible separators, listed here on their
/// own so that the property does not trust the validator's list.
fn deceptive(c: char) -> bool {
    ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
        || ['\u{200B}', '\u{2060}', '\u{FEFF}'].contains(&c)
}

/// Asserts the outcome is what the contract promises.
fn judge(event_type: EventType, body: &[u8]) {
    match handle(event_type, body) {
        Ok(envelope) => {
            assert!(envelope.validate().is_ok());
            let json = String::from_utf8(envelope.to_json()).unwrap();
            for c in json.chars() {
                assert!(
                    !deceptive(c),
                    "accepted an event carrying U+{:04X}: {json}",
                    c as u32
                );
            }
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "a refusal without problems: {e}");
            for problem in &e.problems {
                assert!(!problem.path.is_empty(), "a problem without a field: {e}");
                assert!(!problem.message.is_empty(), "{e}");
            }
        }
    }
}

/// Strings a careless or hostile system sends: odd Unicode, bidi and
/// zero-width characters, control characters, very long ones.
fn odd_text() -> impl Strategy<Value = String> {
    prolo_tests::hostile::text_of(6, ".{0,40}", 5000)
}

/// Any JSON value, with huge and odd numbers, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(serde_json::from_str::<Value>("18446744073709551615").unwrap()),
        odd_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(odd_text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn event_type() -> impl Strategy<Value = EventType> {
    let clinical: Vec<EventType> = EventType::ALL
        .iter()
        .copied()
        .filter(|t| t.is_clinical())
        .collect();
    prop::sample::select(clinical)
}

/// Every path to a value inside `value`.
fn paths(value: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let mut p = prefix.clone();
                p.push(k.clone());
                paths(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(i.to_string());
                paths(v, p, out);
            }
        }
        _ => {}
    }
}

fn at_path<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    AddUnknown(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any_json().prop_map(Mutation::Replace),
        Just(Mutation::Remove),
        (odd_text(), any_json()).prop_map(|(k, v)| Mutation::AddUnknown(k, v)),
        odd_text().prop_map(|s| Mutation::Replace(Value::String(s))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn random_json_is_refused_field_by_field_or_accepted_as_valid(
        event_type in event_type(),
        value in any_json(),
    ) {
        judge(event_type, &serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn mutated_valid_requests_never_panic_and_name_what_is_wrong(
        event_type in event_type(),
        choice in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut request = prolo_tests::example_request(event_type.as_str());
        for m in mutations {
            let mut all = Vec::new();
            paths(&request, Vec::new(), &mut all);
            let path = all[choice.index(all.len())].clone();
            match (m, path.split_last()) {
                (Mutation::Replace(v), _) => {
                    if let Some(slot) = at_path(&mut request, &path) {
                        *slot = v;
                    }
                }
                (Mutation::Remove, Some((last, parent))) => {
                    match at_path(&mut request, parent) {
                        Some(Value::Object(map)) => { map.remove(last); }
                        Some(Value::Array(items)) => {
                            if let Ok(i) = last.parse::<usize>() && i < items.len() {
                                items.remove(i);
                            }
                        }
                        _ => {}
                    }
                }
                (Mutation::Remove, None) => {}
                (Mutation::AddUnknown(k, v), _) => {
                    if let Some(Value::Object(map)) = at_path(&mut request, &path) {
                        map.insert(k, v);
                    }
                }
            }
        }
        judge(event_type, &serde_json::to_vec(&request).unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_500, ..ProptestConfig::default() })]

    #[test]
    fn odd_unicode_in_every_text_field_is_refused_or_kept_harmless(
        event_type in event_type(),
        text in odd_text(),
        choice in any::<prop::sample::Index>(),
    ) {
        let mut request = prolo_tests::example_request(event_type.as_str());
        let mut all = Vec::new();
        paths(&request, Vec::new(), &mut all);
        let strings: Vec<Vec<String>> = all
            .into_iter()
            .filter(|p| matches!(at_path(&mut request.clone(), p), Some(Value::String(_))))
            .collect();
        let path = strings[choice.index(strings.len())].clone();
        if let Some(slot) = at_path(&mut request, &path) {
            *slot = Value::String(text);
        }
        judge(event_type, &serde_json::to_vec(&request).unwrap());
    }
}

#[test]
fn deep_nesting_and_huge_numbers_are_refused_without_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_payload = format!(
        r#"{{"clinic_id":"riverside","occurred_at":"2026-10-01T09:30:00Z","actor":{{"id":"a","role":"practitioner"}},"payload":{}{}}}"#,
        "{\"a\":".repeat(5_000),
        "1".to_owned() + &"}".repeat(5_000)
    );
    for body in [
        deep.as_str(),
        nested_payload.as_str(),
        r#"{"clinic_id":"riverside","occurred_at":"2026-10-01T09:30:00Z","actor":{"id":"a","role":"practitioner"},"payload":{"volume_ml":1e400}}"#,
        r#"{"clinic_id":"riverside","occurred_at":"+275760-09-13T00:00:00Z","actor":{"id":"a","role":"practitioner"},"payload":{}}"#,
    ] {
        for event_type in [EventType::InjectionGiven, EventType::ConsentGiven] {
            let refused = handle(event_type, body.as_bytes()).unwrap_err();
            assert!(!refused.problems.is_empty());
            assert!(!refused.problems[0].path.is_empty(), "{refused}");
        }
    }
}

#[test]
fn bidi_and_zero_width_characters_are_refused_in_identifiers_and_free_text() {
    for c in ['\u{202E}', '\u{2066}', '\u{200B}', '\u{FEFF}', '\u{2060}'] {
        let mut request = prolo_tests::example_request("injection.given");
        request["patient_id"] = format!("P-1{c}042").into();
        let refused = handle(
            EventType::InjectionGiven,
            &serde_json::to_vec(&request).unwrap(),
        )
        .unwrap_err();
        assert_eq!(refused.problems[0].path, "patient_id", "{refused}");

        let mut request = prolo_tests::example_request("injection.given");
        request["actor"]["id"] = format!("dr-hale{c}").into();
        let refused = handle(
            EventType::InjectionGiven,
            &serde_json::to_vec(&request).unwrap(),
        )
        .unwrap_err();
        assert_eq!(refused.problems[0].path, "actor.id", "{refused}");
        assert_eq!(refused.problems[0].code.as_str(), "bad_text", "{refused}");
    }
    // Joiners and direction marks that real scripts need stay allowed.
    let mut request = prolo_tests::example_request("adverse_event.reported");
    request["payload"]["description"] = "مریض\u{200C}ها \u{200F}تب دارند".into();
    handle(
        EventType::AdverseEventReported,
        &serde_json::to_vec(&request).unwrap(),
    )
    .unwrap();
}
