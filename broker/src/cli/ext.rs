//! `extbus ext scaffold NAME`: writes a working shell-script executable extension (`NAME.sh`,
//! mode 755) with a handler per action, ready to be named in an `[[exec]]` config entry.
//! `ext list|disable|enable` talk to the broker (`cli/registrations.rs`).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ExtArgs {
    #[command(flatten)]
    pub conn: super::connect::ConnectArgs,
    #[command(subcommand)]
    pub cmd: ExtCmd,
}

#[derive(Debug, Subcommand)]
pub enum ExtCmd {
    /// List every registration (principal/component) with its connections and state.
    List {
        /// Only this principal's registrations.
        #[arg(long)]
        principal: Option<String>,
    },
    /// Switch PRINCIPAL (all its registrations) or PRINCIPAL/COMPONENT off: its rules block
    /// no new operation, its services answer 503. Operator or admin.
    Disable(super::registrations::Switch),
    /// Switch PRINCIPAL or PRINCIPAL/COMPONENT back on.
    Enable(super::registrations::Switch),
    /// Write NAME.sh, a skeleton executable extension with callout and service handlers.
    Scaffold {
        /// The extension's name ([a-z0-9-]); also the principal name its stages use.
        name: String,
        /// Directory to write into.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(args: ExtArgs) -> Result<()> {
    let (name, dir, force) = match args.cmd {
        ExtCmd::Scaffold { name, dir, force } => (name, dir, force),
        other => return super::registrations::run(&args.conn, other),
    };
    let path = scaffold(&name, &dir, force)?;
    println!("{}", path.display());
    eprintln!(
        "wrote {}; add to the broker's config:\n\n[[exec]]\nname = \"{name}\"\npath = \"{}\"\n[[exec.rules]]\noperation = \"vm.create\"\n\n# and/or, for a service:\n[[exec.services]]\nvendor = \"acme\"\nname = \"{name}\"\nversion = \"1.0.0\"\nurl_patterns = [\"^/ext/acme/{name}/\"]\n",
        path.display(),
        path.display()
    );
    Ok(())
}

/// Writes `<dir>/<name>.sh` (mode 755) and returns its path.
pub fn scaffold(name: &str, dir: &Path, force: bool) -> Result<PathBuf> {
    if !crate::principals::valid_name(name) {
        bail!("'{name}' is not a valid extension name: use [a-z0-9-], at most 64 characters");
    }
    let path = dir.join(format!("{name}.sh"));
    if path.exists() && !force {
        bail!("{} exists; use --force to replace it", path.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, script(name)).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod 755 {}", path.display()))?;
    }
    Ok(path)
}

/// The skeleton: POSIX sh, no dependencies; replace the policies in the handlers.
pub fn script(name: &str) -> String {
    SCRIPT.replace("__NAME__", name)
}

const SCRIPT: &str = r#"#!/bin/sh
# __NAME__: an extbus executable extension.
#
# The broker runs it as:  __NAME__.sh <action> <payload_file> <timeout_seconds>
#   action           "callout" (a task is blocked on this extension), "service" (a request)
#                    or "action" (someone runs one of its [[exec.actions]])
#   payload_file     a private JSON file: the task (id, operation, org, subject, data, ...),
#                    the service request (method, path, query, headers, body, ...) or the
#                    action run (action, resource_id, arguments, principal, ...)
#   timeout_seconds  answer before this, or the process is killed
#
# Print exactly ONE JSON object on stdout:
#   {"status": "success", "message": "why", "result": {...}}   resume the task / answer
#   {"status": "error",   "message": "why"}                      abort the task / answer 500
# For a service, a result with status, headers, json or body (base64) is the response;
# any other result is sent as a 200 JSON body. For an action, a result that is an object or
# an array of objects (a table) is shown to the person who ran it, else the message.
# A non-zero exit, anything that is not JSON, or no answer in time applies the rule's
# default action (a service answers 502, or 504 on timeout).
# Write diagnostics to stderr, never to stdout.

set -u
action="${1:-}"
payload="${2:-}"
timeout="${3:-}"

# Minimal JSON string escaping for messages.
json_str() {
    printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\n'
}

# A field of the payload, when jq is installed (empty otherwise).
field() {
    if command -v jq >/dev/null 2>&1; then
        jq -r "$1 // empty" "$payload" 2>/dev/null
    fi
}

callout() {
    operation=$(field .operation)
    # Policy goes here: inspect the task and answer success (resume) or error (abort).
    echo "__NAME__: callout for ${operation:-a task} (timeout ${timeout}s)" >&2
    printf '{"status":"success","message":"%s","result":{"checked_by":"__NAME__"}}\n' \
        "$(json_str "approved by __NAME__")"
}

service() {
    path=$(field .path)
    # Answer the request: result becomes the response (status, headers, json or base64 body).
    printf '{"status":"success","message":"ok","result":{"status":200,"json":{"hello":"from __NAME__","path":"%s"}}}\n' \
        "$(json_str "${path:-}")"
}

run_action() {
    name=$(field .action)
    # Do the work for action "$name" with the arguments in .arguments, then say how it went.
    printf '{"status":"success","message":"%s"}\n' "$(json_str "__NAME__ ran ${name:-the action}")"
}

if [ ! -r "$payload" ]; then
    printf '{"status":"error","message":"payload file not readable"}\n'
    exit 0
fi

case "$action" in
    callout) callout ;;
    service) service ;;
    action) run_action ;;
    *) printf '{"status":"error","message":"unknown action %s"}\n' "$(json_str "$action")" ;;
esac
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffold_writes_an_executable_and_refuses_bad_names_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = scaffold("approver-1", dir.path(), false).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("#!/bin/sh") && text.contains("approver-1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        assert!(scaffold("approver-1", dir.path(), false).is_err());
        assert!(scaffold("approver-1", dir.path(), true).is_ok());
        assert!(scaffold("Bad Name", dir.path(), false).is_err());
    }
}
