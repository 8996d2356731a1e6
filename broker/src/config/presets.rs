//! `preset = "wordpress"`: an app's rules, front controller and index files taken from
//! the matching recipe in `deploy/examples/`, so a config need not repeat them.
//!
//! The recipes are compiled into the binary; the test that runs `bulkhead check` on every
//! example keeps them valid. A preset's rules come before the app's own (a preset deny
//! cannot be undone, an app may add more); the app's `front_controller` and `index` win.

use super::raw::RawRule;

/// Name → recipe text.
const PRESETS: &[(&str, &str)] = &[
    ("wordpress", include_str!("../../../deploy/examples/wordpress.toml")),
    ("dokuwiki", include_str!("../../../deploy/examples/dokuwiki.toml")),
    ("mediawiki", include_str!("../../../deploy/examples/mediawiki.toml")),
    ("phpmyadmin", include_str!("../../../deploy/examples/phpmyadmin.toml")),
    ("laravel", include_str!("../../../deploy/examples/laravel.toml")),
    ("drupal", include_str!("../../../deploy/examples/drupal.toml")),
    ("nextcloud", include_str!("../../../deploy/examples/nextcloud.toml")),
];

/// What a preset supplies.
#[derive(Debug, Default)]
pub(super) struct Preset {
    pub rules: Vec<RawRule>,
    pub front_controller: Option<String>,
    pub index: Option<Vec<String>>,
}

/// The preset called `name`.
pub(super) fn preset(name: &str) -> Result<Preset, String> {
    let Some((_, text)) = PRESETS.iter().find(|(known, _)| *known == name) else {
        let names: Vec<&str> = PRESETS.iter().map(|(known, _)| *known).collect();
        return Err(format!("{name:?} is not a preset ({})", names.join(", ")));
    };
    parse(text).map_err(|err| format!("preset {name:?} is broken: {err}"))
}

fn parse(text: &str) -> Result<Preset, String> {
    let table: toml::Table = text.parse().map_err(|err: toml::de::Error| err.to_string())?;
    let app = table
        .get("app")
        .and_then(|apps| apps.as_array()?.first()?.as_table())
        .ok_or("no [[app]]")?;
    let field = |key: &str| app.get(key).cloned();
    let rules = match field("rules") {
        Some(value) => value.try_into().map_err(|err: toml::de::Error| err.to_string())?,
        None => Vec::new(),
    };
    let front_controller = field("front_controller").and_then(|v| v.as_str().map(str::to_owned));
    let index = match field("index") {
        Some(value) => Some(value.try_into().map_err(|err: toml::de::Error| err.to_string())?),
        None => None,
    };
    Ok(Preset { rules, front_controller, index })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_carries_rules() {
        for (name, _) in PRESETS {
            let preset = preset(name).expect("a valid preset");
            assert!(!preset.rules.is_empty(), "{name}");
        }
        assert_eq!(
            preset("wordpress").expect("ok").front_controller.as_deref(),
            Some("/index.php")
        );
        assert!(preset("joomla").expect_err("unknown").contains("wordpress"));
    }
}
