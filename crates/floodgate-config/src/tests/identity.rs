//! `[identity] attributes` and `[identity.jwt]`: what is read, and every
//! refusal at its place.

use super::{errors, parse, single_error};

fn fixture(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn header_attributes_and_a_jwt_are_read() {
    let config = parse(&format!(
        "[identity]\nattributes = {{ plan = \"X-Plan\", tenant = \"x-tenant-id\" }}\n\n[identity.jwt]\nalgorithm = \"RS256\"\njwks_file = {:?}\naudience = \"chat-api\"\nleeway = \"10s\"\nuser_claim = \"uid\"\nclaims = {{ org = \"org_id\" }}\n",
        fixture("jwks.json")
    ));
    let id = &config.identity;
    assert_eq!(
        id.header_attributes,
        [
            ("plan".to_string(), "x-plan".to_string()),
            ("tenant".into(), "x-tenant-id".into())
        ]
    );
    let jwt = id.jwt.as_ref().unwrap();
    assert_eq!(jwt.header, "authorization");
    assert_eq!(jwt.user_claim, "uid");
    assert_eq!(jwt.claims, [("org".to_string(), "org_id".to_string())]);
    assert_eq!(jwt.validation.leeway, 10);
    assert!(jwt.validation.required_spec_claims.contains("aud"));
    assert_eq!(jwt.keys.keys.len(), 1);
    // Defaults: no header attributes, no JWT.
    let config = parse("");
    assert!(config.identity.header_attributes.is_empty());
    assert!(config.identity.jwt.is_none());
}

#[test]
fn header_attributes_cannot_set_what_floodgate_derives() {
    for (attribute, word) in [
        ("ip", "set by floodgate itself"),
        ("endpoint", "set by floodgate itself"),
        ("path", "set by floodgate itself"),
        ("method", "set by floodgate itself"),
        ("user", "comes from user_header"),
    ] {
        single_error(
            &format!("[identity]\nattributes = {{ {attribute} = \"x-forged\" }}\n"),
            2,
            16,
            &["[identity] attributes", word],
        );
    }
    single_error(
        "[identity]\nattributes = { plan = \"x plan\" }\n",
        2,
        16,
        &["invalid header name \"x plan\""],
    );
    single_error(
        "[identity]\nattributes = { \"a b\" = \"x-plan\" }\n",
        2,
        16,
        &["attribute name \"a b\""],
    );
    single_error(
        "[identity]\nattributes = { token = \"Authorization\" }\n",
        2,
        16,
        &["carries credentials"],
    );
    single_error(
        "[identity]\nattributes = { c = \"cookie\" }\n",
        2,
        16,
        &["carries credentials"],
    );
    single_error(
        "[identity]\nattributes = { plan = 1 }\n",
        2,
        23,
        &["attributes", "expected a string"],
    );
}

#[test]
fn jwt_settings_are_checked_where_written() {
    let jwt = |lines: &str| format!("[identity.jwt]\n{lines}\n");
    single_error(
        &jwt(&format!("jwks_file = {:?}", fixture("jwks.json"))),
        1,
        1,
        &["needs an algorithm"],
    );
    single_error(
        &jwt("algorithm = \"HS384\""),
        2,
        13,
        &["HS256", "RS256", "ES256"],
    );
    single_error(
        &jwt("algorithm = \"RS256\""),
        2,
        13,
        &["RS256 needs its key: one of public_key_file or jwks_file"],
    );
    single_error(
        &jwt("algorithm = \"HS256\"\nsecret_file = \"/nonexistent/floodgate-secret\""),
        3,
        15,
        &["cannot read \"/nonexistent/floodgate-secret\""],
    );
    single_error(
        &jwt(&format!(
            "algorithm = \"HS256\"\npublic_key_file = {:?}",
            fixture("rsa.pem")
        )),
        3,
        19,
        &["public_key_file does not fit algorithm HS256"],
    );
    single_error(
        &jwt(&format!(
            "algorithm = \"RS256\"\npublic_key_file = {:?}\njwks_file = {:?}",
            fixture("rsa.pem"),
            fixture("jwks.json")
        )),
        4,
        13,
        &["give only one of public_key_file, jwks_file"],
    );
    single_error(
        &jwt(&format!(
            "algorithm = \"RS256\"\npublic_key_file = {:?}",
            fixture("ec.pem")
        )),
        3,
        19,
        &["public_key_file", "EC key cannot verify RS256"],
    );
    single_error(
        &jwt(&format!(
            "algorithm = \"RS256\"\njwks_file = {:?}",
            fixture("rsa.pem")
        )),
        3,
        13,
        &["jwks_file", "not a JWKS"],
    );
    single_error(
        &jwt("algorithm = \"HS256\"\nsecret_env = \"FLOODGATE_TEST_UNSET_SECRET_VAR\""),
        3,
        14,
        &["\"FLOODGATE_TEST_UNSET_SECRET_VAR\"", "not set"],
    );
    let short = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(short.path(), "too-short\n").unwrap();
    single_error(
        &jwt(&format!(
            "algorithm = \"HS256\"\nsecret_file = {:?}",
            short.path()
        )),
        3,
        15,
        &["9 bytes long", "at least 32"],
    );
    let ok = format!(
        "algorithm = \"ES256\"\npublic_key_file = {:?}",
        fixture("ec.pem")
    );
    single_error(
        &jwt(&format!("{ok}\nleeway = \"1h\"")),
        4,
        10,
        &["leeway", "5m"],
    );
    single_error(
        &jwt(&format!("{ok}\nleeway = \"1500ms\"")),
        4,
        10,
        &["whole number of seconds"],
    );
    single_error(
        &jwt(&format!("{ok}\nuser_claim = \"\"")),
        4,
        14,
        &["user_claim"],
    );
    single_error(&jwt(&format!("{ok}\naudience = []")), 4, 12, &["audience"]);
    single_error(
        &jwt(&format!("{ok}\nclaims = {{ ip = \"ip\" }}")),
        4,
        12,
        &["claims", "set by floodgate itself"],
    );
    single_error(
        &jwt(&format!("{ok}\nclaims = {{ user = \"email\" }}")),
        4,
        12,
        &["user_claim"],
    );
    single_error(
        &jwt(&format!("{ok}\nsecret = \"x\"")),
        4,
        1,
        &["unknown key \"secret\""],
    );
    // The user comes from one place; an attribute from one source.
    single_error(
        &format!("[identity]\nuser_header = \"x-user\"\n{}", jwt(&ok)),
        2,
        15,
        &["user_header and [identity.jwt]"],
    );
    single_error(
        &format!(
            "[identity]\nattributes = {{ plan = \"x-plan\" }}\n{}",
            jwt(&format!("{ok}\nclaims = {{ plan = \"plan\" }}"))
        ),
        2,
        16,
        &["also taken from a JWT claim"],
    );
    single_error(
        &format!(
            "[identity]\nattributes = {{ t = \"x-token\" }}\n{}",
            jwt(&format!("{ok}\nheader = \"X-Token\""))
        ),
        2,
        16,
        &["carries credentials"],
    );
    let many: Vec<String> = (0..17).map(|i| format!("a{i} = \"c{i}\"")).collect();
    single_error(
        &jwt(&format!("{ok}\nclaims = {{ {} }}", many.join(", "))),
        4,
        10,
        &["more than 16"],
    );
    let many: Vec<String> = (0..17).map(|i| format!("a{i} = \"x-h{i}\"")).collect();
    single_error(
        &format!("[identity]\nattributes = {{ {} }}\n", many.join(", ")),
        2,
        14,
        &["at most 16"],
    );
    // Several problems: all reported.
    assert_eq!(
        errors(&jwt(
            "algorithm = \"RS256\"\nleeway = \"1h\"\nuser_claim = \"\""
        ))
        .len(),
        3
    );
}
