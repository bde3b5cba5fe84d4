//! Small file helpers: private files created 0600, atomic replacement, PEM sections.

use std::fs;
use std::io::Write;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::error::PkiError;

/// Largest PEM/JSON file this crate reads (certificates, keys, CRLs, revoked.json).
pub(crate) const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Reads a whole file, refusing anything larger than [`FILE_BYTES_MAX`].
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    let meta = fs::metadata(path).map_err(|e| PkiError::io("read", path, e))?;
    if meta.len() > FILE_BYTES_MAX {
        return Err(PkiError::BadPem {
            path: path.to_path_buf(),
            reason: format!("file is larger than {FILE_BYTES_MAX} bytes"),
        });
    }
    fs::read(path).map_err(|e| PkiError::io("read", path, e))
}

/// Creates a new file with the given mode (unix); fails with `pki.exists` if it exists.
///
/// The mode is applied at creation, so a private file is never readable by others, even briefly.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    set_mode(&mut options, mode);
    let mut file = options
        .open(path)
        .map_err(|e| PkiError::io("create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| PkiError::io("write", path, e))
}

/// Replaces a file atomically: writes `<path>.tmp`, syncs it, renames it over `path`.
pub(crate) fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    set_mode(&mut options, mode);
    let mut file = options
        .open(&tmp)
        .map_err(|e| PkiError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| PkiError::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| PkiError::io("replace", path, e))
}

#[cfg(unix)]
fn set_mode(options: &mut fs::OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_options: &mut fs::OpenOptions, _mode: u32) {}

/// Creates a directory (and parents); on unix a newly created leaf directory gets `mode`.
pub(crate) fn create_dir(path: &Path, mode: u32) -> Result<(), PkiError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
        .create(path)
        .map_err(|e| PkiError::io("create directory", path, e))
}

/// Reads the first certificate of a PEM file as DER.
pub(crate) fn read_cert_pem(path: &Path) -> Result<Vec<u8>, PkiError> {
    let bytes = read(path)?;
    let cert = CertificateDer::from_pem_slice(&bytes).map_err(|e| PkiError::BadPem {
        path: path.to_path_buf(),
        reason: format!("no CERTIFICATE section ({e})"),
    })?;
    Ok(cert.to_vec())
}

/// Reads a PKCS#8 private key ("PRIVATE KEY" section) from a PEM file as DER.
pub(crate) fn read_key_pem(path: &Path) -> Result<Vec<u8>, PkiError> {
    let bytes = read(path)?;
    let key = PrivatePkcs8KeyDer::from_pem_slice(&bytes).map_err(|e| PkiError::BadPem {
        path: path.to_path_buf(),
        reason: format!("no PKCS#8 PRIVATE KEY section ({e})"),
    })?;
    Ok(key.secret_pkcs8_der().to_vec())
}

/// Unix permission bits of a file, or `None` where the platform has none.
pub(crate) fn mode_of(path: &Path) -> Result<Option<u32>, PkiError> {
    let meta = fs::metadata(path).map_err(|e| PkiError::io("read", path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(Some(meta.permissions().mode() & 0o777))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(None)
    }
}
