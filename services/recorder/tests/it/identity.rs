//! Who acts is proven, not claimed: with an identity provider configured,
//! every command carries a signed token; the recorded actor is the one it
//! proves (or, for a delegate, the one the body names, marked delegated),
//! a body naming someone else is refused (403), and a token that proves no
//! one is refused (401) naming why. Real nats-server, real Ed25519 keys
//! made by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{sync::Arc, time::Duration};

use base64::Engine;
use prolo_recorder::{
    ServeSettings,
    identity::{Refused, Verifier, dev::Provider},
    reply::ErrorReply,
};
use prolo_schemas::{ActorRole, Envelope, EventType};
use prolo_tests::{NatsServer, Recorders, example_request, record_with_token, stream_messages};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use serde_json::json;

/// A server with every recording service trusting `provider`, `delegates`
/// allowed to record for others.
async fn trusting(provider: &Provider, delegates: &[&str]) -> (NatsServer, Recorders) {
    let nats = NatsServer::start().await.unwrap();
    let verifier = Verifier::new(&provider.settings(delegates).unwrap()).unwrap();
    let settings = ServeSettings {
        identity: Some(Arc::new(verifier)),
        ..ServeSettings::default()
    };
    let recorders = Recorders::start_with(&nats.url(), settings).await.unwrap();
    (nats, recorders)
}

/// A ten-minute token of `person` as a practitioner.
fn practitioner_token(provider: &Provider, person: &str) -> String {
    provider
        .mint(person, ActorRole::Practitioner, Duration::from_secs(600))
        .unwrap()
}

/// The example injection, as recorded by `actor` acting as a practitioner.
fn injection_by(actor: &str) -> serde_json::Value {
    let mut request = example_request("injection.given");
    request["actor"] = json!({"id": actor, "role": "practitioner"});
    request
}

fn refused(outcome: Result<prolo_bus::Recorded, ErrorReply>) -> ErrorReply {
    match outcome {
        Ok(recorded) => panic!("recorded: {recorded:?}"),
        Err(reply) => reply,
    }
}

/// The refusal of `request` sent with `token`; panics when it is recorded.
async fn refusal(
    client: &async_nats::Client,
    event_type: EventType,
    request: &serde_json::Value,
    token: Option<&str>,
) -> ErrorReply {
    refused(record_with_token(client, event_type, request, token).await)
}

/// The stored event at `seq`.
async fn stored(nats: &NatsServer, seq: u64) -> Envelope {
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream(prolo_bus::STREAM_NAME).await.unwrap();
    let message = stream.get_raw_message(seq).await.unwrap();
    Envelope::from_json(&message.payload).unwrap()
}

