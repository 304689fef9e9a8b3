//! Clerk's official packages against the idp's JWT templates and webhooks
//! (`tests/node/clerk-templates-webhooks.mjs`): `@clerk/backend`'s `jwtTemplates` calls and
//! `verifyToken` on template tokens with custom claims, and a webhook receiver on 127.0.0.1
//! that checks every delivery with the `standardwebhooks` package and `@clerk/backend`'s
//! `verifyWebhook`, answering the first with a 500 to see it retried.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_idp::{Idp, IdpConfig, WebhookRetry};
use serde_json::{Value, json};

#[tokio::test]
async fn clerk_packages_manage_templates_verify_tokens_and_webhooks() {
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/node");
    let mut node = Command::new("node")
        .arg("clerk-templates-webhooks.mjs")
        .current_dir(node_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node is installed");
    let mut stdout = BufReader::new(node.stdout.take().unwrap());
    let receiver = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        (line, stdout)
    });
    let (line, mut stdout) = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .expect("the receiver started within 30 s")
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("receiver: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = IdpConfig::new(dir.path());
    config.webhook_urls = vec![url];
    config.webhook_retry = WebhookRetry {
        max_attempts: 4,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };
    let idp = Idp::open(config, listener.local_addr().unwrap()).unwrap();
    tokio::spawn(idp.clone().serve(listener));
    let mut stdin = node.stdin.take().unwrap();
    writeln!(
        stdin,
        "{}",
        json!({
            "idpUrl": idp.issuer(),
            "secretKey": idp.secret_key(),
            "webhookSecret": idp.webhook_secret(),
        })
    )
    .unwrap();
    drop(stdin);

    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
            (rest, node.wait().unwrap())
        }),
    )
    .await
    .expect("node finished within 60 s")
    .unwrap();
    let (rest, status) = output;
    let result: Value = serde_json::from_str(rest.lines().last().unwrap_or("null")).unwrap();
    assert!(status.success(), "node failed: {result}");

    // Templates through the SDK.
    let t = &result["template"];
    assert!(t["id"].as_str().unwrap().starts_with("jtmp_"), "{result}");
    assert_eq!(
        (t["lifetime"].as_u64(), t["allowedClockSkew"].as_u64()),
        (Some(120), Some(10))
    );
    assert_eq!(t["claims"]["role"], "{{user.public_metadata.role}}");
    assert_eq!(result["listed"]["totalCount"], 2);
    assert_eq!(result["listed"]["names"], json!(["convex", "supabase"]));
    assert_eq!(result["got"]["name"], "supabase");
    let user_id = result["userId"].as_str().unwrap();
    // The template token, verified by @clerk/backend's verifyToken.
    let v = &result["verified"];
    assert_eq!(v["sub"], user_id);
    assert_eq!(v["aud"], "authenticated");
    assert_eq!(v["role"], "admin");
    assert_eq!(v["seats"], 3);
    assert_eq!(v["email"], "templates@example.com");
    assert_eq!(v["display"], "Tem (admin)");
    assert_eq!(v["exp"].as_i64().unwrap() - v["iat"].as_i64().unwrap(), 120);
    assert_eq!(v["iat"].as_i64().unwrap() - v["nbf"].as_i64().unwrap(), 10);
    assert_eq!(result["updated"]["lifetime"], 300);
    let u = &result["updatedVerified"];
    assert_eq!(
        (u["v"].as_i64(), u["role"].as_str()),
        (Some(2), Some("admin"))
    );
    assert!(u.get("email").is_none(), "{u}");
    assert_eq!(u["exp"].as_i64().unwrap() - u["iat"].as_i64().unwrap(), 300);
    // Refusals as the SDK reports them.
    let r = &result["refusals"];
    for (case, param) in [
        ("reserved", "claims"),
        ("shortcode", "claims"),
        ("lifetime", "lifetime"),
    ] {
        assert_eq!(r[case]["status"], 422, "{case}: {r}");
        assert_eq!(r[case]["code"], "form_param_value_invalid", "{case}: {r}");
        assert_eq!(r[case]["paramName"], param, "{case}: {r}");
    }
    assert_eq!(r["unknownTemplate"]["status"], 404, "{r}");
    assert_eq!(r["unknownTemplate"]["code"], "resource_not_found");
    assert_eq!(result["deleted"]["deleted"], true);
    assert_eq!(result["afterDelete"], json!(["convex"]));

    // Webhooks, verified by both official verifiers; the first (answered 500) came again.
    let deliveries = result["deliveries"].as_array().unwrap();
    for d in deliveries {
        assert_eq!(d["standard"], true, "{d}");
        assert_eq!(d["clerk"], true, "{d}");
        assert_eq!(d["tamperedRejected"], true, "{d}");
        assert!(d["instanceId"].as_str().unwrap().starts_with("ins_"));
    }
    let first = &deliveries[0];
    assert_eq!(
        deliveries
            .iter()
            .filter(|d| d["svixId"] == first["svixId"])
            .count(),
        2,
        "the delivery answered 500 came again with the same svix-id: {deliveries:?}"
    );
    let created = deliveries
        .iter()
        .find(|d| d["type"] == "user.created")
        .unwrap();
    assert_eq!(created["data"]["id"], user_id);
    assert_eq!(created["data"]["public_metadata"]["role"], "admin");
    let session = deliveries
        .iter()
        .find(|d| d["type"] == "session.created")
        .unwrap();
    assert_eq!(session["data"]["id"], result["sessionId"]);
    assert_eq!(session["data"]["user_id"], user_id);
}
