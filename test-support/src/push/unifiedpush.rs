//! A UnifiedPush distributor's endpoint (RFC 8030) over HTTPS on loopback, holding a device's
//! RFC 8291 keys: it decrypts every `aes128gcm` body with the device's private key, using
//! RustCrypto (an implementation independent of the server's), and hands the bytes on as the
//! connector library hands them to the app.
//!
//! Checked: `Content-Encoding: aes128gcm`, a numeric `TTL`, a valid `Urgency`, the RFC 8188
//! header (salt, record size, key id = the sender's P-256 key), the decryption and its
//! padding delimiter. A dead endpoint answers `404`; the server gets `201 Created`.

use std::net::SocketAddr;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;
use tokio::time::Instant;

use super::tls::{self, Req, Resp, TestCa, respond};
use super::{Answer, Double, Received, headers_of};

pub struct UnifiedPushDouble {
    pub double: Double,
    addr: SocketAddr,
    device: Arc<DeviceKeys>,
    _task: tokio::task::JoinHandle<()>,
}

/// The device's side of RFC 8291.
pub struct DeviceKeys {
    secret: SecretKey,
    pub auth: [u8; 16],
}

impl DeviceKeys {
    pub fn generate() -> DeviceKeys {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(secret) = SecretKey::from_slice(&bytes) {
                return DeviceKeys {
                    secret,
                    auth: rand::random(),
                };
            }
        }
    }

    /// From the raw private scalar and auth secret (RFC 8291's appendix values).
    pub fn from_raw(private: &[u8], auth: [u8; 16]) -> DeviceKeys {
        DeviceKeys {
            secret: SecretKey::from_slice(private).expect("P-256 scalar"),
            auth,
        }
    }

    pub fn public(&self) -> Vec<u8> {
        self.secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// `p256dh` as the registration carries it.
    pub fn p256dh(&self) -> String {
        B64.encode(self.public())
    }

    /// `auth` as the registration carries it.
    pub fn auth_b64(&self) -> String {
        B64.encode(self.auth)
    }

    /// Decrypts one `aes128gcm` message (RFC 8291 section 3.4, RFC 8188 section 2).
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        if body.len() < 21 {
            return Err("shorter than the aes128gcm header".into());
        }
        let salt = &body[..16];
        let rs = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes"));
        let idlen = body[20] as usize;
        if idlen != 65 || body.len() < 21 + idlen {
            return Err(format!("key id of {idlen} bytes, not a 65-byte P-256 key"));
        }
        let as_public = &body[21..21 + idlen];
        let ciphertext = &body[21 + idlen..];
        if ciphertext.len() > rs as usize {
            return Err(format!("record of {} bytes over rs {rs}", ciphertext.len()));
        }
        let sender = PublicKey::from_sec1_bytes(as_public)
            .map_err(|_| "key id is not a P-256 point".to_owned())?;
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(&self.public());
        info.extend_from_slice(as_public);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .map_err(|e| e.to_string())?;
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let mut cek = [0u8; 16];
        let mut nonce = [0u8; 12];
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .map_err(|e| e.to_string())?;
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .map_err(|e| e.to_string())?;
        let mut plain = Aes128Gcm::new_from_slice(&cek)
            .map_err(|e| e.to_string())?
            .decrypt(Nonce::from_slice(&nonce), ciphertext)
            .map_err(|_| "does not decrypt with the device's key".to_owned())?;
        while plain.last() == Some(&0) {
            plain.pop();
        }
        if plain.pop() != Some(2) {
            return Err("no last-record delimiter".into());
        }
        Ok(plain)
    }
}

impl UnifiedPushDouble {
    pub async fn start(ca: &TestCa) -> UnifiedPushDouble {
        let device = Arc::new(DeviceKeys::generate());
        let double = Double::default();
        let (d, keys) = (double.clone(), device.clone());
        let (addr, task) = tls::serve(ca, false, move |req| {
            let (d, keys) = (d.clone(), keys.clone());
            async move { handle(&d, &keys, req).await }
        })
        .await;
        UnifiedPushDouble {
            double,
            addr,
            device,
            _task: task,
        }
    }

    /// An endpoint URL for one registration (the id is what [`Double::set`] takes).
    pub fn endpoint(&self, id: &str) -> String {
        format!("https://{}/up/{id}", self.addr)
    }

    pub fn keys(&self) -> &DeviceKeys {
        &self.device
    }
}

async fn handle(d: &Double, keys: &DeviceKeys, req: Req) -> Resp {
    let Some(id) = req.path.strip_prefix("/up/").map(str::to_owned) else {
        return respond(404, &[], "");
    };
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let bad = |what: String| {
        d.violation(what);
        respond(400, &[], "")
    };
    if req.method != hyper::Method::POST {
        return bad(format!("method {}", req.method));
    }
    if header("content-encoding") != "aes128gcm" {
        return bad(format!("content-encoding {:?}", header("content-encoding")));
    }
    if header("ttl").parse::<u64>().is_err() {
        return bad(format!("TTL {:?}", header("ttl")));
    }
    let urgency = header("urgency");
    if !urgency.is_empty() && !["very-low", "low", "normal", "high"].contains(&urgency.as_str()) {
        return bad(format!("urgency {urgency:?}"));
    }
    let plain = match keys.decrypt(&req.body) {
        Ok(p) => p,
        Err(e) => return bad(format!("body: {e}")),
    };
    let app_bytes = match String::from_utf8(plain) {
        Ok(s) => s,
        Err(_) => return bad("message is not UTF-8".into()),
    };
    let payload = match serde_json::from_str(&app_bytes) {
        Ok(p) => p,
        Err(e) => return bad(format!("message is not the payload JSON: {e}")),
    };
    let received = Received {
        token: id.clone(),
        payload,
        app_bytes,
        headers: headers_of(&req.headers),
        at: Instant::now(),
    };
    match d.answer(&id) {
        Answer::Deliver => {
            d.deliver(received);
            respond(201, &[("location", format!("/msg/{id}"))], "")
        }
        Answer::Lose => respond(201, &[], ""),
        Answer::Gone => respond(404, &[], ""),
        Answer::Busy(secs) => respond(429, &[("retry-after", secs.to_string())], ""),
        Answer::Hang => std::future::pending().await,
        Answer::Flood => d.flood(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8291 appendix A, decrypted by this double's own code.
    #[test]
    fn the_double_decrypts_the_rfc_8291_test_vector() {
        let b = |s: &str| B64.decode(s).unwrap();
        let keys = DeviceKeys::from_raw(
            &b("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"),
            b("BTBZMqHH6r4Tts7J_aSIgg").try_into().unwrap(),
        );
        assert_eq!(
            keys.p256dh(),
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        );
        let body = b(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        );
        assert_eq!(
            keys.decrypt(&body).unwrap(),
            b"When I grow up, I want to be a watermelon"
        );
    }
}
