//! TLS for the QUIC transport: identity is the validator key itself. Each
//! node presents a self-signed certificate over its ed25519 key, and both
//! sides accept a certificate only if its key is a member of the roster
//! (admitted in the current epoch, not banned).

use super::gate::{Gate, Members};
use super::{ALPN, QuicError, QuicStats, SERVER_NAME};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The validator keys this node accepts, and how certificates map to them.
#[derive(Debug)]
struct KeyVerifier {
    keys: Members,
    /// When dialing: the only key the server may present.
    expected: Option<VerifyingKey>,
    algorithms: WebPkiSupportedAlgorithms,
    refused: Arc<QuicStats>,
    gate: Arc<Gate>,
}

/// QUIC is TLS 1.3 only.
fn refuse_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls12NotOffered,
    ))
}

impl KeyVerifier {
    /// Proves the peer holds the secret of the key in its certificate.
    fn handshake_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn check(&self, certificate: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let refuse = |why: &str| {
            self.refused
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            Err(rustls::Error::General(why.to_string()))
        };
        let Ok(key) = certificate_key(certificate) else {
            return refuse("certificate does not carry an ed25519 key");
        };
        if let Some(expected) = self.expected
            && key != expected
        {
            return refuse("peer presented another validator's key");
        }
        let Some(index) = self.keys.index_of(&key) else {
            return refuse("key is not in the validator set");
        };
        if self.gate.banned_until(index).is_some() {
            self.refused
                .connections_closed_for_ban
                .fetch_add(1, Ordering::Relaxed);
            return refuse("peer is banned");
        }
        if !self.gate.is_admitted(index) {
            return refuse("key is not in the current epoch's validator set");
        }
        Ok(())
    }
}

impl ServerCertVerifier for KeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for KeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The ed25519 key a certificate carries.
pub fn certificate_key(certificate: &[u8]) -> Result<VerifyingKey, QuicError> {
    /// id-Ed25519 (RFC 8410).
    const ED25519_OID: &str = "1.3.101.112";
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| QuicError::Certificate(e.to_string()))?;
    let spki = parsed.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
        return Err(QuicError::Certificate("not an ed25519 key".into()));
    }
    let bytes: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| QuicError::Certificate("ed25519 key is not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| QuicError::Certificate(e.to_string()))
}

/// This process's certificate serial: the wall clock at its first use, in
/// ns, and the process id. Every run of a validator presents another
/// certificate, which is how its peers tell that it restarted (see
/// `write_frames`); the key, which is what identifies the validator, is
/// the same.
fn incarnation_serial() -> [u8; 12] {
    static SERIAL: std::sync::OnceLock<[u8; 12]> = std::sync::OnceLock::new();
    *SERIAL.get_or_init(|| {
        // A real process's identity, not time a simulation runs on.
        #[allow(clippy::disallowed_methods)]
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut serial = [0u8; 12];
        serial[..8].copy_from_slice(&nanos.to_be_bytes());
        serial[8..].copy_from_slice(&std::process::id().to_be_bytes());
        // DER serials are positive: keep the top bit clear.
        serial[0] &= 0x7f;
        serial
    })
}

/// A self-signed certificate over `secret`'s public key, and the key in the
/// form rustls takes.
pub fn self_signed(
    secret: &SigningKey,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), QuicError> {
    let certificate_error = |e: &dyn std::fmt::Display| QuicError::Certificate(e.to_string());
    let pkcs8 = secret
        .to_pkcs8_der()
        .map_err(|e| certificate_error(&e))?
        .as_bytes()
        .to_vec();
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8);
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
        .map_err(|e| certificate_error(&e))?;
    let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
        .map_err(|e| certificate_error(&e))?;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&incarnation_serial()));
    let certificate = params
        .self_signed(&key_pair)
        .map_err(|e| certificate_error(&e))?;
    Ok((certificate.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(super) fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    // A dead peer is noticed within seconds, and a live idle link is kept
    // open by keep-alives, so reconnecting is the exception.
    config.keep_alive_interval(Some(Duration::from_millis(500)));
    config.max_idle_timeout(Some(
        Duration::from_secs(5)
            .try_into()
            .expect("5 s is a valid idle timeout"),
    ));
    // One stream per direction is all the transport uses.
    config.max_concurrent_uni_streams(8u32.into());
    config.max_concurrent_bidi_streams(0u32.into());
    Arc::new(config)
}

/// Builds the endpoint's server side and the client config for dialing
/// `expected` (any validator if `None`).
pub(super) struct Tls {
    pub(super) certificate: CertificateDer<'static>,
    pub(super) key: PrivateKeyDer<'static>,
    pub(super) keys: Members,
    pub(super) stats: Arc<QuicStats>,
    pub(super) gate: Arc<Gate>,
}

impl Tls {
    fn verifier(&self, expected: Option<VerifyingKey>) -> Arc<KeyVerifier> {
        Arc::new(KeyVerifier {
            keys: self.keys.clone(),
            expected,
            algorithms: provider().signature_verification_algorithms,
            refused: self.stats.clone(),
            gate: self.gate.clone(),
        })
    }

    pub(super) fn server(&self) -> Result<quinn::ServerConfig, QuicError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(self.verifier(None))
            .with_single_cert(vec![self.certificate.clone()], self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = QuicServerConfig::try_from(tls)
            .map_err(|e| QuicError::Certificate(format!("quic server config: {e}")))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport_config());
        Ok(config)
    }

    /// Dials `expected`, or any validator if `None` (a bootstrap address
    /// whose key is not known yet).
    pub(super) fn client(
        &self,
        expected: Option<VerifyingKey>,
    ) -> Result<quinn::ClientConfig, QuicError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier(expected))
            .with_client_auth_cert(vec![self.certificate.clone()], self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = QuicClientConfig::try_from(tls)
            .map_err(|e| QuicError::Certificate(format!("quic client config: {e}")))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport_config());
        Ok(config)
    }
}