#[tokio::test]
async fn a_spoofed_actor_is_refused_and_the_proven_one_is_stored_with_its_proof() {
    let provider = Provider::generate().unwrap();
    let (nats, recorders) = trusting(&provider, &[]).await;
    let client = nats.client().await.unwrap();
    let hale = practitioner_token(&provider, "dr-hale");

    // dr-hale's token, an injection claimed to be dr-someone-else's.
    let spoofed = injection_by("dr-someone-else");
    let reply = refusal(&client, EventType::InjectionGiven, &spoofed, Some(&hale)).await;
    assert_eq!(
        (reply.error.status, reply.error.code.as_str()),
        (403, "actor_not_proven")
    );
    assert!(
        reply.error.message.contains("dr-someone-else") && reply.error.message.contains("dr-hale"),
        "{}",
        reply.error.message
    );
    // The same role but another person's claim is no better.
    let clerk = provider
        .mint(
            "mallory-frontdesk",
            ActorRole::Clerk,
            Duration::from_secs(600),
        )
        .unwrap();
    let as_hale = injection_by("dr-hale");
    let reply = refusal(&client, EventType::InjectionGiven, &as_hale, Some(&clerk)).await;
    assert_eq!(reply.error.status, 403, "{reply:?}");
    // No token at all: 401, naming the header.
    let reply = refusal(&client, EventType::InjectionGiven, &as_hale, None).await;
    assert_eq!(
        (reply.error.status, reply.error.code.as_str()),
        (401, "unauthenticated")
    );
    assert!(
        reply.error.message.contains("Authorization: Bearer"),
        "{reply:?}"
    );
    // No injection stored: the three refusals, each by whom the token
    // proved (no one for the 401), on the trail.
    let js = async_nats::jetstream::new(client.clone());
    assert_eq!(stream_messages(&js).await, 3);
    let mut refused_by = Vec::new();
    for seq in 1..=3 {
        let event = stored(&nats, seq).await;
        let prolo_schemas::Payload::AccessRefused(payload) = &event.payload else {
            panic!("not a refusal: {event:?}");
        };
        refused_by.push((payload.principal_id.to_string(), payload.status));
        assert_eq!(payload.path, "prolo.cmd.riverside.injection.give");
        assert_eq!(event.actor_proof.is_some(), payload.status == 403);
    }
    assert_eq!(
        refused_by,
        [
            ("dr-hale".to_owned(), 403),
            ("mallory-frontdesk".to_owned(), 403),
            ("anonymous".to_owned(), 401)
        ]
    );

    // The proven practitioner's own injection is stored, with its proof.
    let recorded = record_with_token(&client, EventType::InjectionGiven, &as_hale, Some(&hale))
        .await
        .unwrap();
    let event = stored(&nats, recorded.stream_seq).await;
    assert_eq!(event.actor.id, "dr-hale");
    assert_eq!(event.actor.role, ActorRole::Practitioner);
    let proof = event.actor_proof.expect("a proven actor carries its proof");
    assert_eq!(proof.issuer, prolo_recorder::identity::dev::ISSUER);
    assert_eq!(proof.subject, "dr-hale");
    assert!(!proof.delegated);
    assert_eq!(proof.key_id.as_deref(), Some(provider.kid()));
    assert!(proof.token_id.is_some() && proof.authenticated_at.is_some());
    recorders.stop().await;
}

#[tokio::test]
async fn a_delegate_records_for_the_actor_it_names_and_others_may_not() {
    let provider = Provider::generate().unwrap();
    let (nats, recorders) = trusting(&provider, &["ehr-riverside"]).await;
    let client = nats.client().await.unwrap();
    let ehr = provider
        .mint(
            "ehr-riverside",
            ActorRole::Service,
            Duration::from_secs(600),
        )
        .unwrap();
    let recorded = record_with_token(
        &client,
        EventType::InjectionGiven,
        &injection_by("dr-hale"),
        Some(&ehr),
    )
    .await
    .unwrap();
    let event = stored(&nats, recorded.stream_seq).await;
    assert_eq!(event.actor.id, "dr-hale", "the actor the integration names");
    let proof = event.actor_proof.unwrap();
    assert_eq!(
        (proof.subject.as_str(), proof.delegated),
        ("ehr-riverside", true)
    );

    // A service that is not a delegate cannot.
    let other = provider
        .mint("lab-feed", ActorRole::Service, Duration::from_secs(600))
        .unwrap();
    let reply = refusal(
        &client,
        EventType::InjectionGiven,
        &injection_by("dr-hale"),
        Some(&other),
    )
    .await;
    assert_eq!(reply.error.status, 403, "{reply:?}");
    recorders.stop().await;
}

