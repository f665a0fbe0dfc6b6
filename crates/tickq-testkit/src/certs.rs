//! A private certificate authority for TLS tests, made with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Certificates for a TLS test: a private CA, a server certificate it signed for `127.0.0.1`
/// and `localhost`, a client certificate it signed, and a second CA that signed nothing the
/// server uses (to test that an untrusted server is refused).
///
/// All are PEM files (keys in PKCS#8) in a directory that lives as long as this value; EC
/// P-256 keys, so generating a set takes milliseconds.
///
/// ```
/// let certs = tickq_testkit::TestCerts::generate();
/// assert!(certs.ca().exists() && certs.client_key().exists());
/// ```
#[derive(Debug)]
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// Generates a new CA and the certificates it signs.
    ///
    /// # Panics
    ///
    /// If `openssl` is not on `PATH` (install the Debian package `openssl`) or fails.
    pub fn generate() -> TestCerts {
        let dir = tempfile::Builder::new()
            .prefix("tickq-certs-")
            .tempdir()
            .expect("creating a temporary directory for certificates");
        let certs = TestCerts { dir };
        certs.make_ca("ca", "tickq test CA");
        certs.make_ca("other-ca", "an unrelated CA");
        certs.make_leaf(
            "server",
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        certs.make_leaf("client", "tickq", "extendedKeyUsage=clientAuth\n");
        certs
    }

    /// The CA certificate that signed the server's and the client's certificates.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// A CA certificate that signed neither.
    pub fn other_ca(&self) -> PathBuf {
        self.path("other-ca.crt")
    }

    /// The server's certificate (for `127.0.0.1` and `localhost`).
    pub fn server_cert(&self) -> PathBuf {
        self.path("server.crt")
    }

    /// The server's private key.
    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    /// A client certificate signed by [`ca`](Self::ca).
    pub fn client_cert(&self) -> PathBuf {
        self.path("client.crt")
    }

    /// The client certificate's private key.
    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn make_ca(&self, name: &str, subject: &str) {
        let key = self.path(&format!("{name}.key"));
        let cert = self.path(&format!("{name}.crt"));
        openssl(&[
            "req".as_ref(),
            "-x509".as_ref(),
            "-newkey".as_ref(),
            "ec".as_ref(),
            "-pkeyopt".as_ref(),
            "ec_paramgen_curve:prime256v1".as_ref(),
            "-nodes".as_ref(),
            "-days".as_ref(),
            "2".as_ref(),
            "-subj".as_ref(),
            format!("/CN={subject}").as_ref(),
            "-addext".as_ref(),
            "basicConstraints=critical,CA:TRUE".as_ref(),
            "-addext".as_ref(),
            "keyUsage=critical,keyCertSign,cRLSign".as_ref(),
            "-keyout".as_ref(),
            key.as_os_str(),
            "-out".as_ref(),
            cert.as_os_str(),
        ]);
    }

    fn make_leaf(&self, name: &str, subject: &str, extensions: &str) {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let cert = self.path(&format!("{name}.crt"));
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{extensions}"),
        )
        .expect("writing a certificate extensions file");
        openssl(&[
            "req".as_ref(),
            "-newkey".as_ref(),
            "ec".as_ref(),
            "-pkeyopt".as_ref(),
            "ec_paramgen_curve:prime256v1".as_ref(),
            "-nodes".as_ref(),
            "-subj".as_ref(),
            format!("/CN={subject}").as_ref(),
            "-keyout".as_ref(),
            key.as_os_str(),
            "-out".as_ref(),
            csr.as_os_str(),
        ]);
        openssl(&[
            "x509".as_ref(),
            "-req".as_ref(),
            "-days".as_ref(),
            "2".as_ref(),
            "-in".as_ref(),
            csr.as_os_str(),
            "-CA".as_ref(),
            self.ca().as_os_str(),
            "-CAkey".as_ref(),
            self.path("ca.key").as_os_str(),
            "-CAcreateserial".as_ref(),
            "-extfile".as_ref(),
            ext.as_os_str(),
            "-out".as_ref(),
            cert.as_os_str(),
        ]);
    }
}

fn openssl(args: &[&std::ffi::OsStr]) {
    let output = match Command::new("openssl").args(args).output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "openssl not found on PATH; install it with `apt-get install openssl` (./dev test \
             does)"
        ),
        Err(err) => panic!("running openssl: {err}"),
    };
    assert!(
        output.status.success(),
        "openssl {:?} failed ({}):\n{}",
        args,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
