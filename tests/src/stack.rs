//! One call that assembles a whole test world: a temporary directory with each app's
//! document root and secret files, one php-fpm master per app, and a running Bulkhead whose
//! config ties them together.
//!
//! Tests that need something unusual (a config the broker must refuse, a backend that never
//! existed) use the pieces in the other modules directly or the knobs on [`AppPlan`].

use crate::bulkhead::{Bulkhead, Launch};
use crate::config::{AppSpec, config_toml_with};
use crate::http::{Client, Proto};
use crate::net::{free_port, loopback};
use crate::php::write_file;
use crate::php_fpm::{PhpFpm, Pool, socket_path};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// What one app should look like before anything starts.
#[derive(Debug, Clone)]
pub struct AppPlan {
    name: String,
    extra_hosts: Vec<String>,
    files: Vec<(String, String)>,
    secrets: Vec<PlannedSecret>,
    max_body: Option<String>,
    with_backend: bool,
    extra_lines: Vec<String>,
    /// Mounted under this path prefix (`/blog/`) on each of its hosts.
    prefix: Option<String>,
    /// A document root outside the test directory (an installed application).
    root: Option<PathBuf>,
    /// `pm.max_requests` of the app's php-fpm pool (0: never recycled).
    fpm_max_requests: u32,
    /// `[app.limits] timeout`, e.g. `"1s"`.
    timeout: Option<String>,
}

#[derive(Debug, Clone)]
enum PlannedSecret {
    File { key: String, value: String },
    Env { key: String, var: String, value: String },
}

impl AppPlan {
    /// An app named `name` answering `NAME.localhost`, served by its own php-fpm.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            extra_hosts: Vec::new(),
            files: Vec::new(),
            secrets: Vec::new(),
            max_body: None,
            with_backend: true,
            extra_lines: Vec::new(),
            prefix: None,
            root: None,
            fpm_max_requests: 0,
            timeout: None,
        }
    }

    /// `front_controller = PATH`: what serves paths that match no file.
    pub fn front_controller(self, path: &str) -> Self {
        self.line(&format!("front_controller = {}", crate::config::quote(path)))
    }

    /// Mounts the app under `prefix` (`/blog/`) on each of its hosts.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_owned());
        self
    }

    /// Serves an existing directory (an installed application) instead of a fresh one.
    pub fn root(mut self, root: &Path) -> Self {
        self.root = Some(root.to_path_buf());
        self
    }

    /// Another host name (exact or `*.` wildcard).
    pub fn host(mut self, host: &str) -> Self {
        self.extra_hosts.push(host.to_owned());
        self
    }

    /// A file in the document root, e.g. `("index.php", php::hello("alpha"))`.
    pub fn file(mut self, relative: &str, contents: &str) -> Self {
        self.files.push((relative.to_owned(), contents.to_owned()));
        self
    }

    /// A secret delivered as `{ file = … }`; the harness writes `value` to a file.
    pub fn secret(mut self, key: &str, value: &str) -> Self {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.secrets.push(PlannedSecret::File { key, value });
        self
    }

    /// A secret delivered as `{ env = VAR }`; the broker is started with `VAR=value`.
    pub fn secret_env(mut self, key: &str, var: &str, value: &str) -> Self {
        let (key, var, value) = (key.to_owned(), var.to_owned(), value.to_owned());
        self.secrets.push(PlannedSecret::Env { key, var, value });
        self
    }

    /// `[app.limits] max_body`, e.g. `"8M"`.
    pub fn max_body(mut self, limit: &str) -> Self {
        self.max_body = Some(limit.to_owned());
        self
    }

    /// A raw `key = value` line in the app's `[[app]]` table, e.g. `workers = 3`.
    pub fn line(mut self, line: &str) -> Self {
        self.extra_lines.push(line.to_owned());
        self
    }

    /// `[app.limits] timeout`: the longest wait for the backend.
    pub fn timeout(mut self, timeout: &str) -> Self {
        self.timeout = Some(timeout.to_owned());
        self
    }

    /// Its php-fpm children exit after `n` requests each (`pm.max_requests`).
    pub fn fpm_max_requests(mut self, n: u32) -> Self {
        self.fpm_max_requests = n;
        self
    }

    /// Configure the app's FastCGI socket but start no php-fpm for it.
    pub fn without_backend(mut self) -> Self {
        self.with_backend = false;
        self
    }

    fn materialize(&self, dir: &Path) -> AppSpec {
        let root = self.root.clone().unwrap_or_else(|| dir.join("apps").join(&self.name));
        std::fs::create_dir_all(&root).expect("creating a document root");
        for (relative, contents) in &self.files {
            write_file(&root, relative, contents);
        }
        let fastcgi = format!("unix:{}", socket_path(dir, &self.name).display());
        let mut spec = AppSpec::new(&self.name, &root, &fastcgi);
        spec.hosts.extend(self.extra_hosts.iter().cloned());
        if let Some(prefix) = &self.prefix {
            spec.hosts.iter_mut().for_each(|host| host.push_str(prefix));
        }
        spec.max_body.clone_from(&self.max_body);
        spec.timeout.clone_from(&self.timeout);
        spec.extra_lines.clone_from(&self.extra_lines);
        for secret in &self.secrets {
            spec = add_secret(spec, dir, secret);
        }
        spec
    }

    fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.secrets.iter().filter_map(|secret| match secret {
            PlannedSecret::Env { var, value, .. } => Some((var.as_str(), value.as_str())),
            PlannedSecret::File { .. } => None,
        })
    }
}

