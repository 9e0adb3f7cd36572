//! TLS between real processes, with certificates generated at run time: a job over mutual TLS
//! with tokens gives exact results (driver, CLI, dashboard), and every way of getting TLS
//! wrong is an error, never a plaintext connection.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use quiver::prelude::*;
use quiver::{ClientOptions, Error};
use quiver_net::rustls;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{ProcessCluster, binary};
use crate::corpus::{reference_counts, result_counts, write_corpus};
use crate::wordcount::word_count;

/// PEM files of a test PKI: a CA, a certificate for 127.0.0.1 (servers and their client
/// side), and a client certificate.
pub struct Pki {
    pub ca: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn write(dir: &Path, name: &str, pem: String) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

pub fn make_pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |sans: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (node_cert, node_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], "node");
    let (client_cert, client_key) = leaf(vec![], "driver");
    Pki {
        ca: write(dir, &format!("{name}-ca.pem"), ca.pem()),
        node_cert: write(dir, &format!("{name}-node.pem"), node_cert),
        node_key: write(dir, &format!("{name}-node.key"), node_key),
        client_cert: write(dir, &format!("{name}-client.pem"), client_cert),
        client_key: write(dir, &format!("{name}-client.key"), client_key),
    }
}

fn arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A GET over TLS (verifying the server against `ca`), with an `authorization` header.
async fn https_get(base: &str, path: &str, ca: &Path, authorization: &str) -> String {
    let host = base.trim_start_matches("https://").to_string();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_over_mutual_tls_and_tls_mistakes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 600, 71);
    let pki = make_pki(dir.path(), "quiver");
    let rogue = make_pki(dir.path(), "rogue");
    let token = quiver_net::Token::random().expose().to_string();
    let token_file = write(dir.path(), "token", token.clone());
    let tls_args = [
        "--tls-cert".to_string(),
        arg(&pki.node_cert),
        "--tls-key".into(),
        arg(&pki.node_key),
        "--tls-ca".into(),
        arg(&pki.ca),
        "--tls-client-ca".into(),
        arg(&pki.ca),
        "--token-file".into(),
        arg(&token_file),
    ];
    let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    let options = ClientOptions::new()
        .token(token.clone())
        .tls_ca(&pki.ca)
        .tls_identity(&pki.client_cert, &pki.client_key);
    let cluster = ProcessCluster::start_secured(2, &tls_args, &tls_args, options.clone()).await;
    assert!(cluster.url.starts_with("https://"), "{}", cluster.url);

    // The job: driver to coordinator, worker to worker (shuffle), driver to worker (results),
    // every hop over mutual TLS.
    let client = cluster.client().await;
    let workers = client.list_workers().await.unwrap();
    assert!(
        workers.iter().all(|w| w.address.starts_with("https://")),
        "{workers:?}"
    );
    let got = result_counts(&word_count(&files).collect(&client).await.unwrap());
    assert_eq!(got, reference_counts(&files));

    // The CLI with the same settings from the environment.
    let out = Command::new(binary("quiver"))
        .args(["--coordinator", &cluster.url, "--json", "workers"])
        .env("QUIVER_TOKEN", &token)
        .env("QUIVER_TLS_CA", &pki.ca)
        .env("QUIVER_TLS_CERT", &pki.client_cert)
        .env("QUIVER_TLS_KEY", &pki.client_key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The dashboard speaks HTTPS and takes the token.
    let page = https_get(
        &cluster.dashboard,
        "/metrics",
        &pki.ca,
        &format!("Bearer {token}"),
    )
    .await;
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("quiver_workers{state=\"alive\"} 2"),
        "{page}"
    );

    // Mistakes, each an error:
    let url = cluster.url.clone();
    let connect = |options: ClientOptions, url: String| async move {
        match Client::connect_with(&url, options).await {
            Ok(c) => c.list_workers().await.map(|_| ()),
            Err(e) => Err(e),
        }
    };
    // an https:// URL without a CA: refused before any connection, never plaintext;
    let err = connect(ClientOptions::new().token(token.clone()), url.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("--tls-ca")),
        "{err}"
    );
    // plaintext http:// to a TLS server;
    let plain = url.replace("https://", "http://");
    assert!(
        connect(ClientOptions::new().token(token.clone()), plain)
            .await
            .is_err()
    );
    // http:// while a CA is given;
    let err = connect(options.clone(), url.replace("https://", "http://"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("plaintext"), "{err}");
    // no client certificate where the cluster requires one;
    let no_identity = ClientOptions::new().token(token.clone()).tls_ca(&pki.ca);
    assert!(connect(no_identity, url.clone()).await.is_err());
    // a client certificate from another CA;
    let rogue_identity = ClientOptions::new()
        .token(token.clone())
        .tls_ca(&pki.ca)
        .tls_identity(&rogue.client_cert, &rogue.client_key);
    assert!(connect(rogue_identity, url.clone()).await.is_err());
    // a server certificate the client's CA did not sign;
    let wrong_ca = ClientOptions::new()
        .token(token.clone())
        .tls_ca(&rogue.ca)
        .tls_identity(&pki.client_cert, &pki.client_key);
    assert!(connect(wrong_ca, url.clone()).await.is_err());
    // and the right TLS without the token.
    let no_token = ClientOptions::new()
        .tls_ca(&pki.ca)
        .tls_identity(&pki.client_cert, &pki.client_key);
    let err = connect(no_token, url.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("requires a client token"), "{err}");
}

/// Workers that advertise a host name (`--advertise-addr localhost`) rather than their bound IP
/// are dialed by that name, and TLS verifies it as the server name: the certificate names
/// `localhost`, and every hop of the job succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_advertising_a_host_name_are_verified_by_that_name_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 300, 72);
    let pki = make_pki(dir.path(), "named");
    let token = quiver_net::Token::random().expose().to_string();
    let token_file = write(dir.path(), "token", token.clone());
    let tls_args = [
        "--tls-cert".to_string(),
        arg(&pki.node_cert),
        "--tls-key".into(),
        arg(&pki.node_key),
        "--tls-ca".into(),
        arg(&pki.ca),
        "--token-file".into(),
        arg(&token_file),
    ];
    let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    let mut worker_args = tls_args.clone();
    worker_args.extend(["--advertise-addr", "localhost"]);
    let options = ClientOptions::new().token(token).tls_ca(&pki.ca);
    let cluster = ProcessCluster::start_secured(2, &tls_args, &worker_args, options).await;
    let client = cluster.client().await;
    let workers = client.list_workers().await.unwrap();
    assert!(
        workers
            .iter()
            .all(|w| w.address.starts_with("https://localhost:")),
        "{workers:?}"
    );
    let got = result_counts(&word_count(&files).collect(&client).await.unwrap());
    assert_eq!(got, reference_counts(&files));
}
