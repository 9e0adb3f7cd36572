//! [`ClusterTrust`]: what this worker trusts, and whom.
//!
//! - Its **session key**, chosen at start and told only to the coordinator when registering:
//!   the worker service (launch, cancel, remove job data) obeys only calls carrying it, so
//!   only the coordinator commands this worker.
//! - What the coordinator said at registration: the **grant key** that read grants in Flight
//!   tickets must be signed with, the digest of the **worker token** whose holders may fetch
//!   shuffle data (none on a cluster without tokens; drivers present a ticket's grant
//!   instead), and the **limits** every task must keep to. Its id follows from its session
//!   key (`quiver_net::worker_id_for`).
//!
//! [`WorkerAccess`] is the access policy built on it for the worker's gRPC port.

use std::time::Duration;

use quiver_net::server_auth::{presented_secret, secret_in_authorization};
use quiver_net::{AccessPolicy, Caller, GRANT_BEARER_PREFIX, GrantError, GrantKey, TokenDigest};
use quiver_plan::Limits;
use quiver_proto::v1 as pb;
use tokio::sync::watch;
use tonic::Status;
use tonic::codegen::http::HeaderMap;

/// How long a Flight fetch waits for the worker's first registration to finish.
const REGISTRATION_WAIT: Duration = Duration::from_secs(5);

/// What the coordinator told this worker when it registered.
#[derive(Clone)]
struct Registration {
    grant_key: GrantKey,
    flight_tokens: Vec<TokenDigest>,
    limits: Limits,
}

/// The worker's session key and what its coordinator told it.
pub struct ClusterTrust {
    session_key: String,
    /// What the last registration's answer said; `None` before the first. A watch, so that a
    /// call that overtakes the answer can wait for it.
    registration: watch::Sender<Option<Registration>>,
}

impl ClusterTrust {
    /// Trust with a fresh random session key and nothing heard from a coordinator yet.
    pub fn new() -> Self {
        ClusterTrust {
            session_key: quiver_net::hex(&quiver_net::random_bytes(32)),
            registration: watch::channel(None).0,
        }
    }

    /// The session key this worker registers with.
    pub fn session_key(&self) -> &str {
        &self.session_key
    }

