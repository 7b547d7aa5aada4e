//! One HTTP/1.0 request at a time: the server closes the connection after its response, so
//! the response is everything read until then.

use std::time::Duration;

/// How long a response may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// An HTTP response: status, headers (names lowercase), body.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code; 0 when the response had no status line.
    pub status: u16,
    /// The headers in order, names lowercase, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// A header's value (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port`: `headers` are sent as given, `body` with its
/// length when not empty.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(request(method, path, headers, body).as_bytes())
        .await?;
    let mut text = String::new();
    tokio::time::timeout(ANSWER_WITHIN, s.read_to_string(&mut text))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no response in {ANSWER_WITHIN:?}"),
            )
        })??;
    Ok(parse_response(&text))
}

/// Whether the supervisor service on `port` lists `tenant` to `token` now (false while it
/// does not answer).
pub async fn lists_tenant(port: u16, token: &str, tenant: &str) -> bool {
    let auth = format!("Bearer {token}");
    http(
        port,
        "GET",
        "/api/v1/tenants",
        &[("Authorization", &auth)],
        "",
    )
    .await
    .is_ok_and(|r| r.status == 200 && r.body.contains(&format!("\"{tenant}\"")))
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: callgrid\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

/// A response's status line, headers and body.
fn parse_response(text: &str) -> HttpResponse {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_read_into_status_headers_and_body() {
        let r = parse_response("HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno");
        assert_eq!(r.status, 404);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body, "no");
        assert_eq!(parse_response("").status, 0);
    }

    #[test]
    fn a_request_sends_its_headers_and_the_length_of_its_body() {
        assert_eq!(
            request("POST", "/x", &[("A", "b")], "{}"),
            "POST /x HTTP/1.0\r\nHost: callgrid\r\nA: b\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
