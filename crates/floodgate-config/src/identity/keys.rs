//! The keys that verify JWTs, read when the configuration is: an HS256
//! secret, or RS256/ES256 public keys from a PEM file (SPKI `PUBLIC KEY`,
//! or PKCS#1 `RSA PUBLIC KEY`) or a JWKS file. Every key is checked as far
//! as it can be without a token, so a bad file is a configuration error
//! rather than every token failing later.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::DecodingKey;

/// The JWT signature algorithms floodgate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256, a shared secret.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA keys of 2048 to 8192 bits.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl JwtAlgorithm {
    /// Every algorithm, by its configuration (and JOSE) name.
    pub const ALL: [(&'static str, JwtAlgorithm); 3] = [
        ("HS256", JwtAlgorithm::Hs256),
        ("RS256", JwtAlgorithm::Rs256),
        ("ES256", JwtAlgorithm::Es256),
    ];

    /// The configuration (and JOSE) name: `"HS256"`, ….
    pub fn as_str(self) -> &'static str {
        name(self)
    }

    /// The `jsonwebtoken` algorithm.
    pub fn jose(self) -> jsonwebtoken::Algorithm {
        match self {
            JwtAlgorithm::Hs256 => jsonwebtoken::Algorithm::HS256,
            JwtAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            JwtAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

/// Shortest HS256 secret: 32 bytes, the hash size (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;
/// Most keys one JWKS file may hold.
pub const MAX_JWKS_KEYS: usize = 64;

/// One verification key.
#[derive(Clone)]
pub struct JwtKey {
    /// The JWKS `kid`, if any: a token naming a `kid` is tried only with
    /// the keys of that `kid`.
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
}

/// The verification keys of `[identity.jwt]`, with the bytes they came
/// from (so two loads of the same files compare equal). Never printed.
#[derive(Clone, Default)]
pub struct JwtKeys {
    /// The keys, in file order.
    pub keys: Vec<JwtKey>,
    /// What they were read from.
    material: Vec<u8>,
}

impl PartialEq for JwtKeys {
    fn eq(&self, other: &Self) -> bool {
        self.material == other.material
    }
}

impl Eq for JwtKeys {}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_deref()).collect();
        f.debug_struct("JwtKeys").field("kids", &kids).finish()
    }
}

impl JwtKeys {
    /// The keys a token with header `kid` may be verified with.
    pub fn candidates<'a>(&'a self, kid: Option<&'a str>) -> impl Iterator<Item = &'a JwtKey> {
        self.keys
            .iter()
            .filter(move |k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
    }
}

/// An HS256 secret: the bytes as given, less one trailing newline (what an
/// editor or `echo` adds to a file).
///
/// # Errors
/// A secret shorter than [`MIN_SECRET_BYTES`].
pub fn secret(bytes: &[u8]) -> Result<JwtKeys, String> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the HS256 secret is {} bytes long; it must be at least {MIN_SECRET_BYTES} (256 bits)",
            bytes.len()
        ));
    }
    Ok(JwtKeys {
        keys: vec![JwtKey {
            kid: None,
            key: DecodingKey::from_secret(bytes),
        }],
        material: bytes.to_vec(),
    })
}

/// The public key of a PEM file for `algorithm` (RS256 or ES256).
///
/// # Errors
/// What is wrong with the file, for a message.
pub fn pem(text: &[u8], algorithm: JwtAlgorithm) -> Result<JwtKeys, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the file is not a PEM text file")?;
    let (label, der) = pem_block(text)?;
    let key = match (label.as_str(), algorithm) {
        ("PUBLIC KEY", _) => spki(&der, algorithm)?,
        ("RSA PUBLIC KEY", JwtAlgorithm::Rs256) => rsa_pkcs1(&der)?,
        (label, _) => {
            return Err(format!(
            "the PEM block is a {label:?}; expected a \"PUBLIC KEY\" for {} (never a private key)",
            name(algorithm)
        ))
        }
    };
    Ok(JwtKeys {
        keys: vec![JwtKey { kid: None, key }],
        material: der,
    })
}

/// The keys of a JWKS file (`{"keys": [...]}`) usable with `algorithm`;
/// keys of other types, for encryption or for another algorithm are
/// skipped.
///
/// # Errors
/// Not JSON, not a key set, a usable-looking key that does not parse, or
/// no usable key at all.
pub fn jwks(text: &[u8], algorithm: JwtAlgorithm) -> Result<JwtKeys, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(text)
        .map_err(|e| format!("the file is not a JWKS (a JSON object with \"keys\"): {e}"))?;
    if set.keys.len() > MAX_JWKS_KEYS {
        return Err(format!(
            "the JWKS holds {} keys; at most {MAX_JWKS_KEYS}",
            set.keys.len()
        ));
    }
    let mut keys = Vec::new();
    for (i, value) in set.keys.into_iter().enumerate() {
        let wanted = matches!(
            (algorithm, value.get("kty").and_then(|k| k.as_str())),
            (JwtAlgorithm::Rs256, Some("RSA")) | (JwtAlgorithm::Es256, Some("EC"))
        );
        if !wanted {
            continue;
        }
        let jwk: Jwk = serde_json::from_value(value)
            .map_err(|e| format!("key {i} of the JWKS does not parse: {e}"))?;
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
            || jwk
                .common
                .key_algorithm
                .is_some_and(|a| a.to_string() != name(algorithm))
        {
            continue;
        }
        let key = jwk_key(&jwk, algorithm).map_err(|e| format!("key {i} of the JWKS: {e}"))?;
        keys.push(JwtKey {
            kid: jwk.common.key_id.clone(),
            key,
        });
    }
    if keys.is_empty() {
        return Err(format!(
            "the JWKS holds no key usable with {}",
            name(algorithm)
        ));
    }
    Ok(JwtKeys {
        keys,
        material: [name(algorithm).as_bytes(), text].concat(),
    })
}

