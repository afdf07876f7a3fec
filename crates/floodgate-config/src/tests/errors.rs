//! Files that do not parse: each error with its line and column, and
//! several errors reported together in file order.

use std::path::Path;

use super::{errors, from_str, single_error, POLICY};
use crate::load;

#[test]
fn a_syntax_error_is_reported_alone() {
    single_error("[server]\nhttp = \n", 2, 8, &["invalid TOML"]);
    single_error("a = 1\na = 2\n", 2, 1, &["duplicate key"]);
}

#[test]
fn a_log_filter_the_server_could_not_read() {
    for bad in ["floodgate=loud", "==", "info,[x", " "] {
        let src = format!("[server]\nlog = {bad:?}\n");
        single_error(&src, 2, 7, &["invalid log filter"]);
    }
    let fine = from_str(
        "[server]\nlog = \"floodgate=debug,hyper=warn,info\"\n",
        "f.toml",
    );
    assert!(fine.is_ok(), "{fine:?}");
}

#[test]
fn two_listeners_on_one_port() {
    single_error(
        "[server]\nhttp = \"127.0.0.1:9000\"\ngrpc = \"127.0.0.1:9000\"\n",
        3,
        8,
        &["grpc (127.0.0.1:9000) and http (127.0.0.1:9000) listen on one port"],
    );
    // Reported on what the file writes, not on the default it meets.
    single_error(
        "[server]\nhttp = \"0.0.0.0:9721\"\n",
        2,
        8,
        &["grpc (127.0.0.1:9721) and http (0.0.0.0:9721)"],
    );
    // [::] takes IPv4 too.
    let src = "[server]\nhttp = \"[::]:9000\"\ngrpc = \"127.0.0.1:9000\"\n";
    single_error(src, 3, 8, &["grpc (127.0.0.1:9000) and http ([::]:9000)"]);
    let src = "[server]\nhttp = \"127.0.0.1:9000\"\nhealth = \"127.0.0.1:9000\"\n";
    single_error(src, 3, 10, &["health (127.0.0.1:9000) and http"]);
    let admin = "[server]\nhttp = \"127.0.0.1:9000\"\n[admin]\ntoken_env = \"PATH\"\nlisten = \"0.0.0.0:9000\"\n";
    single_error(admin, 5, 10, &["listen (0.0.0.0:9000) and [server] http"]);
    for fine in [
        "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n",
        "[server]\nhttp = \"127.0.0.1:9000\"\ngrpc = \"127.0.0.2:9000\"\n",
        "[server]\nhttp = \"0.0.0.0:9000\"\ngrpc = \"[::1]:9000\"\n",
    ] {
        assert!(from_str(fine, "f.toml").is_ok(), "{fine}");
    }
}

#[test]
fn unknown_key_at_the_top_level() {
    single_error(
        "[server]\n\n[polcy]\nname = \"x\"\n",
        3,
        2,
        &[
            "unknown key \"polcy\" at the top level",
            "expected one of: server, store, fallback, identity, traces, admin, endpoint, policy",
            "did you mean \"policy\"?",
        ],
    );
}

#[test]
fn unknown_key_in_server() {
    single_error(
        "[server]\nhttp = \"127.0.0.1:1\"\n  htp = \"x\"\n",
        3,
        3,
        &[
            "unknown key \"htp\" in [server]",
            "http, grpc, proxy, headers",
        ],
    );
}

#[test]
fn unknown_key_in_a_policy() {
    let src = format!("{POLICY}limt = 5\n");
    single_error(
        &src,
        6,
        1,
        &["unknown key \"limt\" in [[policy]]", "expected one of: name, match, key, limit, window, algorithm, burst, lease_timeout, mode, fallback, domain, replaces, settle, deny_status, max_wait, max_waiting, block_for, block_escalation, block_max, calendar, timezone", "did you mean \"limit\"?"],
    );
}

