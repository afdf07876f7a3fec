//! Clients that try to step around a limit by who they claim to be or how
//! they spell a path, against the real binary: anonymous requests, paths a
//! web framework routes alike however they are written, spoofed forwarding
//! headers, and the many addresses of one IPv6 host. Through the reverse
//! proxy (in front of the scripted upstream) and through nginx's
//! `/v1/auth`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use floodgate_e2e::upstream::ScriptedUpstream;
use floodgate_e2e::{http_request, repo_root, Floodgate, HttpResponse, RedisServer};
use floodgate_proto::envoy::config::core::v3::{address, Address, SocketAddress};
use floodgate_proto::envoy::service::auth::v3 as authz;

/// A shipped config with its listeners on free loopback ports, the proxy
/// (if any) in front of `upstream`, and `replacements` applied.
fn shipped(file: &str, upstream: Option<SocketAddr>, replacements: &[(&str, &str)]) -> Floodgate {
    let mut toml = std::fs::read_to_string(repo_root().join(file)).unwrap();
    for (from, to) in replacements {
        assert!(toml.contains(from), "{file} has no {from:?}");
        toml = toml.replacen(from, to, 1);
    }
    let mut toml = toml
        .replace("127.0.0.1:9720", "127.0.0.1:0")
        .replace("127.0.0.1:9721", "127.0.0.1:0")
        .replace("0.0.0.0:8000", "127.0.0.1:0");
    if let Some(upstream) = upstream {
        toml = toml.replace("127.0.0.1:3000", &upstream.to_string());
    }
    Floodgate::start(&toml)
}

/// A config of its own: listeners on free ports, a proxy in front of
/// `upstream`, `identity` lines, the AI endpoint class and `policies`.
fn custom(upstream: SocketAddr, identity: &str, policies: &str) -> Floodgate {
    Floodgate::start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\nproxy = {{ listen = \"127.0.0.1:0\", upstream = \"http://{upstream}\" }}\n\n[identity]\n{identity}\n\n[[endpoint]]\nname = \"ai\"\npath = \"/api/chat/*\"\nmethods = [\"POST\"]\n\n{policies}"
    ))
}

/// One request to `/v1/auth` as nginx sends it for a client request of
/// `method path`, with `headers`.
fn auth(fg: &Floodgate, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut all = vec![("X-Original-URI", path), ("X-Original-Method", method)];
    all.extend_from_slice(headers);
    http_request(fg.http, "GET", "/v1/auth", &all, None)
}

/// One request through the proxy.
fn proxied(fg: &Floodgate, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let body: Option<&[u8]> = (method == "POST").then_some(b"{}".as_slice());
    http_request(fg.proxy.expect("a proxy"), method, path, headers, body)
}

/// The statuses of `responses`.
fn statuses(responses: impl IntoIterator<Item = HttpResponse>) -> Vec<u16> {
    responses.into_iter().map(|r| r.status).collect()
}

/// Three AI requests per client address per hour (a sliding window: no
/// boundary can reset it during a test).
const AI_PER_IP: &str = "[[policy]]\nname = \"ai-per-ip\"\nmatch = { endpoint = \"ai\" }\nkey = [\"ip\"]\nlimit = 3\nwindow = \"1h\"\n";

#[test]
fn anonymous_clients_are_limited_by_the_shipped_proxy_example() {
    let upstream = ScriptedUpstream::start();
    let fg = shipped(
        "examples/proxy/floodgate.toml",
        Some(upstream.addr),
        &[("limit = 500", "limit = 6")],
    );
    let path = "/api/chat/completions";
    // Six pass although the stream policy (`concurrency`, 4 per user or
    // address) holds 4 slots: each finished request released its lease,
    // whose counter key names the stand-in (`ip=127.0.0.1`).
    let anonymous: Vec<_> = (0..7).map(|_| proxied(&fg, "POST", path, &[])).collect();
    assert_eq!(
        statuses(anonymous.clone()),
        [200, 200, 200, 200, 200, 200, 429]
    );
    assert_eq!(anonymous[6].json()["policy"], "ai-per-user");
    // A user has a counter of its own, not the address's.
    let user = [("x-user-id", "u1")];
    assert_eq!(proxied(&fg, "POST", path, &user).status, 200);
    assert_eq!(upstream.hits(), 7);
}

