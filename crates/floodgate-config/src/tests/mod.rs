//! Parsing from strings: an example with every section and defaults (`valid`), and
//! every error with its line and column (`errors`).

mod admin;
mod block;
mod calendar;
mod errors;
mod identity;
mod settle;
mod valid;
mod waiting;

use super::{from_str, Config, ConfigErrors};

/// An example with every section, with the proxy and Redis lines left commented.
pub(super) const FULL_EXAMPLE: &str = r#"
[server]
http = "127.0.0.1:9720"    # JSON API, nginx auth_request, /metrics, health
grpc = "127.0.0.1:9721"    # floodgate.v1, Envoy RLS v3, Envoy ext_authz v3, grpc.health.v1
# proxy = { listen = "0.0.0.0:8000", upstream = "http://127.0.0.1:3000" }

[store]
kind = "local"             # "local" (embedded default) | "redis"
# [store.redis]
# url = "redis://127.0.0.1:6379"                  # rediss:// for TLS; user:password@ for ACL
# cluster = ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]   # instead of url
# key_prefix = "fg"
# timeout = "50ms"          # per Redis call; past it the call counts as failed

[fallback]                 # used while Redis is unreachable
mode = "local"             # "local" | "allow" | "deny"
instances = 4              # local limit = ceil(limit / instances)

[identity]                 # how HTTP-level integrations derive attributes
user_header = "x-user-id"
trusted_proxies = 0        # how many X-Forwarded-For hops to trust for `ip`

[[endpoint]]               # path → endpoint class, first match wins
name = "ai"
path = "/api/chat/*"
methods = ["POST"]

[[policy]]
name = "ai-per-user"
match = { endpoint = "ai" }
key = ["user"]
limit = 500
window = "1m"
algorithm = "sliding_window"
# mode = "shadow"          # count and report, never deny
# fallback = "deny"        # per-policy override of [fallback].mode
"#;

pub(super) fn parse(src: &str) -> Config {
    match from_str(src, "test.toml") {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

/// (line, column, message) of every error, in the order reported.
pub(super) fn errors(src: &str) -> Vec<(usize, usize, String)> {
    match from_str(src, "test.toml") {
        Ok(_) => panic!("expected errors in:\n{src}"),
        Err(ConfigErrors(errors)) => errors
            .into_iter()
            .map(|e| {
                assert_eq!(e.origin, "test.toml");
                (e.line, e.column, e.message)
            })
            .collect(),
    }
}

/// The only error of `src`, which must be at `line`:`column` and mention
/// every one of `words`.
#[track_caller]
pub(super) fn single_error(src: &str, line: usize, column: usize, words: &[&str]) {
    let found = errors(src);
    assert_eq!(found.len(), 1, "expected one error, got {found:#?}");
    let (l, c, message) = &found[0];
    assert_eq!((*l, *c), (line, column), "wrong position for {message:?}");
    for word in words {
        assert!(message.contains(word), "{message:?} lacks {word:?}");
    }
}

pub(super) const POLICY: &str =
    "[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 10\nwindow = \"1m\"\n";
