//! Logging for CNI plugins: tracing to stderr or to a log file, never stdout
//! (stdout belongs to the result JSON). Level and file come from the config's
//! `logLevel` / `logFile` (and Multus's `logToStderr`), with the names sriov-cni
//! and Multus users already write.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::Value;
use tracing::level_filters::LevelFilter;

/// Where and how much a plugin logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub level: LevelFilter,
    pub file: Option<PathBuf>,
    pub to_stderr: bool,
    /// Multus's `logOptions` (lumberjack's keys), when given.
    pub rotation: Option<Rotation>,
}

/// Size-based rotation of the log file, checked as each call starts (every CNI
/// call is a new process): `file` -> `file.1` -> ... -> `file.<maxBackups>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size_mib: u64,
    pub max_backups: u32,
    pub max_age_days: u64,
}

impl Rotation {
    fn from_value(v: &Value) -> Rotation {
        let num = |k: &str, d: u64| v.get(k).and_then(Value::as_u64).unwrap_or(d);
        Rotation {
            max_size_mib: num("maxSize", 100).max(1),
            max_backups: u32::try_from(num("maxBackups", 5)).unwrap_or(5),
            max_age_days: num("maxAge", 5),
        }
    }

    /// Rotate `path` if it has reached the size limit; drop old backups.
    pub fn apply(&self, path: &std::path::Path) {
        let big = std::fs::metadata(path).is_ok_and(|m| m.len() >= self.max_size_mib << 20);
        let backup = |i: u32| PathBuf::from(format!("{}.{i}", path.display()));
        if big {
            let _ = std::fs::remove_file(backup(self.max_backups.max(1)));
            for i in (1..self.max_backups.max(1)).rev() {
                let _ = std::fs::rename(backup(i), backup(i + 1));
            }
            if self.max_backups == 0 {
                let _ = std::fs::remove_file(path);
            } else {
                let _ = std::fs::rename(path, backup(1));
            }
        }
        if self.max_age_days > 0 {
            let limit = std::time::Duration::from_secs(self.max_age_days * 86_400);
            for i in 1..=self.max_backups {
                let old = std::fs::metadata(backup(i))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > limit);
                if old {
                    let _ = std::fs::remove_file(backup(i));
                }
            }
        }
    }
}

impl LogSettings {
    /// Read `logLevel`, `logFile` and `logToStderr` from a config document;
    /// `default_level` applies when it names none.
    pub fn from_config(conf: Option<&Value>, default_level: LevelFilter) -> Self {
        let get = |k: &str| conf.and_then(|c| c.get(k));
        let level = get("logLevel")
            .and_then(Value::as_str)
            .map(parse_level)
            .unwrap_or(default_level);
        let file = get("logFile")
            .and_then(Value::as_str)
            .filter(|f| acceptable_log_path(f))
            .map(PathBuf::from);
        let to_stderr = get("logToStderr").and_then(Value::as_bool).unwrap_or(true);
        let rotation = get("logOptions").map(Rotation::from_value);
        LogSettings {
            level,
            file,
            to_stderr,
            rotation,
        }
    }
}

/// A `logFile` we will write to and rotate: absolute, no `..`, a name ending in
/// `.log`. The key comes from NADs, which tenants write, and the plugin runs as
/// root: without this a NAD could append log lines to (or, with `logOptions`,
/// rotate away) any file on the node. The suffix keeps it to log files (cron,
/// sudoers.d and the like ignore names with a dot; system files have none).
pub fn acceptable_log_path(f: &str) -> bool {
    vfplex_config::validate::absolute_path("logFile", f).is_ok()
        && std::path::Path::new(f)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() > 4 && n.ends_with(".log"))
}

