//! Unit tests of `actions`: declarations, checks, redaction and templates.

use super::*;
use serde_json::json;

fn spec_action() -> ActionSpec {
    serde_json::from_value(json!({"name": "snapshot", "title": "Take a snapshot",
        "resource": "urn:extbus:type:acme:vm:1.0.0", "roles": ["operator"], "timeout_ms": 10000,
        "parameters": {"type": "object", "required": ["label"], "properties": {
            "label": {"type": "string"}, "quiesce": {"type": "boolean"},
            "at": {"type": "string", "format": "date-time"}, "mode": {"enum": ["fast", "safe"]},
            "password": {"type": "string", "format": "password", "default": "hunter2"}}},
        "success_message": "Snapshot {{label}} of {{resource}} taken ({{password}})"}))
    .unwrap()
}

#[test]
fn roles_and_defaults() {
    let a = spec_action();
    assert!(a.permits(&[Role::Operator]));
    assert!(a.permits(&[Role::Admin]));
    assert!(!a.permits(&[Role::Observer, Role::Platform]));
    let d: ActionSpec = serde_json::from_value(json!({"name": "x"})).unwrap();
    assert_eq!((d.resource.as_str(), d.timeout_ms), ("none", 10_000));
    assert!(d.roles.is_empty() && !d.permits(&[Role::Operator]));
}

#[test]
fn formats_are_checked_and_password_accepted() {
    let a = spec_action();
    let v = a.compile().unwrap();
    assert!(v.is_valid(&json!({"label": "a", "at": "2026-01-01T00:00:00Z", "password": "p"})));
    assert!(!v.is_valid(&json!({"label": "a", "at": "yesterday"})));
    assert!(!v.is_valid(&json!({"mode": "fast"})));
    let f: ActionSpec = serde_json::from_value(json!({"name": "f", "parameters": {
        "properties": {"e": {"format": "email"}, "u": {"format": "uri"}, "id": {"format": "uuid"}}}}))
    .unwrap();
    let v = f.compile().unwrap();
    assert!(v.is_valid(&json!({"e": "a@b.org", "u": "https://x.org/a", "id": "0193f6c2-0000-7000-8000-000000000000"})));
    for bad in [
        json!({"e": "nope"}),
        json!({"u": "not a uri"}),
        json!({"id": "123"}),
    ] {
        assert!(!v.is_valid(&bad), "{bad}");
    }
}

#[test]
fn passwords_are_redacted_everywhere_but_the_request() {
    let a = spec_action();
    assert_eq!(a.password_paths(), ["/password"]);
    let args = json!({"label": "n", "password": "s3cret"});
    assert_eq!(a.redact(&args), json!({"label": "n", "password": REDACTED}));
    let text = a.success_text(&args, Some("vm-1")).unwrap();
    assert_eq!(text, "Snapshot n of vm-1 taken (********)");
    let listed = serde_json::to_string(&a.listed()).unwrap();
    assert!(!listed.contains("hunter2"), "{listed}");
}

#[test]
fn templates_fill_known_names_only() {
    let args = json!({"n": 3, "s": "x", "o": {"a": 1}});
    assert_eq!(
        fill("{{n}}-{{ s }}-{{o}}-{{missing}}-{{resource}}", &args, None),
        "3-x-{\"a\":1}--"
    );
    assert_eq!(fill("open {{ end", &args, None), "open {{ end");
}

#[test]
fn checks_name_each_location() {
    let mut b = spec_action();
    b.resource = "vm".into();
    b.parameters = json!({"type": "nope"});
    b.name = "Bad".into();
    let (mut d, mut n) = (Vec::new(), NameCheck::new());
    check(&[spec_action(), b, spec_action()], &mut d, &mut n);
    let paths: Vec<_> = d.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/actions/1/parameters", "/actions/1/resource", "/actions/2"]
    );
    assert_eq!(n.finish().unwrap_err().details[0].path, "/actions/1/name");
    for ok in [
        "none",
        "task:vapp.instantiate",
        "urn:extbus:type:acme:vm:1.0.0",
    ] {
        assert!(valid_resource(ok));
    }
}

#[test]
fn messages_round_trip() {
    let r: ActionResponse =
        serde_json::from_value(json!({"id": "r", "status": "error", "message": [{"a": 1}]}))
            .unwrap();
    assert_eq!(r.status, RunStatus::Error);
    let q = ActionRequest {
        id: "r".into(),
        action: "snapshot".into(),
        resource_id: None,
        arguments: json!({}),
        principal: "op".into(),
        orgs: vec!["*".into()],
        deadline: 1_795_341_610_000,
    };
    let v = serde_json::to_value(&q).unwrap();
    assert_eq!(v["deadline"], "2026-11-22T10:00:10.000Z");
    assert_eq!(v["resource_id"], Value::Null);
}
