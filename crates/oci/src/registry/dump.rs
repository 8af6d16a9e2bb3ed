//! `--http-dump`: the HTTP exchanges soci makes itself, on stderr, with every
//! secret (credentials, tokens, cookies) replaced by `<redacted>`.
use reqwest::header::HeaderMap;

/// Headers whose values are secrets.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

fn print_headers(prefix: &str, headers: &HeaderMap) {
    for (name, value) in headers {
        let shown = if SECRET_HEADERS.contains(&name.as_str()) {
            // Keep the scheme (Basic, Bearer): it says what was sent, not the secret.
            let scheme = value
                .to_str()
                .ok()
                .and_then(|v| v.split_whitespace().next())
                .filter(|s| s.len() < 16 && s.chars().all(|c| c.is_ascii_alphabetic()));
            match scheme {
                Some(s) if name.as_str().ends_with("authorization") => format!("{s} <redacted>"),
                _ => "<redacted>".to_string(),
            }
        } else {
            // Escaped: a registry's header must not drive the terminal.
            String::from_utf8_lossy(value.as_bytes())
                .escape_debug()
                .to_string()
        };
        eprintln!("{prefix} {name}: {shown}");
    }
}

/// `url` without its query, which on a redirect to storage can be a
/// signature (a credential).
fn shown_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let had_query = u.query().is_some();
    u.set_query(None);
    if had_query {
        format!("{u}?<redacted>")
    } else {
        u.to_string()
    }
}

/// Prints request `req` (method, URL, headers) as it is about to be sent.
pub(super) fn request(req: &reqwest::Request) {
    eprintln!("> {} {}", req.method(), shown_url(req.url()));
    print_headers(">", req.headers());
}

/// Prints the status and headers of `resp`.
pub(super) fn response(resp: &reqwest::Response) {
    eprintln!("< {} {}", resp.status(), shown_url(resp.url()));
    print_headers("<", resp.headers());
}
