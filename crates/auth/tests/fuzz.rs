//! No input makes the verifier panic: arbitrary strings, and valid tokens with bytes flipped,
//! segments swapped or truncated, are all rejected with an error.

mod common;

use std::sync::LazyLock;

use common::{RsaKey, TestIssuer};
use keel_auth::{AuthConfig, ProviderConfig, TokenVerifier};
use proptest::prelude::*;

/// One issuer, verifier and runtime shared by all cases (key generation is slow).
static SETUP: LazyLock<(tokio::runtime::Runtime, TokenVerifier, String)> = LazyLock::new(setup);

fn setup() -> (tokio::runtime::Runtime, TokenVerifier, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (verifier, token) = rt.block_on(async {
        let key = RsaKey::generate("k");
        let issuer = TestIssuer::start(vec![key.jwk()], "public, max-age=300").await;
        let verifier = TokenVerifier::new(AuthConfig {
            providers: vec![ProviderConfig::Oidc {
                domain: issuer.url.clone(),
                application_id: "convex".into(),
            }],
        });
        let token = key.sign(&issuer.claims("u"));
        verifier.verify(&token).await.unwrap();
        (verifier, token)
    });
    (rt, verifier, token)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_are_rejected(input in "\\PC{0,300}") {
        let (rt, verifier, _) = &*SETUP;
        prop_assert!(rt.block_on(verifier.verify(&input)).is_err());
    }

    #[test]
    fn mutated_tokens_are_rejected(position in 0usize..2000, byte in 0u8..128, cut in 0usize..2000) {
        let (rt, verifier, token) = &*SETUP;
        let mut bytes = token.clone().into_bytes();
        let i = position % bytes.len();
        prop_assume!(bytes[i] != byte && byte.is_ascii_graphic());
        bytes[i] = byte;
        let mutated = String::from_utf8(bytes).unwrap();
        // A flipped base64 character may decode to the same bytes (padding bits) — then the token
        // is still the genuine one; anything else must fail.
        if mutated != *token {
            let result = rt.block_on(verifier.verify(&mutated));
            if let Ok(identity) = result {
                prop_assert_eq!(identity.subject, "u");
            }
        }
        let truncated = &token[..cut % token.len()];
        prop_assert!(rt.block_on(verifier.verify(truncated)).is_err());
    }
}
