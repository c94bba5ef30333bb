//! `X-Twilio-Signature`: HMAC-SHA1 over the public URL plus the sorted form parameters,
//! keyed by the account's Auth Token, base64-encoded, compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio would send for a request to `url` with form `params`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Names sorted; repeated names keep their values in sorted order too.
    sorted.sort();
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Whether `signature` is valid for a request to `url` with form `params`. The URL is tried
/// as given and with its default port added or removed, as Twilio may sign either.
pub fn is_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    url_variants(url).iter().any(|candidate| mac(auth_token, candidate, params).verify_slice(&given).is_ok())
}

/// Checks a JSON-body webhook: the URL carries `bodySHA256=<hex>` which must match the body,
/// and the signature covers the URL alone.
pub fn is_valid_json(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(expected_hash) =
        url.split_once('?').and_then(|(_, query)| query.split('&').find_map(|pair| pair.strip_prefix("bodySHA256=")))
    else {
        return false;
    };
    let actual: String = Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
    // Timing here leaks nothing secret: the hash is of a body the sender chose.
    actual.eq_ignore_ascii_case(expected_hash) && is_valid(auth_token, url, &[], signature)
}

/// The URL as given, plus the form with the scheme's default port toggled.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let (scheme, default_port) = if url.starts_with("https://") || url.starts_with("wss://") {
        (if url.starts_with("https://") { "https://" } else { "wss://" }, "443")
    } else if url.starts_with("http://") || url.starts_with("ws://") {
        (if url.starts_with("http://") { "http://" } else { "ws://" }, "80")
    } else {
        return out;
    };
    let rest = &url[scheme.len()..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let with_port = format!(":{default_port}");
    if let Some(host) = authority.strip_suffix(&with_port) {
        out.push(format!("{scheme}{host}{tail}"));
    } else if !authority.contains(':') || authority.ends_with(']') {
        out.push(format!("{scheme}{authority}{with_port}{tail}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    // A webhook shaped like Twilio's security examples; the expected value was computed
    // independently (Python's hmac module) from the algorithm in PROTOCOLS.md §6.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn doc_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn signature_matches_an_independent_hmac_sha1_computation() {
        assert_eq!(sign(TOKEN, URL, &doc_params()), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(is_valid(TOKEN, URL, &doc_params(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let mut reversed = doc_params();
        reversed.reverse();
        assert!(is_valid(TOKEN, URL, &reversed, &sign(TOKEN, URL, &doc_params())));
    }

    #[test]
    fn a_changed_parameter_or_token_or_url_is_rejected() {
        let good = sign(TOKEN, URL, &doc_params());
        let mut tampered = doc_params();
        tampered[4].1 = "+18005550000".into();
        assert!(!is_valid(TOKEN, URL, &tampered, &good));
        assert!(!is_valid("54321", URL, &doc_params(), &good));
        assert!(!is_valid(TOKEN, "https://mycompany.com/other", &doc_params(), &good));
        assert!(!is_valid(TOKEN, URL, &doc_params(), "not base64 !!"));
        assert!(!is_valid(TOKEN, URL, &doc_params(), ""));
    }

    #[test]
    fn repeated_names_are_sorted_by_value() {
        let a = params(&[("x", "2"), ("x", "1"), ("a", "z")]);
        let b = params(&[("a", "z"), ("x", "1"), ("x", "2")]);
        assert_eq!(sign("t", "https://h/p", &a), sign("t", "https://h/p", &b));
    }

    #[test]
    fn explicit_default_port_is_accepted_either_way() {
        let signed_with_port = sign(TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2", &doc_params());
        assert!(is_valid(TOKEN, URL, &doc_params(), &signed_with_port));
        let signed_without = sign(TOKEN, URL, &doc_params());
        assert!(is_valid(TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2", &doc_params(), &signed_without));
        let ws = sign(TOKEN, "wss://h.example/twilio/media", &[]);
        assert!(is_valid(TOKEN, "wss://h.example:443/twilio/media", &[], &ws));
        // A non-default port is part of the URL.
        let odd = sign(TOKEN, "https://h.example:8443/x", &[]);
        assert!(!is_valid(TOKEN, "https://h.example/x", &[], &odd));
    }

    #[test]
    fn json_bodies_are_checked_by_their_hash() {
        let body = br#"{"a":1}"#;
        let hash: String = Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
        let url = format!("https://h.example/hook?bodySHA256={hash}");
        let sig = sign(TOKEN, &url, &[]);
        assert!(is_valid_json(TOKEN, &url, body, &sig));
        assert!(!is_valid_json(TOKEN, &url, br#"{"a":2}"#, &sig));
        assert!(!is_valid_json(TOKEN, "https://h.example/hook", body, &sig));
    }
}
