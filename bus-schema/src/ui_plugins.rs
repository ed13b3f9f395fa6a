//! UI plugins of SPEC.md v2 "UI plugins": the manifest's declaration (a page served by one of
//! the extension's own services, mounted by the console at extension points), its checks
//! beyond the JSON Schema, and the `ui-plugins/query` row. Serving and mounting belong to the
//! broker and the console.

use serde::{Deserialize, Serialize};

use crate::commands::Command;
use crate::errors::{clip, ErrorDetail};
use crate::names::{NameCheck, NameKind};
use crate::spec::{Spec, ANY_ROLE};
use crate::validate::schema;

/// One UI plugin of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UiPluginSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The path of its page, served by one of the extension's services.
    pub entry: String,
    #[serde(default)]
    pub extension_points: Vec<ExtensionPoint>,
}

/// Where the console mounts a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ExtensionPoint {
    /// A page of its own.
    Navigation,
    /// A button on tasks of `operation`.
    TaskAction { operation: String },
    /// A button on entities of `entity_type`.
    EntityAction { entity_type: String },
}

/// Checks a manifest's UI plugins beyond the schema: `entry` is an absolute path, no name
/// twice (`schema_violation`, into `details`); names and operations go into `names`.
pub fn check(plugins: &[UiPluginSpec], details: &mut Vec<ErrorDetail>, names: &mut NameCheck) {
    for (i, p) in plugins.iter().enumerate() {
        if !p.entry.starts_with('/') || p.entry.starts_with("//") || p.entry.starts_with("/api/") {
            details.push(ErrorDetail {
                path: format!("/ui_plugins/{i}/entry"),
                message: format!(
                    "'{}' is not an absolute path outside /api/ served by the extension",
                    clip(&p.entry, 80)
                ),
            });
        }
        if plugins[..i].iter().any(|o| o.name == p.name) {
            details.push(ErrorDetail {
                path: format!("/ui_plugins/{i}"),
                message: format!("UI plugin '{}' is declared twice", clip(&p.name, 64)),
            });
        }
        names.check(NameKind::Name, format!("/ui_plugins/{i}/name"), &p.name);
        for (j, x) in p.extension_points.iter().enumerate() {
            if let ExtensionPoint::TaskAction { operation } = x {
                names.check(
                    NameKind::Operation,
                    format!("/ui_plugins/{i}/extension_points/{j}/operation"),
                    operation,
                );
            }
        }
    }
}

pub const QUERY: Spec = Spec {
    suffix: "ui-plugins/query",
    kind: "ui-plugins/query",
    schema: schema!("ui-plugins-query", Inbound),
    channel: "cmdUiPluginsQuery",
    description: "any role: the UI plugins of enabled registrations.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{}"#,
    build: |_| Command::UiPluginsQuery,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_plugin_parses_and_checks() {
        let p: UiPluginSpec = serde_json::from_value(json!({"name": "vm-ui", "title": "VM",
            "entry": "/ext/acme/vm-ui/index.html", "extension_points": [{"type": "navigation"},
            {"type": "task-action", "operation": "vapp.instantiate"},
            {"type": "entity-action", "entity_type": "urn:extbus:type:acme:vm:1.0.0"}]}))
        .unwrap();
        assert_eq!(p.extension_points.len(), 3);
        let (mut d, mut n) = (Vec::new(), NameCheck::new());
        check(std::slice::from_ref(&p), &mut d, &mut n);
        assert!(d.is_empty());
        n.finish().unwrap();
        let mut n = NameCheck::new();
        let bad = UiPluginSpec {
            entry: "http://x/".into(),
            ..p.clone()
        };
        check(&[p, bad], &mut d, &mut n);
        let paths: Vec<_> = d.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, ["/ui_plugins/1/entry", "/ui_plugins/1"]);
    }
}