#[test]
fn a_misspelt_key_is_one_error_not_two() {
    // Not also "window is required": the misspelling already says it.
    let src = "[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 10\nwindw = \"1m\"\n";
    single_error(
        src,
        5,
        1,
        &["unknown key \"windw\"", "did you mean \"window\"?"],
    );
}

#[test]
fn every_unknown_key_of_one_table_is_reported() {
    let found = errors("[server]\nfoo = 1\nhttp = \"127.0.0.1:1\"\nbar = 2\n");
    let places: Vec<_> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(places, [(2, 1), (4, 1)]);
}

#[test]
fn bad_duration() {
    let src = "[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 10\nwindow = \"5 minutes\"\n";
    single_error(
        src,
        5,
        10,
        &["invalid duration \"5 minutes\": expected an integer followed by ms, s, m, h or d, like \"250ms\" or \"1m\""],
    );
    single_error(
        "[server]\nshutdown_grace = 10\n",
        2,
        18,
        &["invalid duration 10", "\"10s\""],
    );
}

#[test]
fn zero_limit() {
    let src = "[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 0\nwindow = \"1m\"\n";
    single_error(src, 4, 9, &["policy \"p\"", "limit must be at least 1"]);
}

#[test]
fn wrong_type() {
    let src = "[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = \"ten\"\nwindow = \"1m\"\n";
    single_error(
        src,
        4,
        9,
        &[
            "invalid limit in [[policy]]",
            "expected a non-negative integer",
            "found string \"ten\"",
        ],
    );
    single_error(
        "[server]\nshadow = \"yes\"\n",
        2,
        10,
        &["invalid shadow in [server]", "expected a boolean"],
    );
    single_error(
        "policy = 3\n",
        1,
        10,
        &["expected an array of tables, written [[policy]]"],
    );
    single_error(
        "[policy]\nname = \"x\"\n",
        1,
        1,
        &["written [[policy]]", "found a table"],
    );
    single_error(
        "server = 1\n",
        1,
        10,
        &["invalid server at the top level: expected a table"],
    );
}

#[test]
fn duplicate_policy_names() {
    let src =
        format!("{POLICY}\n[[policy]]\nname = \"p\"\nkey = [\"ip\"]\nlimit = 5\nwindow = \"1s\"\n");
    single_error(&src, 8, 8, &["duplicate policy name \"p\"", "line 2"]);
}

#[test]
fn a_policy_with_no_key_and_no_match() {
    let src = "[[policy]]\nname = \"everything\"\nkey = []\nlimit = 10\nwindow = \"1m\"\n";
    single_error(src, 3, 7, &["no `key` and no `match`"]);
    // Without a `key` line the error points at the table header.
    single_error(
        "\n[[policy]]\nname = \"g\"\nlimit = 1\nwindow = \"1s\"\n",
        2,
        1,
        &["no `key` and no `match`"],
    );
}

#[test]
fn unknown_algorithm() {
    let src = format!("{POLICY}algorithm = \"leaky_bucket\"\nburst = 5\n");
    // `burst` is not reported: it is only wrong because the algorithm is.
    single_error(
        &src,
        6,
        13,
        &["invalid algorithm \"leaky_bucket\"", "\"sliding_window\", \"sliding_log\", \"fixed_window\", \"token_bucket\", \"concurrency\""],
    );
}

#[test]
fn unknown_fallback_mode() {
    single_error(
        "[fallback]\nmode = \"open\"\n",
        2,
        8,
        &[
            "invalid mode \"open\" in [fallback]",
            "\"local\", \"allow\", \"deny\"",
        ],
    );
    let src = format!("{POLICY}fallback = \"maybe\"\n");
    single_error(&src, 6, 12, &["invalid fallback \"maybe\" in [[policy]]"]);
    let src = format!("{POLICY}mode = \"dry-run\"\n");
    single_error(
        &src,
        6,
        8,
        &["invalid mode \"dry-run\"", "\"enforce\", \"shadow\""],
    );
}

