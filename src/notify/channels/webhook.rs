//! Standard Webhooks 1.0 (standardwebhooks.com): the event body `{"type", "timestamp",
//! "data"}` described by `schemas/webhook-v1.schema.json`, and its signature:
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the key after
//! `whsec_`, one signature per configured secret while keys rotate.
//!
//! Owns: the event shape and the signature. Does not own: sending (the parent module).

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Subject;
use crate::notify::outbox::AlertKind;
use crate::store::ReleaseRow;

/// The version of the event schema (`schemas/webhook-v1.schema.json`); fields are only ever
/// added within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// `v1,<base64 signature>` of `id.timestamp.body` under one `whsec_` secret.
pub fn sign(
    secret: &SecretString,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let encoded = secret
        .expose_secret()
        .strip_prefix("whsec_")
        .ok_or("the secret does not start with whsec_")?;
    let key = engine
        .decode(encoded)
        .map_err(|_| "the secret is not whsec_ followed by base64".to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", engine.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: one signature per secret, separated by spaces.
pub fn signature_header(
    secrets: &[SecretString],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()
        .map(|all| all.join(" "))
}

fn release_data(release: &ReleaseRow, view: &super::ReleaseView) -> Value {
    json!({
        "project": release.project,
        "version": release.version,
        "class": release.class.as_str(),
        "line": release.line,
        "published_at": release.published_at.map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true)),
        "yanked": release.yanked,
        "urls": {
            "package": view.links.package,
            "github": view.links.github,
            "blog": view.links.blog,
        },
        "notes": view.notes_text,
        "upgrade_steps": view.upgrade_steps,
        "superseded_by": view.superseded_by,
    })
}

/// The event of a delivery: `type`, `timestamp` and `data` (with `text` from the
/// `webhook/KIND.txt.j2` template).
pub fn event(channel: &str, subject: &Subject, text: &str, now: DateTime<Utc>) -> Value {
    let (kind, mut data) = match subject {
        Subject::Releases(releases) => {
            let mut data = releases
                .first()
                .map(|(r, v)| release_data(r, v))
                .unwrap_or_else(|| json!({}));
            data["releases"] = releases
                .iter()
                .map(|(r, v)| release_data(r, v))
                .collect::<Vec<_>>()
                .into();
            ("release.published", data)
        }
        Subject::Alert(kind, report) => (
            match kind {
                AlertKind::CompatReport => "compat.report",
                AlertKind::CompatFollowup => "compat.followup",
                AlertKind::BugfixAdvice => "bugfix.advice",
            },
            report.to_value(),
        ),
        Subject::Test(at) => (
            "herald.test",
            json!({ "sent_at": at.to_rfc3339_opts(SecondsFormat::Secs, true) }),
        ),
    };
    data["channel"] = channel.into();
    data["text"] = text.into();
    data["schema_version"] = SCHEMA_VERSION.into();
    json!({
        "type": kind,
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification's reference implementations.
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let signature =
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).expect("signs");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
