//! One call that assembles a whole test world: a temporary directory with each app's
//! document root and secret files, one php-fpm master per app, and a running Bulkhead whose
//! config ties them together.
//!
//! Tests that need something unusual (a config the broker must refuse, a backend that never
//! existed) use the pieces in the other modules directly or the knobs on [`AppPlan`].

use crate::bulkhead::Bulkhead;
use crate::config::{AppSpec, config_toml};
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
        }
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

    /// Configure the app's FastCGI socket but start no php-fpm for it.
    pub fn without_backend(mut self) -> Self {
        self.with_backend = false;
        self
    }

    fn materialize(&self, dir: &Path) -> AppSpec {
        let root = dir.join("apps").join(&self.name);
        std::fs::create_dir_all(&root).expect("creating a document root");
        for (relative, contents) in &self.files {
            write_file(&root, relative, contents);
        }
        let fastcgi = format!("unix:{}", socket_path(dir, &self.name).display());
        let mut spec = AppSpec::new(&self.name, &root, &fastcgi);
        spec.hosts.extend(self.extra_hosts.iter().cloned());
        spec.max_body.clone_from(&self.max_body);
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
            std::fs::write(&path, value).expect("writing a secret file");
            spec.secret_file(key, &path)
        }
        PlannedSecret::Env { key, var, .. } => spec.secret_env(key, var),
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
}

impl Stack {
    /// Writes every app, starts their php-fpm masters, then Bulkhead on a free port.
    pub fn start(plans: &[AppPlan]) -> Self {
        let dir = crate::temp_dir();
        let apps: Vec<AppSpec> = plans.iter().map(|p| p.materialize(dir.path())).collect();
        let pools: Vec<Pool> = plans
            .iter()
            .filter(|plan| plan.with_backend)
            .map(|plan| Pool::new(&plan.name))
            .collect();
        let fpm = PhpFpm::start(dir.path(), &pools);
        let config = config_toml(&[loopback(free_port())], &apps);
        let env: Vec<(&str, &str)> = plans.iter().flat_map(AppPlan::env).collect();
        let bulkhead = Bulkhead::start_with_env(&config, &env);
        Self { bulkhead, fpm, apps, dir }
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
            .flat_map(|app| app.hosts.iter().map(String::as_str))
            .filter(|host| !host.starts_with("*."))
            .collect();
        hosts.extend_from_slice(extra);
        Client::new(self.addr(), proto, &hosts)
    }
}