#[test]
fn zero_instances() {
    single_error(
        "[fallback]\ninstances = 0\n",
        2,
        13,
        &["instances must be at least 1", "\"auto\""],
    );
    single_error(
        "[fallback]\ninstances = \"many\"\n",
        2,
        13,
        &["expected a positive integer or \"auto\""],
    );
    single_error(
        "[fallback]\ninstances = -1\n",
        2,
        13,
        &["expected a positive integer or \"auto\"", "-1"],
    );
    single_error(
        "[fallback]\nprobe_interval = \"-1s\"\n",
        2,
        18,
        &["invalid duration \"-1s\""],
    );
}

#[test]
fn zero_probe_interval() {
    single_error(
        "[fallback]\nprobe_interval = \"0s\"\n",
        2,
        18,
        &["probe_interval must be more than 0"],
    );
    single_error(
        "[fallback]\nfailure_threshold = 0\n",
        2,
        21,
        &["failure_threshold must be at least 1"],
    );
}

#[test]
fn url_and_cluster_together() {
    let src = "[store.redis]\nurl = \"redis://a:6379\"\ncluster = [\"redis://b:7000\"]\n";
    single_error(src, 3, 11, &["`cluster` cannot be combined with `url`"]);
}

#[test]
fn empty_cluster_list() {
    single_error(
        "[store.redis]\ncluster = []\n",
        2,
        11,
        &["cluster lists no node"],
    );
}

#[test]
fn bad_redis_url() {
    single_error(
        "[store.redis]\nurl = \"http://cache:6379\"\n",
        2,
        7,
        &[
            "invalid Redis URL \"http://cache:6379\"",
            "redis:// or rediss://",
        ],
    );
    // An element of a list is pointed at precisely.
    single_error(
        "[store.redis]\ncluster = [\"redis://a:7000\", \"redis://b:port\"]\n",
        2,
        30,
        &["invalid Redis URL \"redis://b:port\"", "port"],
    );
    // Passwords never appear in messages.
    let found = errors("[store.redis]\nurl = \"redis://u:hunter2@:6379\"\n");
    assert!(!found[0].2.contains("hunter2"), "{}", found[0].2);
}

#[test]
fn redis_urls_are_checked_as_the_redis_store_reads_them() {
    // The database must fit Redis's SELECT (0 to 255).
    single_error(
        "[store.redis]\nurl = \"redis://a:6379/300\"\n",
        2,
        7,
        &["invalid Redis URL \"redis://a:6379/300\"", "database"],
    );
    // One scheme for every node of a list: the odd one out is pointed at.
    single_error(
        "[store.redis]\ncluster = [\"rediss://a:7000\", \"redis://b:7000\"]\n",
        2,
        31,
        &["cluster mixes redis:// and rediss://"],
    );
}

#[test]
fn redis_timeout_of_zero() {
    single_error(
        "[store.redis]\nurl = \"redis://a\"\ntimeout = \"0ms\"\n",
        3,
        11,
        &["timeout must be more than 0"],
    );
}

