//! What can be checked of `deploy/` without Docker or Kubernetes (neither
//! runs here): the ConfigMap's TOML is valid and serves health endpoints,
//! the container args and the Dockerfile name real subcommands and flags,
//! and the probes point at `/healthz` and `/readyz`.

use floodgate_e2e::{repo_root, run_cli, Floodgate};

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
fn configmap_toml_is_valid_and_serves_health() {
    let toml = configmap_toml();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floodgate.toml");
    std::fs::write(&path, &toml).unwrap();
    let (code, out, err) = run_cli(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for policy in ["ai-per-user", "auth-per-ip", "api-per-user"] {
        assert!(out.contains(policy), "{out}");
    }
    // The probes' port is the HTTP listener's.
    assert!(toml.contains("http = \"0.0.0.0:9720\""), "{toml}");
    // Served (on free ports), both probe paths answer 200.
    let local = toml
        .replace("http = \"0.0.0.0:9720\"", "http = \"127.0.0.1:0\"")
        .replace("grpc = \"127.0.0.1:9721\"", "grpc = \"127.0.0.1:0\"");
    let fg = Floodgate::start(&local);
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(fg.http("GET", probe, None).status, 200, "{probe}");
    }
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
fn probes_are_healthz_and_readyz_on_9720() {
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
        assert!(block.contains(&"port: 9720"), "{probe} {block:?}");
    }
    assert!(yaml.contains("requests:"), "resource requests");
}
