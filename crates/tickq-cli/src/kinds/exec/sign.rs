//! Signing exec payloads.
//!
//! A server with a secret (`[exec] secret` or `TICKQ_EXEC_SECRET`, at least 16 bytes) runs only
//! exec jobs whose payload carries `"sig": HEX`, the lowercase hex HMAC-SHA256 under the secret
//! of [`signed_bytes`]: the text `tickq-exec-v2` and a newline, then the compact JSON
//! `{"queue":...,"job":...,"cmd":[...],"env":{...},"cwd":...,"stdin":...}` (always these six
//! keys in this order, env keys sorted, `null` for a missing cwd or stdin, serde_json's
//! escaping). `job` is `id:` and the job id, or for the jobs of a schedule, `cron:` and the
//! schedule's name ([`Binding`]). An unsigned job is killed with "exec job is not signed with
//! this server's secret", a wrong one with "signature does not match"; the program does not
//! run. Signatures are compared in constant time.
//!
//! The signature binds the queue and the job as well as the command, env, cwd and stdin, so a
//! signed job copied into another job id or another queue does not run. A schedule's jobs get
//! new ids every tick, so theirs binds the schedule instead: a job whose id is
//! `cron:NAME:...` and whose `cron` meta is NAME. Whoever can write to Redis can therefore
//! run a schedule's approved command in its queue at another time (as `tickq cron trigger`
//! does), but not a one-off job's command again, and no command anywhere else. Rotating the
//! secret invalidates every signature made with the old one, including those of stored `cron
//! add` schedules.
//!
//! tickq signs what it creates when its config has the secret: `tickq exec`, `tickq enqueue
//! QUEUE exec` (it re-signs, replacing any `sig` given), `tickq cron add --exec` and the
//! `[[cron]]` exec tasks a server stores. A server without a secret ignores `sig`.

use super::ExecPayload;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::Arc;
use tickq::Job;

/// The exec signing secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The environment variable that gives the secret (it wins over `[exec] secret`).
pub const SECRET_ENV: &str = "TICKQ_EXEC_SECRET";