fn add_secret(spec: AppSpec, dir: &Path, secret: &PlannedSecret) -> AppSpec {
    match secret {
        PlannedSecret::File { key, value } => {
            let path = secret_path(dir, &spec.name, key);
            crate::write_private(&path, value.as_bytes());
            spec.secret_file(key, &path)
        }
        PlannedSecret::Env { key, var, .. } => spec.secret_env(key, var),
    }
}

/// Gives the secret files to `uid`, the broker's user.
fn give_secrets(dir: &Path, uid: u32) {
    let Ok(entries) = std::fs::read_dir(dir.join("secrets")) else { return };
    for entry in entries.flatten() {
        std::os::unix::fs::chown(entry.path(), Some(uid), Some(uid)).expect("chown a secret");
    }
}

fn secret_path(dir: &Path, app: &str, key: &str) -> PathBuf {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).expect("creating the secrets directory");
    secrets.join(format!("{app}-{key}"))
}

/// A running world. Fields drop in order: Bulkhead first, then php-fpm, then the files.
#[derive(Debug)]
pub struct Stack {
    /// The running broker and its children.
    pub bulkhead: Bulkhead,
    /// One php-fpm master per app that has a backend.
    pub fpm: PhpFpm,
    /// The apps as configured.
    pub apps: Vec<AppSpec>,
    dir: TempDir,
    listen: SocketAddr,
    top: Vec<String>,
}

/// Knobs for [`Stack::start_with`].
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// Raw top-level config lines, e.g. `shutdown_timeout = "10s"`.
    pub top: Vec<String>,
    /// Apps that get a document root and a php-fpm but are left out of the first config
    /// (for a reload to add them).
    pub not_configured: Vec<String>,
    /// How to start the broker.
    pub launch: Launch,
    /// Extra environment for the broker.
    pub env: Vec<(String, String)>,
    /// The `listen` address (default: a free loopback port).
    pub listen: Option<SocketAddr>,
}

impl Stack {
    /// Writes every app, starts their php-fpm masters, then Bulkhead on a free port.
    pub fn start(plans: &[AppPlan]) -> Self {
        Self::start_with(plans, &StackOptions::default())
    }

    /// Like [`Stack::start`], with the knobs of [`StackOptions`].
    pub fn start_with(plans: &[AppPlan], options: &StackOptions) -> Self {
        let dir = crate::temp_dir();
        let apps: Vec<AppSpec> = plans.iter().map(|p| p.materialize(dir.path())).collect();
        let pools: Vec<Pool> = plans
            .iter()
            .filter(|plan| plan.with_backend)
            .map(|plan| Pool { max_requests: plan.fpm_max_requests, ..Pool::new(&plan.name) })
            .collect();
        if let Some(uid) = options.launch.user {
            give_secrets(dir.path(), uid);
        }
        let fpm = PhpFpm::start(dir.path(), &pools);
        let listen = options.listen.unwrap_or_else(|| loopback(free_port()));
        let configured: Vec<AppSpec> = apps
            .iter()
            .filter(|app| !options.not_configured.contains(&app.name))
            .cloned()
            .collect();
        let config = config_toml_with(&[listen], &options.top, &configured);
        let mut env: Vec<(&str, &str)> = plans.iter().flat_map(AppPlan::env).collect();
        env.extend(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let bulkhead = Bulkhead::start_with(&options.launch, &config, &env);
        Self { bulkhead, fpm, apps, dir, listen, top: options.top.clone() }
    }

    /// A config with this stack's listener and top-level lines and exactly `apps`.
    pub fn config_for(&self, apps: &[AppSpec]) -> String {
        config_toml_with(&[self.listen], &self.top, apps)
    }

    /// The gateway's address.
    pub fn addr(&self) -> SocketAddr {
        self.bulkhead.addr()
    }

    /// The temporary directory holding roots, sockets and secrets.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configured app named `name`.
    pub fn app(&self, name: &str) -> &AppSpec {
        self.apps
            .iter()
            .find(|app| app.name == name)
            .unwrap_or_else(|| panic!("no app named {name:?}"))
    }

    /// A client that resolves every exact app host to the gateway.
    pub fn client(&self, proto: Proto) -> Client {
        self.client_with(proto, &[])
    }

    /// Like [`Stack::client`], also resolving `extra` names (wildcard matches, unknown hosts).
    pub fn client_with(&self, proto: Proto, extra: &[&str]) -> Client {
        let mut hosts: Vec<&str> = self
            .apps
            .iter()
            .flat_map(|app| app.hosts.iter().map(|host| host.split('/').next().unwrap_or(host)))
            .filter(|host| !host.starts_with("*."))
            .collect();
        hosts.extend_from_slice(extra);
        Client::new(self.addr(), proto, &hosts)
    }
}
