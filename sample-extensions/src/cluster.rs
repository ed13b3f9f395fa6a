//! The cluster owner: an extension that keeps its state in a defined entity type instead of a
//! database of its own. It registers `urn:extbus:type:acme:cluster:1.0.0` with a `post_create`
//! hook and a `scale` behavior, then answers their tasks: the hook fills `status` (returned as
//! `result.entity`, so the broker validates and stores it), `scale` updates the entity's
//! `spec.nodes` and `status` and returns the old and new sizes as the behavior's result.

use crate::{Bus, Msg, Opts};
use anyhow::{bail, Result};
use extbus_client::wire::topics;
use serde_json::{json, Value};
use std::future::Future;
use tokio::sync::mpsc;

pub const TYPE_ID: &str = "urn:extbus:type:acme:cluster:1.0.0";
pub const POST_CREATE: &str = "cluster.post-create";
pub const SCALE: &str = "cluster.scale";

/// The manifest: the type, its hook and behavior.
pub fn manifest() -> Value {
    json!({"component": "clusters", "entity_types": [{
        "vendor": "acme", "nss": "cluster", "version": "1.0.0", "name": "Cluster",
        "schema": {"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "required": ["nodes"], "properties": {
                "nodes": {"type": "integer", "minimum": 1, "maximum": 100},
                "admin_password": {"type": "string", "x-extbus-secure": true}}},
            "status": {"type": "object", "properties": {
                "phase": {"enum": ["ready", "scaled"]},
                "nodes": {"type": "integer"},
                "endpoint": {"type": "string"}}}}},
        "hooks": {"post_create": true},
        "behaviors": [{"name": "scale", "timeout_ms": 60000, "parameters": {
            "type": "object", "required": ["nodes"], "additionalProperties": false,
            "properties": {"nodes": {"type": "integer", "minimum": 1, "maximum": 100}}}}],
        "access": {"read": ["operator", "observer", "platform", "extension"],
                   "write": ["platform", "extension"]}}]})
}

/// The `post_create` answer: the content with its `status` filled in.
pub fn provisioned(task: &Value) -> Value {
    let e = &task["data"]["entity"];
    let mut content = e["entity"].clone();
    let nodes = content["spec"]["nodes"].as_u64().unwrap_or(1);
    let name = e["name"].as_str().unwrap_or("cluster");
    content["status"] = json!({"phase": "ready", "nodes": nodes,
                               "endpoint": format!("https://{name}.clusters.example")});
    json!({"message": format!("provisioned {nodes} nodes"), "result": {"entity": content}})
}

/// Connected and registered; `serve` answers hook and behavior tasks.
pub struct ClusterOwner {
    bus: Bus,
    rx: mpsc::UnboundedReceiver<Msg>,
}

impl ClusterOwner {
    pub async fn start(opts: &Opts) -> Result<ClusterOwner> {
        let (bus, rx) = Bus::connect(opts).await?;
        bus.register(manifest()).await?;
        // The type's hooks and behaviors are our operations once it is registered.
        for op in [POST_CREATE, SCALE] {
            bus.subscribe(&topics::tasks_blocked(op)).await?;
        }
        Ok(ClusterOwner { bus, rx })
    }

    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let r = self.answer_all(shutdown).await;
        self.bus.disconnect().await;
        r
    }

    async fn answer_all(&mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut backlog = Vec::new();
        for op in [POST_CREATE, SCALE] {
            let q = json!({"state": "blocked", "operation": op});
            let page = self.bus.command("tasks/query", q).await?;
            backlog.extend(page["tasks"].as_array().cloned().unwrap_or_default());
        }
        tokio::pin!(shutdown);
        loop {
            let task = match backlog.pop() {
                Some(t) => t,
                None => tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    m = self.rx.recv() => match m.and_then(|m| m.json()) {
                        Some(t) => t,
                        None if self.rx.is_closed() => bail!("connection closed"),
                        None => continue,
                    },
                },
            };
            if !crate::waiting_on(&task, &self.bus.user) {
                continue;
            }
            let id = task["id"].as_str().unwrap_or_default().to_string();
            let (action, body) = match task["operation"].as_str() {
                Some(POST_CREATE) => ("resume", provisioned(&task)),
                Some(SCALE) => self.scale(&task).await,
                _ => continue,
            };
            match self
                .bus
                .command(&topics::task_action(&id, action), body)
                .await
            {
                Ok(_) => println!("{action} {} for {}", task["operation"], task["subject"]),
                // A renotify of a task resolved meanwhile is refused; that is fine.
                Err(e) => eprintln!("task {id}: {e}"),
            }
        }
    }

    /// `scale`: writes the new size into the entity, answers the old and new sizes.
    async fn scale(&self, task: &Value) -> (&'static str, Value) {
        let e = &task["data"]["entity"];
        let id = e["id"].as_str().unwrap_or_default();
        let to = task["data"]["arguments"]["nodes"].as_u64().unwrap_or(1);
        let from = e["entity"]["spec"]["nodes"].as_u64().unwrap_or(0);
        let mut content = e["entity"].clone();
        content["spec"]["nodes"] = json!(to);
        content["status"]["phase"] = json!("scaled");
        content["status"]["nodes"] = json!(to);
        let body = json!({"revision": e["revision"], "entity": content});
        match self
            .bus
            .command(&format!("entities/{id}/update"), body)
            .await
        {
            Ok(updated) => (
                "resume",
                json!({"message": format!("scaled from {from} to {to}"),
                       "result": {"from": from, "to": to, "revision": updated["revision"]}}),
            ),
            Err(err) => (
                "abort",
                json!({"message": format!("scaling failed: {err}")}),
            ),
        }
    }
}

/// Runs the cluster owner until `shutdown`.
pub async fn run(opts: &Opts, shutdown: impl Future<Output = ()>) -> Result<()> {
    ClusterOwner::start(opts).await?.serve(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_fills_the_status_from_the_spec() {
        let t = json!({"data": {"entity": {"name": "prod", "entity": {"spec": {"nodes": 3}}}}});
        let r = provisioned(&t);
        assert_eq!(r["result"]["entity"]["status"]["nodes"], 3);
        assert_eq!(r["result"]["entity"]["spec"]["nodes"], 3);
        assert_eq!(r["result"]["entity"]["status"]["phase"], "ready");
    }
}
