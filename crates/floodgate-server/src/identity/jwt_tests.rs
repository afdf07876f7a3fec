//! JWT verification: good tokens of each algorithm and key source, and
//! every kind of bad token yielding nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use floodgate_config::JwtConfig;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;

const SECRET: &str = "test-only-secret-0123456789abcdef-0123";

fn fixture(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `[identity.jwt]` with `lines`, as loaded from a file.
fn config(lines: &str) -> JwtConfig {
    let src = format!("[identity.jwt]\n{lines}\nclaims = {{ plan = \"plan\" }}\n");
    match floodgate_config::from_str(&src, "t.toml") {
        Ok(config) => config.identity.jwt.expect("a jwt section"),
        Err(e) => panic!("{e}"),
    }
}

fn hs256() -> JwtConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    config(&format!(
        "algorithm = \"HS256\"\nsecret_file = {:?}",
        path.to_str().unwrap()
    ))
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({ "sub": "u1", "plan": "pro", "exp": now() + 600 });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(
    alg: Algorithm,
    key: &EncodingKey,
    kid: Option<&str>,
    claims: &serde_json::Value,
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

fn hs(claims: &serde_json::Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        claims,
    )
}

fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_der(&std::fs::read(fixture(name)).unwrap())
}

fn ec_key(name: &str) -> EncodingKey {
    EncodingKey::from_ec_der(&std::fs::read(fixture(name)).unwrap())
}

fn headers(value: &str) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    map.insert("authorization", value.parse().unwrap());
    map
}

#[test]
fn a_good_token_gives_its_user_and_claims() {
    let jwt = hs256();
    let token = hs(&claims(json!({})));
    let map = headers(&format!("Bearer {token}"));
    let verified = identity(&jwt, RequestHeaders::Http(&map)).unwrap();
    assert_eq!(verified.user.as_deref(), Some("u1"));
    assert_eq!(
        verified.attributes,
        [("plan".to_string(), "pro".to_string())]
    );
    // Scheme in any case, or the bare token; numbers as users.
    assert!(verify(&jwt, &format!("bearer  {token}")).is_ok());
    assert!(verify(&jwt, &token).is_ok());
    let numeric = hs(&claims(json!({ "sub": 42, "plan": ["a"] })));
    let map = headers(&format!("Bearer {numeric}"));
    let verified = identity(&jwt, RequestHeaders::Http(&map)).unwrap();
    assert_eq!(verified.user.as_deref(), Some("42"));
    assert!(verified.attributes.is_empty(), "an array is no attribute");
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused_past_the_leeway() {
    let jwt = hs256();
    let t = now();
    assert_eq!(
        verify(&jwt, &hs(&claims(json!({ "exp": t - 120 })))),
        Err("expired")
    );
    assert!(
        verify(&jwt, &hs(&claims(json!({ "exp": t - 5 })))).is_ok(),
        "within 30s"
    );
    assert_eq!(
        verify(&jwt, &hs(&claims(json!({ "nbf": t + 120 })))),
        Err("not_yet_valid")
    );
    assert!(verify(&jwt, &hs(&claims(json!({ "nbf": t + 5 })))).is_ok());
    assert_eq!(
        verify(&jwt, &hs(&claims(json!({ "exp": null })))),
        Err("claims"),
        "exp is required"
    );
    let strict = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, SECRET).unwrap();
        config(&format!(
            "algorithm = \"HS256\"\nsecret_file = {:?}\nleeway = \"0s\"",
            path.to_str().unwrap()
        ))
    };
    assert_eq!(
        verify(&strict, &hs(&claims(json!({ "exp": t - 5 })))),
        Err("expired")
    );
}

