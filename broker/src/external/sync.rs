//! Keeps Mosquitto's dynamic security in step: one client and one role (`extbus:<name>`) per
//! principal, the role's ACLs made from `mqtt::grants`. Passwords are set only where extbus
//! knows one (a principal being added); extbus keeps argon2 hashes, so a sync of existing
//! principals creates clients without one (they cannot log in until it is set).

use super::dynsec::{Answer, Dynsec};
use crate::mqtt::grants::{grants, Grant};
use crate::principals::Principals;
use crate::registry::Registry;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The dynsec role that carries principal `name`'s rights.
pub fn role_name(name: &str) -> String {
    format!("extbus:{name}")
}

/// A role's ACLs in the plugin's JSON form. Each subscribe grant also allows its shared form
/// (`$share/<group>/<filter>`): Mosquitto checks a shared subscription's whole filter, and the
/// embedded gate lets replicas share their own topics too.
pub fn acls(grants: &[Grant]) -> Vec<Value> {
    let acl = |acltype: &str, topic: &str, priority: i64, allow: bool| json!({"acltype": acltype, "topic": topic, "priority": priority, "allow": allow});
    grants
        .iter()
        .flat_map(|g| match g {
            Grant::Publish(t) => vec![acl("publishClientSend", t, 0, true)],
            Grant::Subscribe(t) => vec![
                acl("subscribePattern", t, 0, true),
                acl("subscribePattern", &format!("$share/+/{t}"), 0, true),
            ],
            Grant::Receive(t) => vec![acl("publishClientReceive", t, 1, true)],
            Grant::Withhold(t) => vec![acl("publishClientReceive", t, 0, false)],
        })
        .collect()
}

