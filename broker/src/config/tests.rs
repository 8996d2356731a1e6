//! Tests of the whole pipeline: TOML text in, a typed config or every problem out.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::Path;

use privsep::msg::{Backend, ResponseSpec};
use tempfile::TempDir;

use super::*;

/// A temporary tree with a document root, an uploads dir, a secret file and TLS files.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["public", "uploads", "secrets"] {
            fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        fs::write(dir.path().join("secrets/db"), "s3cret\n").expect("write secret");
        fs::write(dir.path().join("cert.pem"), "cert").expect("write cert");
        fs::write(dir.path().join("key.pem"), "key").expect("write key");
        Self { dir }
    }

    /// `text` with every `{dir}` replaced by the fixture's directory.
    fn toml(&self, text: &str) -> String {
        text.replace("{dir}", &self.dir.path().display().to_string())
    }

    /// Parses `text` (after `{dir}` substitution) with the given environment.
    fn parse_env(&self, text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, OsString> =
            env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        parse(&self.toml(text), Path::new("test.toml"), &|name| vars.get(name).cloned())
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        self.parse_env(text, &[])
    }

    /// The problems `text` has, as `path: message` lines.
    fn problems(&self, text: &str) -> Vec<String> {
        let err = self.parse(text).expect_err("config must be refused");
        err.problems().iter().map(ToString::to_string).collect()
    }
}

/// A minimal valid app named `name` answering to `host`.
fn app(name: &str, host: &str) -> String {
    format!(
        "[[app]]\nname = \"{name}\"\nhosts = [\"{host}\"]\nroot = \"{{dir}}/public\"\nfastcgi = \"unix:/run/php/{name}.sock\"\n"
    )
}

const LISTEN: &str = "listen = [\"127.0.0.1:8080\"]\n";

const FULL: &str = r#"
listen = ["127.0.0.1:8080"]
listen_tls = ["[::1]:8443"]
control_socket = "/run/test/bulkhead.sock"
shutdown_timeout = "5s"

[sandbox]
mode = "root"
uid_range = "70000-70099"
allow_weaker = true

[[app]]
name = "blog"
hosts = ["*.Blog.localhost", "blog.localhost"]
root = "{dir}/public/../public"
index = ["index.html"]
front_controller = "/index.php"
fastcgi = "127.0.0.1:9000"
fastcgi_keepalive = 8
user = "nobody"
writable = ["{dir}/uploads"]
tls = { cert = "{dir}/cert.pem", key = "{dir}/key.pem" }
workers = 3
on_demand = true
idle_timeout = "2m"
[app.secrets]
DB_PASSWORD = { file = "{dir}/secrets/db" }
API_KEY = { env = "BLOG_API_KEY" }
[app.limits]
max_body = "64M"
timeout = "90s"
"#;

#[test]
fn a_full_config_round_trips_into_app_spec() {
    let fx = Fixture::new();
    let config = fx.parse_env(FULL, &[("BLOG_API_KEY", "k3y")]).expect("valid config");
    let root = fs::canonicalize(fx.dir.path().join("public")).expect("canonical root");
    let app = &config.apps[0];
    let expected = AppSpec {
        name: "blog".into(),
        server_name: "blog.localhost".into(),
        root,
        index: vec!["index.html".into()],
        front_controller: Some("/index.php".into()),
        fastcgi: Backend::Tcp("127.0.0.1:9000".parse().expect("addr")),
        max_body: 64 * 1024 * 1024,
        timeout_ms: 90_000,
        idle_timeout_ms: Some(120_000),
        fastcgi_keepalive: 8,
        prefix: "/".into(),
        trusted_proxies: Vec::new(),
        symlink_targets: Vec::new(),
        fastcgi_params: Vec::new(),
        rules: Vec::new(),
        responses: ResponseSpec::default(),
    };
    assert_eq!(app.spec, expected);
    assert_eq!(app.hosts, ["*.blog.localhost", "blog.localhost"]);
    assert_eq!((app.workers, app.on_demand), (3, true));
    assert_eq!(config.control_socket, std::path::Path::new("/run/test/bulkhead.sock"));
    assert_eq!(config.shutdown_timeout_ms, 5_000);
    let route = Route {
        app: "blog".into(),
        hosts: app.hosts.clone(),
        on_demand: true,
        prefix: "/".into(),
        max_body: Some(64 * 1024 * 1024),
    };
    assert_eq!(app.route(), route);
    let secrets: Vec<(&str, &str)> =
        app.secrets.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
    assert_eq!(secrets, [("API_KEY", "k3y"), ("DB_PASSWORD", "s3cret")]);
    assert_eq!(app.user.as_deref(), Some("nobody"));
    assert_eq!(app.account.map(|a| a.uid), Some(65534), "resolved through /etc/passwd");
    assert_eq!(app.writable, [fs::canonicalize(fx.dir.path().join("uploads")).expect("canonical")]);
    assert_eq!(app.tls.as_ref().map(|t| t.key.clone()), Some(fx.dir.path().join("key.pem")));
    assert_eq!(config.listen_tls, ["[::1]:8443".parse::<SocketAddr>().expect("addr")]);
    let sandbox = SandboxConfig {
        mode: Some(SandboxMode::Root),
        uid_range: UidRange { first: 70000, last: 70099 },
        allow_weaker: true,
    };
    assert_eq!(config.sandbox, sandbox);
}

