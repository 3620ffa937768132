use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use notify::{EventKind, RecursiveMode, Watcher};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use super::CertError;

/// Serves the certificate pair found in two PEM files and replaces it when the files change, so that
/// a rotated Secret (kubelet swaps a `..data` symlink) is picked up by new connections without a restart.
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
    generation: watch::Sender<u64>,
}

struct Loaded {
    certified: Arc<CertifiedKey>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertReloader")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("generation", &*self.generation.borrow())
            .finish_non_exhaustive()
    }
}

impl CertReloader {
    /// Loads the pair once; a missing or broken pair at start-up is an error (nothing to fall back to).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = read_pair(cert_path, key_path, &provider)?;
        Ok(Arc::new(CertReloader {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(loaded),
            generation: watch::Sender::new(0),
        }))
    }

    /// Re-reads the files. Returns `Ok(true)` when a different pair is now served, `Ok(false)` when the
    /// files hold what is already served. On error the previous pair stays in service: a rotation is
    /// seen as several file events, and the files can briefly disagree between them.
    pub fn reload(&self) -> Result<bool, CertError> {
        let cert_pem = read(&self.cert_path)?;
        let key_pem = read(&self.key_path)?;
        {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            if current.cert_pem == cert_pem && current.key_pem == key_pem {
                return Ok(false);
            }
        }
        let loaded = parse_pair(
            &self.cert_path,
            &self.key_path,
            cert_pem,
            key_pem,
            &self.provider,
        )?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        self.generation.send_modify(|g| *g += 1);
        Ok(true)
    }

    /// Counts successful reloads; a receiver wakes when a new pair is being served.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn reloads(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Watches the folders holding the two files (not the files: a symlink swap replaces directory
    /// entries, and a watch on the old file would never fire again). Dropping the result stops it.
    pub fn watch(self: &Arc<Self>) -> Result<CertWatch, CertError> {
        let reloader = Arc::clone(self);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
                Ok(_) => match reloader.reload() {
                    Ok(true) => tracing::info!(
                        cert = %reloader.cert_path.display(),
                        "serving certificate reloaded"
                    ),
                    Ok(false) => {}
                    Err(error) => tracing::warn!(
                        %error,
                        "certificate files changed but cannot be loaded yet; still serving the previous pair"
                    ),
                },
                Err(error) => tracing::warn!(%error, "certificate watch reported an error"),
            })
            .map_err(|source| CertError::Watch {
                path: self.cert_path.clone(),
                source,
            })?;
        let mut folders = vec![parent(&self.cert_path), parent(&self.key_path)];
        folders.dedup();
        for folder in folders {
            watcher
                .watch(&folder, RecursiveMode::NonRecursive)
                .map_err(|source| CertError::Watch {
                    path: folder.clone(),
                    source,
                })?;
        }
        Ok(CertWatch { _watcher: watcher })
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        Some(Arc::clone(&current.certified))
    }
}

/// Keeps the file watch alive.
pub struct CertWatch {
    _watcher: notify::RecommendedWatcher,
}

/// A rustls server configuration that asks `reloader` for the certificate on every handshake and
/// offers HTTP/2 and HTTP/1.1 (the API server's webhook client uses HTTP/2 when offered).
pub fn server_config(reloader: Arc<CertReloader>) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&reloader.provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(reloader);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Loaded, CertError> {
    parse_pair(
        cert_path,
        key_path,
        read(cert_path)?,
        read(key_path)?,
        provider,
    )
}

fn parse_pair(
    cert_path: &Path,
    key_path: &Path,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    provider: &CryptoProvider,
) -> Result<Loaded, CertError> {
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCertificate {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| CertError::BadKey {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|e| CertError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(Loaded {
        certified: Arc::new(certified),
        cert_pem,
        key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhook_manifest::tls::generate_tls;

    fn write_pair(dir: &Path, tls: &webhook_manifest::tls::GeneratedTls) -> (PathBuf, PathBuf) {
        let cert = dir.join("tls.crt");
        let key = dir.join("tls.key");
        std::fs::write(&cert, &tls.cert_pem).unwrap();
        std::fs::write(&key, &tls.key_pem).unwrap();
        (cert, key)
    }

    #[test]
    fn a_key_that_does_not_match_is_refused_and_the_old_pair_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate_tls(&["a.svc".to_owned()]).unwrap();
        let (cert, key) = write_pair(dir.path(), &first);
        let reloader = CertReloader::load(&cert, &key).unwrap();

        let second = generate_tls(&["a.svc".to_owned()]).unwrap();
        std::fs::write(&cert, &second.cert_pem).unwrap();
        let err = reloader.reload().unwrap_err();
        assert!(matches!(err, CertError::Mismatch { .. }), "{err}");
        assert_eq!(reloader.reloads(), 0);

        std::fs::write(&key, &second.key_pem).unwrap();
        assert!(reloader.reload().unwrap());
        assert!(
            !reloader.reload().unwrap(),
            "unchanged files are not a reload"
        );
        assert_eq!(reloader.reloads(), 1);
    }

    #[test]
    fn start_up_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let err = CertReloader::load(&cert, &key).unwrap_err();
        assert!(matches!(err, CertError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("tls.crt"));

        let missing = CertReloader::load(&dir.path().join("absent.crt"), &key).unwrap_err();
        assert!(missing.to_string().contains("absent.crt"), "{missing}");
    }
}