#[test]
fn redis_needs_its_section_and_one_topology() {
    single_error(
        "[store]\nkind = \"redis\"\n",
        2,
        8,
        &["needs a [store.redis] section"],
    );
    single_error(
        "[store]\nkind = \"memcached\"\n",
        2,
        8,
        &["invalid kind \"memcached\"", "\"local\", \"redis\""],
    );
    single_error(
        "[store.redis]\nkey_prefix = \"x\"\n",
        1,
        1,
        &["[store.redis] needs one of"],
    );
    single_error(
        "[store.redis]\nsentinels = [\"redis://s:26379\"]\n",
        2,
        13,
        &["service_name"],
    );
    single_error(
        "[store.redis]\nurl = \"redis://a\"\nkey_prefix = \"a:b\"\n",
        3,
        14,
        &["invalid key_prefix"],
    );
    single_error(
        "[store.redis]\nurl = \"redis://a\"\ndeny_cache = \"yes\"\n",
        3,
        14,
        &["deny_cache"],
    );
    single_error(
        "[store.redis]\nurl = \"redis://a\"\npool_size = 65\n",
        3,
        13,
        &["pool_size must be from 1 to 64"],
    );
    single_error(
        "[store.redis]\nurl = \"redis://a\"\ntls_ca_file = \"/etc/ca.pem\"\n",
        3,
        15,
        &["only used with TLS", "rediss://"],
    );
    single_error(
        "[store.redis]\nurl = \"rediss://a\"\ntls_ca_file = \"\"\n",
        3,
        15,
        &["must not be empty"],
    );
    single_error("[store.local]\nshards = 3\n", 2, 10, &["power of two"]);
    single_error("[store.local]\nmax_keys = 999\n", 2, 12, &["at least 1000"]);
}

#[test]
fn burst_on_a_policy_that_is_not_token_bucket() {
    let src = format!("{POLICY}algorithm = \"fixed_window\"\nburst = 50\n");
    single_error(&src, 7, 9, &["burst applies only to token_bucket"]);
}

#[test]
fn bad_endpoint_path() {
    single_error(
        "[[endpoint]]\nname = \"ai\"\npath = \"api/chat/*\"\n",
        3,
        8,
        &["endpoint path \"api/chat/*\" must start with '/'"],
    );
    single_error(
        "[[endpoint]]\nname = \"ai\"\n",
        1,
        1,
        &["[[endpoint]] needs a path"],
    );
}

#[test]
fn server_values_are_checked() {
    single_error(
        "[server]\nhttp = \"localhost\"\n",
        2,
        8,
        &["invalid address \"localhost\"", "IP:port"],
    );
    single_error(
        "[server]\nheaders = \"ietf\"\n",
        2,
        11,
        &["\"draft\", \"legacy\", \"both\", \"none\""],
    );
    single_error(
        "[server]\nworkers = 0\n",
        2,
        11,
        &["workers must be between 1 and 1024, not 0"],
    );
    single_error(
        "[server]\nworkers = 1025\n",
        2,
        11,
        &["workers must be between 1 and 1024, not 1025"],
    );
    single_error("[server]\nworkers = -1\n", 2, 11, &["workers"]);
    single_error(
        "[server]\nmax_connections = 0\n",
        2,
        19,
        &["max_connections must be at least 1"],
    );
    single_error(
        "[server]\nproxy = { listen = \"0.0.0.0:8000\", upstream = \"https://app\" }\n",
        2,
        47,
        &["only http:// upstreams"],
    );
    single_error(
        "[server]\nproxy = { listen = \"0.0.0.0:8000\", upstrem = \"http://app\" }\n",
        2,
        36,
        &[
            "unknown key \"upstrem\" in [server.proxy]",
            "did you mean \"upstream\"?",
        ],
    );
    single_error(
        "[identity]\nuser_header = \"x user\"\n",
        2,
        15,
        &["invalid user_header"],
    );
    for bad in ["0", "129"] {
        single_error(
            &format!("[identity]\nipv6_prefix = {bad}\n"),
            2,
            15,
            &["invalid ipv6_prefix", "from 1 to 128"],
        );
    }
}

#[test]
fn bad_key_alternatives_point_at_their_entry() {
    let policy =
        |key: &str| format!("[[policy]]\nname = \"p\"\nkey = {key}\nlimit = 10\nwindow = \"1m\"\n");
    single_error(
        &policy("[\"ip\", \"user|\"]"),
        3,
        14,
        &["key attribute \"\" in \"user|\"", "separated by '|'"],
    );
    single_error(
        &policy("[\"user|ip\", \"ip\"]"),
        3,
        19,
        &["key attribute \"ip\" is listed twice"],
    );
    single_error(
        &policy("[\"user|user\"]"),
        3,
        8,
        &["key attribute \"user\" is listed twice"],
    );
}

