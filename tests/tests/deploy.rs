//! What can be checked of `deploy/` without Docker or Kubernetes (neither
//! runs here): the ConfigMap's TOML is valid, runs on a Redis and serves
//! the probes on its health listener but not the check API, the container
//! args and the Dockerfile name real subcommands and flags, and the probes
//! point at `/healthz` and `/readyz` on the health listener's port.

use floodgate_e2e::{http_request, repo_root, run_cli, Floodgate, RedisServer};

const MANIFEST: &str = "deploy/kubernetes/floodgate-sidecar.yaml";
const CONFIG_PATH: &str = "/etc/floodgate/floodgate.toml";

fn manifest() -> String {
    std::fs::read_to_string(repo_root().join(MANIFEST)).expect(MANIFEST)
}

/// The TOML between the ConfigMap's begin/end markers, de-indented.
fn configmap_toml() -> String {
    let yaml = manifest();
    let lines: Vec<&str> = yaml
        .lines()
        .skip_while(|l| !l.contains("floodgate.toml begin"))
        .take_while(|l| !l.contains("floodgate.toml end"))
        .collect();
    assert!(
        lines.len() > 10,
        "no TOML between the markers in {MANIFEST}"
    );
    let indent = lines[0].len() - lines[0].trim_start().len();
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn configmap_toml_runs_on_redis_and_serves_probes_not_checks_on_the_health_listener() {
    let toml = configmap_toml();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floodgate.toml");
    std::fs::write(&path, &toml).unwrap();
    let (code, out, err) = run_cli(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for policy in ["ai-per-user", "auth-per-ip", "api-per-user"] {
        assert!(out.contains(policy), "{out}");
    }
    // A sidecar on a fraction of a CPU: one worker thread.
    assert!(out.contains("workers 1,"), "{out}");
    // The check API on the pod's loopback, probes and metrics on the pod
    // IP, counters in the shared Redis.
    for line in [
        "http = \"127.0.0.1:9720\"",
        "grpc = \"127.0.0.1:9721\"",
        "health = \"0.0.0.0:9722\"",
        "kind = \"redis\"",
        "url = \"redis://floodgate-redis:6379\"",
    ] {
        assert!(toml.contains(line), "{line} missing from\n{toml}");
    }
    assert_eq!(
        toml.matches("0.0.0.0").count(),
        1,
        "only health on 0.0.0.0: {toml}"
    );
    // Served on free ports with a real Redis.
    let redis = RedisServer::start();
    let local = toml
        .replace("127.0.0.1:9720", "127.0.0.1:0")
        .replace("127.0.0.1:9721", "127.0.0.1:0")
        .replace("0.0.0.0:9722", "127.0.0.1:0")
        .replace("redis://floodgate-redis:6379", &redis.url());
    let fg = Floodgate::start(&local);
    let health = fg.health.expect("the health listener's address in the log");
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let response = http_request(health, "GET", probe, &[], None);
        assert_eq!(response.status, 200, "{probe} on the health listener");
    }
    let ready = http_request(health, "GET", "/readyz", &[], None).json();
    assert_eq!(ready["store"], "redis", "{ready}");
    let check = br#"{"attributes":{"user":"u1","endpoint":"ai"}}"#;
    for (method, path) in [
        ("POST", "/v1/check"),
        ("POST", "/v1/release"),
        ("GET", "/v1/auth"),
        ("GET", "/v1/policies"),
    ] {
        let response = http_request(health, method, path, &[], Some(check));
        assert_eq!(
            response.status, 404,
            "{method} {path} on the health listener"
        );
    }
    // The check API itself works, on its own listener.
    let allowed = fg.check(std::str::from_utf8(check).unwrap());
    assert_eq!(allowed.status, 200, "{}", allowed.text());
}

/// The JSON-array strings on the line starting with `key` (`args: [...]`,
/// `CMD [...]`).
fn array_after(text: &str, key: &str) -> Vec<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} line"));
    let list = &line[line.find('[').expect("[")..];
    serde_json::from_str(list).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn container_args_name_real_subcommands_and_flags() {
    let yaml = manifest();
    let args = array_after(&yaml, "args:");
    assert_eq!(args, ["serve", "--config", CONFIG_PATH]);
    let (code, help, err) = run_cli(&[&args[0], "--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(help.contains("--config <CONFIG>"), "{help}");
    // The ConfigMap is mounted where --config points.
    let dir = CONFIG_PATH.rsplit_once('/').unwrap().0;
    assert!(yaml.contains(&format!("mountPath: {dir}")), "{yaml}");

    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    assert_eq!(array_after(&dockerfile, "ENTRYPOINT"), ["floodgate"]);
    assert_eq!(array_after(&dockerfile, "CMD"), args);
    assert!(dockerfile.contains("\nUSER "), "non-root user");
}

#[test]
fn probes_and_scrapes_go_to_the_health_listener_on_9722() {
    let yaml = manifest();
    for (probe, path) in [
        ("livenessProbe:", "/healthz"),
        ("readinessProbe:", "/readyz"),
    ] {
        let block: Vec<&str> = yaml
            .lines()
            .skip_while(|l| l.trim() != probe)
            .skip(1)
            .take(4)
            .map(str::trim)
            .collect();
        assert!(block.contains(&"httpGet:"), "{probe} {block:?}");
        assert!(
            block.contains(&format!("path: {path}").as_str()),
            "{probe} {block:?}"
        );
        assert!(block.contains(&"port: 9722"), "{probe} {block:?}");
    }
    assert!(yaml.contains("prometheus.io/port: \"9722\""), "scrape port");
    // Only the health listener is a port of the pod.
    assert!(yaml.contains("containerPort: 9722"));
    assert!(!yaml.contains("containerPort: 9720"));
    assert!(!yaml.contains("containerPort: 9721"));
    assert!(yaml.contains("requests:"), "resource requests");
}

fn yaml(path: &str) -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(repo_root().join(path)).expect(path);
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(value: &serde_yaml_ng::Value) -> Vec<String> {
    value
        .as_sequence()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn compose_file_runs_real_commands_on_a_valid_config() {
    let compose = yaml("deploy/docker-compose.yml");
    let services = &compose["services"];
    for name in ["app", "floodgate", "redis"] {
        assert!(services[name].is_mapping(), "service {name}");
    }
    // floodgate: a real subcommand and flag, on the mounted config.
    let floodgate = &services["floodgate"];
    let command = strings(&floodgate["command"]);
    assert_eq!(command, ["serve", "--config", CONFIG_PATH]);
    assert_eq!(floodgate["network_mode"].as_str(), Some("service:app"));
    assert_eq!(
        floodgate["build"]["dockerfile"].as_str(),
        Some("deploy/Dockerfile")
    );
    let mount = strings(&floodgate["volumes"])
        .into_iter()
        .find(|v| v.contains(CONFIG_PATH))
        .expect("the config is mounted at --config");
    let source = mount.split(':').next().unwrap();
    let config = repo_root().join("deploy").join(source);
    let (code, out, err) = run_cli(&["check-config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("store: redis"), "{out}");
    // Its Redis URL names the compose file's redis service.
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("url = \"redis://redis:6379\""), "{toml}");
    assert!(strings(&services["redis"]["command"]).contains(&"--appendonly".to_string()));

    // The app: the tested Express demo, pointed at its sidecar; its health
    // check asks a real floodgate endpoint.
    let app = &services["app"];
    let app_command = strings(&app["command"]);
    assert!(
        repo_root().join(&app_command[1]).exists(),
        "{app_command:?}"
    );
    assert_eq!(
        app["environment"]["FLOODGATE_URL"].as_str(),
        Some("http://127.0.0.1:9720")
    );
    let health = strings(&app["healthcheck"]["test"]).join(" ");
    assert!(health.contains("127.0.0.1:9720/readyz"), "{health}");
    let local = toml
        .replace("0.0.0.0:9720", "127.0.0.1:0")
        .replace("0.0.0.0:9721", "127.0.0.1:0")
        .replace("redis://redis:6379", "redis://127.0.0.1:1");
    let fg = Floodgate::start(&local);
    assert_eq!(fg.http("GET", "/readyz", None).status, 200);
}

#[test]
fn kubernetes_redis_is_a_deployment_and_its_service() {
    let text = std::fs::read_to_string(repo_root().join("deploy/kubernetes/redis.yaml")).unwrap();
    let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    let (deployment, service) = (&docs[0], &docs[1]);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(
            &labels[key.as_str().unwrap()],
            value,
            "the service selects the pods"
        );
    }
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(6379));
    let name = service["metadata"]["name"].as_str().unwrap();
    assert!(
        text.contains(&format!("redis://{name}:6379")),
        "usage comment"
    );
    assert!(text.contains("NOT for production"));
}
