//! [`CoordinatorAccess`]: which role may call which coordinator method. Workers register,
//! heartbeat and report tasks; clients submit, watch, list and cancel jobs and
//! list workers. A method not named here is refused.
//!
//! This decides by role only. That a worker call comes from the worker it names is checked by
//! the handlers (the worker's session key), since only they know the registered keys.

use quiver_net::server_auth::{presented_secret, token_needed, token_refused};
use quiver_net::{AccessPolicy, Caller, ClusterTokens, Role};
use tonic::Status;
use tonic::codegen::http::HeaderMap;

const SERVICE: &str = "/quiver.v1.Coordinator/";

/// The role a coordinator method needs, by its gRPC path.
pub fn method_role(path: &str) -> Option<Role> {
    match path.strip_prefix(SERVICE)? {
        "RegisterWorker" | "Heartbeat" | "ReportTask" => Some(Role::Worker),
        "SubmitJob" | "ExplainJob" | "WatchJob" | "GetJob" | "ListJobs" | "CancelJob"
        | "ListWorkers" | "ReleaseResults" => Some(Role::Client),
        _ => None,
    }
}

/// The coordinator's access policy over its tokens.
pub struct CoordinatorAccess {
    pub tokens: ClusterTokens,
}

impl CoordinatorAccess {
    /// Checks a caller who needs `role` (also used by the dashboard, for clients).
    pub fn check_role(&self, role: Role, headers: &HeaderMap) -> Result<Caller, Status> {
        if !self.tokens.required() {
            return Ok(Caller { role: None });
        }
        let Some(secret) = presented_secret(headers) else {
            return Err(token_needed("coordinator", role));
        };
        let roles = self.tokens.roles_of(&secret);
        if roles.contains(&role) {
            Ok(Caller { role: Some(role) })
        } else {
            Err(token_refused("coordinator", role, &roles))
        }
    }
}

impl AccessPolicy for CoordinatorAccess {
    fn check(&self, path: &str, headers: &HeaderMap) -> Result<Caller, Status> {
        let role = method_role(path)
            .ok_or_else(|| Status::unimplemented(format!("no such method: {path}")))?;
        self.check_role(role, headers)
    }
}
