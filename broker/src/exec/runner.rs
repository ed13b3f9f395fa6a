//! Runs one executable extension once: `<path> <action> <payload_file> <timeout_seconds>` with
//! the payload in a private (0600) temp file that is removed afterwards, and reads ONE JSON
//! object from stdout. Anything else (spawn error, non-zero exit, garbage, no answer in time,
//! after which the whole process group is killed) is a `Failure` carrying the reason.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most bytes of stdout (and stderr) kept; the rest is read and dropped.
const OUTPUT_LIMIT: usize = 1 << 20;

/// The answer the executable printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `true` for `"status": "success"`, `false` for `"status": "error"`.
    pub success: bool,
    pub message: Option<String>,
    pub result: Value,
}

/// Why a run gave no usable answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("could not start {0}")]
    Spawn(String),
    #[error("exited with status {code}{stderr}")]
    Exit { code: String, stderr: String },
    #[error("printed no JSON answer ({0})")]
    Garbage(String),
    #[error("no answer within {0} ms; the process was killed")]
    Timeout(u64),
    #[error("payload file: {0}")]
    Payload(String),
}

/// A payload file readable by this user only, removed when dropped.
struct PayloadFile(PathBuf);

impl PayloadFile {
    fn create(payload: &Value) -> Result<PayloadFile, Failure> {
        let path = std::env::temp_dir().join(format!(
            "extbus-exec-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        let body = serde_json::to_vec(payload).map_err(|e| Failure::Payload(e.to_string()))?;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o
            .open(&path)
            .map_err(|e| Failure::Payload(format!("{}: {e}", path.display())))?;
        let file = PayloadFile(path);
        std::io::Write::write_all(&mut f, &body).map_err(|e| Failure::Payload(e.to_string()))?;
        Ok(file)
    }
}

impl Drop for PayloadFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Reads up to `OUTPUT_LIMIT` bytes, then drains the rest so the writer never blocks.
async fn read_limited(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// The `outcome` label of a run in `extbus_exec_runs_total`.
pub fn label(o: &Result<Answer, Failure>) -> &'static str {
    match o {
        Ok(a) if a.success => "success",
        Ok(_) => "error",
        Err(Failure::Timeout(_)) => "timeout",
        Err(Failure::Exit { .. }) => "exit",
        Err(Failure::Garbage(_)) => "garbage",
        Err(_) => "failed",
    }
}

/// Parses the first JSON value on stdout; it must be an object with a valid `status`.
pub fn parse_answer(stdout: &[u8]) -> Result<Answer, Failure> {
    let mut values = serde_json::Deserializer::from_slice(stdout).into_iter::<Value>();
    let v = match values.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(Failure::Garbage(format!("not JSON: {e}"))),
        None => return Err(Failure::Garbage("empty output".into())),
    };
    let Some(o) = v.as_object() else {
        return Err(Failure::Garbage("the answer is not a JSON object".into()));
    };
    let success = match o.get("status").and_then(Value::as_str) {
        Some("success") => true,
        Some("error") => false,
        _ => {
            return Err(Failure::Garbage(
                "\"status\" must be \"success\" or \"error\"".into(),
            ))
        }
    };
    let message = match o.get("message") {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(other) => Some(other.to_string()),
    };
    Ok(Answer {
        success,
        message,
        result: o.get("result").cloned().unwrap_or(Value::Null),
    })
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    let start = t.char_indices().rev().nth(199).map(|(i, _)| i).unwrap_or(0);
    format!("; stderr: {}", &t[start..])
}

/// Kills the child's whole process group (it was started as its own group leader).
fn kill_group(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a negative pid signals the process group we created; no memory
        // is touched.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
    let _ = child.start_kill();
}

/// Runs `path action payload_file timeout_seconds` and returns its answer.
pub async fn run(
    path: &Path,
    action: &str,
    payload: &Value,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let file = PayloadFile::create(payload)?;
    let secs = timeout.as_millis().div_ceil(1000).max(1);
    let mut cmd = tokio::process::Command::new(path);
    cmd.arg(action)
        .arg(&file.0)
        .arg(secs.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Spawn(format!("{}: {e}", path.display())))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let work = async {
        let out = async {
            match stdout {
                Some(s) => read_limited(s).await,
                None => Vec::new(),
            }
        };
        let err = async {
            match stderr {
                Some(s) => read_limited(s).await,
                None => Vec::new(),
            }
        };
        let (out, err, status) = tokio::join!(out, err, child.wait());
        (out, err, status)
    };
    let outcome = tokio::time::timeout(timeout, work).await;
    let (out, err, status) = match outcome {
        Ok(r) => r,
        Err(_) => {
            kill_group(&mut child);
            let _ = child.wait().await;
            return Err(Failure::Timeout(timeout.as_millis() as u64));
        }
    };
    drop(file);
    let status = status.map_err(|e| Failure::Spawn(e.to_string()))?;
    if !status.success() {
        let code = status
            .code()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "killed by a signal".into());
        return Err(Failure::Exit {
            code,
            stderr: tail(&err),
        });
    }
    parse_answer(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_parse_and_garbage_is_refused() {
        let a =
            parse_answer(br#"{"status":"success","message":"ok","result":{"host":"h1"}} trailing"#)
                .unwrap();
        assert!(a.success);
        assert_eq!(a.result, json!({"host": "h1"}));
        assert!(!parse_answer(br#"{"status":"error"}"#).unwrap().success);
        for bad in [&b"hello"[..], b"", b"[1]", br#"{"status":"maybe"}"#] {
            assert!(matches!(parse_answer(bad), Err(Failure::Garbage(_))));
        }
    }
}
