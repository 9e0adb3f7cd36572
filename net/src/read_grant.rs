//! [`GrantKey`]: the coordinator's key for read grants, and their signing and checking.
//!
//! A read grant says "the holder may read the outputs of stage S of job J until time T". The
//! coordinator signs one into every task that reads a shuffle and into every result ticket it
//! gives a driver; a worker's Flight server serves a bucket only when the ticket's grant is
//! signed with the key the coordinator gave it at registration, names the ticket's own job and
//! stage, and has not expired. Nobody without the key can make or alter one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quiver_proto::v1 as pb;
use ring::hmac;

/// Bytes of a grant key.
pub const GRANT_KEY_BYTES: usize = 32;

/// What a bearer made of a grant starts with (see [`grant_bearer`]).
pub const GRANT_BEARER_PREFIX: &str = "grant.";

/// The bearer credential a driver presents to a worker when it fetches results: the signature
/// of the grant in its ticket. A driver never sends its client token to a worker — a worker is
/// trusted with data, not with the client API — and this proves as much as the grant does.
pub fn grant_bearer(grant: &pb::ReadGrant) -> String {
    format!("{GRANT_BEARER_PREFIX}{}", crate::hex(&grant.signature))
}

/// Why a grant is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the ticket carries no read grant")]
    Missing,
    #[error("the read grant is not signed by this cluster's coordinator")]
    BadSignature,
    #[error(
        "the read grant is for job {granted} stage {granted_stage}, not job {job} stage {stage}"
    )]
    WrongScope {
        granted: String,
        granted_stage: u32,
        job: String,
        stage: u32,
    },
    #[error("the read grant expired {ago_s} s ago")]
    Expired { ago_s: u64 },
}

/// The HMAC key grants are signed with.
#[derive(Clone)]
pub struct GrantKey {
    bytes: Vec<u8>,
    key: hmac::Key,
}

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrantKey(<redacted>)")
    }
}

impl GrantKey {
    /// A fresh random key (a coordinator makes one at start).
    pub fn random() -> Self {
        Self::from_bytes(&crate::random_bytes(GRANT_KEY_BYTES)).unwrap_or_else(|| {
            unreachable!("a random key has the right length");
        })
    }

    /// The key the coordinator sent; `None` unless it has [`GRANT_KEY_BYTES`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == GRANT_KEY_BYTES).then(|| GrantKey {
            bytes: bytes.to_vec(),
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// The raw key, for the registration answer.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// A grant to read stage `stage` of job `job` for `valid_for`.
    pub fn sign(&self, job: &str, stage: u32, valid_for: Duration) -> pb::ReadGrant {
        self.sign_until(
            job,
            stage,
            now_ms().saturating_add(valid_for.as_millis() as u64),
        )
    }

    fn sign_until(&self, job: &str, stage: u32, expires_at_ms: u64) -> pb::ReadGrant {
        let signature = hmac::sign(&self.key, &message(job, stage, expires_at_ms))
            .as_ref()
            .to_vec();
        pb::ReadGrant {
            job_id: job.to_string(),
            stage_id: stage,
            expires_at_ms,
            signature,
        }
    }

    /// Checks that `grant` is genuine, unexpired, and for `job` and `stage`.
    pub fn verify(
        &self,
        grant: Option<&pb::ReadGrant>,
        job: &str,
        stage: u32,
    ) -> Result<(), GrantError> {
        let grant = grant.ok_or(GrantError::Missing)?;
        hmac::verify(
            &self.key,
            &message(&grant.job_id, grant.stage_id, grant.expires_at_ms),
            &grant.signature,
        )
        .map_err(|_| GrantError::BadSignature)?;
        if grant.job_id != job || grant.stage_id != stage {
            return Err(GrantError::WrongScope {
                granted: grant.job_id.clone(),
                granted_stage: grant.stage_id,
                job: job.to_string(),
                stage,
            });
        }
        let now = now_ms();
        if now > grant.expires_at_ms {
            return Err(GrantError::Expired {
                ago_s: (now - grant.expires_at_ms) / 1000,
            });
        }
        Ok(())
    }
}

/// What is signed: a domain tag, then each field with its length, so that no two different
/// grants share a message.
fn message(job: &str, stage: u32, expires_at_ms: u64) -> Vec<u8> {
    const TAG: &[u8] = b"quiver-read-grant-v1";
    let mut m = Vec::with_capacity(TAG.len() + job.len() + 20);
    m.extend_from_slice(TAG);
    m.extend_from_slice(&(job.len() as u64).to_be_bytes());
    m.extend_from_slice(job.as_bytes());
    m.extend_from_slice(&stage.to_be_bytes());
    m.extend_from_slice(&expires_at_ms.to_be_bytes());
    m
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_verify_only_for_their_job_stage_and_key() {
        let key = GrantKey::random();
        let grant = key.sign("job-a", 3, Duration::from_secs(60));
        assert_eq!(key.verify(Some(&grant), "job-a", 3), Ok(()));
        assert!(matches!(
            key.verify(Some(&grant), "job-b", 3),
            Err(GrantError::WrongScope { .. })
        ));
        assert!(matches!(
            key.verify(Some(&grant), "job-a", 2),
            Err(GrantError::WrongScope { .. })
        ));
        // Changing any signed field breaks the signature.
        let mut forged = grant.clone();
        forged.job_id = "job-b".into();
        assert_eq!(
            key.verify(Some(&forged), "job-b", 3),
            Err(GrantError::BadSignature)
        );
        let mut extended = grant.clone();
        extended.expires_at_ms += 1;
        assert_eq!(
            key.verify(Some(&extended), "job-a", 3),
            Err(GrantError::BadSignature)
        );
        // Another coordinator's key.
        assert_eq!(
            GrantKey::random().verify(Some(&grant), "job-a", 3),
            Err(GrantError::BadSignature)
        );
        assert_eq!(key.verify(None, "job-a", 3), Err(GrantError::Missing));
        let expired = key.sign_until("job-a", 3, now_ms() - 2000);
        assert!(matches!(
            key.verify(Some(&expired), "job-a", 3),
            Err(GrantError::Expired { .. })
        ));
    }

    #[test]
    fn keys_travel_as_bytes() {
        let key = GrantKey::random();
        let copy = GrantKey::from_bytes(&key.to_bytes()).unwrap();
        let grant = key.sign("j", 0, Duration::from_secs(5));
        assert_eq!(copy.verify(Some(&grant), "j", 0), Ok(()));
        assert!(GrantKey::from_bytes(&[1, 2, 3]).is_none());
    }
}