impl Secret {
    /// A secret from its text, at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(text: &str) -> Result<Secret, String> {
        if text.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the exec secret is {} bytes long; use at least {MIN_SECRET_LEN}",
                text.len()
            ));
        }
        Ok(Secret(text.as_bytes().into()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a signature is bound to besides the payload: the queue, and the job id or (for a
/// schedule's jobs, whose ids change every tick) the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    queue: String,
    job: String,
}

impl Binding {
    /// A one-off job: its queue and id.
    pub fn job(queue: &str, id: &str) -> Binding {
        Binding {
            queue: queue.to_owned(),
            job: format!("id:{id}"),
        }
    }

    /// Every job of schedule `name` (ids `cron:NAME:...`, meta `cron` = NAME) in `queue`, and
    /// the steps of the workflows it fires (ids `flow:cron-NAME-...`, meta `cron` = NAME).
    pub fn schedule(queue: &str, name: &str) -> Binding {
        Binding {
            queue: queue.to_owned(),
            job: format!("cron:{name}"),
        }
    }

    /// What a job read from Redis claims to be.
    pub fn of(job: &Job) -> Binding {
        Binding::claimed(job.queue(), job.id(), job.meta("cron"))
    }

    /// A job with this queue, id and `cron` meta: a schedule's only when its id is one the
    /// scheduler makes for that schedule.
    fn claimed(queue: &str, id: &str, cron: Option<&str>) -> Binding {
        match cron {
            Some(name)
                if id.starts_with(&format!("cron:{name}:"))
                    || id.starts_with(&format!(
                        "flow:{}",
                        crate::kinds::flow::cron_flow_prefix(name)
                    )) =>
            {
                Binding::schedule(queue, name)
            }
            _ => Binding::job(queue, id),
        }
    }
}

/// What a signature covers: the binding and the payload without `sig`, in a fixed order and
/// form.
#[derive(Serialize)]
struct Canonical<'a> {
    queue: &'a str,
    job: &'a str,
    cmd: &'a [String],
    env: &'a BTreeMap<String, String>,
    cwd: Option<&'a str>,
    stdin: Option<&'a str>,
}

/// Domain separation and version of the signed bytes (v1 bound no queue or job).
const SIGNED_PREFIX: &[u8] = b"tickq-exec-v2\n";

/// The bytes an exec payload's signature is the HMAC of (see the module docs).
pub fn signed_bytes(payload: &ExecPayload, binding: &Binding) -> Vec<u8> {
    let mut bytes = SIGNED_PREFIX.to_vec();
    serde_json::to_writer(
        &mut bytes,
        &Canonical {
            queue: &binding.queue,
            job: &binding.job,
            cmd: &payload.cmd,
            env: &payload.env,
            cwd: payload.cwd.as_deref(),
            stdin: payload.stdin.as_deref(),
        },
    )
    .expect("strings serialise");
    bytes
}

impl ExecPayload {
    /// Set `sig` for `secret`, bound to `binding`.
    pub fn sign(&mut self, secret: &Secret, binding: &Binding) {
        let mut mac = secret.mac();
        mac.update(&signed_bytes(self, binding));
        let tag = mac.finalize().into_bytes();
        self.sig = Some(tag.iter().map(|b| format!("{b:02x}")).collect());
    }

    /// Whether `sig` is this payload's signature under `secret` for `binding`; the error is
    /// the reason.
    pub fn verify(&self, secret: &Secret, binding: &Binding) -> Result<(), String> {
        let Some(sig) = &self.sig else {
            return Err(
                "exec job is not signed with this server's secret (it has no sig); \
                        enqueue it with a tickq whose config has the same [exec] secret"
                    .into(),
            );
        };
        let mismatch = || {
            "signature does not match: the payload was changed after signing, signed with \
             another secret, or signed for another job id or queue (a signed job cannot be \
             replayed under another)"
                .to_owned()
        };
        let tag = decode_hex(sig).ok_or_else(mismatch)?;
        let mut mac = secret.mac();
        mac.update(&signed_bytes(self, binding));
        // verify_slice compares in constant time.
        mac.verify_slice(&tag).map_err(|_| mismatch())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2)?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(json: serde_json::Value) -> Result<ExecPayload, String> {
        let p: ExecPayload = serde_json::from_value(json).map_err(|e| e.to_string())?;
        p.validate().map(|()| p)
    }

    fn secret() -> Secret {
        Secret::new("0123456789abcdef").unwrap()
    }

    fn bound() -> Binding {
        Binding::job("q", "j1")
    }

    #[test]
    fn signed_bytes_are_canonical() {
        // Field order of the input, a missing vs empty env, and sig do not matter.
        let a = payload(serde_json::json!({
            "stdin": "é\u{1}",
            "env": {"B": "2", "A": "1"},
            "cmd": ["sh", "-c", "echo \"hi\"\n\\/"],
            "sig": "ignored",
        }))
        .unwrap();
        let b = payload(serde_json::json!({
            "cmd": ["sh", "-c", "echo \"hi\"\n\\/"],
            "env": {"A": "1", "B": "2"},
            "stdin": "é\u{1}",
        }))
        .unwrap();
        let expected = "tickq-exec-v2\n{\"queue\":\"q\",\"job\":\"id:j1\",\
                        \"cmd\":[\"sh\",\"-c\",\"echo \\\"hi\\\"\\n\\\\/\"],\
                        \"env\":{\"A\":\"1\",\"B\":\"2\"},\"cwd\":null,\"stdin\":\"é\\u0001\"}";
        assert_eq!(
            String::from_utf8(signed_bytes(&a, &bound())).unwrap(),
            expected
        );
        assert_eq!(signed_bytes(&a, &bound()), signed_bytes(&b, &bound()));

        let bare = payload(serde_json::json!({"cmd": ["true"]})).unwrap();
        let empty_env = payload(serde_json::json!({"cmd": ["true"], "env": {}})).unwrap();
        assert_eq!(
            signed_bytes(&bare, &Binding::schedule("reports", "nightly")),
            b"tickq-exec-v2\n{\"queue\":\"reports\",\"job\":\"cron:nightly\",\"cmd\":[\"true\"],\
              \"env\":{},\"cwd\":null,\"stdin\":null}"
        );
        assert_eq!(
            signed_bytes(&bare, &bound()),
            signed_bytes(&empty_env, &bound())
        );
        // A missing cwd and an empty-string stdin differ.
        let empty_stdin = payload(serde_json::json!({"cmd": ["true"], "stdin": ""})).unwrap();
        assert_ne!(
            signed_bytes(&bare, &bound()),
            signed_bytes(&empty_stdin, &bound())
        );
    }

    #[test]
    fn sign_and_verify() {
        let mut p = payload(serde_json::json!({"cmd": ["true"]})).unwrap();
        assert!(
            p.verify(&secret(), &bound())
                .unwrap_err()
                .contains("not signed")
        );
        p.sign(&secret(), &bound());
        // Known answer: HMAC-SHA256("0123456789abcdef", signed bytes), as Python computes it.
        assert_eq!(
            p.sig.as_deref(),
            Some("931ec2229d813bc9ad35e8a1ad0a9fb45189078fc334bfbaccd550df46858cf4")
        );
        p.verify(&secret(), &bound()).unwrap();
        // The sig survives the JSON round trip a job makes.
        let back: ExecPayload = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        back.verify(&secret(), &bound()).unwrap();

        let other = Secret::new("another secret, 16+").unwrap();
        assert!(
            p.verify(&other, &bound())
                .unwrap_err()
                .contains("does not match")
        );
        for change in [
            |p: &mut ExecPayload| p.cmd.push("x".into()),
            |p: &mut ExecPayload| drop(p.env.insert("A".into(), "1".into())),
            |p: &mut ExecPayload| p.cwd = Some("/".into()),
            |p: &mut ExecPayload| p.stdin = Some(String::new()),
            |p: &mut ExecPayload| p.sig = Some("zz".repeat(32)),
            |p: &mut ExecPayload| p.sig = Some("00".into()),
        ] {
            let mut q = p.clone();
            change(&mut q);
            assert!(
                q.verify(&secret(), &bound())
                    .unwrap_err()
                    .contains("does not match")
            );
        }
    }

    #[test]
    fn a_signature_binds_the_queue_and_the_job() {
        let mut p = payload(serde_json::json!({"cmd": ["true"]})).unwrap();
        p.sign(&secret(), &Binding::job("q", "j1"));
        for replay in [
            Binding::job("q", "j2"),
            Binding::job("other", "j1"),
            Binding::schedule("q", "j1"),
        ] {
            let err = p.verify(&secret(), &replay).unwrap_err();
            assert!(err.contains("another job id or queue"), "{replay:?}: {err}");
        }
        // A schedule's signature holds for each of its ticks' jobs, and only in its queue.
        let mut nightly = payload(serde_json::json!({"cmd": ["true"]})).unwrap();
        nightly.sign(&secret(), &Binding::schedule("reports", "nightly"));
        for (queue, id, cron, ok) in [
            (
                "reports",
                "cron:nightly:1790000000000:0",
                Some("nightly"),
                true,
            ),
            ("reports", "cron:nightly:manual-17:1", Some("nightly"), true),
            (
                "other",
                "cron:nightly:1790000000000:0",
                Some("nightly"),
                false,
            ),
            // The meta alone does not make a job the schedule's, nor the id alone.
            ("reports", "j1", Some("nightly"), false),
            ("reports", "cron:nightly:1:0", None, false),
            ("reports", "cron:nightly-2:1:0", Some("nightly-2"), false),
        ] {
            let binding = Binding::claimed(queue, id, cron);
            assert_eq!(
                nightly.verify(&secret(), &binding).is_ok(),
                ok,
                "{queue} {id} {cron:?}"
            );
        }
    }

    #[test]
    fn secrets_are_long_and_hidden() {
        assert!(Secret::new("short").unwrap_err().contains("at least 16"));
        assert_eq!(format!("{:?}", secret()), "Secret(***)");
    }
}