/// ACLs as comparable tuples (the plugin answers them in its own order).
fn acl_set(acls: &[Value]) -> BTreeSet<(String, String, i64, bool)> {
    acls.iter()
        .map(|a| {
            (
                a["acltype"].as_str().unwrap_or_default().to_lowercase(),
                a["topic"].as_str().unwrap_or_default().to_string(),
                a["priority"].as_i64().unwrap_or(0),
                a["allow"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// What a full sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Principals applied.
    pub applied: Vec<String>,
    /// Principals whose role was missing or differed from what extbus wants.
    pub drifted: Vec<String>,
    /// Roles (and their clients) removed because their principal is gone.
    pub removed: Vec<String>,
}

pub struct Sync {
    pub dynsec: Arc<Dynsec>,
    pub principals: Arc<Principals>,
    pub registry: Arc<Registry>,
    /// `--dev`: the sample principals' secrets are their names, so their clients get them.
    pub dev: bool,
}

fn refused(answers: &[Answer], tolerated: &[&str]) -> Result<(), String> {
    match answers.iter().find(|a| {
        a.error
            .as_deref()
            .is_some_and(|e| !tolerated.iter().any(|t| e.contains(t)))
    }) {
        Some(a) => Err(format!(
            "dynamic security refused {}: {}",
            a.command,
            a.error.as_deref().unwrap_or_default()
        )),
        None => Ok(()),
    }
}

impl Sync {
    /// Brings one principal's client and role in line (removes both if it no longer exists);
    /// `password` is set on the client when given. `Ok(true)` if the role had drifted.
    pub async fn principal(&self, name: &str, password: Option<&str>) -> Result<bool, String> {
        let role = role_name(name);
        let Some(p) = self.principals.get(name) else {
            // The client first: Mosquitto 2.0.11 keeps a dangling pointer in the clients of
            // a role deleted under them.
            let a = self
                .dynsec
                .run(vec![
                    json!({"command": "deleteClient", "username": name}),
                    json!({"command": "deleteRole", "rolename": role}),
                ])
                .await?;
            refused(&a, &["not found", "does not exist"])?;
            return Ok(false);
        };
        let want = acls(&grants(&p, &self.registry));
        let got = self
            .dynsec
            .run(vec![json!({"command": "getRole", "rolename": role})])
            .await?;
        let current = got
            .first()
            .and_then(|a| a.data["role"]["acls"].as_array().cloned());
        let drifted = current.is_none_or(|c| acl_set(&c) != acl_set(&want));
        self.apply(name, &role, want, drifted, password, password)
            .await?;
        Ok(drifted)
    }

    /// `principal` for the start-up sync: a known secret is given to a client being created,
    /// but not set again on one already there (Mosquitto disconnects a client whose password
    /// or role changes, so a restart would drop everyone logged in).
    async fn principal_at_start(&self, name: &str, known: Option<&str>) -> Result<bool, String> {
        let Some(p) = self.principals.get(name) else {
            return self.principal(name, None).await;
        };
        let role = role_name(name);
        let want = acls(&grants(&p, &self.registry));
        let got = self
            .dynsec
            .run(vec![json!({"command": "getRole", "rolename": role})])
            .await?;
        let current = got
            .first()
            .and_then(|a| a.data["role"]["acls"].as_array().cloned());
        let drifted = current.is_none_or(|c| acl_set(&c) != acl_set(&want));
        self.apply(name, &role, want, drifted, known, None).await?;
        Ok(drifted)
    }

    /// Creates the role (ACLs set only when they differ: a change disconnects the role's
    /// clients) and the client, created with `new_password`, or, if it was there, given its
    /// role and `set_password`.
    async fn apply(
        &self,
        name: &str,
        role: &str,
        want: Vec<Value>,
        drifted: bool,
        new_password: Option<&str>,
        set_password: Option<&str>,
    ) -> Result<(), String> {
        let mut client =
            json!({"command": "createClient", "username": name, "roles": [{"rolename": role}]});
        if let Some(pw) = new_password {
            client["password"] = json!(pw);
        }
        let mut commands = vec![json!({"command": "createRole", "rolename": role})];
        if drifted {
            commands.push(json!({"command": "modifyRole", "rolename": role, "acls": want}));
        }
        commands.push(client);
        let a = self.dynsec.run(commands).await?;
        refused(&a, &["already"])?;
        let existed = a.last().is_some_and(|c| c.error.is_some());
        if existed {
            self.existing_client(name, role, set_password).await?;
        }
        Ok(())
    }

    /// A client that was there already: give it its role if it lacks it (the plugin refuses
    /// adding a role twice), and the password if one is known.
    async fn existing_client(
        &self,
        name: &str,
        role: &str,
        password: Option<&str>,
    ) -> Result<(), String> {
        let got = self
            .dynsec
            .run(vec![json!({"command": "getClient", "username": name})])
            .await?;
        let has_role = got.first().is_some_and(|a| {
            a.data["client"]["roles"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["rolename"] == role))
        });
        let mut commands = Vec::new();
        if !has_role {
            commands.push(json!({"command": "addClientRole", "username": name, "rolename": role}));
        }
        if let Some(pw) = password {
            commands
                .push(json!({"command": "setClientPassword", "username": name, "password": pw}));
        }
        if commands.is_empty() {
            return Ok(());
        }
        let a = self.dynsec.run(commands).await?;
        refused(&a, &[])
    }

    /// Applies every principal, and removes `extbus:` roles whose principal is gone.
    pub async fn all(&self) -> Result<Report, String> {
        let mut report = Report::default();
        for p in self.principals.list() {
            let known = crate::server::DEV_PRINCIPALS
                .iter()
                .any(|(n, _)| self.dev && *n == p.name);
            let password = known.then_some(p.name.as_str());
            if self.principal_at_start(&p.name, password).await? {
                report.drifted.push(p.name.clone());
            }
            report.applied.push(p.name);
        }
        let listed = self
            .dynsec
            .run(vec![json!({"command": "listRoles"})])
            .await?;
        let roles = listed
            .first()
            .and_then(|a| a.data["roles"].as_array().cloned())
            .unwrap_or_default();
        for r in roles {
            let name = r["rolename"].as_str().or(r.as_str()).unwrap_or_default();
            if let Some(principal) = name.strip_prefix("extbus:") {
                if self.principals.get(principal).is_none() {
                    self.principal(principal, None).await?;
                    report.removed.push(principal.to_string());
                }
            }
        }
        Ok(report)
    }
}
