//! A Postgres cluster of the test's own (dev/lib/postgres.sh), so a test can stop,
//! crash and restart the real database without disturbing the other tests. Durable like
//! production (`fsync`, `synchronous_commit` on): an acknowledged commit survives a crash.
#![allow(dead_code)]

use super::stack::Stack;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::Command;

pub struct PrivatePg {
    state: PathBuf,
    pub port: u16,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl PrivatePg {
    /// initdb, start, roles and database, durability on, migrations applied.
    pub async fn start() -> PrivatePg {
        // Under /tmp: the postgres OS user must reach it (as root, /root is 0700).
        let state = PathBuf::from(format!(
            "/tmp/hspg-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&state).expect("state dir");
        let pg = PrivatePg {
            state,
            port: free_port(),
        };
        Stack::helper(
            "postgres.sh",
            "pg_start",
            &[pg.state(), &pg.port.to_string()],
        )
        .await;
        for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
            pg.psql(&format!("alter system set {setting} = on")).await;
        }
        pg.pg_ctl(&["-m", "fast", "-w", "-t", "30", "restart"])
            .await;
        server::startup::migrate(&pg.owner_url())
            .await
            .expect("migrations");
        pg
    }

    fn state(&self) -> &str {
        self.state.to_str().expect("utf-8 path")
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn owner_url(&self) -> String {
        format!(
            "postgres://portal_owner:portal_owner@127.0.0.1:{}/portal",
            self.port
        )
    }

    /// The application role's URL, at `addr` (the database itself, or a fault injector
    /// in front of it).
    pub fn app_url_at(&self, addr: std::net::SocketAddr) -> String {
        format!("postgres://portal_app:portal_app@{addr}/portal")
    }

    /// SQL as the cluster's superuser.
    pub async fn psql(&self, sql: &str) -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"set -euo pipefail; source "$1"; pg_psql "$2" -d portal -At -c "$3""#)
            .arg("bash")
            .arg(Stack::lib("postgres.sh"))
            .arg(self.state())
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    async fn pg_ctl(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                r#"set -euo pipefail; source "$1"; shift; d="$1"; shift
                   _pg_as "$(pg_bindir)/pg_ctl" -D "$d/pg/data" -l "$d/logs/postgres.log" "$@""#,
            )
            .arg("bash")
            .arg(Stack::lib("postgres.sh"))
            .arg(self.state())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Turns TLS on with a certificate for 127.0.0.1 signed by a throwaway CA, and
    /// restarts; answers the CA's certificate (PEM), to trust it as `sslrootcert`.
    pub async fn enable_tls(&self) -> PathBuf {
        let data = self.state.join("pg/data");
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                r#"set -euo pipefail; s="$1"; d="$2"; cd "$s"
                   openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=test CA" \
                     -keyout ca.key -out ca.crt 2>/dev/null
                   openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
                     -keyout "$d/server.key" -out server.csr 2>/dev/null
                   printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' > ext
                   openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                     -days 2 -extfile ext -out "$d/server.crt" 2>/dev/null
                   chown postgres "$d/server.key" "$d/server.crt"; chmod 600 "$d/server.key""#,
            )
            .arg("bash")
            .arg(&self.state)
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("openssl");
        assert!(
            out.status.success(),
            "certificate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.psql("alter system set ssl = on").await;
        self.pg_ctl(&["-m", "fast", "-w", "-t", "30", "restart"])
            .await;
        self.state.join("ca.crt")
    }

    /// A crash: every process killed at once, no checkpoint (`pg_ctl stop -m immediate`).
    pub async fn crash(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "-t", "30", "stop"])
            .await;
    }

    /// Starts the stopped cluster again (crash recovery replays the WAL).
    pub async fn start_again(&self) {
        self.pg_ctl(&["-w", "-t", "60", "start"]).await;
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg("-c")
            .arg(r#"source "$1"; pg_stop "$2""#)
            .arg("bash")
            .arg(Stack::lib("postgres.sh"))
            .arg(self.state())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