#[test]
fn load_reads_the_file_and_debug_never_shows_secrets() {
    let fx = Fixture::new();
    let path = fx.dir.path().join("bulkhead.toml");
    let text = format!(
        "{LISTEN}{}[app.secrets]\nDB_PASSWORD = {{ file = \"{{dir}}/secrets/db\" }}\n",
        app("blog", "blog.localhost")
    );
    fs::write(&path, fx.toml(&text)).expect("write config");
    let config = load(&path).expect("valid config");
    assert_eq!(config.apps[0].secrets[0].1.expose(), "s3cret");
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret") && debug.contains("***"), "{debug}");
}

#[test]
fn defaults_apply_when_keys_are_absent() {
    let fx = Fixture::new();
    let config =
        fx.parse(&format!("{LISTEN}{}", app("blog", "*.blog.localhost"))).expect("valid config");
    let spec = &config.apps[0].spec;
    assert_eq!(spec.server_name, "blog.localhost");
    assert_eq!(spec.index, DEFAULT_INDEX);
    assert_eq!((spec.max_body, spec.timeout_ms), (DEFAULT_MAX_BODY, DEFAULT_TIMEOUT_MS));
    assert_eq!(spec.fastcgi, Backend::Unix("/run/php/blog.sock".into()));
    assert_eq!(spec.fastcgi_keepalive, 0, "a connection per request unless asked");
    assert_eq!(config.sandbox, SandboxConfig::default());
    assert_eq!(config.sandbox.effective_mode(true), SandboxMode::Root);
    assert!(config.listen_tls.is_empty() && config.apps[0].secrets.is_empty());
}