#[tokio::test]
async fn a_batch_is_proven_once_and_each_event_must_be_the_proven_actors() {
    let provider = Provider::generate().unwrap();
    let (nats, recorders) = trusting(&provider, &[]).await;
    let client = nats.client().await.unwrap();
    let hale = practitioner_token(&provider, "dr-hale");
    let body = json!({"events": [
        {"command": "injection.give", "request": injection_by("dr-hale")},
        {"command": "injection.give", "request": injection_by("dr-someone-else")},
    ]});
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Authorization", format!("Bearer {hale}").as_str());
    let subject = prolo_recorder::commands::batch_subject("riverside");
    let reply = client
        .request_with_headers(
            subject.clone(),
            headers,
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap();
    let answer: prolo_recorder::batch::BatchReply = serde_json::from_slice(&reply.payload).unwrap();
    assert!(answer.results[0].recorded.is_some(), "{answer:?}");
    let error = answer.results[1]
        .error
        .as_ref()
        .expect("the other actor's event is refused");
    assert_eq!(
        (error.status, error.code.as_str()),
        (403, "actor_not_proven")
    );
    // Without a token the whole batch is refused.
    let reply = client
        .request(subject, serde_json::to_vec(&body).unwrap().into())
        .await
        .unwrap();
    let refusal: ErrorReply = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(refusal.error.status, 401);
    recorders.stop().await;
}

/// The parts of a JWT, and one put back together.
fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn b64(json: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

#[tokio::test]
async fn tokens_that_prove_no_one_are_refused_naming_why() {
    let provider = Provider::generate().unwrap();
    let (nats, recorders) = trusting(&provider, &[]).await;
    let client = nats.client().await.unwrap();
    let ten_minutes = Duration::from_secs(600);
    let claims = || provider.claims("dr-hale", ActorRole::Practitioner, ten_minutes);

    let mut expired = claims();
    expired.exp = chrono::Utc::now().timestamp() - 3600;
    let mut early = claims();
    let nbf = chrono::Utc::now().timestamp() + 3600;
    let early = {
        early.iat = nbf;
        let mut value = serde_json::to_value(&early).unwrap();
        value["nbf"] = nbf.into();
        provider.sign(&value).unwrap()
    };
    let mut other_audience = claims();
    other_audience.aud = "another-system".into();
    let wrong_issuer = Provider::from_pkcs8(provider.pkcs8())
        .unwrap()
        .with_issuer("https://totally-real-idp.example")
        .mint("dr-hale", ActorRole::Practitioner, ten_minutes)
        .unwrap();
    let resigned = Provider::generate()
        .unwrap()
        .with_kid(provider.kid())
        .mint("dr-hale", ActorRole::Practitioner, ten_minutes)
        .unwrap();
    let unknown_key = Provider::generate()
        .unwrap()
        .mint("dr-hale", ActorRole::Practitioner, ten_minutes)
        .unwrap();
    let good = provider
        .mint("dr-hale", ActorRole::Practitioner, ten_minutes)
        .unwrap();
    let p = parts(&good);
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), p[1]);
    let hs256 = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "HS256", "kid": provider.kid()})),
        p[1],
        p[2]
    );
    // The role raised to compliance, the signature left as it was.
    let mut raised: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&p[1])
            .unwrap(),
    )
    .unwrap();
    raised["role"] = "compliance".into();
    let tampered = format!("{}.{}.{}", p[0], b64(&raised), p[2]);
    let mut no_role = serde_json::to_value(claims()).unwrap();
    no_role.as_object_mut().unwrap().remove("role");
    let mut odd_role = serde_json::to_value(claims()).unwrap();
    odd_role["role"] = "superuser".into();

    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", provider.sign(&expired).unwrap(), "token_expired"),
        ("not yet valid", early, "token_not_yet_valid"),
        (
            "another audience",
            provider.sign(&other_audience).unwrap(),
            "token_audience",
        ),
        ("another issuer", wrong_issuer, "token_issuer"),
        (
            "re-signed with another key under the provider's kid",
            resigned,
            "token_signature",
        ),
        (
            "a key the provider does not publish",
            unknown_key,
            "token_unknown_key",
        ),
        ("alg none", none, "token_algorithm"),
        ("a shared-secret algorithm", hs256, "token_algorithm"),
        ("claims altered after signing", tampered, "token_signature"),
        ("no role", provider.sign(&no_role).unwrap(), "token_claim"),
        (
            "a role no one has",
            provider.sign(&odd_role).unwrap(),
            "token_claim",
        ),
        ("not a JWT", "hello".to_owned(), "token_malformed"),
    ];
    for (what, token, code) in cases {
        let reply = refusal(
            &client,
            EventType::InjectionGiven,
            &injection_by("dr-hale"),
            Some(&token),
        )
        .await;
        assert_eq!(reply.error.status, 401, "{what}: {reply:?}");
        assert_eq!(reply.error.code, "unauthenticated", "{what}");
        let problem = &reply.error.problems[0].message;
        assert!(problem.starts_with(code), "{what}: {problem}");
    }
    // The same request with the good token is recorded: the refusals were
    // about the tokens.
    record_with_token(
        &client,
        EventType::InjectionGiven,
        &injection_by("dr-hale"),
        Some(&good),
    )
    .await
    .unwrap();
    recorders.stop().await;
}

