//! Tokens: the secrets callers prove themselves with.
//!
//! A coordinator has two roles of caller: *clients* (drivers, the CLI, the dashboard's users)
//! and *workers*. Each role has its own token, or one token serves both on a single-user
//! cluster. A server keeps only the SHA-256 digest of each token it accepts and compares the
//! digest of what a caller presents, in constant time, so neither timing nor a memory dump of
//! the comparison reveals a token.
//!
//! Tokens come from a file (`--token-file`, `QUIVER_TOKEN_FILE`) or, for the process's own
//! token only, from `QUIVER_TOKEN`: never from a command-line value, which every user of the
//! host can read in the process list.

use std::fmt;
use std::path::{Path, PathBuf};

use ring::digest;

use crate::error::{NetError, Result};

/// Shortest token accepted: 16 characters (e.g. 64 bits of hex) resist guessing over a network.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted, so that a header of any size is not hashed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The roles of caller a coordinator tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Drivers, the CLI, dashboard users: submit and watch jobs.
    Client,
    /// Worker processes: register, heartbeat, report tasks.
    Worker,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Client => "client",
            Role::Worker => "worker",
        })
    }
}

/// A secret token. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from its text (surrounding whitespace, such as a file's final newline, is
    /// dropped). `what` names it in errors.
    pub fn new(value: &str, what: &str) -> Result<Self> {
        let value = value.trim();
        let problem = if value.len() < MIN_TOKEN_LEN {
            Some(format!(
                "a token needs at least {MIN_TOKEN_LEN} characters (it has {}); make one with e.g. `openssl rand -hex 32`",
                value.len()
            ))
        } else if value.len() > MAX_TOKEN_LEN {
            Some(format!("a token has at most {MAX_TOKEN_LEN} characters"))
        } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
            Some("a token may hold only visible ASCII characters (no spaces)".into())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(NetError::BadToken {
                what: what.to_string(),
                problem,
            }),
            None => Ok(Token(value.to_string())),
        }
    }

    /// The token in `path`. Warns when other users of the host may read the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| NetError::ReadFile {
            what: "token file",
            path: path.to_path_buf(),
            source,
        })?;
        warn_if_shared(path);
        Token::new(&text, &format!("token file {}", path.display()))
    }

    /// A fresh random token (256 bits, hex): what a `LocalCluster` uses.
    pub fn random() -> Self {
        Token(crate::hex(&crate::random_bytes(32)))
    }

    /// The secret itself, for the `authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What a server keeps of this token.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The SHA-256 digest of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
        let d = digest::digest(&digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        TokenDigest(out)
    }

    /// A digest received from the coordinator; `None` unless it is 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(TokenDigest)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `presented` is the token this is the digest of. Constant time in the token's
    /// content (only its digest is compared).
    pub fn matches(&self, presented: &str) -> bool {
        if presented.len() > MAX_TOKEN_LEN {
            return false;
        }
        let other = TokenDigest::of(presented);
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({}…)", crate::hex(&self.0[..4]))
    }
}

/// The tokens a coordinator accepts, per role. Both or neither: a cluster where one role
/// needs a token and the other does not protects nothing.
#[derive(Clone, Debug, Default)]
pub struct ClusterTokens {
    roles: Option<(TokenDigest, TokenDigest)>,
}

impl ClusterTokens {
    /// No tokens: every caller is accepted (loopback-only unless `--insecure`).
    pub fn open() -> Self {
        ClusterTokens { roles: None }
    }

    /// One token for clients and workers alike.
    pub fn shared(token: &Token) -> Self {
        ClusterTokens {
            roles: Some((token.digest(), token.digest())),
        }
    }

    /// Separate client and worker tokens.
    pub fn separate(client: &Token, worker: &Token) -> Self {
        ClusterTokens {
            roles: Some((client.digest(), worker.digest())),
        }
    }

    /// From a coordinator's flags: `--token-file` serves both roles unless a role has its own
    /// file. Exactly one role with a token is an error.
    pub fn from_files(
        shared: Option<Token>,
        client: Option<Token>,
        worker: Option<Token>,
    ) -> Result<Self> {
        let client = client.or_else(|| shared.clone());
        let worker = worker.or(shared);
        match (client, worker) {
            (None, None) => Ok(ClusterTokens::open()),
            (Some(c), Some(w)) => Ok(ClusterTokens::separate(&c, &w)),
            (Some(_), None) => Err(NetError::BadToken {
                what: "--client-token-file".into(),
                problem: "workers have no token: give --worker-token-file too (or --token-file for both roles)".into(),
            }),
            (None, Some(_)) => Err(NetError::BadToken {
                what: "--worker-token-file".into(),
                problem: "clients have no token: give --client-token-file too (or --token-file for both roles)".into(),
            }),
        }
    }

