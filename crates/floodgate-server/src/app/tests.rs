use super::*;

use floodgate_core::{Attributes, Clock, ManualClock};
use floodgate_store::{LocalConfig, LocalStore, Source};

/// A config whose endpoint `e` is `path` and whose one policy is named
/// `policy`, limit 1 per user on `e`.
fn config(path: &str, policy: &str, shadow: bool) -> Config {
    let src = format!(
        "[server]\nshadow = {shadow}\n\n[[endpoint]]\nname = \"e\"\npath = \"{path}\"\n\n[[policy]]\nname = \"{policy}\"\nmatch = {{ endpoint = \"e\" }}\nkey = [\"user\"]\nlimit = 1\nwindow = \"1m\"\n"
    );
    floodgate_config::from_str(&src, "test.toml").expect("valid config")
}

fn app(config: &Config) -> App {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let store = LocalStore::new(LocalConfig::default(), clock, Source::Local);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    App::new(config, false, Arc::new(store), metrics)
}

#[test]
fn one_loaded_snapshot_carries_the_endpoints_and_the_policies_of_one_config() {
    let app = app(&config("/old", "old", false));
    let first = app.settings.load_full();
    app.reload(Settings::from_config(&config("/new", "new", true), false));
    let second = app.settings.load_full();
    for (settings, path, policy, shadow) in [
        (&first, "/old", "old", false),
        (&second, "/new", "new", true),
    ] {
        assert_eq!(settings.endpoints.classify("GET", path), Some("e"));
        assert!(settings.policies.policies().get(policy).is_some());
        assert_eq!(settings.policies.policies().len(), 1);
        assert_eq!(settings.policies.shadow(), shadow);
    }
    // The limiter reads the very snapshot the settings hold.
    assert!(Arc::ptr_eq(&app.limiter.snapshot(), &second.policies));
    assert!(app.limiter.shadow());
}

#[test]
fn the_limiter_changes_the_policies_inside_the_settings() {
    let app = app(&config("/p", "p", false));
    app.limiter.set_shadow(true);
    let settings = app.settings.load();
    assert!(settings.policies.shadow());
    assert_eq!(settings.endpoints.classify("GET", "/p"), Some("e"));
    assert!(settings.policies.policies().get("p").is_some());
}

#[tokio::test]
async fn a_check_decides_with_the_policies_of_the_settings_it_loaded() {
    let app = app(&config("/p", "old", false));
    let before = app.settings.load_full();
    app.reload(Settings::from_config(&config("/p", "new", false), false));
    let attributes: Attributes = [
        ("user".to_string(), "u".to_string()),
        ("endpoint".to_string(), "e".to_string()),
    ]
    .into();
    let check = Check {
        attributes: &attributes,
        hits: 1,
        domain: None,
        reserve: false,
    };
    let verdicts = app
        .limiter
        .check_all_in(&before.policies, &[check], LeaseMode::Held)
        .await
        .unwrap();
    assert_eq!(&*verdicts[0].statuses[0].policy, "old");
    let now = app.limiter.check(check).await.unwrap();
    assert_eq!(&*now.statuses[0].policy, "new");
}
