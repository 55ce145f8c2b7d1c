//! Which URLs a device may make the server call (webhook tokens, UnifiedPush endpoints).
//!
//! - A webhook's host must be on `--push-webhook-allow`.
//! - A UnifiedPush endpoint must be `https` on a public address. A host on the allow-list may
//!   also be `http`, loopback or private (a self-hosted push server, a test double).
//! - "Public" is checked on the literal address in the URL and again on every address a name
//!   resolves to, at each send ([`PublicOnly`]), so a name that later points inside the
//!   network (DNS rebinding) is refused too.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// The operator's allow-list, normalised.
#[derive(Debug, Clone, Default)]
pub struct TargetRules {
    allow: Arc<Vec<String>>,
}

fn host_of(url: &reqwest::Url) -> String {
    url.host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl TargetRules {
    pub fn new(allow: &[String]) -> Self {
        TargetRules {
            allow: Arc::new(
                allow
                    .iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect(),
            ),
        }
    }

    pub fn allows_host(&self, host: &str) -> bool {
        self.allow.iter().any(|a| a == host)
    }

    fn parse(token: &str) -> Result<reqwest::Url, String> {
        let url = reqwest::Url::parse(token).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        Ok(url)
    }

    /// A webhook target: http(s) on an allowed host.
    pub fn webhook(&self, token: &str) -> Result<reqwest::Url, String> {
        let url = Self::parse(token)?;
        let host = host_of(&url);
        if !self.allows_host(&host) {
            return Err(format!(
                "host {host:?} is not in this server's --push-webhook-allow list"
            ));
        }
        Ok(url)
    }

    /// A UnifiedPush endpoint: https on a public address, or any http(s) on an allowed host.
    pub fn unifiedpush(&self, token: &str) -> Result<reqwest::Url, String> {
        let url = Self::parse(token)?;
        let host = host_of(&url);
        if self.allows_host(&host) {
            return Ok(url);
        }
        if url.scheme() != "https" {
            return Err(format!(
                "must be https (http only for hosts on --push-webhook-allow, not {host:?})"
            ));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            if !is_public(ip) {
                return Err(format!("{ip} is not a public address"));
            }
        } else if host == "localhost" || host.ends_with(".localhost") || !host.contains('.') {
            return Err(format!("{host:?} is not a public host name"));
        }
        Ok(url)
    }
}

/// True for addresses on the public internet: not loopback, private, link-local, shared
/// (CGNAT), documentation, multicast, unspecified, or an IPv6 form of one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64
        }
    }
}

/// A resolver for device-chosen targets: names on the allow-list resolve as usual; any other
/// name must resolve to public addresses only (the private ones are dropped, and none left is
/// an error).
pub struct PublicOnly {
    pub rules: TargetRules,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let allowed = self.rules.allows_host(&host);
        let fut = async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allowed || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        };
        Box::pin(fut) as Pin<Box<dyn Future<Output = _> + Send>>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unifiedpush_endpoints_must_be_https_on_public_addresses_unless_allowed() {
        let r = TargetRules::new(&["127.0.0.1".to_owned(), "push.internal".to_owned()]);
        assert!(r.unifiedpush("https://push.example.org/up/abc").is_ok());
        assert!(r.unifiedpush("https://8.8.8.8/up").is_ok());
        assert!(
            r.unifiedpush("http://127.0.0.1:9000/up").is_ok(),
            "allowed host"
        );
        assert!(
            r.unifiedpush("http://push.internal/up").is_ok(),
            "allowed host"
        );
        for bad in [
            "http://push.example.org/up",
            "https://10.0.0.5/up",
            "https://192.168.1.1/up",
            "https://[::1]/up",
            "https://[fd00::1]/up",
            "https://[::ffff:127.0.0.2]/up",
            "https://169.254.169.254/latest",
            "https://localhost/up",
            "https://intranet/up",
            "https://user:pw@push.example.org/up",
            "ftp://push.example.org/up",
            "not a url",
        ] {
            assert!(r.unifiedpush(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn webhooks_need_an_allowed_host() {
        let r = TargetRules::new(&["127.0.0.1".to_owned()]);
        assert!(r.webhook("http://127.0.0.1:1234/hook").is_ok());
        assert!(r.webhook("https://example.org/hook").is_err());
    }

    #[test]
    fn public_means_routable_on_the_internet() {
        for ip in ["1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fc00::1",
            "::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