    /// Whether callers must present a token.
    pub fn required(&self) -> bool {
        self.roles.is_some()
    }

    /// The digest of `role`'s token, if tokens are required.
    pub fn digest(&self, role: Role) -> Option<TokenDigest> {
        self.roles.map(|(c, w)| match role {
            Role::Client => c,
            Role::Worker => w,
        })
    }

    /// The roles `presented` is a token of (both, on a shared-token cluster).
    pub fn roles_of(&self, presented: &str) -> Vec<Role> {
        let Some((c, w)) = self.roles else {
            return vec![Role::Client, Role::Worker];
        };
        // Both comparisons always run: which one matched does not show in the timing.
        let (is_client, is_worker) = (c.matches(presented), w.matches(presented));
        let mut roles = Vec::with_capacity(2);
        if is_client {
            roles.push(Role::Client);
        }
        if is_worker {
            roles.push(Role::Worker);
        }
        roles
    }
}

/// The worker id that belongs to a worker's session key: a UUID made of the key's SHA-256
/// digest. A worker cannot choose its id apart from its key, so nobody who does not hold a
/// worker's key can register under its id, also not first, after a coordinator restart.
pub fn worker_id_for(session_key: &str) -> String {
    let d = digest::digest(&digest::SHA256, session_key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    // RFC 9562 version 8 (custom) and the RFC variant, so that it is a well-formed UUID.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A process's own token: `file` if given, else `QUIVER_TOKEN` from the environment.
pub fn own_token(file: Option<&PathBuf>) -> Result<Option<Token>> {
    if let Some(path) = file {
        return Token::from_file(path).map(Some);
    }
    match std::env::var("QUIVER_TOKEN") {
        Ok(v) if !v.trim().is_empty() => Token::new(&v, "QUIVER_TOKEN").map(Some),
        _ => Ok(None),
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "token file is readable by other users of this host; `chmod 600` it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_spaced_tokens_are_refused_and_values_never_print() {
        assert!(Token::new("short", "t").is_err());
        assert!(Token::new("has a space in the middle", "t").is_err());
        let t = Token::new("  0123456789abcdef0123\n", "t").unwrap();
        assert_eq!(t.expose(), "0123456789abcdef0123");
        assert!(!format!("{t:?}").contains("0123"));
    }

    #[test]
    fn digests_match_only_their_token() {
        let t = Token::random();
        let d = t.digest();
        assert!(d.matches(t.expose()));
        assert!(!d.matches(&format!("{}x", t.expose())));
        assert!(!d.matches(""));
    }

    #[test]
    fn worker_ids_follow_from_session_keys() {
        let a = worker_id_for("key-one-key-one-key-one-key-one");
        assert_eq!(a, worker_id_for("key-one-key-one-key-one-key-one"));
        assert_ne!(a, worker_id_for("key-two-key-two-key-two-key-two"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "version 8");
    }

    #[test]
    fn roles_follow_the_files_given() {
        let a = Token::random();
        let b = Token::random();
        let split = ClusterTokens::from_files(None, Some(a.clone()), Some(b.clone())).unwrap();
        assert_eq!(split.roles_of(a.expose()), vec![Role::Client]);
        assert_eq!(split.roles_of(b.expose()), vec![Role::Worker]);
        assert!(split.roles_of("nothing-like-a-token").is_empty());
        let shared = ClusterTokens::from_files(Some(a.clone()), None, None).unwrap();
        assert_eq!(
            shared.roles_of(a.expose()),
            vec![Role::Client, Role::Worker]
        );
        // A role file overrides the shared one for that role only.
        let mixed = ClusterTokens::from_files(Some(a.clone()), None, Some(b.clone())).unwrap();
        assert_eq!(mixed.roles_of(a.expose()), vec![Role::Client]);
        assert!(ClusterTokens::from_files(None, Some(a), None).is_err());
        assert!(!ClusterTokens::open().required());
    }
}
