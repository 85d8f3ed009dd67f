//! A minimal HTTP/1.1 endpoint. It serves `GET /metrics` (the exposition), `GET /healthz`
//! (readiness) and `GET /debug/pprof/mapgrowth?seconds=N&executable=NAME` (a pprof profile of
//! the last N seconds, see [`super::profiles`]), and nothing else. One request per
//! connection, bounded header size and read time.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::{
    metrics::Metrics,
    profiles::{self, Refusal},
};

/// OpenMetrics 1.0 text, which Prometheus asks for in its Accept header.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for every other client (curl, promtool, older scrapers).
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The crate's OpenMetrics exposition in the Prometheus 0.0.4 text format: a counter family
/// `x` with samples `x_total` becomes family `x_total`, and `# UNIT` and `# EOF` lines go
/// (sample lines are the same in both formats).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                out.push_str(&format!("{kind}{name} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Connections served at once; more wait in the kernel's accept queue. Bounds the fds and
/// memory a flood of clients can take from the agent.
const MAX_CONNECTIONS: usize = 16;

/// Serves `/metrics` and `/healthz` on a thread of its own, with its own runtime: the agent's
/// event loop can be busy (an event flood, attaching probes) without a scrape or a kubelet
/// probe waiting for it.
pub fn spawn(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    profiles: profiles::Shared,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => serve(l, metrics, profiles).await,
                    Err(e) => eprintln!("map-trace agent: warning: metrics server: {e}"),
                }
            });
        })?;
    Ok(())
}

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, profiles: profiles::Shared) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let m = metrics.clone();
        let p = profiles.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(conn, &m, &p)).await;
            drop(permit);
        });
    }
}

/// The request line's method and path.
pub fn request_target(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split_ascii_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    Some((method, target.split('?').next().unwrap_or(target)))
}

/// The profile a `/debug/pprof/mapgrowth` request asks for, or why not (status, body).
fn profile(target: &str, profiles: &profiles::Shared) -> Result<Vec<u8>, (&'static str, String)> {
    let refused = |r: Refusal| match r {
        Refusal::Bad(m) => ("400 Bad Request", m + "\n"),
        Refusal::Unknown(m) => ("404 Not Found", m + "\n"),
    };
    let (seconds, exe) = profiles::query(target).map_err(refused)?;
    let now = crate::sys::unix_now_ns() / 1_000_000_000;
    let mut p = profiles.lock().map_err(|_| {
        (
            "500 Internal Server Error",
            "profiles unavailable\n".to_string(),
        )
    })?;
    p.profile(exe.as_deref(), seconds, now).map_err(refused)
}

async fn handle(
    mut conn: TcpStream,
    metrics: &Metrics,
    profiles: &profiles::Shared,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let openmetrics = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("accept:") && l.contains("application/openmetrics-text")
    });
    let full_target = head
        .lines()
        .next()
        .and_then(|l| l.split_ascii_whitespace().nth(1))
        .unwrap_or("");
    let (status, ctype, body): (&str, &str, Vec<u8>) = match request_target(&head) {
        Some(("GET" | "HEAD", "/debug/pprof/mapgrowth")) => match profile(full_target, profiles) {
            Ok(gz) => ("200 OK", "application/octet-stream", gz),
            Err((status, m)) => (status, "text/plain", m.into_bytes()),
        },
        Some(("GET" | "HEAD", "/metrics")) if openmetrics => {
            ("200 OK", OPENMETRICS, metrics.encode().into_bytes())
        }
        Some(("GET" | "HEAD", "/metrics")) => (
            "200 OK",
            PROMETHEUS_TEXT,
            to_prometheus_text(&metrics.encode()).into_bytes(),
        ),
        Some(("GET" | "HEAD", "/healthz")) => ("200 OK", "text/plain", b"ok\n".to_vec()),
        Some(("GET" | "HEAD", "/")) => (
            "200 OK",
            "text/plain",
            b"map-trace agent: metrics at /metrics, readiness at /healthz, map growth profiles at /debug/pprof/mapgrowth?seconds=N&executable=NAME\n".to_vec(),
        ),
        Some(("GET" | "HEAD", _)) => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        Some(_) => (
            "405 Method Not Allowed",
            "text/plain",
            b"method not allowed\n".to_vec(),
        ),
        None => ("400 Bad Request", "text/plain", b"bad request\n".to_vec()),
    };
    let head_only = head.starts_with("HEAD ");
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(resp.as_bytes()).await?;
    if !head_only {
        conn.write_all(&body).await?;
    }
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_request_target() {
        assert_eq!(
            request_target("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_target("GET /metrics?x=1 HTTP/1.1\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_target(""), None);
    }

    #[test]
    fn test_prometheus_text_renames_counter_families() {
        let om = "# HELP a_x Xs.\n# TYPE a_x counter\na_x_total{k=\"v\"} 3\n# HELP a_b Bytes.\n# TYPE a_b counter\n# UNIT a_b bytes\na_b_total 1\n# HELP g G.\n# TYPE g gauge\ng 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_x_total Xs.\n# TYPE a_x_total counter\na_x_total{k=\"v\"} 3\n# HELP a_b_total Bytes.\n# TYPE a_b_total counter\na_b_total 1\n# HELP g G.\n# TYPE g gauge\ng 2\n"
        );
    }
}
