//! HTTPS with `--tls-cert`/`--tls-key`: a self-signed certificate made with
//! the `openssl` CLI (the tests print SKIPPED and pass when it is missing),
//! a real HTTPS request and a real wss:// SockJS round trip through a 0MQ
//! echo backend, both over a rustls client (tokio-rustls, already built for
//! the server side) that trusts exactly that certificate; and a missing
//! certificate file as a one-line exit-2 start-up error.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use common::backend::Backend;
use common::{Proxy, bounded, free_port};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types};
use tokio_tungstenite::tungstenite::Message;

/// A fresh directory with `cert.pem` and `key.pem` for localhost, removed on drop.
struct Certificate {
    dir: PathBuf,
}

impl Certificate {
    /// Makes the certificate, or `None` when `openssl` cannot be run.
    fn make() -> Option<Certificate> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sockjsproxy-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = Certificate { dir };
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(cert.key())
            .arg("-out")
            .arg(cert.cert())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(cert),
            Ok(s) => panic!("openssl failed: {s}"),
            Err(_) => None,
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// A rustls client that trusts this certificate alone.
    fn connector(&self) -> TlsConnector {
        let pem = std::fs::read(self.cert()).unwrap();
        let der = pki_types::CertificateDer::from_pem_slice(&pem).expect("PEM certificate");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("trust the test certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    async fn connect(&self, port: u16) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.connector().connect(name, tcp);
        tokio::time::timeout(common::IO_LIMIT, tls)
            .await
            .expect("no TLS handshake")
            .expect("TLS handshake")
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

use pki_types::pem::PemObject;

async fn tls_proxy(cert: &Certificate) -> Proxy {
    let (c, k) = (cert.cert(), cert.key());
    let args = move || {
        vec![
            "--tls-cert".to_string(),
            c.to_str().unwrap().to_string(),
            "--tls-key".to_string(),
            k.to_str().unwrap().to_string(),
        ]
    };
    Proxy::with_args("", args, "info").await
}

#[tokio::test]
async fn https_request_is_served_with_the_given_certificate() {
    bounded(async {
        let Some(cert) = Certificate::make() else {
            println!("SKIPPED: openssl not found");
            return;
        };
        let proxy = tls_proxy(&cert).await;
        proxy.wait_for_log("SockJS listening on https://").await;
        let mut tls = cert.connect(proxy.http_port).await;
        tls.write_all(b"GET /echo/info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        let read = tls.read_to_end(&mut response);
        // A peer closing without close_notify is fine for this check.
        let _ = tokio::time::timeout(common::IO_LIMIT, read).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("\"websocket\":true"), "{text}");

        // Plain HTTP on the TLS port gets no HTTP answer.
        let mut plain = TcpStream::connect(("127.0.0.1", proxy.http_port))
            .await
            .unwrap();
        plain
            .write_all(b"GET /echo/info HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 64];
        let n = tokio::time::timeout(common::IO_LIMIT, plain.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert!(!buf[..n].starts_with(b"HTTP/1.1 200"));
    })
    .await
}

/// The next text frame of a websocket over any stream.
async fn text_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(common::IO_LIMIT, ws.next()).await;
        match message.expect("no frame").expect("ended").expect("read") {
            Message::Text(t) => return t,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn wss_sockjs_session_round_trips_through_the_backend() {
    bounded(async {
        let Some(cert) = Certificate::make() else {
            println!("SKIPPED: openssl not found");
            return;
        };
        let proxy = tls_proxy(&cert).await;
        let mut backend = Backend::echo(&proxy);
        let tls = cert.connect(proxy.http_port).await;
        let url = format!(
            "wss://localhost:{}{}",
            proxy.http_port,
            Proxy::session_path("tls", "websocket")
        );
        let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tls)
            .await
            .expect("wss handshake");
        assert_eq!(text_frame(&mut ws).await, "o");
        let id = backend.expect_connect().await;
        ws.send(Message::Text(r#"["over tls \u00e9"]"#.into()))
            .await
            .unwrap();
        assert_eq!(backend.expect_message(&id).await, "over tls é");
        let frame = text_frame(&mut ws).await;
        assert_eq!(frame, "a[\"over tls é\"]");
        ws.close(None).await.unwrap();
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn missing_certificate_file_is_a_one_line_exit_2_error() {
    bounded(async {
        let missing = std::env::temp_dir().join("sockjsproxy-no-such-cert.pem");
        let port = free_port().to_string();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
            .args(["--http-address", "127.0.0.1", "--http-port", &port])
            .args(["--in-port", &free_port().to_string()])
            .args(["--out-port", &free_port().to_string()])
            .arg("--tls-cert")
            .arg(&missing)
            .arg("--tls-key")
            .arg(&missing)
            .env("RUST_LOG", "warn")
            .output();
        let output = tokio::time::timeout(common::IO_LIMIT, output)
            .await
            .expect("no exit")
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].starts_with("sockjsproxy: "), "{stderr}");
        assert!(
            lines[0].contains("sockjsproxy-no-such-cert.pem"),
            "{stderr}"
        );
    })
    .await
}