    /// Takes what the coordinator answered a registration with. A malformed grant key is an
    /// error (the coordinator is not one this worker can work with).
    pub fn registered(&self, response: &pb::RegisterWorkerResponse) -> Result<(), String> {
        let grant_key = GrantKey::from_bytes(&response.grant_key)
            .ok_or("the coordinator sent no valid grant key")?;
        let flight_tokens = response
            .flight_token_digests
            .iter()
            .map(|d| {
                TokenDigest::from_bytes(d).ok_or("the coordinator sent a malformed token digest")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limits = response
            .limits
            .as_ref()
            .map(Limits::from)
            .unwrap_or_default();
        self.registration.send_replace(Some(Registration {
            grant_key,
            flight_tokens,
            limits,
        }));
        Ok(())
    }

    /// What the coordinator said at registration, waiting a little for it: a call may
    /// overtake the registration's answer (the coordinator sends tasks as soon as it
    /// registered the worker, and workers fetch from a worker that just joined).
    async fn registered_or_wait(&self) -> Result<Registration, Status> {
        let mut registration = self.registration.subscribe();
        let _ =
            tokio::time::timeout(REGISTRATION_WAIT, registration.wait_for(Option::is_some)).await;
        self.registration().ok_or_else(|| {
            Status::unavailable("this worker has not registered with its coordinator yet")
        })
    }

    /// The limits tasks must keep to, as the coordinator set them (waiting a little for the
    /// registration's answer).
    pub async fn task_limits(&self) -> Result<Limits, Status> {
        self.registered_or_wait().await.map(|r| r.limits)
    }

    fn registration(&self) -> Option<Registration> {
        self.registration.borrow().clone()
    }

    /// Admits a Flight fetch of a ticket for `job` and `stage` with `grant`: the caller's
    /// `authorization` must hold a token of this cluster (a worker's) or the ticket's own grant
    /// (a driver's, see [`quiver_net::grant_bearer`]) — unless the cluster has no tokens — and
    /// the grant must be signed by the coordinator for `job` and `stage` and unexpired. Waits a
    /// little for the first registration, so a fetch that races it is not refused.
    pub async fn admit_fetch(
        &self,
        authorization: Option<&str>,
        grant: Option<&pb::ReadGrant>,
        job: &str,
        stage: u32,
    ) -> Result<(), Status> {
        let registration = self.registered_or_wait().await?;
        let presented = authorization.and_then(secret_in_authorization);
        registration.check_fetcher(presented.as_deref(), grant)?;
        registration
            .grant_key
            .verify(grant, job, stage)
            .map_err(|e| match e {
                GrantError::Expired { .. } => Status::permission_denied(format!(
                    "{e}; fetch the job's status again for a fresh ticket"
                )),
                other => Status::permission_denied(other.to_string()),
            })
    }
}

impl Registration {
    /// Checks who fetches: a token of this cluster, or the grant of the ticket (`grant` is
    /// `None` in the early check, before the ticket is read: any grant bearer passes then).
    fn check_fetcher(
        &self,
        presented: Option<&str>,
        grant: Option<&pb::ReadGrant>,
    ) -> Result<(), Status> {
        if self.flight_tokens.is_empty() {
            return Ok(());
        }
        let Some(secret) = presented else {
            return Err(Status::unauthenticated(
                "fetching data from a worker needs the worker token (--token-file), or a result ticket's grant as bearer (what the SDK sends)",
            ));
        };
        if let Some(signature) = secret.strip_prefix(GRANT_BEARER_PREFIX) {
            return match grant {
                Some(g) if quiver_net::hex(&g.signature) == signature => Ok(()),
                Some(_) => Err(Status::permission_denied(
                    "the bearer grant is not the ticket's grant",
                )),
                None => Ok(()),
            };
        }
        if self.flight_tokens.iter().any(|d| d.matches(secret)) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "the token given is not accepted by this cluster; check --token-file / QUIVER_TOKEN",
            ))
        }
    }
}

impl Default for ClusterTrust {
    fn default() -> Self {
        Self::new()
    }
}

/// Who may call what on a worker's port: the worker service only with the session key (only
/// the coordinator has it); Flight `DoGet` with a token of the cluster or a grant bearer (the
/// Flight service then checks the ticket's grant, [`ClusterTrust::admit_fetch`]); anything
/// else is refused.
pub struct WorkerAccess {
    pub trust: std::sync::Arc<ClusterTrust>,
}

const WORKER_SERVICE: &str = "/quiver.v1.Worker/";
const FLIGHT_DO_GET: &str = "/arrow.flight.protocol.FlightService/DoGet";

impl AccessPolicy for WorkerAccess {
    fn check(&self, path: &str, headers: &HeaderMap) -> Result<Caller, Status> {
        if path.starts_with(WORKER_SERVICE) {
            let key = TokenDigest::of(&self.trust.session_key);
            return match presented_secret(headers) {
                Some(p) if key.matches(&p) => Ok(Caller { role: None }),
                Some(_) => Err(Status::permission_denied(
                    "only this worker's coordinator may call the worker service",
                )),
                None => Err(Status::unauthenticated(
                    "the worker service obeys only its coordinator (a bearer session key is needed)",
                )),
            };
        }
        if path == FLIGHT_DO_GET {
            // Refused here, before the ticket is read, when it can be; a fetch that races the
            // first registration is checked by the handler once it is registered.
            if let Some(registration) = self.trust.registration() {
                registration.check_fetcher(presented_secret(headers).as_deref(), None)?;
            }
            return Ok(Caller { role: None });
        }
        Err(Status::unimplemented(format!(
            "no such method: {path} (a Quiver worker serves shuffle data with Flight DoGet only)"
        )))
    }
}
