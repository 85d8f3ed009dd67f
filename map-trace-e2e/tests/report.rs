//! `--report`: the HTML page of a real run, rendered by headless Chromium (Debian's
//! `chromium-headless-shell`, which `cargo xtask test-tools` unpacks into the xtask cache and
//! passes as `MAP_TRACE_CHROMIUM`). The rendered DOM is checked against the JSON output of the
//! same run: a chart per map, a table row per call site, the fixture's site; the page logs
//! nothing to the console and loads nothing from the network. A screenshot of each page is kept
//! in `target/test-artifacts/`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use map_trace_e2e::*;
use serde_json::Value;

/// The Chromium wrapper script (never skipped: a missing browser fails the test).
fn chromium() -> PathBuf {
    let p: PathBuf = std::env::var_os("MAP_TRACE_CHROMIUM")
        .expect(
            "MAP_TRACE_CHROMIUM is not set: run with `cargo xtask test` (or set it to the wrapper \
             `cargo xtask test-tools` prints)",
        )
        .into();
    assert!(
        p.is_file(),
        "MAP_TRACE_CHROMIUM={} is not a file",
        p.display()
    );
    p
}

/// Where screenshots are kept.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A page as Chromium rendered it: the DOM after its scripts ran, and what it logged to the
/// console (uncaught exceptions, CSP violations, failed loads, console.* calls).
struct Rendered {
    dom: String,
    console: Vec<String>,
}

/// Loads `page` in headless Chromium; with `screenshot`, also saves a PNG of `height` pixels.
fn render(page: &Path, screenshot: Option<(&Path, u32)>) -> Rendered {
    let profile = temp("chromium-profile");
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    if let Some((png, height)) = screenshot {
        c.arg(format!("--window-size=1280,{height}"))
            .arg(format!("--screenshot={}", png.display()));
    }
    let child = c
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let f = wait(child, Duration::from_secs(120));
    assert!(
        f.status.success() && f.stdout.contains("</html>"),
        "chromium failed ({}): {}",
        f.status,
        f.stderr
    );
    let console = f
        .stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    Rendered {
        dom: f.stdout,
        console,
    }
}

/// The `<figure class="map" …>…</figure>` elements of a DOM, with their `data-map` and
/// `data-first-ns`.
fn figures(dom: &str) -> Vec<(String, u64, &str)> {
    let attr = |tag: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        let at = tag
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
            + key.len();
        tag[at..at + tag[at..].find('"').unwrap()].to_string()
    };
    dom.match_indices("<figure class=\"map\"")
        .map(|(i, _)| {
            let body = &dom[i..i + dom[i..].find("</figure>").expect("closed figure")];
            let tag = &body[..body.find('>').unwrap()];
            (
                attr(tag, "data-map"),
                attr(tag, "data-first-ns").parse().unwrap(),
                body,
            )
        })
        .collect()
}