#[test]
fn rotating_the_user_header_meets_the_per_address_backstop() {
    let upstream = ScriptedUpstream::start();
    let fg = shipped(
        "examples/proxy/floodgate.toml",
        Some(upstream.addr),
        &[("limit = 2000", "limit = 5")],
    );
    let path = "/api/chat/completions";
    let responses: Vec<_> = (0..6)
        .map(|i| proxied(&fg, "POST", path, &[("x-user-id", &format!("fake-{i}"))]))
        .collect();
    assert_eq!(statuses(responses.clone()), [200, 200, 200, 200, 200, 429]);
    assert_eq!(responses[5].json()["policy"], "ai-per-ip");
}

#[test]
fn anonymous_clients_are_limited_through_v1_auth_by_the_default_config() {
    let fg = shipped(
        "config/floodgate.toml",
        None,
        &[("limit = 500", "limit = 3")],
    );
    let path = "/api/chat/completions";
    let responses = (0..4).map(|_| auth(&fg, "POST", path, &[]));
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
    assert_eq!(auth(&fg, "POST", path, &[("x-user-id", "u1")]).status, 204);
}

#[test]
fn anonymous_clients_are_limited_on_redis_under_a_stand_in_key() {
    let redis = RedisServer::start();
    let url = redis.url();
    let fg = shipped(
        "config/floodgate-redis.toml",
        None,
        &[
            ("redis://127.0.0.1:6379", url.as_str()),
            ("limit = 500", "limit = 3"),
        ],
    );
    let path = "/api/chat/completions";
    let responses = (0..4).map(|_| auth(&fg, "POST", path, &[]));
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
    // The stand-in is named inside the hash tag; a user keeps the plain key.
    assert_eq!(auth(&fg, "POST", path, &[("x-user-id", "u1")]).status, 204);
    let keys = redis.cli(&["--scan", "--pattern", "fg:{ai-per-user:*"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "fg:{ai-per-user:ip=127.0.0.1}:sw:60000",
            "fg:{ai-per-user:u1}:sw:60000"
        ]
    );
}

/// Spellings of `/api/chat/completions` a web framework routes alike.
/// Escaped slashes count both ways: `%2F` as a slash, and `..%2F` kept
/// inside its segment (as Go's ServeMux, Express and Rails route it).
const SPELLINGS: [&str; 7] = [
    "/API/Chat/Completions",
    "/api/%63hat/completions",
    "/api%2Fchat/completions",
    "/api/chat/..%2F..%2Fcompletions",
    "/api/x/../chat/completions",
    "//api/chat/completions",
    "/api/chat//completions?stream=1",
];

#[test]
fn every_spelling_of_a_path_is_classified_and_limited_through_the_proxy() {
    let upstream = ScriptedUpstream::start();
    for spelling in SPELLINGS {
        let fg = custom(upstream.addr, "", AI_PER_IP);
        let responses: Vec<_> = (0..4)
            .map(|_| proxied(&fg, "POST", spelling, &[]))
            .collect();
        assert_eq!(
            statuses(responses.clone()),
            [200, 200, 200, 429],
            "{spelling}"
        );
        assert_eq!(responses[3].json()["policy"], "ai-per-ip", "{spelling}");
        // The app sees the path exactly as the client sent it.
        let head = responses[0].text();
        assert!(
            head.starts_with(&format!("POST {spelling} HTTP/1.1")),
            "{head}"
        );
    }
}

#[test]
fn every_spelling_of_a_path_is_classified_and_limited_through_v1_auth() {
    let upstream = ScriptedUpstream::start();
    for spelling in SPELLINGS {
        let fg = custom(upstream.addr, "", AI_PER_IP);
        let responses = (0..4).map(|_| auth(&fg, "POST", spelling, &[]));
        assert_eq!(statuses(responses), [204, 204, 204, 403], "{spelling}");
    }
    // An endpoint that asks for exact case gets it: other cases are not in
    // the class.
    let fg = custom(
        upstream.addr,
        "",
        &format!(
            "[[endpoint]]\nname = \"admin\"\npath = \"/Admin/*\"\ncase_sensitive = true\n\n{}",
            AI_PER_IP.replace("endpoint = \"ai\"", "endpoint = \"admin\"")
        ),
    );
    let responses = (0..4).map(|_| auth(&fg, "GET", "/admin/x", &[]));
    assert_eq!(statuses(responses), [204, 204, 204, 204]);
    let responses = (0..4).map(|_| auth(&fg, "GET", "/Admin/%78", &[]));
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
}

