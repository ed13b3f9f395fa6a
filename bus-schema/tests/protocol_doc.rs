//! `docs/protocol.md` is the users' copy of the contract: every channel of the AsyncAPI export
//! (topics, and each command's suffix under the inbox), every role and every error code must
//! appear in it, so a command added to bus-schema without its documentation fails here.

use extbus_schema::{asyncapi, ErrorCode, Role};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `extbus/in/{principal}/tasks/{task_id}/get` -> `extbus/in/<principal>/tasks/<task_id>/get`.
fn angle(address: &str) -> String {
    address.replace('{', "<").replace('}', ">")
}

/// What the document must show for an address: the topic itself, or for a command its suffix
/// (the commands table lists suffixes under `extbus/in/<principal>/`).
fn expected(address: &str) -> String {
    let a = angle(address);
    match a.strip_prefix("extbus/in/<principal>/") {
        Some(suffix) => format!("`{suffix}`"),
        None => a,
    }
}

#[test]
fn every_channel_and_command_is_documented() {
    let doc = doc();
    let api = asyncapi::document();
    let channels = api["channels"].as_object().expect("channels");
    assert!(channels.len() >= 18, "{} channels", channels.len());
    let missing: Vec<String> = channels
        .values()
        .map(|c| expected(c["address"].as_str().expect("address")))
        .filter(|want| !doc.contains(want.as_str()))
        .collect();
    assert!(missing.is_empty(), "docs/protocol.md lacks {missing:?}");
}

#[test]
fn every_role_and_error_code_is_documented() {
    let doc = doc();
    for r in Role::ALL {
        assert!(doc.contains(&format!("`{}`", r.as_str())), "role {r:?}");
    }
    for c in ErrorCode::ALL {
        assert!(
            doc.contains(&format!("`{}`", c.as_str())),
            "error code {c:?}"
        );
    }
}

#[test]
fn the_check_sees_a_missing_command() {
    // The same check on a document without the resume row must fail.
    let doc = doc().replace("`tasks/<task_id>/resume`", "");
    assert!(!doc.contains(&expected("extbus/in/{principal}/tasks/{task_id}/resume")));
}
