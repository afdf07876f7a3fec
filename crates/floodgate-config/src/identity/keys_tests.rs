//! Key files: what parses, and what is refused with a reason.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn public_keys_load_from_pem_and_jwks() {
    assert_eq!(
        pem(&fixture("rsa.pem"), JwtAlgorithm::Rs256)
            .unwrap()
            .keys
            .len(),
        1
    );
    assert_eq!(
        pem(&fixture("rsa-pkcs1.pem"), JwtAlgorithm::Rs256)
            .unwrap()
            .keys
            .len(),
        1
    );
    assert_eq!(
        pem(&fixture("ec.pem"), JwtAlgorithm::Es256)
            .unwrap()
            .keys
            .len(),
        1
    );
    let rsa = jwks(&fixture("jwks.json"), JwtAlgorithm::Rs256).unwrap();
    let kids: Vec<_> = rsa.keys.iter().map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids, [Some("rsa-1")]);
    let ec = jwks(&fixture("jwks.json"), JwtAlgorithm::Es256).unwrap();
    assert_eq!(ec.candidates(Some("ec-1")).count(), 1);
    assert_eq!(ec.candidates(Some("other")).count(), 0);
    assert_eq!(ec.candidates(None).count(), 1);
    // Equal when read from the same bytes; never printed.
    assert_eq!(
        ec,
        jwks(&fixture("jwks.json"), JwtAlgorithm::Es256).unwrap()
    );
    assert_ne!(ec, rsa);
    assert!(!format!("{ec:?}").contains(&String::from_utf8(fixture("jwks.json")).unwrap()[..20]));
}

#[test]
fn keys_that_cannot_verify_are_refused() {
    let err = |r: Result<JwtKeys, String>| r.unwrap_err();
    assert!(
        err(pem(&fixture("ec.pem"), JwtAlgorithm::Rs256)).contains("EC key cannot verify RS256")
    );
    assert!(
        err(pem(&fixture("rsa.pem"), JwtAlgorithm::Es256)).contains("RSA key cannot verify ES256")
    );
    assert!(err(pem(&fixture("ec-p384.pem"), JwtAlgorithm::Es256)).contains("P-256"));
    assert!(err(pem(&fixture("rsa-1024.pem"), JwtAlgorithm::Rs256)).contains("1024 bits"));
    assert!(err(pem(&fixture("rsa-private.der"), JwtAlgorithm::Rs256)).contains("not a PEM"));
    assert!(err(pem(b"hello", JwtAlgorithm::Rs256)).contains("no PEM block"));
    let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(err(pem(private.as_bytes(), JwtAlgorithm::Rs256)).contains("never a private key"));
    let junk = "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----\n";
    assert!(err(pem(junk.as_bytes(), JwtAlgorithm::Rs256)).contains("SubjectPublicKeyInfo"));
    let unterminated = "-----BEGIN PUBLIC KEY-----\nAAAA\n";
    assert!(err(pem(unterminated.as_bytes(), JwtAlgorithm::Rs256)).contains("END line"));
    assert!(err(jwks(b"{}", JwtAlgorithm::Rs256)).contains("not a JWKS"));
    assert!(err(jwks(b"{\"keys\": []}", JwtAlgorithm::Rs256)).contains("no key usable with RS256"));
    let bad = br#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}"#;
    assert!(err(jwks(bad, JwtAlgorithm::Es256)).contains("32-byte"));
    let for_encryption =
        br#"{"keys": [{"kty": "EC", "use": "enc", "crv": "P-256", "x": "AA", "y": "AA"}]}"#;
    assert!(err(jwks(for_encryption, JwtAlgorithm::Es256)).contains("no key usable"));
}

#[test]
fn secrets_are_at_least_32_bytes_less_a_trailing_newline() {
    assert!(secret(&[b'k'; 32]).is_ok());
    let mut line = vec![b'k'; 31];
    line.push(b'\n');
    assert!(secret(&line).unwrap_err().contains("31 bytes"));
    assert_eq!(
        secret(b"0123456789abcdef0123456789abcdef\n").unwrap(),
        secret(b"0123456789abcdef0123456789abcdef").unwrap()
    );
}