/// `src`/`href` attribute values (and CSS `url(…)`s) in the raw page.
fn references(html: &str) -> Vec<String> {
    let mut out = vec![];
    for key in ["src=", "href=", "url("] {
        for (i, _) in html.match_indices(key) {
            let rest = html[i + key.len()..].trim_start_matches(['"', '\'']);
            let end = rest.find(['"', '\'', ')', ' ', '>']).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// `function (file:line)` of a summary map's site, as the report shows it.
fn site_label(m: &Value) -> Option<String> {
    let s = &m["site"];
    let file = s["file"].as_str()?;
    Some(format!(
        "{} ({}:{})",
        s["function"].as_str()?,
        file.rsplit('/').next().unwrap(),
        s["line"]
    ))
}

/// Runs the fixture of `v` with `mode` under `--report` and `--format json`; checks the
/// rendered page against the JSON; returns the summary's maps and the rendered DOM.
fn check_report(v: &str, mode: &[&str], name: &str) -> (Vec<Value>, String) {
    let html = temp(&format!("{name}.html"));
    let (events, f) = trace_json(&fixture(v), &["--report", html.to_str().unwrap()], mode);
    assert!(f.status.success(), "go{v}: {}", f.stderr);
    assert!(
        !PathBuf::from(format!("{}.tmp", html.display())).exists(),
        "go{v}: the temporary file was renamed"
    );
    let raw = std::fs::read_to_string(&html).expect("the report was written");
    let start = &events[0];
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    let maps = summary["maps"].as_array().unwrap().clone();
    assert!(!maps.is_empty(), "go{v}: no maps grew");

    // Self-contained: nothing to fetch (the SVG namespace is no reference).
    for r in references(&raw) {
        assert!(
            !(r.starts_with("http:") || r.starts_with("https:") || r.starts_with("//")),
            "go{v}: the page references {r}"
        );
    }

    let charts = maps.len().min(30);
    let png = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let height = (900 + 330 * charts as u32).min(16_000);
    let r = render(&html, Some((&png, height)));
    assert!(
        r.console.is_empty(),
        "go{v}: the page logged to the console:\n{}",
        r.console.join("\n")
    );
    assert!(
        std::fs::metadata(&png).is_ok_and(|m| m.len() > 10_000),
        "go{v}: no screenshot at {}",
        png.display()
    );
    let dom = r.dom.as_str();

    // Header.
    assert!(dom.contains(&format!("<span id=\"pid\">{}</span>", start["pid"])));
    assert!(dom.contains(start["go_version"].as_str().unwrap()));
    assert!(dom.contains(&format!(
        "<dd>{} in {} maps</dd>",
        summary["events"],
        maps.len()
    )));
    assert!(
        dom.contains("<dt>Lost events</dt><dd>0</dd>"),
        "go{v}: lost events"
    );

    // A chart per map (the 30 with the most events), in the summary's order; the script ran.
    let figs = figures(dom);
    let want: Vec<(String, u64)> = maps[..charts]
        .iter()
        .map(|m| {
            (
                m["map"].as_str().unwrap().to_string(),
                m["first_time_ns"].as_u64().unwrap(),
            )
        })
        .collect();
    let got: Vec<(String, u64)> = figs.iter().map(|(m, t, _)| (m.clone(), *t)).collect();
    assert_eq!(got, want, "go{v}: charts vs summary maps");
    assert_eq!(dom.matches("<svg class=\"chart\"").count(), charts);
    assert!(
        dom.contains(&format!("id=\"shown\">{charts} of {charts} charts shown")),
        "go{v}: the filter script did not run"
    );
    if maps.len() > charts {
        assert!(
            dom.contains(&format!("{} more map(s) not charted", maps.len() - charts)),
            "go{v}: omitted maps not said"
        );
    }
    for ((addr, _, body), m) in figs.iter().zip(&maps) {
        assert!(
            body.contains("<path class=\"size\""),
            "go{v} {addr}: no line"
        );
        assert!(
            body.contains("<circle class=\"ev "),
            "go{v} {addr}: no markers"
        );
        if let Some(site) = site_label(m) {
            assert!(body.contains(&site), "go{v} {addr}: label lacks {site}");
        }
        if m["impl"] == "swiss" {
            assert!(
                body.contains("<rect class=\"span resize\""),
                "go{v} {addr}: no resize bars"
            );
        } else if m["evacuations"].as_u64().unwrap() > 0 {
            assert!(
                body.contains("<rect class=\"span done\""),
                "go{v} {addr}: no growth spans"
            );
        }
        if m["growing_at_end"] == true {
            assert!(
                body.contains("<rect class=\"span open\""),
                "go{v} {addr}: in progress"
            );
        }
    }

    // A table row per (site, type), and the fixture's site.
    let mut sites: Vec<String> = maps
        .iter()
        .map(|m| format!("{}|{}", m["site"], m["type"]))
        .collect();
    sites.sort();
    sites.dedup();
    assert_eq!(
        dom.matches("<tr class=\"site\">").count(),
        sites.len(),
        "go{v}: site rows"
    );
    (maps, r.dom)
}

#[test]
fn report_renders_in_chromium_and_matches_the_json() {
    require_root();
    let versions = [
        classic_versions().into_iter().last().unwrap(),
        swiss_versions().into_iter().last().unwrap(),
    ];
    for v in versions {
        let (maps, dom) = check_report(&v, &["goroutines", "20000", "3"], &format!("report-go{v}"));
        let site = format!("main.fillInt (main.go:{})", fill_int_line());
        // The table's row for the fixture's site (first: it has the most events).
        let row = &dom[dom.find("<tr class=\"site\">").unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(&site),
            "go{v}: {site} not in the first row: {row}"
        );
        assert!(
            row.contains("<code>make(map[int]int, "),
            "go{v}: presize hint: {row}"
        );
        let fill = maps
            .iter()
            .filter(|m| site_label(m).as_deref() == Some(site.as_str()))
            .count();
        assert_eq!(fill, 3, "go{v}: the fixture's three maps");
    }
}

#[test]
fn report_charts_the_top_maps_and_says_how_many_more() {
    require_root();
    let v = classic_versions().into_iter().last().unwrap();
    // 40 maps of 100 keys: more maps than charts.
    let (maps, _) = check_report(&v, &["maps", "40", "100"], &format!("report-many-go{v}"));
    assert!(maps.len() > 30, "go{v}: {} maps", maps.len());
}

#[test]
fn console_errors_are_detected() {
    // The check above would pass on a Chromium that logs nothing: show it catches a throw.
    let page = temp("throws.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p>\
         <script>throw new Error('report-canary')</script></body></html>",
    )
    .unwrap();
    let r = render(&page, None);
    assert!(
        r.console
            .iter()
            .any(|l| l.contains("Uncaught") && l.contains("report-canary")),
        "a thrown error was not seen: {:?}",
        r.console
    );
}
