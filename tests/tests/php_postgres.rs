//! Managed pools against a real PostgreSQL: a private cluster (initdb in a temporary
//! directory as the unprivileged `postgres` user, a Unix socket and a loopback port,
//! `scram-sha-256`), one role and database per app, each password only in that app's
//! Bulkhead secret. alpha reaches it through the Unix socket in `php.connect`, beta
//! through TCP; each reads and writes its own table through pdo_pgsql, cannot log in
//! as the other, and gamma, whose `connect` is empty, cannot reach PostgreSQL at all.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_tests::bulkhead::Bulkhead;
use bulkhead_tests::http::{Client, Proto, query_encode as encode};
use bulkhead_tests::net::free_port;

const APPS: [&str; 3] = ["alpha", "beta", "gamma"];

/// The probe each app runs: its own table, then the other's role, then any connection.
const PROBE: &str = r#"<?php
header('Content-Type: text/plain');
function try_login($dsn, $user, $password) {
    try {
        $db = new PDO($dsn, $user, $password, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_TIMEOUT => 2]);
        return [$db, 'ok'];
    } catch (Throwable $e) {
        return [null, str_replace("\n", ' ', $e->getMessage())];
    }
}
$me = $_GET['me']; $other = $_GET['other'];
$dsn = $_GET['dsn'] . ";dbname=$me";
[$db, $why] = try_login($dsn, $me, $_SERVER['DB_PASSWORD'] ?? '');
if ($db) {
    $db->exec("CREATE TABLE IF NOT EXISTS notes (body text)");
    $db->prepare("INSERT INTO notes VALUES (?)")->execute(["written by $me"]);
    $rows = $db->query("SELECT count(*) FROM notes")->fetchColumn();
    echo "own: ok rows=$rows\n";
} else {
    echo "own: failed: $why\n";
}
[$db2, $why2] = try_login($_GET['dsn'] . ";dbname=$other", $other, $_SERVER['DB_PASSWORD'] ?? '');
echo 'other: ', $db2 ? 'SUCCEEDED' : "failed: $why2", "\n";
foreach (['unix' => $_GET['unix_dsn'], 'tcp' => $_GET['tcp_dsn']] as $kind => $any) {
    [$db3, $why3] = try_login($any . ";dbname=$me", $me, $_SERVER['DB_PASSWORD'] ?? '');
    echo "reach-$kind: ", $db3 ? 'ok' : "failed: $why3", "\n";
}
"#;

fn postgres_bin(name: &str) -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|dirs| {
        dirs.flatten().map(|d| d.path().join("bin").join(name)).find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} not found under /usr/lib/postgresql: apt-get install postgresql php8.2-pgsql"
        )
    })
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("running a PostgreSQL tool");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed: {text}");
    text
}

