//! TLS (`rediss://` with a throwaway CA) and ACL users.

use std::time::Duration;

use floodgate_core::AlgorithmKind;
use floodgate_redis::{Error, RedisConfig, RedisStore, RedisTopology};
use floodgate_store::{Store, StoreOp};

use crate::conformance::policy;
use crate::TIMEOUT;
use floodgate_e2e::{RedisServer, TestCa};

async fn one_check(store: &RedisStore) {
    one_check_of(store, "u").await;
}

/// One check of a fresh `user` on a 5-per-10-s fixed window: allowed, 4 left.
async fn one_check_of(store: &RedisStore, user: &str) {
    let p = policy("fw", AlgorithmKind::FixedWindow, 5, 10_000_000, None);
    let key = p.counter_key(&[("user".to_string(), user.to_string())].into());
    let o = store.check(&[StoreOp::new(&p, &key, 1)]).await.unwrap();
    assert!(o[0].outcome.allowed);
    assert_eq!(o[0].outcome.remaining, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let ca = TestCa::generate();
    let server = RedisServer::start_tls(&ca);
    let url = format!("rediss://127.0.0.1:{}", server.tls_port.unwrap());
    let config = RedisConfig {
        timeout: TIMEOUT,
        tls_ca_file: Some(ca.ca_cert.clone()),
        ..RedisConfig::new(RedisTopology::Standalone(url.clone()))
    };
    let store = RedisStore::connect(&config).await.expect("TLS connection");
    one_check(&store).await;
    store.ping().await.unwrap();

    // Without the CA the certificate is not trusted: a clear TLS error.
    let untrusted = RedisConfig {
        tls_ca_file: None,
        ..config.clone()
    };
    let err = RedisStore::connect(&untrusted).await.unwrap_err();
    assert!(
        matches!(err, Error::Tls(_) | Error::Unreachable { .. }),
        "{err}"
    );
    assert!(err.to_string().to_lowercase().contains("cert"), "{err}");

    let missing = RedisConfig {
        tls_ca_file: Some("/nonexistent/ca.pem".into()),
        ..config
    };
    let err = RedisStore::connect(&missing).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_and_wrong_password() {
    let server = RedisServer::start_with(&["--user", "app", "on", ">s3cret", "~fg:*", "+@all"]);
    let url = |password: &str| format!("redis://app:{password}@127.0.0.1:{}", server.port);
    let config = |password: &str| RedisConfig {
        timeout: TIMEOUT,
        ..RedisConfig::new(RedisTopology::Standalone(url(password)))
    };
    let store = RedisStore::connect(&config("s3cret"))
        .await
        .expect("right password");
    one_check(&store).await;

    let started = std::time::Instant::now();
    let err = RedisStore::connect(&config("wrong")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(message.contains("WRONGPASS"), "{message}");
    assert!(
        !message.contains("wrong@"),
        "the password leaked: {message}"
    );

    // A user without the right to run scripts: named at connect time too.
    let user = |name: &str, rules: &[&str]| {
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(name)
            .arg(&["on", ">pw"])
            .arg(rules)
            .query(&mut server.inspector())
            .unwrap();
        RedisConfig {
            topology: RedisTopology::Standalone(format!(
                "redis://{name}:pw@127.0.0.1:{}",
                server.port
            )),
            ..config("")
        }
    };
    let reader = user("reader", &["~*", "+get"]);
    let err = RedisStore::connect(&reader).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("NOPERM"), "{err}");

    // A user denied INFO: the version check is skipped, not failed.
    let scripts = user("scripts", &["~fg:*", "+@all", "-info"]);
    let store = RedisStore::connect(&scripts).await.expect("no INFO needed");
    one_check_of(&store, "without-info").await;
}