/// An ext_authz check of `POST path` from an anonymous client at
/// 192.0.2.10, as Envoy sends it.
fn authz_request(path: &str) -> authz::CheckRequest {
    let peer = Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "192.0.2.10".into(),
            ..SocketAddress::default()
        })),
    };
    authz::CheckRequest {
        attributes: Some(authz::AttributeContext {
            source: Some(authz::attribute_context::Peer {
                address: Some(peer),
                ..Default::default()
            }),
            request: Some(authz::attribute_context::Request {
                http: Some(authz::attribute_context::HttpRequest {
                    method: "POST".into(),
                    path: path.into(),
                    headers: HashMap::new(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn every_spelling_of_a_path_is_classified_and_limited_through_ext_authz() {
    let upstream = ScriptedUpstream::start();
    for spelling in SPELLINGS {
        let fg = custom(upstream.addr, "", AI_PER_IP);
        let mut client = authz::authorization_client::AuthorizationClient::connect(fg.grpc_uri())
            .await
            .unwrap();
        let mut denied = Vec::new();
        for _ in 0..4 {
            let response = client
                .check(authz_request(spelling))
                .await
                .unwrap()
                .into_inner();
            denied.push(response.status.unwrap().code != 0);
        }
        assert_eq!(denied, [false, false, false, true], "{spelling}");
    }
}

#[test]
fn spoofed_forwarding_headers_make_no_new_counter_without_trusted_proxies() {
    let upstream = ScriptedUpstream::start();
    let fg = custom(upstream.addr, "trusted_proxies = 0", AI_PER_IP);
    let path = "/api/chat/completions";
    let spoof = |i: usize| {
        (
            format!("198.51.100.{i}"),
            format!("203.0.113.{i}, 192.0.2.{i}"),
        )
    };
    let through_auth = (0..4).map(|i| {
        let (real, xff) = spoof(i);
        auth(
            &fg,
            "POST",
            path,
            &[("X-Real-IP", &real), ("X-Forwarded-For", &xff)],
        )
    });
    assert_eq!(statuses(through_auth), [204, 204, 204, 403]);
    // The operator is told, once, why X-Real-IP is ignored (stderr is read
    // by another thread: wait for the line, bounded).
    let hint = "set [identity] trusted_proxies = 1 behind nginx";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fg.log.lock().unwrap().contains(hint) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = fg.log.lock().unwrap().clone();
    assert_eq!(log.matches(hint).count(), 1, "{log}");
    let fg = custom(upstream.addr, "trusted_proxies = 0", AI_PER_IP);
    let through_proxy = (0..4).map(|i| {
        let (real, xff) = spoof(i);
        proxied(
            &fg,
            "POST",
            path,
            &[("X-Real-IP", &real), ("X-Forwarded-For", &xff)],
        )
    });
    assert_eq!(statuses(through_proxy), [200, 200, 200, 429]);
}

#[test]
fn one_ipv6_network_shares_a_counter_behind_a_trusted_proxy() {
    let upstream = ScriptedUpstream::start();
    let path = "/api/chat/completions";
    // Four addresses of one /56 (2001:db8:0:100::/56), then another /56.
    let same = [
        "2001:db8:0:1aa::1",
        "2001:db8:0:1bb::2",
        "2001:db8:0:1ff:ffff::3",
        "[2001:db8:0:100::4]:443",
    ];
    let fg = custom(upstream.addr, "trusted_proxies = 1", AI_PER_IP);
    let responses = same
        .iter()
        .map(|ip| proxied(&fg, "POST", path, &[("X-Forwarded-For", ip)]));
    assert_eq!(statuses(responses), [200, 200, 200, 429]);
    let other = [("X-Forwarded-For", "2001:db8:0:200::1")];
    assert_eq!(proxied(&fg, "POST", path, &other).status, 200);
    // Through /v1/auth nginx's X-Real-IP is the client, now believed.
    let fg = custom(upstream.addr, "trusted_proxies = 1", AI_PER_IP);
    let responses = same.iter().map(|ip| {
        let ip = ip.trim_start_matches('[').split(']').next().unwrap();
        auth(&fg, "POST", path, &[("X-Real-IP", ip)])
    });
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
    // An IPv4-mapped address is its IPv4 address.
    let fg = custom(upstream.addr, "trusted_proxies = 1", AI_PER_IP);
    let responses = [
        "192.0.2.1",
        "::ffff:192.0.2.1",
        "192.0.2.1",
        "::ffff:c000:201",
    ]
    .iter()
    .map(|ip| auth(&fg, "POST", path, &[("X-Real-IP", ip)]));
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
}

#[test]
fn every_forwarded_for_line_is_read_in_order() {
    let upstream = ScriptedUpstream::start();
    let fg = custom(upstream.addr, "trusted_proxies = 1", AI_PER_IP);
    let path = "/api/chat/completions";
    // The client writes any first line it likes; the trusted proxy in front
    // added the last one, which names the client: one counter.
    let responses: Vec<_> = (0..4)
        .map(|i| {
            let forged = format!("198.51.100.{i}");
            proxied(
                &fg,
                "POST",
                path,
                &[
                    ("X-Forwarded-For", &forged),
                    ("X-Forwarded-For", "203.0.113.7"),
                ],
            )
        })
        .collect();
    assert_eq!(statuses(responses.clone()), [200, 200, 200, 429]);
    // The app gets the whole chain, in order, with the peer appended.
    let head = responses[0].text().to_ascii_lowercase();
    assert!(
        head.contains("x-forwarded-for: 198.51.100.0, 203.0.113.7, 127.0.0.1"),
        "{head}"
    );
    // Another last line is another client.
    let other = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-For", "203.0.113.8"),
    ];
    assert_eq!(proxied(&fg, "POST", path, &other).status, 200);
    // The same through /v1/auth.
    let fg = custom(upstream.addr, "trusted_proxies = 1", AI_PER_IP);
    let responses = (0..4).map(|i| {
        let forged = format!("198.51.100.{i}");
        auth(
            &fg,
            "POST",
            path,
            &[
                ("X-Forwarded-For", &forged),
                ("X-Forwarded-For", "203.0.113.7"),
            ],
        )
    });
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
}

#[test]
fn a_non_ascii_original_uri_is_classified_and_limited_through_v1_auth() {
    let upstream = ScriptedUpstream::start();
    let fg = custom(upstream.addr, "", AI_PER_IP);
    // nginx's `$request_uri` passes the raw UTF-8 bytes of `é`.
    let path = "/api/chat/completions?x=é";
    let responses = (0..4).map(|_| auth(&fg, "POST", path, &[]));
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
    // In the path itself too: the same class, whatever the bytes.
    let fg = custom(upstream.addr, "", AI_PER_IP);
    let responses = [
        "/api/chat/é",
        "/api/chat/\u{ff}x",
        "/api/chat/%C3%A9",
        "/api/chat/é",
    ]
    .map(|path| auth(&fg, "POST", path, &[]));
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
}

#[test]
fn an_absolute_form_original_uri_is_classified_and_limited() {
    let upstream = ScriptedUpstream::start();
    let fg = custom(upstream.addr, "", AI_PER_IP);
    let responses = (0..4).map(|i| {
        let target = format!("http://host-{i}/api//chat/completions?x=1");
        auth(&fg, "POST", &target, &[])
    });
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
}

/// An exact class for `GET /v1/login`, three per address per hour.
const LOGIN_PER_IP: &str = "[[endpoint]]\nname = \"login\"\npath = \"/v1/login\"\nmethods = [\"GET\"]\n\n[[policy]]\nname = \"login-per-ip\"\nmatch = { endpoint = \"login\" }\nkey = [\"ip\"]\nlimit = 3\nwindow = \"1h\"\n";

#[test]
fn a_trailing_slash_or_head_does_not_dodge_an_exact_class() {
    let upstream = ScriptedUpstream::start();
    let fg = custom(upstream.addr, "", LOGIN_PER_IP);
    let responses: Vec<_> = ["/v1/login", "/v1/login/", "/v1//login/", "/v1/login/?x=1"]
        .iter()
        .map(|path| proxied(&fg, "GET", path, &[]))
        .collect();
    assert_eq!(statuses(responses.clone()), [200, 200, 200, 429]);
    assert_eq!(responses[3].json()["policy"], "login-per-ip");
    // A route below it is not the class.
    assert_eq!(proxied(&fg, "GET", "/v1/login/x", &[]).status, 200);
    // HEAD is answered by the GET handler: the same class.
    let fg = custom(upstream.addr, "", LOGIN_PER_IP);
    let responses = ["/v1/login", "/v1/login/", "/v1/login", "/v1/login/"]
        .map(|path| auth(&fg, "HEAD", path, &[]));
    assert_eq!(statuses(responses), [204, 204, 204, 403]);
}

#[test]
fn an_empty_user_is_absent_not_one_shared_counter() {
    let fg = Floodgate::start(
        "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n\n[[policy]]\nname = \"per-user\"\nkey = [\"user|ip\"]\nlimit = 1\nwindow = \"1h\"\n",
    );
    let check = |ip: &str| {
        fg.check(&format!(
            r#"{{"attributes": {{"user": "", "ip": "{ip}"}}}}"#
        ))
    };
    // Each address has a counter of its own: the empty user stands aside.
    for i in 0..3 {
        let r = check(&format!("192.0.2.{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(check("192.0.2.0").status, 429);
}