/// A running private cluster; stopped on drop.
struct Cluster {
    data: PathBuf,
    socket_dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn start(dir: &Path, passwords: &[(&str, String)]) -> Self {
        let (data, socket_dir) = (dir.join("pgdata"), dir.join("pgsock"));
        for d in [dir.to_path_buf(), socket_dir.clone()] {
            std::fs::create_dir_all(&d).expect("mkdir");
            let postgres =
                nix::unistd::User::from_name("postgres").ok().flatten().expect("a postgres user");
            nix::unistd::chown(&d, Some(postgres.uid), Some(postgres.gid)).expect("chown");
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let superuser = dir.join("superuser.pw");
        std::fs::write(&superuser, "super-secret-pw\n").expect("pwfile");
        std::fs::set_permissions(&superuser, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        run(as_postgres(&postgres_bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "--pwfile"])
            .arg(&superuser));
        let port = free_port();
        let options =
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1", socket_dir.display());
        run(as_postgres(&postgres_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-w", "-l"])
            .arg(dir.join("pg.log"))
            .arg("start"));
        let cluster = Self { data, socket_dir, port };
        for (app, password) in passwords {
            cluster.sql(&format!("CREATE ROLE {app} LOGIN PASSWORD '{password}'"));
            cluster.sql(&format!("CREATE DATABASE {app} OWNER {app}"));
            cluster.sql(&format!("REVOKE CONNECT ON DATABASE {app} FROM PUBLIC"));
        }
        cluster
    }

    fn sql(&self, statement: &str) {
        run(Command::new(postgres_bin("psql"))
            .env("PGPASSWORD", "super-secret-pw")
            .args(["-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ]));
    }

    fn socket(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{}", self.port))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&postgres_bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn each_app_reaches_only_its_own_database_and_only_through_connect() {
    let dir = bulkhead_tests::temp_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let passwords: Vec<(&str, String)> =
        APPS.iter().map(|app| (*app, bulkhead_tests::unique_token(&format!("pw-{app}")))).collect();
    let cluster = Cluster::start(&dir.path().join("pg"), &passwords);
    let port = cluster.port;
    let connect = |app: &str| match app {
        "alpha" => format!("connect = [\"unix:{}\"]", cluster.socket().display()),
        "beta" => format!("connect = [\"tcp:127.0.0.1:{port}\"]"),
        _ => "connect = []".to_owned(),
    };
    let mut toml = format!(
        "listen = [\"127.0.0.1:{}\"]\n[sandbox]\nmode = \"root\"\nuid_range = \"64200-64210\"\n",
        free_port()
    );
    for (app, password) in &passwords {
        let root = dir.path().join(app);
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("db.php"), PROBE).expect("probe");
        let secret = dir.path().join(format!("{app}.pw"));
        std::fs::write(&secret, password).expect("secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        toml.push_str(&format!(
            "[[app]]\nname = \"{app}\"\nhosts = [\"{app}.localhost\"]\nroot = {root:?}\nphp = {{ {} }}\n\
             [app.secrets]\nDB_PASSWORD = {{ file = {secret:?} }}\n",
            connect(app)
        ));
    }
    let bulkhead = Bulkhead::start(&toml);
    let client = Client::new(
        bulkhead.addr(),
        Proto::Http1,
        &["alpha.localhost", "beta.localhost", "gamma.localhost"],
    );
    let unix_dsn = format!("pgsql:host={};port={port}", cluster.socket_dir.display());
    let tcp_dsn = format!("pgsql:host=127.0.0.1;port={port}");
    let ask = |me: &str, other: &str, dsn: &str| {
        let path = format!(
            "/db.php?me={me}&other={other}&dsn={}&unix_dsn={}&tcp_dsn={}",
            encode(dsn),
            encode(&unix_dsn),
            encode(&tcp_dsn)
        );
        let text = client.get(&format!("{me}.localhost"), &path).text();
        println!("{me}:\n{text}");
        text
    };
    let alpha = ask("alpha", "beta", &unix_dsn);
    assert!(alpha.contains("own: ok rows=1"), "alpha uses its database: {alpha}");
    assert!(ask("alpha", "beta", &unix_dsn).contains("own: ok rows=2"), "alpha's writes persist");
    assert!(alpha.contains("other: failed"), "alpha cannot log in as beta: {alpha}");
    assert!(alpha.contains("reach-tcp: failed"), "alpha may use only its Unix endpoint: {alpha}");
    let beta = ask("beta", "alpha", &tcp_dsn);
    assert!(beta.contains("own: ok rows=1"), "beta uses its database over TCP: {beta}");
    assert!(beta.contains("other: failed"), "beta cannot log in as alpha: {beta}");
    assert!(
        beta.contains("reach-unix: failed"),
        "beta sees no Unix socket it did not list: {beta}"
    );
    let gamma = ask("gamma", "alpha", &tcp_dsn);
    for line in ["own: failed", "reach-unix: failed", "reach-tcp: failed"] {
        assert!(gamma.contains(line), "gamma, with connect empty, reaches nothing: {gamma}");
    }
    let log = bulkhead.log();
    for (_, password) in &passwords {
        assert!(!log.contains(password.as_str()), "a password reached the broker's log");
    }
}
