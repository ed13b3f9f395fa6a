//! AsyncAPI 3.0 export of the bus contract: every channel of SPEC.md with its parameters and
//! messages, whose payloads reference the JSON Schema files written beside the document.
//! Written from the same tables the broker uses (`spec::FAMILIES`, `validate::schemas`), never
//! by hand.

use std::path::{Path, PathBuf};

use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use crate::validate::{schemas, Direction};

/// One channel of the contract.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Key in `channels` and `operations`.
    pub id: &'static str,
    /// The topic, with `{parameter}` placeholders.
    pub address: String,
    /// Name of the schema (`schemas/<schema>.json`) of its payload.
    pub schema: &'static str,
    /// Inbound: clients publish commands on it; outbound: the broker publishes on it.
    pub direction: Direction,
    pub description: &'static str,
}

fn ch(
    id: &'static str,
    address: &'static str,
    schema: &'static str,
    direction: Direction,
    description: &'static str,
) -> Channel {
    Channel {
        id,
        address: address.to_string(),
        schema,
        direction,
        description,
    }
}

use Direction::{Inbound as In, Outbound as Out};

/// Every channel of SPEC.md: what the broker publishes, then one per command row.
static CHANNELS: LazyLock<Vec<Channel>> = LazyLock::new(|| {
    #[rustfmt::skip]
    let mut all = vec![
        ch("events", "extbus/events/{org}/{entity}/{operation}", "cloud-event", Out,
           "Audit events (CloudEvents 1.0, structured JSON), persisted before they are published."),
        ch("tasksBlocked", "extbus/tasks/blocked/{entity}/{operation}", "task", Out,
           "A task is waiting for an extension: the task object without history. Announced again every renotify interval."),
        ch("tasksResolved", "extbus/tasks/resolved/{entity}/{operation}", "outcome", Out,
           "A task left the blocked state."),
        ch("serviceRequests", "extbus/services/{vendor}/{name}/{version}/requests", "service-request", Out,
           "Requests for an extension service; replicas share them with $share/<group>/..."),
        ch("actionRequests", "extbus/actions/{extension}/requests", "action-request", Out,
           "Runs of an extension's custom actions; only that extension may subscribe."),
        ch("replies", "extbus/out/{principal}/replies", "reply", Out,
           "Exactly one reply per command of that principal."),
        ch("outcomes", "extbus/out/{principal}/outcomes", "outcome", Out,
           "Outcomes of the tasks that platform submitted."),
    ];
    all.extend(crate::spec::all().map(|s| Channel {
        id: s.channel,
        address: s.address(),
        schema: s.schema.name,
        direction: In,
        description: s.description,
    }));
    all
});

/// Every channel of SPEC.md, outbound first.
pub fn channels() -> &'static [Channel] {
    &CHANNELS
}

const PARAMETERS: &[(&str, &str)] = &[
    ("principal", "A principal name, [a-z0-9-]{1,64}. Only it may publish under extbus/in/<principal>/ and subscribe under extbus/out/<principal>/."),
    ("org", "An org (tenant) name, [a-z0-9-]{1,64}."),
    ("entity", "The entity part of an operation <entity>.<operation>, [a-z0-9-]{1,64}."),
    ("operation", "The operation part of an operation <entity>.<operation>, [a-z0-9-]{1,64}."),
    ("task_id", "A task id as returned by tasks/submit."),
    ("vendor", "A service vendor, [a-z0-9-]{1,64}."),
    ("name", "A service or action name, [a-z0-9-]{1,64}."),
    ("version", "A service version, [a-z0-9.-]{1,64}."),
    ("entity_id", "An entity id, urn:extbus:entity:<uuid>, as returned by entities/create."),
    ("extension", "The principal of a registration (an extension), [a-z0-9-]{1,64}."),
    ("component", "A component of a registration, [a-z0-9-]{1,64}."),
    ("object_id", "The object metadata hangs on: an entity id or a task id."),
    ("behavior", "A behavior its entity type declares, [a-z0-9-]{1,64}."),
];