#[test]
fn case_sensitive_must_be_a_boolean() {
    single_error(
        "[[endpoint]]\nname = \"ai\"\npath = \"/a\"\ncase_sensitive = \"yes\"\n",
        4,
        18,
        &["case_sensitive"],
    );
}

#[test]
fn three_errors_in_three_places_come_in_file_order() {
    let src = r#"[server]
http = "127.0.0.1:9720"
verbose = true

[fallback]
instances = 0

[[policy]]
name = "ai"
key = ["user"]
limit = 10
window = "soon"
"#;
    let found = errors(src);
    let places: Vec<_> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(places, [(3, 1), (6, 13), (12, 10)], "{found:#?}");
    assert!(found[0].2.contains("unknown key \"verbose\""));
    assert!(found[1].2.contains("instances"));
    assert!(found[2].2.contains("invalid duration \"soon\""));
}

#[test]
fn errors_in_one_policy_do_not_hide_errors_in_another_or_in_the_same() {
    let src = r#"[[policy]]
name = "a"
limit = "many"
window = "1 minute"
key = ["user"]

[[policy]]
name = "b"
key = ["user"]
limit = 0
window = "1m"
"#;
    let found = errors(src);
    let places: Vec<_> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(places, [(3, 9), (4, 10), (10, 9)], "{found:#?}");
}

#[test]
fn errors_display_file_line_and_column() {
    let err = from_str("[server]\nhttp = 1\n", "floodgate.toml").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("floodgate.toml:2:8: invalid http in [server]"),
        "{text}"
    );
}

#[test]
fn load_reports_an_unreadable_file_at_line_zero() {
    let err = load(Path::new("/nonexistent/floodgate.toml")).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!((err.0[0].line, err.0[0].column), (0, 0));
    assert!(err
        .to_string()
        .starts_with("/nonexistent/floodgate.toml:0:0: cannot read"));
}

/// `replaces` problems point at the entry at fault.
#[test]
fn replaces_errors_are_positioned() {
    let base = "[[policy]]\nname = \"base\"\nkey = [\"user\"]\nlimit = 10\nwindow = \"1m\"\n";
    let tier = |replaces: &str| {
        format!("{base}[[policy]]\nname = \"pro\"\nmatch = {{ plan = \"pro\" }}\nkey = [\"user\"]\nlimit = 100\nwindow = \"1m\"\nreplaces = {replaces}\n")
    };
    single_error(
        &tier("[\"base\", \"bsae\"]"),
        12,
        21,
        &["policy \"pro\" replaces \"bsae\", which is not the name of any policy"],
    );
    single_error(&tier("[\"pro\"]"), 12, 13, &["cannot replace itself"]);
    single_error(
        &tier("[\"base\", \"base\"]"),
        12,
        21,
        &["lists \"base\" twice"],
    );
    single_error(&tier("\"base\""), 12, 12, &["replaces", "array"]);
    // base replaces pro replaces base: reported once, where it closes.
    let cycle = tier("[\"base\"]").replacen(
        "window = \"1m\"\n",
        "window = \"1m\"\nreplaces = [\"pro\"]\n",
        1,
    );
    let found = errors(&cycle);
    assert_eq!(found.len(), 1, "{found:#?}");
    let (line, _, message) = &found[0];
    assert!([6, 13].contains(line), "{found:#?}");
    assert!(message.contains("cycle"), "{message}");
    assert!(
        message.contains("base replaces pro replaces base")
            || message.contains("pro replaces base replaces pro"),
        "{message}"
    );
    let lease =
        "[[policy]]\nname = \"lease\"\nkey = [\"user\"]\nlimit = 2\nalgorithm = \"concurrency\"\n";
    single_error(
        &format!("{lease}{POLICY}replaces = [\"lease\"]\n"),
        11,
        13,
        &["concurrency policy can only replace concurrency policies"],
    );
}