#[test]
fn a_thousand_malformed_tokens_are_refused_without_a_panic() {
    let provider = Provider::generate().unwrap();
    let verifier = Verifier::new(&provider.settings(&[]).unwrap()).unwrap();
    let good = practitioner_token(&provider, "dr-hale");
    let good_parts = parts(&good);
    // Garbage, and the good token cut, spliced and with bytes changed.
    let token = prop_oneof![
        prolo_tests::hostile::text_of(8, ".{0,300}", 5000),
        (0..good.len(), 0..good.len()).prop_map({
            let good = good.clone();
            move |(a, b)| format!("{}{}", &good[..a.min(b)], &good[a.max(b)..])
        }),
        (0..good.len(), any::<u8>()).prop_map({
            let good = good.clone();
            move |(at, byte)| {
                let mut bytes = good.clone().into_bytes();
                bytes[at] = b'A' + byte % 26;
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }),
        (prolo_tests::hostile::text_of(4, ".{0,60}", 200), 0..3usize).prop_map({
            let good_parts = good_parts.clone();
            move |(text, part)| {
                let mut p = good_parts.clone();
                p[part] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
                p.join(".")
            }
        }),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&token, |token| {
            if token == good {
                return Ok(());
            }
            let outcome = verifier.verify(&token);
            prop_assert!(outcome.is_err(), "accepted {token:?}");
            Ok(())
        })
        .unwrap();
    // The reasons are named.
    assert_eq!(verifier.verify("").unwrap_err().code(), "token_malformed");
    assert!(matches!(
        verifier.verify("a.b.c"),
        Err(Refused::Malformed(_))
    ));
}

#[tokio::test]
async fn a_clerk_may_not_record_a_credential_nor_void_an_adverse_event() {
    let provider = Provider::generate().unwrap();
    let (nats, recorders) = trusting(&provider, &[]).await;
    let client = nats.client().await.unwrap();
    let clerk = json!({"id": "frontdesk-mallory", "role": "clerk"});
    let clerks_token = provider
        .mint(
            "frontdesk-mallory",
            ActorRole::Clerk,
            Duration::from_secs(600),
        )
        .unwrap();

    // A credential, as herself (proven), from a board of her own.
    let mut credential = example_request("practitioner.credentialed");
    credential["actor"] = clerk.clone();
    credential["payload"]["issuer"] = "Totally Real Board".into();
    let reply = refusal(
        &client,
        EventType::PractitionerCredentialed,
        &credential,
        Some(&clerks_token),
    )
    .await;
    assert_eq!(
        (reply.error.status, reply.error.code.as_str()),
        (403, "not_permitted")
    );
    assert!(
        reply
            .error
            .message
            .contains("clerk may not record practitioner.credentialed"),
        "{reply:?}"
    );

    // An infection, reported by dr-hale; the clerk marks it entered in error.
    let hale = practitioner_token(&provider, "dr-hale");
    let injection = record_with_token(
        &client,
        EventType::InjectionGiven,
        &injection_by("dr-hale"),
        Some(&hale),
    )
    .await
    .unwrap();
    let mut infection = example_request("adverse_event.reported");
    infection["payload"]["linked_injection"]["event_id"] = injection.event_id.to_string().into();
    let infection = record_with_token(
        &client,
        EventType::AdverseEventReported,
        &infection,
        Some(&hale),
    )
    .await
    .unwrap();
    let mut void = example_request("record.entered_in_error");
    void["actor"] = clerk;
    void["payload"]["target"] =
        json!({"event_id": infection.event_id, "event_type": "adverse_event.reported"});
    let reply = refusal(
        &client,
        EventType::RecordEnteredInError,
        &void,
        Some(&clerks_token),
    )
    .await;
    assert_eq!(
        (reply.error.status, reply.error.code.as_str()),
        (403, "not_permitted")
    );
    // Nothing of either was stored; both refusals were, as access.refused
    // by the proven clerk, naming the command and why.
    let js = async_nats::jetstream::new(client.clone());
    assert_eq!(stream_messages(&js).await, 4);
    let stored: Vec<Envelope> =
        futures::future::join_all((1..=4).map(|seq| stored(&nats, seq))).await;
    let types: Vec<&str> = stored.iter().map(|e| e.event_type().as_str()).collect();
    assert_eq!(
        types,
        [
            "access.refused",
            "injection.given",
            "adverse_event.reported",
            "access.refused"
        ]
    );
    for (refused, command) in [
        (&stored[0], "prolo.cmd.riverside.practitioner.credential"),
        (
            &stored[3],
            "prolo.cmd.riverside.record.mark_entered_in_error",
        ),
    ] {
        let prolo_schemas::Payload::AccessRefused(payload) = &refused.payload else {
            panic!("{refused:?}");
        };
        assert_eq!(payload.principal_id.as_str(), "frontdesk-mallory");
        assert_eq!((payload.path.as_str(), payload.status), (command, 403));
        assert!(payload.reason.starts_with("not_permitted: "), "{payload:?}");
        assert_eq!(refused.clinic_id.as_str(), "riverside");
        assert_eq!(refused.actor.id, "frontdesk-mallory");
        assert_eq!(
            refused.actor_proof.as_ref().unwrap().subject,
            "frontdesk-mallory"
        );
    }

    // The credentialing office may record the credential; the practitioner may void.
    let office = provider
        .mint(
            "credentialing-office",
            ActorRole::Compliance,
            Duration::from_secs(600),
        )
        .unwrap();
    record_with_token(
        &client,
        EventType::PractitionerCredentialed,
        &example_request("practitioner.credentialed"),
        Some(&office),
    )
    .await
    .unwrap();
    void["actor"] = json!({"id": "dr-hale", "role": "practitioner"});
    record_with_token(&client, EventType::RecordEnteredInError, &void, Some(&hale))
        .await
        .unwrap();
    recorders.stop().await;
}

#[tokio::test]
async fn a_signature_is_the_signers_own_freshly_authenticated_act() {
    let provider = Provider::generate().unwrap();
    let (nats, recorders) = trusting(&provider, &["ehr-riverside"]).await;
    let client = nats.client().await.unwrap();
    let hale = practitioner_token(&provider, "dr-hale");
    let injection = record_with_token(
        &client,
        EventType::InjectionGiven,
        &injection_by("dr-hale"),
        Some(&hale),
    )
    .await
    .unwrap();
    let of_the_injection =
        prolo_tests::signature_of(&client, &injection, EventType::InjectionGiven).await;
    let signature = |signer: &str| {
        let mut request = of_the_injection.clone();
        request["actor"] = json!({"id": signer, "role": "practitioner"});
        request["payload"]["signer_id"] = "dr-hale".into();
        request
    };
    let sign = |request: serde_json::Value, token: String| {
        let client = client.clone();
        async move { record_with_token(&client, EventType::RecordSigned, &request, Some(&token)).await }
    };

    // Another practitioner signing as dr-hale; the EHR signing for him;
    // dr-hale himself, signed in an hour ago.
    let okafor = practitioner_token(&provider, "dr-okafor");
    let mut stale = provider.claims("dr-hale", ActorRole::Practitioner, Duration::from_secs(600));
    stale.auth_time -= 3600;
    let ehr = provider
        .mint(
            "ehr-riverside",
            ActorRole::Service,
            Duration::from_secs(600),
        )
        .unwrap();
    for (what, request, token, says) in [
        (
            "another practitioner",
            signature("dr-okafor"),
            okafor,
            "only the signer may sign",
        ),
        (
            "an integration",
            signature("dr-hale"),
            ehr,
            "may not sign on anyone's behalf",
        ),
        (
            "a stale sign-in",
            signature("dr-hale"),
            provider.sign(&stale).unwrap(),
            "sign-in within the last 300 seconds",
        ),
    ] {
        let reply = refused(sign(request, token).await);
        assert_eq!(
            (reply.error.status, reply.error.code.as_str()),
            (403, "signature_not_proven"),
            "{what}: {reply:?}"
        );
        assert!(
            reply.error.message.contains(says),
            "{what}: {}",
            reply.error.message
        );
    }
    // dr-hale's own, but of other bytes than the injection as stored, or
    // of an event that is not stored: 409, the signature is of a record.
    let mut other_bytes = signature("dr-hale");
    other_bytes["payload"]["signed_event_sha256"] = "0".repeat(64).into();
    let mut nothing_stored = signature("dr-hale");
    nothing_stored["payload"]["target"]["event_id"] = uuid::Uuid::now_v7().to_string().into();
    for (request, says) in [
        (other_bytes, "is not of event"),
        (nothing_stored, "is stored under this record"),
    ] {
        let reply = refused(sign(request, hale.clone()).await);
        assert_eq!(
            (reply.error.status, reply.error.code.as_str()),
            (409, "signature_not_of_record"),
            "{reply:?}"
        );
        assert!(
            reply.error.message.contains(says),
            "{}",
            reply.error.message
        );
    }
    // Signed by dr-hale, signed in just now, of the injection as stored:
    // recorded, proven.
    let signed = sign(signature("dr-hale"), hale).await.unwrap();
    let event = stored(&nats, signed.stream_seq).await;
    let proof = event.actor_proof.unwrap();
    assert_eq!(
        (proof.subject.as_str(), proof.delegated),
        ("dr-hale", false)
    );
    recorders.stop().await;
}

/// A refused command's subject is the caller's text: a clinic token that
/// is no clinic id (bidi, zero-width, encoded traversal,
/// a very long one) files the refusal under `_unscoped`, and its `path` is
/// kept clean (no control or deceptive characters, at most 500 characters).
#[tokio::test]
async fn a_refused_command_on_a_hostile_subject_is_recorded_unscoped_and_clean() {
    let provider = Provider::generate().unwrap();
    let (nats, recorders) = trusting(&provider, &[]).await;
    let client = nats.client().await.unwrap();
    let hostile = [
        "river\u{202e}side".to_owned(),
        "ri\u{200b}verside".to_owned(),
        "%2e%2e%2f%2e%2e".to_owned(),
        "x".repeat(600),
    ];
    for clinic in &hostile {
        let subject = format!("prolo.cmd.{clinic}.injection.give");
        let reply = client
            .request(
                subject,
                serde_json::to_vec(&injection_by("dr-hale")).unwrap().into(),
            )
            .await
            .unwrap();
        let refused: ErrorReply = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(refused.error.status, 401, "{clinic:?}: {refused:?}");
    }
    let js = async_nats::jetstream::new(client.clone());
    assert_eq!(stream_messages(&js).await, hostile.len() as u64);
    for seq in 1..=hostile.len() as u64 {
        let event = stored(&nats, seq).await;
        assert_eq!(event.clinic_id.as_str(), "_unscoped", "{event:?}");
        let prolo_schemas::Payload::AccessRefused(payload) = &event.payload else {
            panic!("not a refusal: {event:?}");
        };
        assert_eq!(payload.principal_id.as_str(), "anonymous");
        assert!(payload.path.chars().count() <= 500, "{}", payload.path);
        assert!(
            !payload
                .path
                .chars()
                .any(|c| c.is_control() || prolo_schemas::is_deceptive(c)),
            "{:?}",
            payload.path
        );
    }
    recorders.stop().await;
}
