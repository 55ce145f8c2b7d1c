//! Which URLs a user may make the server call: UnifiedPush endpoints and push webhooks now,
//! the customer's webhooks and JWKS URLs later (PROTOCOL.md, third part, "Outbound").
//!
//! - A target is `https` on port 443 (explicit or implied) at a public address
//!   ([`super::address::is_public`]), and carries no credentials.
//! - A host on `--push-webhook-allow` is exempt: `http`, any port, loopback or private
//!   addresses (a self-hosted push server, a test double).
//! - [`TargetRules::allowed`] asks for more: the host must be on the list (the `webhook`
//!   push provider).
//! - "Public" is checked on the literal address in the URL and again on every address a name
//!   resolves to, at each connection ([`PublicOnly`]), so a name that later points inside the
//!   network (DNS rebinding) is refused too.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use super::address::{is_public, not_public};

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

    /// A target on an allowed host only (the `webhook` push provider): any http(s) there.
    pub fn allowed(&self, token: &str) -> Result<reqwest::Url, String> {
        let url = Self::parse(token)?;
        let host = host_of(&url);
        if !self.allows_host(&host) {
            return Err(format!(
                "host {host:?} is not in this server's --push-webhook-allow list"
            ));
        }
        Ok(url)
    }

    /// Any user-chosen target: https on port 443 at a public address, or any http(s) on an
    /// allowed host.
    pub fn public(&self, token: &str) -> Result<reqwest::Url, String> {
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
        if url.port_or_known_default() != Some(443) {
            return Err(format!(
                "must be on port 443 (other ports only for hosts on --push-webhook-allow, not {host:?})"
            ));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            if let Some(what) = not_public(ip) {
                return Err(format!("{ip} is not a public address ({what})"));
            }
        } else if host == "localhost" || host.ends_with(".localhost") || !host.contains('.') {
            return Err(format!("{host:?} is not a public host name"));
        }
        Ok(url)
    }
}

/// A resolver for user-chosen targets: names on the allow-list resolve as usual; any other
/// name must resolve to public addresses only (the others are dropped, and none left is an
/// error).
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
        assert!(r.public("https://push.example.org/up/abc").is_ok());
        assert!(r.public("https://8.8.8.8/up").is_ok());
        assert!(r.public("http://127.0.0.1:9000/up").is_ok(), "allowed host");
        assert!(r.public("http://push.internal/up").is_ok(), "allowed host");
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
            assert!(r.public(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn targets_are_on_port_443_unless_their_host_is_allowed() {
        let r = TargetRules::new(&["127.0.0.1".to_owned(), "push.internal".to_owned()]);
        for ok in [
            "https://push.example.org/up",
            "https://push.example.org:443/up",
            "https://8.8.8.8:443/up",
            "https://push.internal:8443/up",
            "http://127.0.0.1:9000/up",
        ] {
            assert!(r.public(ok).is_ok(), "{ok} must be accepted");
        }
        for bad in [
            "https://push.example.org:8443/up",
            "https://push.example.org:80/up",
            "https://8.8.8.8:22/up",
            "https://[2606:4700::1111]:444/up",
            "https://push.example.org:1/up",
        ] {
            let why = r.public(bad).unwrap_err();
            assert!(why.contains("port 443"), "{bad}: {why}");
        }
    }

    #[test]
    fn literal_ipv6_targets_that_embed_or_are_non_public_addresses_are_refused() {
        let r = TargetRules::new(&[]);
        for bad in [
            "https://[::127.0.0.1]/up",
            "https://[::ffff:0:10.0.0.1]/up",
            "https://[::ffff:169.254.169.254]/up",
            "https://[64:ff9b::192.168.0.1]/up",
            "https://[2002:a00:1::1]/up",
            "https://[2001:0:4136:e378::1]/up",
            "https://[fec0::1]/up",
            "https://[fe80::1]/up",
            "https://[ff02::1]/up",
            "https://[2001:db8::1]/up",
        ] {
            let why = r.public(bad).unwrap_err();
            assert!(why.contains("not a public address"), "{bad}: {why}");
        }
        assert!(r.public("https://[2606:4700::1111]/up").is_ok());
    }

    #[test]
    fn webhooks_need_an_allowed_host() {
        let r = TargetRules::new(&["127.0.0.1".to_owned()]);
        assert!(r.allowed("http://127.0.0.1:1234/hook").is_ok());
        assert!(r.allowed("https://example.org/hook").is_err());
    }
}
