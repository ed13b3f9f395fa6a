//! The operator console's files, embedded in the binary (`broker/console/`): plain ES modules
//! and CSS, no build step. Each answer carries a strong `ETag` (a digest of the file) and
//! `Cache-Control: no-cache`, so browsers revalidate and get `304` while nothing changed;
//! pages get a Content-Security-Policy that allows only the console's own files, and frames
//! only from this listener (UI plugins, served by the services gateway).

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

macro_rules! asset {
    ($path:literal, $ty:expr) => {
        (
            $path,
            $ty,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)).as_slice(),
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file: (path under `/console/`, content type, bytes).
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/form.js", JS),
    asset!("js/tasks.js", JS),
    asset!("js/events.js", JS),
    asset!("js/entities.js", JS),
    asset!("js/extensions.js", JS),
    asset!("js/actions.js", JS),
    asset!("js/plugins.js", JS),
    asset!("js/metadata.js", JS),
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'; object-src 'none'";

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, bytes)| {
                let d = Sha256::digest(bytes);
                let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

pub(super) async fn redirect() -> Redirect {
    Redirect::permanent("/console/")
}

/// `GET /console/...`: the file, `304` if the browser's copy is current, or `404`.
pub(super) async fn asset(req: Request) -> Response {
    let path = req.uri().path();
    let file = match path.strip_prefix("/console/") {
        Some("") | None => "index.html",
        Some(f) => f,
    };
    let Some(i) = ASSETS.iter().position(|(p, _, _)| *p == file) else {
        return (StatusCode::NOT_FOUND, "no such console file\n").into_response();
    };
    let (_, ty, bytes) = ASSETS[i];
    let etag = &etags()[i];
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, ty)], bytes).into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_an_asset_imports_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.0).collect();
        for (path, _, bytes) in ASSETS.iter().filter(|a| a.0.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split(['"', '\'']).nth(1) else {
                    continue;
                };
                let target = format!("js/{}", from.trim_start_matches("./"));
                assert!(names.contains(&target.as_str()), "{path} imports {from}");
            }
        }
    }
}