/// The `{parameter}` names of an address, in order.
pub fn address_parameters(address: &str) -> Vec<&str> {
    address
        .split('/')
        .filter_map(|l| l.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

fn message_id(schema: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in schema.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The AsyncAPI 3.0 document; payloads reference `schemas/<name>.json` relative to it.
pub fn document() -> Value {
    let mut by_id = Map::new();
    let mut operations = Map::new();
    for c in channels() {
        let msg = message_id(c.schema);
        let params: Map<String, Value> = address_parameters(&c.address)
            .into_iter()
            .map(|p| {
                (
                    p.to_string(),
                    json!({"$ref": format!("#/components/parameters/{p}")}),
                )
            })
            .collect();
        let mut channel = json!({
            "address": c.address,
            "description": c.description,
            "messages": {msg.clone(): {"$ref": format!("#/components/messages/{msg}")}},
        });
        if !params.is_empty() {
            channel["parameters"] = Value::Object(params);
        }
        by_id.insert(c.id.to_string(), channel);

        let mut op = json!({
            "action": if c.direction == Direction::Inbound { "receive" } else { "send" },
            "channel": {"$ref": format!("#/channels/{}", c.id)},
            "messages": [{"$ref": format!("#/channels/{}/messages/{msg}", c.id)}],
        });
        if c.direction == Direction::Inbound {
            op["reply"] = json!({
                "channel": {"$ref": "#/channels/replies"},
                "messages": [{"$ref": "#/channels/replies/messages/reply"}],
            });
        }
        operations.insert(c.id.to_string(), op);
    }
    let messages: Map<String, Value> = schemas()
        .iter()
        .map(|s| {
            let v = s.value();
            (
                message_id(s.name),
                json!({
                    "name": s.name,
                    "title": v["title"],
                    "summary": v["description"],
                    "contentType": "application/json",
                    "payload": {"$ref": format!("schemas/{}", s.file_name())},
                    // The schema's own absolute id, for tools that resolve by id.
                    "x-schema-id": v["$id"],
                }),
            )
        })
        .collect();
    let parameters: Map<String, Value> = PARAMETERS
        .iter()
        .map(|(p, d)| (p.to_string(), json!({ "description": d })))
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "extbus",
            "version": "1",
            "description": "The extbus bus contract (SPEC.md, version 1): audit events, blocking-task callouts and extension services over MQTT. Commands are published under extbus/in/<principal>/ and answered on extbus/out/<principal>/replies. Payload schemas are JSON Schema draft 2020-12.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:1883",
                "protocol": "mqtt",
                "description": "The embedded broker (MQTT 3.1.1 and 5). Username is the principal, password its secret.",
                "security": [{"$ref": "#/components/securitySchemes/principal"}],
            }
        },
        "channels": by_id,
        "operations": operations,
        "components": {
            "messages": messages,
            "parameters": parameters,
            "securitySchemes": {
                "principal": {"type": "userPassword", "description": "MQTT username = principal name, password = its secret."}
            },
        },
    })
}