#[test]
fn a_host_claimed_by_two_apps_is_refused() {
    let fx = Fixture::new();
    let text =
        format!("{LISTEN}{}{}", app("blog", "blog.localhost"), app("shop", "Blog.localhost"));
    assert_eq!(
        fx.problems(&text),
        [r#"app[1].hosts[0]: host "blog.localhost" is already claimed by app[0] ("blog")"#]
    );
}

#[test]
fn an_exact_host_inside_another_apps_wildcard_is_allowed() {
    let fx = Fixture::new();
    let text = format!(
        "{LISTEN}{}{}",
        app("blog", "*.blog.localhost"),
        app("shop", "shop.blog.localhost")
    );
    assert_eq!(fx.parse(&text).expect("valid").apps.len(), 2);
}

#[test]
fn the_same_host_twice_in_one_app_is_refused() {
    let fx = Fixture::new();
    let text = format!("{LISTEN}{}", app("blog", "a.localhost\", \"a.localhost"));
    assert_eq!(fx.problems(&text), [r#"app[0].hosts[1]: host "a.localhost" is listed twice"#]);
}

#[test]
fn a_missing_root_is_reported() {
    let fx = Fixture::new();
    let text =
        format!("{LISTEN}{}", app("blog", "blog.localhost")).replace("{dir}/public", "/nope");
    assert_eq!(fx.problems(&text), [r#"app[0].root: "/nope" does not exist"#]);
}

#[test]
fn an_unreadable_secret_file_is_reported() {
    let fx = Fixture::new();
    let secrets = "[app.secrets]\nA = { file = \"{dir}/secrets/missing\" }\nB = { file = \"{dir}/secrets\" }\n";
    let problems = fx.problems(&format!("{LISTEN}{}{secrets}", app("blog", "blog.localhost")));
    let missing = fx.toml(r#"app[0].secrets.A: cannot read "{dir}/secrets/missing": no such file or directory (os error 2)"#);
    assert_eq!(problems[0], missing);
    assert!(
        problems[1].starts_with("app[0].secrets.B: cannot read")
            && problems[1].contains("not a regular file")
    );
    assert_eq!(problems.len(), 2);
}

#[test]
fn missing_env_secrets_and_reserved_names_are_reported() {
    let fx = Fixture::new();
    let secrets = "[app.secrets]\nTOKEN = { env = \"NOPE\" }\nHTTP_X = { env = \"NOPE\" }\nPHP_VALUE = { env = \"NOPE\" }\n";
    let problems = fx.problems(&format!("{LISTEN}{}{secrets}", app("blog", "blog.localhost")));
    assert!(problems[0].starts_with("app[0].secrets.HTTP_X: "), "{problems:?}");
    assert!(problems[1].starts_with("app[0].secrets.PHP_VALUE: "), "{problems:?}");
    assert_eq!(problems[2], r#"app[0].secrets.TOKEN: environment variable "NOPE" is not set"#);
}

#[test]
fn an_unparsable_backend_is_reported() {
    let fx = Fixture::new();
    let text = format!("{LISTEN}{}", app("blog", "blog.localhost"))
        .replace("unix:/run/php/blog.sock", "tcp:foo");
    assert_eq!(
        fx.problems(&text),
        [r#"app[0].fastcgi: "tcp:foo" is not "unix:/path" or host:port"#]
    );
}

#[test]
fn an_unknown_key_names_its_path() {
    let fx = Fixture::new();
    let text = format!("{LISTEN}{}[app.limits]\nmax_bdy = \"1M\"\n", app("blog", "blog.localhost"));
    let problems = fx.problems(&text);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("app[0].limits.max_bdy: unknown field `max_bdy`"),
        "{problems:?}"
    );
    let problems = fx.problems(&format!("lsten = []\n{LISTEN}{}", app("blog", "blog.localhost")));
    assert!(problems[0].starts_with("lsten: unknown field `lsten`"), "{problems:?}");
}

#[test]
fn a_wrong_type_names_its_path() {
    let fx = Fixture::new();
    let text = format!("listen = \"127.0.0.1:80\"\n{}", app("blog", "blog.localhost"));
    let problems = fx.problems(&text);
    assert!(problems[0].starts_with("listen: invalid type: string"), "{problems:?}");
    let text = format!("{LISTEN}{}", app("blog", "blog.localhost"))
        .replace("[\"blog.localhost\"]", "[\"a\", 7]");
    assert!(fx.problems(&text)[0].starts_with("app[0].hosts[1]: invalid type: integer"));
}

#[test]
fn a_bad_or_duplicate_app_name_is_reported() {
    let fx = Fixture::new();
    let text = format!(
        "{LISTEN}{}{}{}",
        app("blog", "a.localhost"),
        app("blog", "b.localhost"),
        app("Bad_Name", "c.localhost")
    );
    let expected = [
        r#"app[1].name: "blog" is already the name of app[0]"#,
        r#"app[2].name: "Bad_Name" must match [a-z0-9-]+"#,
    ];
    assert_eq!(fx.problems(&text), expected);
}

#[test]
fn bad_sizes_and_durations_are_reported() {
    let fx = Fixture::new();
    let limits = "[app.limits]\nmax_body = \"64MB\"\ntimeout = \"60\"\n";
    let problems = fx.problems(&format!("{LISTEN}{}{limits}", app("blog", "blog.localhost")));
    assert!(
        problems[0].starts_with(r#"app[0].limits.max_body: "64MB" is not a size"#),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with(r#"app[0].limits.timeout: "60" is not a duration"#),
        "{problems:?}"
    );
    let limits = "[app.limits]\nmax_body = 2048\n";
    let config = fx
        .parse(&format!("{LISTEN}{}{limits}", app("blog", "blog.localhost")))
        .expect("bytes as integer");
    assert_eq!(config.apps[0].spec.max_body, 2048);
}

#[test]
fn several_problems_are_reported_at_once() {
    let fx = Fixture::new();
    let text = format!(
        "listen = [\"nope\"]\n[sandbox]\nuid_range = \"0-10\"\n{}{}{}index = [\"a/b\"]\n",
        app("blog", "blog.localhost").replace("{dir}/public", "/nope"),
        app("shop", "blog.localhost").replace("unix:/run/php/shop.sock", "tcp:foo"),
        app("x", "x.localhost:8080"),
    );
    let problems = fx.problems(&text);
    let paths: Vec<&str> =
        problems.iter().map(|p| p.split(": ").next().unwrap_or_default()).collect();
    let expected = [
        "listen[0]",
        "sandbox.uid_range",
        "app[0].root",
        "app[1].hosts[0]",
        "app[1].fastcgi",
        "app[2].hosts[0]",
        "app[2].index[0]",
    ];
    assert_eq!(paths, expected, "{problems:#?}");
}

#[test]
fn serde_errors_in_one_app_do_not_hide_the_others() {
    let fx = Fixture::new();
    let text =
        format!("{LISTEN}{}colour = 1\n{}", app("blog", "a.localhost"), app("Bad", "b.localhost"));
    let problems = fx.problems(&text);
    assert!(problems[0].starts_with("app[0].colour: unknown field"), "{problems:?}");
    assert!(problems[1].starts_with("app[1].name: "), "{problems:?}");
}

#[test]
fn a_syntax_error_reports_line_and_column() {
    let fx = Fixture::new();
    let err =
        fx.parse("listen = [\"127.0.0.1:80\"]\n[[app]]\nname = = \"x\"\n").expect_err("not TOML");
    assert!(matches!(err, ConfigError::Syntax(_)));
    assert!(err.to_string().starts_with("test.toml:3:8: "), "{err}");
}

#[test]
fn listeners_and_apps_are_required() {
    let fx = Fixture::new();
    assert_eq!(
        fx.problems(""),
        [
            "listen: at least one listener is required (listen or listen_tls)",
            "app: at least one [[app]] is required"
        ]
    );
    let dup = format!(
        "listen = [\"127.0.0.1:80\"]\nlisten_tls = [\"127.0.0.1:80\"]\n{}",
        app("a", "a.localhost")
    );
    assert_eq!(fx.problems(&dup), ["listen_tls[0]: 127.0.0.1:80 is already listed at listen[0]"]);
}

#[test]
fn user_is_refused_in_rootless_mode() {
    let fx = Fixture::new();
    let text = format!(
        "{LISTEN}[sandbox]\nmode = \"rootless\"\n{}user = \"blog\"\n",
        app("blog", "blog.localhost")
    );
    assert_eq!(
        fx.problems(&text),
        [r#"app[0].user: is only allowed in root mode (sandbox.mode is "rootless")"#]
    );
}

#[test]
fn missing_tls_files_are_reported() {
    let fx = Fixture::new();
    let tls = "tls = { cert = \"{dir}/cert.pem\", key = \"{dir}/nokey.pem\" }\n";
    let problems = fx.problems(&format!("{LISTEN}{}{tls}", app("blog", "blog.localhost")));
    assert_eq!(problems, [fx.toml(r#"app[0].tls.key: "{dir}/nokey.pem" does not exist"#)]);
}

#[test]
fn display_prints_one_problem_per_line() {
    let fx = Fixture::new();
    let err = fx.parse("").expect_err("empty config");
    assert_eq!(err.to_string().lines().count(), err.problems().len());
    assert_eq!(EXIT_CONFIG, 64);
}

#[test]
fn an_unreadable_config_file_is_reported() {
    let err = load(Path::new("/nonexistent/bulkhead.toml")).expect_err("no file");
    assert!(matches!(err, ConfigError::Unreadable(_)));
    assert!(err.to_string().starts_with("/nonexistent/bulkhead.toml: cannot read"), "{err}");
}

#[test]
fn worker_counts_keepalive_and_idle_timeouts_are_checked() {
    let fx = Fixture::new();
    let text = FULL
        .replace("workers = 3", "workers = 0")
        .replace("on_demand = true\n", "")
        .replace("fastcgi_keepalive = 8", "fastcgi_keepalive = 65");
    let err = fx.parse_env(&text, &[("BLOG_API_KEY", "k")]).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("app[0].workers: 0 is not between 1 and 64"), "{text}");
    assert!(text.contains("app[0].fastcgi_keepalive: 65 is not between 0 and 64"), "{text}");
    assert!(text.contains("app[0].idle_timeout: applies only with on_demand = true"), "{text}");
}

#[test]
fn control_socket_and_shutdown_timeout_are_checked() {
    let fx = Fixture::new();
    let text = FULL
        .replace("/run/test/bulkhead.sock", "relative/bulkhead.sock")
        .replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"soon\"");
    let err = fx.parse_env(&text, &[("BLOG_API_KEY", "k")]).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("control_socket:"), "{text}");
    assert!(text.contains("shutdown_timeout:"), "{text}");
}

#[test]
fn client_body_timeout_defaults_to_nginx_s_and_refuses_zero() {
    let fx = Fixture::new();
    let blog = app("blog", "blog.localhost");
    let config = fx.parse(&format!("{LISTEN}{blog}")).expect("valid config");
    assert_eq!(config.client.client_body_timeout_ms, 60_000);
    let config =
        fx.parse(&format!("{LISTEN}client_body_timeout = \"5s\"\n{blog}")).expect("valid config");
    assert_eq!(config.client.client_body_timeout_ms, 5_000);
    for bad in ["0s", "soon"] {
        let problems = fx.problems(&format!("{LISTEN}client_body_timeout = \"{bad}\"\n{blog}"));
        assert!(problems.iter().any(|p| p.starts_with("client_body_timeout:")), "{problems:?}");
    }
}

#[test]
fn client_connection_keys_default_to_nginx_s_and_are_checked() {
    let fx = Fixture::new();
    let blog = app("blog", "blog.localhost");
    let config = fx.parse(&format!("{LISTEN}{blog}")).expect("valid config");
    assert_eq!(config.client, privsep::msg::GatewayLimits::default());
    assert_eq!(config.client.keepalive_timeout_ms, 75_000);
    let top = "client_header_timeout = \"2s\"\nkeepalive_timeout = \"3s\"\nsend_timeout = \"4s\"\n\
               client_max_header_size = \"8K\"\nmax_connections = 10\nmax_connections_per_client = 3\n";
    let c = fx.parse(&format!("{LISTEN}{top}{blog}")).expect("valid config").client;
    assert_eq!(
        (c.client_header_timeout_ms, c.keepalive_timeout_ms, c.send_timeout_ms),
        (2_000, 3_000, 4_000)
    );
    assert_eq!(
        (c.max_header_bytes, c.max_connections, c.max_connections_per_client),
        (8192, 10, 3)
    );
    let bad = "send_timeout = \"0s\"\nclient_max_header_size = \"1M\"\nmax_connections = 2\n\
               max_connections_per_client = 3\n";
    let problems = fx.problems(&format!("{LISTEN}{bad}{blog}"));
    for key in ["send_timeout:", "client_max_header_size:", "max_connections_per_client:"] {
        assert!(problems.iter().any(|p| p.starts_with(key)), "{key} {problems:?}");
    }
}

/// An app whose backend is `fastcgi` (a TCP address).
fn tcp_app(name: &str, fastcgi: &str) -> String {
    app(name, &format!("{name}.localhost")).replace(&format!("unix:/run/php/{name}.sock"), fastcgi)
}

#[test]
fn tcp_backends_on_one_port_at_different_addresses_are_refused() {
    let fx = Fixture::new();
    let text = format!(
        "{LISTEN}{}{}{}",
        tcp_app("a", "127.0.0.1:25031"),
        tcp_app("b", "127.0.0.2:25031"),
        tcp_app("c", "127.0.0.3:25032"),
    );
    let problems = fx.problems(&text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            r#"app[1].fastcgi: port 25031 is also app[0] ("a")'s backend at 127.0.0.1:25031"#
        ),
        "{problems:?}"
    );
    assert!(problems[0].contains("pins TCP ports, not addresses"), "{problems:?}");
    let shared =
        format!("{LISTEN}{}{}", tcp_app("a", "127.0.0.1:25031"), tcp_app("b", "127.0.0.1:25031"));
    assert!(fx.parse(&shared).is_ok(), "one pool at one address may serve two apps");
}

#[test]
fn tls_min_version_and_signature_rate_are_checked() {
    let fx = Fixture::new();
    let tls = |v: &str| {
        format!(
            "{LISTEN}tls_signatures_per_second = 0\n{}tls = {{ cert = \"{{dir}}/cert.pem\", key = \"{{dir}}/key.pem\", min_version = \"{v}\" }}\n",
            app("a", "a.localhost")
        )
    };
    let problems = fx.problems(&tls("1.1"));
    assert!(
        problems.contains(&r#"app[0].tls.min_version: "1.1" is not "1.2" or "1.3""#.to_owned()),
        "{problems:?}"
    );
    assert!(
        problems
            .contains(&"tls_signatures_per_second: 0 is not a rate from 1 to 1000000".to_owned()),
        "{problems:?}"
    );
    let ok = tls("1.3").replace("tls_signatures_per_second = 0", "tls_signatures_per_second = 50");
    let config = fx.parse(&ok).expect("valid");
    assert!(config.apps[0].tls.as_ref().is_some_and(|t| t.tls13_only));
    assert_eq!(config.tls_signatures_per_second, 50);
}

fn php_app(name: &str, php: &str) -> String {
    app(name, &format!("{name}.localhost"))
        .replace(&format!("fastcgi = \"unix:/run/php/{name}.sock\"\n"), &format!("php = {php}\n"))
}

#[test]
fn a_managed_pool_gets_a_socket_beside_the_control_socket() {
    let fx = Fixture::new();
    let text = format!(
        "{LISTEN}control_socket = \"/run/t/c.sock\"\n{}",
        php_app(
            "a",
            "{ max_children = 3, php_admin_value = { \"upload_max_filesize\" = \"8M\" } }"
        )
    );
    let config = fx.parse(&text).expect("valid");
    let php = config.apps[0].php.as_ref().expect("a managed pool");
    assert_eq!(php.max_children, 3);
    let socket = std::path::Path::new("/run/t/c.pools/a/php-fpm.sock");
    assert_eq!(config.apps[0].spec.fastcgi, privsep::msg::Backend::Unix(socket.into()));
}

#[test]
fn php_values_that_could_rewrite_the_pool_config_are_refused() {
    let fx = Fixture::new();
    let evil =
        r#"{ php_admin_value = { "memory_limit" = "1G\"\nphp_admin_value[open_basedir] = \"/" } }"#;
    let problems = fx.problems(&format!("{LISTEN}{}", php_app("a", evil)));
    assert!(
        problems.iter().any(|p| p.starts_with("app[0].php.php_admin_value.memory_limit")),
        "{problems:?}"
    );
    let both =
        format!("{LISTEN}{}", app("a", "a.localhost").replace("[[app]]\n", "[[app]]\nphp = {}\n"));
    assert!(fx.problems(&both).iter().any(|p| p.contains("not both")));
}

#[test]
fn a_pool_connect_port_shared_with_another_address_is_refused() {
    let fx = Fixture::new();
    let text = format!(
        "{LISTEN}{}{}",
        tcp_app("a", "127.0.0.1:25040"),
        php_app("b", "{ connect = [\"tcp:127.0.0.2:25040\"] }"),
    );
    let problems = fx.problems(&text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("app[1].php.connect: port 25040"), "{problems:?}");
}