/// Map the level words of sriov-cni (`panic`, `error`, `warning`, `info`,
/// `debug`) and Multus (`panic`, `error`, `verbose`, `debug`) onto tracing levels.
pub fn parse_level(s: &str) -> LevelFilter {
    match s.to_ascii_lowercase().as_str() {
        "panic" | "fatal" => LevelFilter::ERROR,
        "error" => LevelFilter::ERROR,
        "warning" | "warn" => LevelFilter::WARN,
        "info" | "verbose" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        "off" | "none" => LevelFilter::OFF,
        _ => LevelFilter::INFO,
    }
}

/// Install the global subscriber. A log file that cannot be opened falls back to
/// stderr, with a warning there; logging problems never fail the CNI operation.
pub fn init(settings: &LogSettings) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(settings.level)
        .with_ansi(false)
        .with_target(false);
    let mut fallback_warning = None;
    if let Some(path) = &settings.file {
        // Only a regular file, reached without a symlink anywhere on its path
        // (checked by opening it so), 0600: logs may hold pod names and
        // addresses, and the plugin runs as root.
        let opened =
            crate::files::open_append_no_symlinks(path).and_then(|f| match &settings.rotation {
                Some(rot) => {
                    drop(f);
                    rot.apply(path);
                    crate::files::open_append_no_symlinks(path)
                }
                None => Ok(f),
            });
        match opened {
            Ok(file) => {
                let _ = builder.with_writer(Mutex::new(file)).try_init();
                return;
            }
            Err(e) => {
                fallback_warning = Some(format!("not writing to log file {}: {e}", path.display()))
            }
        }
    }
    if settings.to_stderr || fallback_warning.is_some() {
        let _ = builder.with_writer(io::stderr).try_init();
    }
    if let Some(w) = fallback_warning {
        tracing::warn!("{w}; logging to stderr");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_upstream_keys() {
        let s = LogSettings::from_config(
            Some(&json!({"logLevel": "debug", "logFile": "/var/log/x.log", "logToStderr": false})),
            LevelFilter::WARN,
        );
        assert_eq!(s.level, LevelFilter::DEBUG);
        assert_eq!(s.file, Some(PathBuf::from("/var/log/x.log")));
        assert!(!s.to_stderr);
        let s =
            LogSettings::from_config(Some(&json!({"logFile": "relative.log"})), LevelFilter::WARN);
        assert_eq!((s.level, s.file), (LevelFilter::WARN, None));
        for bad in [
            "/etc/passwd",
            "/var/log/../../etc/cron.d/x.log",
            "/var/log/.log",
            "/var/log/",
            "/root/.ssh/authorized_keys",
        ] {
            assert!(!acceptable_log_path(bad), "{bad}");
        }
        assert!(acceptable_log_path("/var/log/sriov-cni.log"));
        assert_eq!(parse_level("verbose"), LevelFilter::INFO);
        assert_eq!(parse_level("panic"), LevelFilter::ERROR);
        assert_eq!(parse_level("Warning"), LevelFilter::WARN);
    }

    #[test]
    fn rotation_by_size_keeps_max_backups() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("multus.log");
        let s = LogSettings::from_config(
            Some(
                &json!({"logFile": log.display().to_string(), "logOptions": {"maxSize": 1, "maxBackups": 2, "maxAge": 5, "compress": true}}),
            ),
            LevelFilter::WARN,
        );
        let rot = s.rotation.unwrap();
        for round in 0..4 {
            std::fs::write(&log, vec![b'x'; (1 << 20) + round]).unwrap();
            rot.apply(&log);
        }
        assert!(!log.exists(), "rotated away");
        assert_eq!(
            std::fs::metadata(d.path().join("multus.log.1"))
                .unwrap()
                .len(),
            (1 << 20) + 3
        );
        assert_eq!(
            std::fs::metadata(d.path().join("multus.log.2"))
                .unwrap()
                .len(),
            (1 << 20) + 2
        );
        assert!(!d.path().join("multus.log.3").exists());
        std::fs::write(&log, b"small").unwrap();
        rot.apply(&log);
        assert!(log.exists(), "under the limit: untouched");
    }
}
