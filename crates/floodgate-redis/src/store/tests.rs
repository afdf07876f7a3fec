use std::time::Duration;

use fred::types::config::Options;
use fred::types::Builder;
use tokio::time::Instant;

use super::connect::unsupported_version;
use super::Link;
use crate::batch::Batcher;

#[test]
fn redis_older_than_6_0_is_refused() {
    let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
    assert_eq!(unsupported_version(&info("5.0.14")), Some("5.0.14".into()));
    assert_eq!(unsupported_version(&info("4.0.9")), Some("4.0.9".into()));
    for supported in ["6.0.0", "6.2.14", "7.0.15", "7.4.1", "8.0.2", "10.1"] {
        assert_eq!(unsupported_version(&info(supported)), None, "{supported}");
    }
    assert_eq!(unsupported_version("# Server\r\n"), None);
    assert_eq!(unsupported_version(&info("unknown")), None);
}

/// fred's call futures are kilobytes; every one is boxed, so a call's
/// future (copied whole each time it is boxed or spawned) stays small.
#[test]
fn call_futures_stay_small() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let link = Link {
            pool: Builder::default_centralized()
                .build_pool(1)
                .expect("an unconnected pool"),
            timeout: Duration::from_secs(1),
            options: Options::default(),
        };
        let run = link.run(&[]);
        assert!(
            size_of_val(&run) < 2048,
            "Link::run: {} bytes",
            size_of_val(&run)
        );
        let batcher = Batcher::start(link.clone(), 1);
        let check = batcher.check(Vec::new(), Vec::new(), Instant::now());
        assert!(
            size_of_val(&check) < 1024,
            "Batcher::check: {} bytes",
            size_of_val(&check)
        );
    });
}