#[test]
fn forged_and_malformed_tokens_give_nothing() {
    let jwt = hs256();
    let other = EncodingKey::from_secret(b"another-secret-0123456789abcdef-0123");
    let forged = sign(Algorithm::HS256, &other, None, &claims(json!({})));
    assert_eq!(verify(&jwt, &forged), Err("signature"));
    // alg: none, with or without a signature part.
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(json!({})))
    );
    assert_eq!(verify(&jwt, &none), Err("malformed"));
    assert_eq!(verify(&jwt, none.trim_end_matches('.')), Err("malformed"));
    // A good token's claims changed: the signature no longer fits.
    let good = hs(&claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims(json!({ "sub": "admin" }))),
        parts[2]
    );
    assert_eq!(verify(&jwt, &tampered), Err("signature"));
    for bad in [
        "",
        "Bearer",
        "Bearer ",
        "Basic dTpw",
        "a.b.c",
        "not a token",
        "....",
    ] {
        assert!(verify(&jwt, bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        verify(&jwt, &"x".repeat(MAX_TOKEN_BYTES + 1)),
        Err("malformed")
    );
    let map = headers(&format!("Bearer {forged}"));
    assert_eq!(identity(&jwt, RequestHeaders::Http(&map)), None);
    // Two Authorization lines: neither is believed.
    let mut two = headers(&format!("Bearer {good}"));
    two.append("authorization", format!("Bearer {good}").parse().unwrap());
    assert_eq!(identity(&jwt, RequestHeaders::Http(&two)), None);
}

#[test]
fn rs256_and_es256_from_pem_and_jwks() {
    let rs_pem = config(&format!(
        "algorithm = \"RS256\"\npublic_key_file = {:?}",
        fixture("rsa.pem")
    ));
    let rs_jwks = config(&format!(
        "algorithm = \"RS256\"\njwks_file = {:?}",
        fixture("jwks.json")
    ));
    let es_pem = config(&format!(
        "algorithm = \"ES256\"\npublic_key_file = {:?}",
        fixture("ec.pem")
    ));
    let es_jwks = config(&format!(
        "algorithm = \"ES256\"\njwks_file = {:?}",
        fixture("jwks.json")
    ));
    let c = claims(json!({}));
    let rs = sign(
        Algorithm::RS256,
        &rsa_key("rsa-private.der"),
        Some("rsa-1"),
        &c,
    );
    let es = sign(
        Algorithm::ES256,
        &ec_key("ec-private.der"),
        Some("ec-1"),
        &c,
    );
    assert!(verify(&rs_pem, &rs).is_ok());
    assert!(verify(&rs_jwks, &rs).is_ok());
    assert!(verify(&es_pem, &es).is_ok());
    assert!(verify(&es_jwks, &es).is_ok());
    // Without a kid, every key of the set is tried.
    let es_no_kid = sign(Algorithm::ES256, &ec_key("ec-private.der"), None, &c);
    assert!(verify(&es_jwks, &es_no_kid).is_ok());
    // A kid the set does not hold: no key to try.
    let unknown_kid = sign(
        Algorithm::ES256,
        &ec_key("ec-private.der"),
        Some("gone"),
        &c,
    );
    assert_eq!(verify(&es_jwks, &unknown_kid), Err("signature"));
    // Wrong keys.
    let rs_other = sign(
        Algorithm::RS256,
        &rsa_key("rsa-other-private.der"),
        Some("rsa-1"),
        &c,
    );
    assert_eq!(verify(&rs_pem, &rs_other), Err("signature"));
    assert_eq!(verify(&rs_jwks, &rs_other), Err("signature"));
    let es_other = sign(
        Algorithm::ES256,
        &ec_key("ec-other-private.der"),
        Some("ec-1"),
        &c,
    );
    assert_eq!(verify(&es_pem, &es_other), Err("signature"));
    // Another algorithm than the one configured, including the classic
    // confusion: HS256 "signed" with the RSA public key as the secret.
    assert_eq!(verify(&rs_pem, &es), Err("algorithm"));
    let public = std::fs::read(fixture("rsa.pem")).unwrap();
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public),
        None,
        &c,
    );
    assert_eq!(verify(&rs_pem, &confused), Err("algorithm"));
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let jwt = config(&format!(
        "algorithm = \"ES256\"\npublic_key_file = {:?}\naudience = [\"chat-api\", \"other\"]\nissuer = \"https://auth.example\"",
        fixture("ec.pem")
    ));
    let key = ec_key("ec-private.der");
    let token = |extra| sign(Algorithm::ES256, &key, None, &claims(extra));
    let good = json!({ "aud": "chat-api", "iss": "https://auth.example" });
    assert!(verify(&jwt, &token(good)).is_ok());
    let wrong_aud = json!({ "aud": "billing", "iss": "https://auth.example" });
    assert_eq!(verify(&jwt, &token(wrong_aud)), Err("audience"));
    assert_eq!(
        verify(&jwt, &token(json!({ "iss": "https://auth.example" }))),
        Err("claims")
    );
    let wrong_iss = json!({ "aud": "chat-api", "iss": "https://evil.example" });
    assert_eq!(verify(&jwt, &token(wrong_iss)), Err("issuer"));
    // Without a configured audience, a token naming one is still accepted.
    let open = config(&format!(
        "algorithm = \"ES256\"\npublic_key_file = {:?}",
        fixture("ec.pem")
    ));
    assert!(verify(&open, &token(json!({ "aud": "anything" }))).is_ok());
}

#[test]
fn an_hs256_secret_can_come_from_the_environment() {
    std::env::set_var("FLOODGATE_TEST_JWT_SECRET_ENV", SECRET);
    let jwt = config("algorithm = \"HS256\"\nsecret_env = \"FLOODGATE_TEST_JWT_SECRET_ENV\"");
    assert!(verify(&jwt, &hs(&claims(json!({})))).is_ok());
}