fn name(algorithm: JwtAlgorithm) -> &'static str {
    JwtAlgorithm::ALL
        .iter()
        .find(|(_, a)| *a == algorithm)
        .map_or("", |(n, _)| n)
}

fn jwk_key(jwk: &Jwk, algorithm: JwtAlgorithm) -> Result<DecodingKey, String> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| "its \"n\" is not base64url")?;
            let e = URL_SAFE_NO_PAD
                .decode(&rsa.e)
                .map_err(|_| "its \"e\" is not base64url")?;
            rsa_size(&n)?;
            Ok(DecodingKey::from_rsa_raw_components(&n, &e))
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            let x = URL_SAFE_NO_PAD
                .decode(&ec.x)
                .map_err(|_| "its \"x\" is not base64url")?;
            let y = URL_SAFE_NO_PAD
                .decode(&ec.y)
                .map_err(|_| "its \"y\" is not base64url")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("a P-256 key has 32-byte \"x\" and \"y\"".into());
            }
            Ok(DecodingKey::from_ec_der(
                &[&[0x04], &x[..], &y[..]].concat(),
            ))
        }
        _ => Err(format!("not a key for {}", name(algorithm))),
    }
}

/// The label and bytes of the first PEM block of `text`.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    const NONE: &str = "no PEM block found (expected -----BEGIN PUBLIC KEY-----)";
    let start = text.find("-----BEGIN ").ok_or(NONE)?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----").ok_or(NONE)?;
    let end = format!("-----END {label}-----");
    let body = &rest[..rest.find(&end).ok_or("the PEM block has no END line")?];
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| "the PEM block is not valid base64")?;
    Ok((label.to_string(), der))
}

/// DER object identifiers, as their encoded bytes.
const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// A `SubjectPublicKeyInfo` for `algorithm`.
fn spki(der: &[u8], algorithm: JwtAlgorithm) -> Result<DecodingKey, String> {
    const BAD: &str = "the PEM block is not a DER SubjectPublicKeyInfo";
    let (info, _) = tlv(der, 0x30).ok_or(BAD)?;
    let (alg, rest) = tlv(info, 0x30).ok_or(BAD)?;
    let (bits, _) = tlv(rest, 0x03).ok_or(BAD)?;
    let key = bits.strip_prefix(&[0]).ok_or(BAD)?;
    let (oid, params) = tlv(alg, 0x06).ok_or(BAD)?;
    match (oid, algorithm) {
        (RSA_ENCRYPTION, JwtAlgorithm::Rs256) => rsa_pkcs1(key),
        (EC_PUBLIC_KEY, JwtAlgorithm::Es256) => {
            let curve = tlv(params, 0x06).map(|(c, _)| c);
            if curve != Some(PRIME256V1) {
                return Err("the EC key is not on P-256 (prime256v1), which ES256 needs".into());
            }
            if key.len() != 65 || key[0] != 0x04 {
                return Err("the EC key is not an uncompressed P-256 point".into());
            }
            Ok(DecodingKey::from_ec_der(key))
        }
        (RSA_ENCRYPTION, _) => Err(format!("an RSA key cannot verify {}", name(algorithm))),
        (EC_PUBLIC_KEY, _) => Err(format!("an EC key cannot verify {}", name(algorithm))),
        _ => Err(format!("the key type cannot verify {}", name(algorithm))),
    }
}

/// A PKCS#1 `RSAPublicKey` (modulus, exponent).
fn rsa_pkcs1(der: &[u8]) -> Result<DecodingKey, String> {
    const BAD: &str = "the RSA key is not a DER RSAPublicKey";
    let (seq, _) = tlv(der, 0x30).ok_or(BAD)?;
    let (n, rest) = tlv(seq, 0x02).ok_or(BAD)?;
    let (e, _) = tlv(rest, 0x02).ok_or(BAD)?;
    if e.is_empty() {
        return Err(BAD.into());
    }
    rsa_size(n)?;
    Ok(DecodingKey::from_rsa_der(der))
}

/// Refuses moduli outside 2048..=8192 bits (what RS256 verification
/// accepts: any other key would fail every token).
fn rsa_size(modulus: &[u8]) -> Result<(), String> {
    let n = modulus
        .iter()
        .position(|&b| b != 0)
        .map_or(&[][..], |i| &modulus[i..]);
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if (2048..=8192).contains(&bits) {
        Ok(())
    } else {
        Err(format!(
            "the RSA key has {bits} bits; RS256 keys must have 2048 to 8192"
        ))
    }
}

/// The content of the DER element of type `tag` at the start of `input`,
/// and what follows it.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if t != tag {
        return None;
    }
    let (len, rest) = match first {
        0..=0x7F => (usize::from(first), rest),
        0x81 => (usize::from(*rest.first()?), &rest[1..]),
        0x82 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
