//! Advertised addresses: the `HOST:PORT` other processes dial to reach a server, as opposed
//! to the address it binds. A process bound to `0.0.0.0:7070` listens on every interface, but
//! no peer can dial `0.0.0.0`: it must be told which name or IP reaches it
//! (`--advertise-addr`).

use std::fmt;
use std::net::SocketAddr;

/// A host (name or IP) and an optional port that peers dial; without a port, the bound port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertiseAddr {
    /// A DNS name or an IP (an IPv6 address without brackets).
    pub host: String,
    /// The port peers dial; none: the port the server is bound to.
    pub port: Option<u16>,
}

impl AdvertiseAddr {
    /// Parses `HOST:PORT`, `HOST`, `[V6]:PORT` or `[V6]` (a clap value parser).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = |why: &str| {
            Err(format!(
                "advertised address {text:?}: {why}; expected HOST:PORT, e.g. w1.example:7070 or 10.0.0.5:7070"
            ))
        };
        if text.is_empty() {
            return bad("empty");
        }
        if text.contains("://") || text.contains('/') {
            return bad("give a host and port, not a URL");
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let Some((v6, after)) = rest.split_once(']') else {
                return bad("unclosed [");
            };
            match after {
                "" => (v6, None),
                p if p.starts_with(':') => (v6, Some(&p[1..])),
                _ => return bad("unexpected text after ]"),
            }
        } else if text.matches(':').count() > 1 {
            // A bare IPv6 address: no port.
            (text, None)
        } else {
            match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return bad("no host");
        }
        if host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
        {
            return bad("an unspecified address (0.0.0.0, ::) cannot be dialed");
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) => return bad("port 0 cannot be dialed"),
                Ok(p) => Some(p),
                Err(_) => return bad("the port is not a number from 1 to 65535"),
            },
        };
        Ok(AdvertiseAddr {
            host: host.to_string(),
            port,
        })
    }

    /// `host:port` for a server bound to `bound_port` (IPv6 hosts in brackets).
    pub fn with_bound_port(&self, bound_port: u16) -> String {
        host_port(&self.host, self.port.unwrap_or(bound_port))
    }
}

impl fmt::Display for AdvertiseAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => f.write_str(&host_port(&self.host, p)),
            None => f.write_str(&self.host),
        }
    }
}

impl std::str::FromStr for AdvertiseAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AdvertiseAddr::parse(s)
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `host:port` peers dial to reach a server bound to `local`: `advertise` when given,
/// else the bound address. A server bound to every interface (`0.0.0.0`, `::`) without
/// `advertise` is reachable as 127.0.0.1 only when `same_host_only` (its peers all run on this
/// machine); otherwise this is an error naming `flag` — advertising 0.0.0.0 would give peers
/// an address they cannot dial.
pub fn advertised(
    local: SocketAddr,
    advertise: Option<&AdvertiseAddr>,
    same_host_only: bool,
    flag: &str,
) -> Result<String, String> {
    if let Some(a) = advertise {
        return Ok(a.with_bound_port(local.port()));
    }
    if !local.ip().is_unspecified() {
        return Ok(local.to_string());
    }
    if same_host_only {
        return Ok(format!("127.0.0.1:{}", local.port()));
    }
    Err(format!(
        "bound to {local} (every interface), but peers cannot dial {}: say which host name or IP reaches this process with {flag} HOST:PORT (or QUIVER_ADVERTISE_ADDR), e.g. {flag} $(hostname -i):{}",
        local.ip(),
        local.port()
    ))
}

/// Whether `url`'s host is a loopback name or address (`localhost`, `127.x`, `::1`).
pub fn url_is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_ipv6() {
        let a = AdvertiseAddr::parse("w1.example:7070").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("w1.example", Some(7070)));
        assert_eq!(AdvertiseAddr::parse("w1").unwrap().port, None);
        let v6 = AdvertiseAddr::parse("[fd00::1]:7070").unwrap();
        assert_eq!(v6.host, "fd00::1");
        assert_eq!(v6.with_bound_port(1), "[fd00::1]:7070");
        assert_eq!(AdvertiseAddr::parse("fd00::1").unwrap().port, None);
        for bad in [
            "",
            "0.0.0.0:7070",
            "[::]:1",
            "h:0",
            "h:x",
            "http://h:1",
            ":7070",
        ] {
            assert!(AdvertiseAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unspecified_bind_needs_an_advertised_address_beyond_this_host() {
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        let err = advertised(any, None, false, "--advertise-addr").unwrap_err();
        assert!(err.contains("--advertise-addr HOST:PORT"), "{err}");
        assert_eq!(
            advertised(any, None, true, "--advertise-addr").unwrap(),
            "127.0.0.1:7070"
        );
        let w1 = AdvertiseAddr::parse("w1").unwrap();
        assert_eq!(advertised(any, Some(&w1), false, "").unwrap(), "w1:7070");
        let own: SocketAddr = "10.1.2.3:9".parse().unwrap();
        assert_eq!(advertised(own, None, false, "").unwrap(), "10.1.2.3:9");
    }

    #[test]
    fn loopback_urls() {
        assert!(url_is_loopback("http://127.0.0.1:50050"));
        assert!(url_is_loopback("https://localhost:1"));
        assert!(url_is_loopback("http://[::1]:1"));
        assert!(!url_is_loopback("http://coord.example:50050"));
        assert!(!url_is_loopback("http://10.0.0.1:50050"));
    }
}
