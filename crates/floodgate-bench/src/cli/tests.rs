//! Flag parsing and validation.

use super::*;

fn config(args: &[&str]) -> Result<Config, String> {
    let argv = std::iter::once("floodgate-bench").chain(args.iter().copied());
    let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
    args.into_config().map_err(|e| e.to_string())
}

fn rejected(args: &[&str], needle: &str) {
    match config(args) {
        Ok(c) => panic!("{args:?} was accepted: {c:?}"),
        Err(e) => assert!(e.contains(needle), "{args:?}: {e:?} lacks {needle:?}"),
    }
}

#[test]
fn defaults() {
    let c = config(&[]).unwrap();
    assert_eq!(c.protocol, Protocol::Grpc);
    assert_eq!(c.targets.len(), 1);
    assert_eq!(c.targets[0].addr().to_string(), "127.0.0.1:9721");
    assert_eq!((c.connections, c.in_flight, c.workers()), (4, 16, 64));
    assert_eq!(c.load, Load::Closed);
    assert_eq!(c.duration, Duration::from_secs(10));
    assert_eq!(c.requests, None);
    assert_eq!(c.keys, KeySpec::Uniform { keys: 10_000 });
    assert_eq!(c.template.hits, 1);
    assert!(c.template.attributes.is_empty());
    assert_eq!(c.accuracy_limit, None);
    let http = config(&["--protocol", "http"]).unwrap();
    assert_eq!(http.targets[0].addr().to_string(), "127.0.0.1:9720");
}

#[test]
fn full_command_line() {
    let c = config(&[
        "--protocol",
        "envoy",
        "--target",
        "127.0.0.1:1",
        "--target",
        "http://[::1]:2",
        "-c",
        "2",
        "-m",
        "8",
        "--rate",
        "5000",
        "-n",
        "100",
        "-d",
        "2m",
        "--timeout",
        "250ms",
        "--keys",
        "zipf:1000:1.1",
        "--attr",
        "endpoint=ai",
        "--attr",
        "tenant=",
        "--hits",
        "3",
        "--accuracy",
        "--limit",
        "500",
        "--seed",
        "9",
        "--domain",
        "edge",
    ])
    .unwrap();
    assert_eq!(c.protocol, Protocol::Envoy);
    assert_eq!(c.targets.len(), 2);
    assert_eq!(c.workers(), 16);
    assert_eq!(c.load, Load::Open { rate: 5000.0 });
    assert_eq!(c.requests, Some(100));
    assert_eq!(c.duration, Duration::from_secs(120));
    assert_eq!(c.timeout, Duration::from_millis(250));
    assert_eq!(
        c.keys,
        KeySpec::Zipf {
            keys: 1000,
            exponent: 1.1
        }
    );
    assert_eq!(c.template.attributes["endpoint"], "ai");
    assert_eq!(c.template.attributes["tenant"], "");
    assert_eq!(c.template.hits, 3);
    assert_eq!(c.template.domain, "edge");
    assert_eq!(c.accuracy_limit, Some(500));
    assert_eq!(c.seed, 9);
}

#[test]
fn rejects_bad_values() {
    rejected(&["--protocol", "thrift"], "thrift");
    rejected(&["--keys", "zipf:0"], "key count");
    rejected(&["--keys", "pareto:10"], "unknown key distribution");
    rejected(&["--attr", "endpoint"], "not name=value");
    rejected(&["--attr", "=ai"], "not name=value");
    rejected(&["--attr", "user=alice"], "--keys sets `user`");
    rejected(&["--attr", "a=1", "--attr", "a=2"], "given twice");
    rejected(&["--duration", "10"], "not a duration");
    rejected(&["--duration", "5 s"], "not a duration");
    rejected(&["--duration", "11m"], "at most 10m");
    rejected(&["--duration", "0s"], "more than 0");
    rejected(&["--timeout", "2m"], "at most 60s");
    rejected(&["--requests", "0"], "at least 1");
    rejected(&["--connections", "0"], "at least 1");
    rejected(
        &["--connections", "64", "--in-flight", "64"],
        "at most 1024",
    );
    rejected(&["--rate", "0"], "must be > 0");
    rejected(&["--rate", "-5"], "");
    rejected(&["--rate", "inf"], "must be > 0");
    rejected(&["--protocol", "envoy", "--hits", "0"], "hits_addend");
    rejected(&["--accuracy"], "--limit");
    rejected(&["--limit", "5"], "--accuracy");
    rejected(&["--hits", "-1"], "");
}

#[test]
fn refuses_remote_targets() {
    rejected(
        &["--target", "10.1.2.3:9721"],
        "only sends load to loopback",
    );
    rejected(
        &["--target", "127.0.0.1:9721", "--target", "192.168.0.2:9721"],
        "192.168.0.2",
    );
    rejected(&["--target", "https://127.0.0.1:9721"], "scheme");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    for bad in ["", "s", "1", "1.5s", "1d", "-1s", "99999999999999999999s"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn tenants_spread_a_tenant_attribute_over_the_keys() {
    let c = config(&["--tenants", "3", "--keys", "uniform:10"]).unwrap();
    assert_eq!(c.template.tenants, Some(3));
    assert_eq!(c.template.tenant(0).as_deref(), Some("t0"));
    assert_eq!(c.template.tenant(7).as_deref(), Some("t1"));
    assert_eq!(config(&[]).unwrap().template.tenant(7), None);
    rejected(&["--tenants", "0"], "from 1 to");
    rejected(
        &["--tenants", "2", "--protocol", "http"],
        "needs --protocol grpc",
    );
    rejected(
        &["--tenants", "2", "--attr", "tenant=a"],
        "not allowed with --tenants",
    );
}
