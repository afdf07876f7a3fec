//! The alert rules and the dashboard, proven by Prometheus itself (Debian's
//! `prometheus` package: `promtool` and `prometheus`; `scripts/test`
//! installs it): `promtool check rules` and the rules' unit tests, `promtool
//! check metrics` on a live scrape, and a real Prometheus scraping a real
//! floodgate that answers every Grafana panel's query with data.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_e2e::{free_port, http_request, repo_root, Floodgate, RedisServer, FREE_PORTS};

/// `name` on the PATH, or a failure that says how to get it.
fn installed(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: `scripts/install-deps prometheus` installs Debian's \
                 prometheus package (scripts/test does it first)"
            )
        })
}

/// Runs `promtool <args>` with `input` on stdin: (success, stdout + stderr).
fn promtool(args: &[&str], input: &[u8]) -> (bool, String) {
    let mut child = Command::new(installed("promtool"))
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const RULES: &str = "deploy/prometheus/floodgate-alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/floodgate-alerts.test.yml";

fn yaml(path: &str) -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The names of the alerts in the shipped rule file.
fn alert_names() -> BTreeSet<String> {
    let rules = yaml(RULES);
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .map(|r| {
            r["alert"]
                .as_str()
                .expect("every rule is an alert")
                .to_string()
        })
        .collect()
}

#[test]
fn promtool_checks_the_alert_rules_and_their_unit_tests_cover_every_alert() {
    let alerts = alert_names();
    let (ok, out) = promtool(&["check", "rules", RULES], b"");
    assert!(ok, "promtool check rules {RULES}:\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{out}"
    );
    let (ok, out) = promtool(&["test", "rules", RULE_TESTS], b"");
    assert!(ok, "promtool test rules {RULE_TESTS}:\n{out}");

    // Every alert has a case where it fires and one where it stays silent,
    // and the tests name no alert that does not exist.
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for test in yaml(RULE_TESTS)["tests"].as_sequence().expect("tests") {
        for case in test["alert_rule_test"].as_sequence().expect("cases") {
            let name = case["alertname"].as_str().expect("alertname").to_string();
            assert!(alerts.contains(&name), "{name} is not in {RULES}");
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected > 0 {
                fires.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    assert_eq!(fires, alerts, "alerts without a case where they fire");
    assert_eq!(
        silent, alerts,
        "alerts without a case where they are silent"
    );
}

/// A Redis store, an enforced and a shadow policy, `instances = "auto"`: the
/// configuration under which every metric of the dashboard exists.
fn floodgate_on(redis: &RedisServer) -> Floodgate {
    Floodgate::start(&format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\n\n\
         [fallback]\ninstances = \"auto\"\n\n\
         [[policy]]\nname = \"enforced\"\nkey = [\"user\"]\nlimit = 2\nwindow = \"1m\"\n\n\
         [[policy]]\nname = \"dark\"\nkey = [\"ip\"]\nlimit = 1\nwindow = \"1m\"\nmode = \"shadow\"\n",
        redis.url()
    ))
}

/// One check for the `i`th of a few users and addresses: some allowed, some
/// denied, some shadow-denied.
fn check(floodgate: &Floodgate, i: usize) {
    let body = format!(
        r#"{{"attributes": {{"user": "u{}", "ip": "203.0.113.{}"}}}}"#,
        i % 7,
        i % 3
    );
    let status = floodgate.check(&body).status;
    assert!(status == 200 || status == 429, "check answered {status}");
}

#[test]
fn promtool_accepts_a_live_scrape() {
    let redis = RedisServer::start();
    let floodgate = floodgate_on(&redis);
    for i in 0..20 {
        check(&floodgate, i);
    }
    let scrape = floodgate.http("GET", "/metrics", None);
    assert_eq!(scrape.status, 200);
    let text = scrape.text();
    for name in ["floodgate_checks_total", "floodgate_instances"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let (ok, out) = promtool(&["check", "metrics"], &scrape.body);
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}\n{text}"
    );
}

/// A `prometheus` server in its own process group, under `timeout` so it
/// cannot outlive a test that dies; stopped on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts it scraping `target` every second, with the shipped alert
    /// rules loaded, and waits until it is ready.
    fn start(target: SocketAddr) -> Prometheus {
        let binary = installed("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: floodgate\n    static_configs:\n      - targets: ['{target}']\n",
                repo_root().join(RULES).display()
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("timeout")
            .args(["-s", "KILL", "120"])
            .arg(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus { child, addr, dir };
        prometheus.wait_for("Prometheus to be ready", Duration::from_secs(20), || {
            std::net::TcpStream::connect(addr).is_ok()
                && http_request(addr, "GET", "/-/ready", &[], None).status == 200
        });
        prometheus
    }

    /// Waits for `ready`, failing with Prometheus's log after `limit`.
    fn wait_for(&self, what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ready() {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; Prometheus's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET <path>` on the HTTP API: the JSON `data` of a successful answer.
    fn api(&self, path: &str) -> serde_json::Value {
        let response = http_request(self.addr, "GET", path, &[], None);
        let json = response.json();
        assert_eq!(json["status"], "success", "{path}: {json}");
        json["data"].clone()
    }

    /// An instant query: its result vector.
    fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(expr)));
        assert_eq!(data["resultType"], "vector", "{expr}: {data}");
        data["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // A clean stop first (it flushes its database), then no mercy.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every panel's title and queries, with Grafana's variables replaced the
/// way Grafana would for "All" policies over the last minute at a 1 s scrape
/// interval (`$__rate_interval` is four scrape intervals).
fn panel_queries(path: &Path) -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let all = dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .find(|v| v["name"] == "policy")
        .and_then(|v| v["allValue"].as_str())
        .expect("the policy variable's allValue")
        .to_string();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().expect("title");
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"]
                .as_str()
                .expect("expr")
                .replace("$__rate_interval", "4s")
                .replace("$__range", "1m")
                .replace("$policy", &all);
            assert!(!expr.contains('$'), "an unknown variable in {expr}");
            queries.push((title.to_string(), expr));
        }
    }
    queries
}

#[test]
fn a_real_prometheus_answers_every_dashboard_panel_with_data() {
    let redis = RedisServer::start();
    let floodgate = Arc::new(floodgate_on(&redis));
    let prometheus = Prometheus::start(floodgate.http);

    // Checks keep coming for as long as the queries run (bounded), so every
    // rate() over the last few seconds has something to count.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (floodgate, stop) = (floodgate.clone(), stop.clone());
        std::thread::spawn(move || {
            for i in 0..3_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                check(&floodgate, i);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // Scraped a few times: enough samples for a 4 s rate().
    prometheus.wait_for("five scrapes of floodgate", Duration::from_secs(30), || {
        prometheus
            .query(r#"count_over_time(up{job="floodgate"}[1m]) >= 5"#)
            .iter()
            .any(|s| s["value"][1] != "0")
            && prometheus.query(r#"up{job="floodgate"} == 1"#).len() == 1
    });

    // The dashboard's policy variable lists the policies.
    let policies = prometheus.api("/api/v1/label/policy/values?match[]=floodgate_checks_total");
    for policy in ["enforced", "dark"] {
        assert!(
            policies.as_array().unwrap().iter().any(|p| p == policy),
            "{policies}"
        );
    }

    let dashboard = repo_root().join("deploy/grafana/floodgate-dashboard.json");
    let finite = |series: &[serde_json::Value]| {
        series.iter().any(|s| {
            s["value"][1]
                .as_str()
                .is_some_and(|v| v.parse::<f64>().is_ok_and(f64::is_finite))
        })
    };
    // A 4 s rate() can miss a scrape on a busy machine: each query is asked
    // again until it has a number, within one deadline for all of them.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut report = Vec::new();
    for (title, expr) in panel_queries(&dashboard) {
        let mut result = prometheus.query(&expr);
        while !finite(&result) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            result = prometheus.query(&expr);
        }
        assert!(
            finite(&result),
            "panel {title:?}: no data for {expr}: {result:?}; floodgate's /metrics:\n{}",
            floodgate.http("GET", "/metrics", None).text()
        );
        report.push(format!("{title}: {} series for {expr}", result.len()));
    }
    eprintln!("{}", report.join("\n"));

    // The shipped alert rules load into the real Prometheus and evaluate.
    let alerts = alert_names();
    prometheus.wait_for("every rule evaluated", Duration::from_secs(10), || {
        let groups = prometheus.api("/api/v1/rules");
        let rules: Vec<serde_json::Value> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        let loaded: BTreeSet<String> = rules
            .iter()
            .filter_map(|r| r["name"].as_str().map(String::from))
            .collect();
        assert_eq!(loaded, alerts);
        rules.iter().all(|r| {
            assert_ne!(r["health"], "err", "{r}");
            r["health"] == "ok"
        })
    });

    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    drop(prometheus);
}