/// Writes every schema file into `dir/schemas/` and the AsyncAPI document to
/// `dir/asyncapi.json`, creating directories as needed. Returns the paths written.
pub fn export(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let schema_dir = dir.join("schemas");
    std::fs::create_dir_all(&schema_dir)?;
    let mut written = Vec::new();
    for s in schemas() {
        let path = schema_dir.join(s.file_name());
        std::fs::write(&path, s.source)?;
        written.push(path);
    }
    let path = dir.join("asyncapi.json");
    let mut text = serde_json::to_string_pretty(&document()).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&path, text)?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::Command;
    use crate::{topics, validate};

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    /// The address with its parameters filled in with sample values.
    fn sample(address: &str) -> String {
        address
            .replace("{principal}", "alice")
            .replace("{org}", "acme")
            .replace("{entity}", "vapp")
            .replace("{operation}", "instantiate")
            .replace("{task_id}", "0193f6c2-aa")
            .replace("{vendor}", "acme")
            .replace("{name}", "greeter")
            .replace("{version}", "1.0.0")
            .replace("{extension}", "ext-1")
            .replace("{component}", "approver")
    }

    #[test]
    fn export_writes_a_self_consistent_document() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("contract");
        let files = export(&out).unwrap();
        assert_eq!(files.len(), schemas().len() + 1);
        assert!(files.iter().all(|f| f.is_file()));

        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("asyncapi.json")).unwrap())
                .unwrap();
        assert_eq!(doc["asyncapi"], "3.0.0");
        assert_eq!(doc, document());

        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > channels().len() * 3);
        for r in all {
            if let Some(pointer) = r.strip_prefix('#') {
                assert!(doc.pointer(pointer).is_some(), "dangling {r}");
            } else {
                let text = std::fs::read_to_string(out.join(r)).unwrap_or_else(|_| panic!("{r}"));
                let schema: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    schema["$schema"],
                    "https://json-schema.org/draft/2020-12/schema"
                );
            }
        }
        // Every schema is used by some message, and every message by some channel.
        for s in schemas() {
            assert!(
                channels().iter().any(|c| c.schema == s.name),
                "{} unused",
                s.name
            );
        }
    }

    #[test]
    fn every_spec_channel_is_described() {
        let doc = document();
        let channels = doc["channels"].as_object().unwrap();
        let mut addresses: Vec<&str> = channels
            .values()
            .map(|c| c["address"].as_str().unwrap())
            .collect();
        addresses.sort();
        let mut expected = vec![
            "extbus/events/{org}/{entity}/{operation}",
            "extbus/tasks/blocked/{entity}/{operation}",
            "extbus/tasks/resolved/{entity}/{operation}",
            "extbus/services/{vendor}/{name}/{version}/requests",
            "extbus/actions/{extension}/requests",
            "extbus/in/{principal}/actions/{extension}/{name}/invoke",
            "extbus/in/{principal}/actions/responses",
            "extbus/in/{principal}/actions/query",
            "extbus/in/{principal}/ui-plugins/query",
            "extbus/out/{principal}/replies",
            "extbus/out/{principal}/outcomes",
            "extbus/in/{principal}/events",
            "extbus/in/{principal}/events/replay",
            "extbus/in/{principal}/tasks/submit",
            "extbus/in/{principal}/tasks/{task_id}/resume",
            "extbus/in/{principal}/tasks/{task_id}/cancel",
            "extbus/in/{principal}/tasks/{task_id}/abort",
            "extbus/in/{principal}/tasks/{task_id}/extend",
            "extbus/in/{principal}/tasks/query",
            "extbus/in/{principal}/tasks/{task_id}/get",
            "extbus/in/{principal}/register",
            "extbus/in/{principal}/services/responses",
            "extbus/in/{principal}/services/{vendor}/{name}/{version}",
            "extbus/in/{principal}/entities/create",
            "extbus/in/{principal}/entities/{entity_id}/get",
            "extbus/in/{principal}/entities/{entity_id}/update",
            "extbus/in/{principal}/entities/{entity_id}/resolve",
            "extbus/in/{principal}/entities/{entity_id}/delete",
            "extbus/in/{principal}/entities/{entity_id}/secrets",
            "extbus/in/{principal}/entities/{entity_id}/behaviors/{behavior}",
            "extbus/in/{principal}/entities/query",
            "extbus/in/{principal}/entities/types",
            "extbus/in/{principal}/registrations/query",
            "extbus/in/{principal}/registrations/{extension}/disable",
            "extbus/in/{principal}/registrations/{extension}/enable",
            "extbus/in/{principal}/registrations/{extension}/{component}/disable",
            "extbus/in/{principal}/registrations/{extension}/{component}/enable",
            "extbus/in/{principal}/metadata/{object_id}/get",
            "extbus/in/{principal}/metadata/{object_id}/set",
            "extbus/in/{principal}/metadata/{object_id}/delete",
        ];
        expected.sort();
        assert_eq!(addresses, expected);
        for (id, c) in channels {
            let declared: Vec<&String> = c
                .get("parameters")
                .and_then(Value::as_object)
                .map(|p| p.keys().collect())
                .unwrap_or_default();
            let mut used = address_parameters(c["address"].as_str().unwrap());
            used.sort();
            assert_eq!(declared, used, "{id}");
            assert!(doc["operations"][id]["action"].is_string(), "{id}");
        }
    }

    #[test]
    fn channels_agree_with_commands_and_topic_builders() {
        for c in channels() {
            let topic = sample(&c.address);
            match c.direction {
                Direction::Inbound => {
                    let (p, suffix) = topics::parse_inbox(&topic).unwrap();
                    assert_eq!(p, "alice");
                    let cmd = Command::parse(suffix).unwrap();
                    assert_eq!(cmd.schema_name(), c.schema, "{}", c.id);
                }
                Direction::Outbound => {
                    assert_eq!(
                        validate::schema_file(c.schema).unwrap().direction,
                        Direction::Outbound
                    );
                }
            }
        }
        let built = [
            topics::events("acme", "vapp.instantiate"),
            topics::tasks_blocked("vapp.instantiate"),
            topics::tasks_resolved("vapp.instantiate"),
            topics::service_requests("acme", "greeter", "1.0.0"),
            topics::replies("alice"),
            topics::outcomes("alice"),
        ];
        for t in built {
            assert!(
                channels()
                    .iter()
                    .any(|c| c.direction == Direction::Outbound && sample(&c.address) == t),
                "no channel for {t}"
            );
        }
    }

    #[test]
    fn message_ids_are_camel_case() {
        assert_eq!(message_id("service-response"), "serviceResponse");
        assert_eq!(message_id("task"), "task");
        assert_eq!(address_parameters("a/{x}/b/{y}"), ["x", "y"]);
    }
}
