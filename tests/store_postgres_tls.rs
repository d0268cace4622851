//! TLS to PostgreSQL with libpq's `sslmode` meanings, against a private cluster
//! (tests/pg_common) restarted to listen on 127.0.0.1 with TLS, whose pg_hba.conf
//! refuses connections without TLS. Certificates are made with the `openssl`
//! command (a test CA, a server certificate for the name `localhost` only).

mod pg_common;

use pg_common::{cluster, tracker_dir};
use roundup_xmlrpc::admin::init::init;
use roundup_xmlrpc::tracker::{OpenError, Tracker};
use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (needed by this test)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for DNS:localhost signed by it, and an unrelated CA.
fn certificates() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rxs-pgtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for ca in ["ca", "other-ca"] {
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=rxs test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ],
        );
    }
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost\n").expect("write");
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "server.crt",
        ],
    );
    // The server reads its key as the postgres user and wants it private.
    let chown = Command::new("sh")
        .arg("-c")
        .arg(
            "if [ \"$(id -u)\" = 0 ]; then chown postgres server.key server.crt; fi; \
              chmod 0600 server.key; chmod 0755 .",
        )
        .current_dir(&dir)
        .status()
        .expect("chown");
    assert!(chown.success());
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn set(dir: &Path, pairs: &[(&str, &str)]) {
    let cfg = dir.join("config.ini");
    let mut text = std::fs::read_to_string(&cfg).expect("read config.ini");
    for (k, v) in pairs {
        let line = format!("{k} = ");
        let mut out = String::new();
        let mut done = false;
        for l in text.lines() {
            if !done && l.starts_with(&line) {
                out.push_str(&format!("{k} = {v}\n"));
                done = true;
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        if !done {
            out = out.replacen("[rdbms]\n", &format!("[rdbms]\n{k} = {v}\n"), 1);
        }
        text = out;
    }
    std::fs::write(&cfg, text).expect("write config.ini");
}

#[test]
fn tls_modes_follow_libpq() {
    let c = cluster();
    let certs = certificates();
    let port = free_port();
    {
        let mut hba = std::fs::read_to_string(c.dir.join("data/pg_hba.conf")).expect("hba");
        hba.push_str(
            "hostssl all rxs 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\n",
        );
        std::fs::write(c.dir.join("data/pg_hba.conf"), hba).expect("hba");
    }
    c.stop();
    c.start_with(&format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        certs.join("server.crt").display(),
        certs.join("server.key").display()
    ));
    let ca = certs.join("ca.crt").display().to_string();
    // init over TLS, verifying the chain and the name.
    let dir = tracker_dir("tls");
    init(
        &dir,
        "sekrit",
        None,
        &[
            "rdbms.backend=postgresql".into(),
            "rdbms.host=localhost".into(),
            format!("rdbms.port={port}"),
            "rdbms.user=rxs".into(),
            "rdbms.password=rxs".into(),
            "rdbms.name=rxs_tls".into(),
            "rdbms.sslmode=verify-full".into(),
            format!("rdbms.sslrootcert={ca}"),
            "password_pbkdf2_default_rounds=1000".into(),
        ],
    )
    .expect("init over TLS");
    let opens = |pairs: &[(&str, &str)]| {
        set(&dir, pairs);
        Tracker::open(&dir, "demo")
    };
    opens(&[]).expect("verify-full to localhost");
    // The server refuses connections without TLS.
    match opens(&[("sslmode", "disable")]) {
        Err(OpenError::Unreachable(m)) => assert!(m.contains("pg_hba.conf"), "{m}"),
        other => panic!("expected a refusal without TLS: {other:?}"),
    }
    // require: encrypted, certificate not checked (no root certificate given).
    opens(&[
        ("sslmode", "require"),
        ("sslrootcert", "/nonexistent/root.crt"),
    ])
    .expect("require without verification");
    // The certificate is for "localhost": verify-full to 127.0.0.1 fails, while
    // verify-ca checks the chain only.
    match opens(&[
        ("sslmode", "verify-full"),
        ("sslrootcert", &ca),
        ("host", "127.0.0.1"),
    ]) {
        Err(OpenError::Unreachable(m)) => assert!(m.contains("cannot connect"), "{m}"),
        other => panic!("expected a name mismatch: {other:?}"),
    }
    opens(&[("sslmode", "verify-ca")]).expect("verify-ca to 127.0.0.1");
    // A certificate from another CA is refused by verify-ca and verify-full.
    let other = certs.join("other-ca.crt").display().to_string();
    for mode in ["verify-ca", "verify-full"] {
        match opens(&[
            ("sslmode", mode),
            ("sslrootcert", &other),
            ("host", "localhost"),
        ]) {
            Err(OpenError::Unreachable(_)) => {}
            other => panic!("{mode} accepted a certificate of another CA: {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&certs);
}
