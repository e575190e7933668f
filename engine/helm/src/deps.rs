//! A local chart's dependencies (`Chart.yaml`'s `dependencies`, `Chart.lock`, `charts/`).
//!
//! [`verdict`] is the pure staleness rule: nothing to do, `helm dependency build` (the lock is
//! good but `charts/` lacks an archive or holds one older than its `file://` source) or `helm
//! dependency update` (no lock, or a lock that no longer matches `Chart.yaml`). [`inspect`] reads
//! a chart directory into the rule's inputs, and [`private_copy`] copies a chart into a
//! directory of the run's own so its dependencies are built there, never in the user's chart:
//! relative `file://` sources are symlinked at the place they resolve to from the copy.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// One entry of `dependencies` (in `Chart.yaml` or `Chart.lock`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct Dependency {
    /// The subchart's name.
    pub name: String,
    /// A version or a constraint (`Chart.yaml`), the resolved version (`Chart.lock`).
    #[serde(default)]
    pub version: String,
    /// `file://../x`, `https://charts.example`, `oci://registry/charts`, `@repo` or empty.
    #[serde(default)]
    pub repository: String,
}

impl Dependency {
    /// The local directory of a `file://` source, resolved against the chart.
    pub(crate) fn file_source(&self, chart_dir: &Path) -> Option<PathBuf> {
        let p = self.repository.strip_prefix("file://")?;
        Some(normalize(&chart_dir.join(p)))
    }
}

#[derive(Deserialize)]
struct ChartFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

/// What `charts/` holds: an archive (`coordinator-0.1.0.tgz`) or an unpacked chart directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Vendored {
    /// `charts/<file>`, written at `modified`.
    Archive { file: String, modified: SystemTime },
    /// `charts/<dir>` holding a chart named `name` at `version`.
    Dir { name: String, version: String, modified: SystemTime },
}

/// What a chart's dependencies need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `charts/` matches the lock: use the chart as it is.
    Fresh,
    /// The lock is good, `charts/` is not: `helm dependency build` (why, for the log).
    Build(String),
    /// No usable lock: `helm dependency update` (why).
    Update(String),
}

/// The rule. `sources` has the newest modification time under each `file://` dependency's
/// directory (by name), when it exists.
pub(crate) fn verdict(
    deps: &[Dependency],
    lock: Option<&[Dependency]>,
    vendored: &[Vendored],
    sources: &BTreeMap<String, SystemTime>,
) -> Verdict {
    if deps.is_empty() {
        return Verdict::Fresh;
    }
    let Some(lock) = lock else { return Verdict::Update("there is no Chart.lock".into()) };
    let key = |d: &Dependency| (d.name.clone(), d.repository.trim_end_matches('/').to_string());
    let mut wanted: Vec<_> = deps.iter().map(key).collect();
    let mut locked: Vec<_> = lock.iter().map(key).collect();
    wanted.sort();
    locked.sort();
    if wanted != locked {
        return Verdict::Update("Chart.lock does not list the dependencies of Chart.yaml".into());
    }
    for d in deps {
        let l = lock.iter().find(|l| key(l) == key(d)).expect("same keys");
        if is_exact_version(&d.version) && d.version.trim_start_matches('v') != l.version.trim_start_matches('v') {
            return Verdict::Update(format!(
                "Chart.yaml asks for {} {} but Chart.lock has {}",
                d.name, d.version, l.version
            ));
        }
    }
    let mut why = Vec::new();
    for l in lock {
        let archive = format!("{}-{}.tgz", l.name, l.version);
        let found = vendored.iter().find_map(|v| match v {
            Vendored::Archive { file, modified } if *file == archive => Some(*modified),
            Vendored::Dir { name, version, modified } if *name == l.name && *version == l.version => Some(*modified),
            _ => None,
        });
        match (found, sources.get(&l.name)) {
            (None, _) => why.push(format!("{} {} is missing from charts/", l.name, l.version)),
            (Some(built), Some(changed)) if l.repository.starts_with("file://") && changed > &built => {
                why.push(format!("{} changed in {} since charts/{archive} was built", l.name, l.repository))
            }
            _ => {}
        }
    }
    if why.is_empty() { Verdict::Fresh } else { Verdict::Build(why.join("; ")) }
}

/// `1.2.3` (not `^1.2`, `~1`, `>=1 <2`, `1.x`, `*`).
pub(crate) fn is_exact_version(v: &str) -> bool {
    let v = v.trim().trim_start_matches('v');
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// A path with `.` and `..` resolved lexically (as helm joins `file://` paths).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// A chart directory, read for [`verdict`].
#[derive(Debug)]
pub(crate) struct Inspected {
    /// The chart's name.
    pub name: String,
    /// `Chart.yaml`'s dependencies.
    pub deps: Vec<Dependency>,
    /// `Chart.lock`'s, if there is one.
    pub lock: Option<Vec<Dependency>>,
    /// What `charts/` holds.
    pub vendored: Vec<Vendored>,
    /// Newest modification under each existing `file://` source.
    pub sources: BTreeMap<String, SystemTime>,
}

impl Inspected {
    /// The rule on what was read.
    pub(crate) fn verdict(&self) -> Verdict {
        verdict(&self.deps, self.lock.as_deref(), &self.vendored, &self.sources)
    }
}

/// Read `dir`'s Chart.yaml, Chart.lock and charts/. `Ok(None)`: not a chart directory.
pub(crate) fn inspect(dir: &Path) -> Result<Option<Inspected>, String> {
    let chart_yaml = dir.join("Chart.yaml");
    let Ok(text) = std::fs::read_to_string(&chart_yaml) else { return Ok(None) };
    let chart: ChartFile =
        serde_saphyr::from_str(&text).map_err(|e| format!("cannot read {}: {e}", chart_yaml.display()))?;
    let lock = match std::fs::read_to_string(dir.join("Chart.lock")) {
        Ok(t) => Some(
            serde_saphyr::from_str::<ChartFile>(&t)
                .map_err(|e| format!("cannot read {}: {e}", dir.join("Chart.lock").display()))?
                .dependencies,
        ),
        Err(_) => None,
    };
    let mut vendored = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("charts")) {
        for e in entries.flatten() {
            let Ok(meta) = std::fs::metadata(e.path()) else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let file = e.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                let Ok(t) = std::fs::read_to_string(e.path().join("Chart.yaml")) else { continue };
                if let Ok(c) = serde_saphyr::from_str::<ChartFile>(&t) {
                    let modified = newest(&e.path()).unwrap_or(modified);
                    vendored.push(Vendored::Dir { name: c.name, version: c.version, modified });
                }
            } else if file.ends_with(".tgz") {
                vendored.push(Vendored::Archive { file, modified });
            }
        }
    }
    let sources =
        chart.dependencies.iter().filter_map(|d| Some((d.name.clone(), newest(&d.file_source(dir)?)?))).collect();
    Ok(Some(Inspected { name: chart.name, deps: chart.dependencies, lock, vendored, sources }))
}

/// The newest modification time of `p` and everything under it; `None` if it does not exist.
fn newest(p: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(p).ok()?;
    let mut t = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if meta.is_dir() {
        for e in std::fs::read_dir(p).ok()?.flatten() {
            if let Some(m) = newest(&e.path()) {
                t = t.max(m);
            }
        }
    }
    Some(t)
}

/// Why a `file://` source cannot be used, if it cannot: it must be a chart directory (or an
/// archive) named as the dependency.
pub(crate) fn check_file_source(dep: &Dependency, chart_dir: &Path) -> Option<String> {
    let src = dep.file_source(chart_dir)?;
    if !src.exists() {
        return Some(format!("{} does not exist", src.display()));
    }
    if src.is_dir() {
        let Ok(t) = std::fs::read_to_string(src.join("Chart.yaml")) else {
            return Some(format!("{} has no Chart.yaml", src.display()));
        };
        match serde_saphyr::from_str::<ChartFile>(&t) {
            Ok(c) if c.name != dep.name => {
                return Some(format!("{} is the chart '{}', not '{}'", src.display(), c.name, dep.name));
            }
            Ok(_) => {}
            Err(e) => return Some(format!("cannot read {}: {e}", src.join("Chart.yaml").display())),
        }
    }
    None
}

/// Copy the chart at `chart` (absolute) under `root`, at `root` + its absolute path, so that
/// a relative `file://` source resolves from the copy to `root` + the source's absolute path:
/// a symlink to the source is put there. Returns the copy.
pub(crate) fn private_copy(chart: &Path, deps: &[Dependency], root: &Path) -> std::io::Result<PathBuf> {
    let rel = chart.strip_prefix("/").unwrap_or(chart);
    let copy = root.join(rel);
    copy_dir(chart, &copy)?;
    for d in deps {
        let (Some(src), Some(p)) = (d.file_source(chart), d.repository.strip_prefix("file://")) else { continue };
        if Path::new(p).is_absolute() {
            continue;
        }
        let at = normalize(&copy.join(p));
        if at.starts_with(&copy) || !at.starts_with(root) || at.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(&src, &at)?;
    }
    Ok(copy)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if std::fs::metadata(&src)?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dep(name: &str, version: &str, repository: &str) -> Dependency {
        Dependency { name: name.into(), version: version.into(), repository: repository.into() }
    }

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn archive(file: &str, s: u64) -> Vendored {
        Vendored::Archive { file: file.into(), modified: at(s) }
    }

    const COORD: &str = "file://../coordinator";

    #[test]
    fn a_chart_without_dependencies_is_fresh() {
        assert_eq!(verdict(&[], None, &[], &BTreeMap::new()), Verdict::Fresh);
    }

    #[test]
    fn no_lock_means_update() {
        let deps = [dep("coordinator", "0.1.0", COORD)];
        assert!(
            matches!(verdict(&deps, None, &[], &BTreeMap::new()), Verdict::Update(w) if w.contains("no Chart.lock"))
        );
    }

    #[test]
    fn a_lock_out_of_sync_with_chart_yaml_means_update() {
        let deps = [dep("coordinator", "0.1.0", COORD), dep("gateway", "^1.2", "oci://127.0.0.1:5000/charts")];
        let lock = [dep("coordinator", "0.1.0", COORD)];
        assert!(matches!(verdict(&deps, Some(&lock), &[], &BTreeMap::new()), Verdict::Update(_)));
        // Same dependency, another source.
        let lock =
            [dep("coordinator", "0.1.0", "file://../other"), dep("gateway", "1.2.5", "oci://127.0.0.1:5000/charts")];
        assert!(matches!(verdict(&deps, Some(&lock), &[], &BTreeMap::new()), Verdict::Update(_)));
        // An exact version that is not the locked one.
        let deps = [dep("coordinator", "0.2.0", COORD)];
        let lock = [dep("coordinator", "0.1.0", COORD)];
        assert!(
            matches!(verdict(&deps, Some(&lock), &[], &BTreeMap::new()), Verdict::Update(w) if w.contains("0.2.0") && w.contains("0.1.0"))
        );
    }

    #[test]
    fn a_constraint_the_lock_resolved_is_in_sync() {
        let deps = [dep("gateway", "^1.2", "https://charts.example/")];
        let lock = [dep("gateway", "1.2.5", "https://charts.example")];
        let v = [archive("gateway-1.2.5.tgz", 10)];
        assert_eq!(verdict(&deps, Some(&lock), &v, &BTreeMap::new()), Verdict::Fresh);
    }

    #[test]
    fn a_missing_archive_means_build_and_names_it() {
        let deps = [dep("coordinator", "0.1.0", COORD), dep("gateway", "~1", "oci://r/charts")];
        let lock = [dep("coordinator", "0.1.0", COORD), dep("gateway", "1.4.0", "oci://r/charts")];
        let v = [archive("coordinator-0.1.0.tgz", 10), archive("gateway-1.3.0.tgz", 10)];
        assert_eq!(
            verdict(&deps, Some(&lock), &v, &BTreeMap::new()),
            Verdict::Build("gateway 1.4.0 is missing from charts/".into())
        );
        assert!(
            matches!(verdict(&deps, Some(&lock), &[], &BTreeMap::new()), Verdict::Build(w) if w.contains("coordinator 0.1.0") && w.contains("gateway 1.4.0"))
        );
    }

    #[test]
    fn a_file_source_newer_than_its_archive_means_build() {
        let deps = [dep("coordinator", "0.1.0", COORD)];
        let lock = deps.clone();
        let v = [archive("coordinator-0.1.0.tgz", 10)];
        let sources = BTreeMap::from([("coordinator".to_string(), at(20))]);
        assert!(
            matches!(verdict(&deps, Some(&lock), &v, &sources), Verdict::Build(w) if w.contains("changed in file://../coordinator"))
        );
        let sources = BTreeMap::from([("coordinator".to_string(), at(5))]);
        assert_eq!(verdict(&deps, Some(&lock), &v, &sources), Verdict::Fresh);
        // A source that is gone leaves a built archive alone (helm installs from charts/).
        assert_eq!(verdict(&deps, Some(&lock), &v, &BTreeMap::new()), Verdict::Fresh);
    }

    #[test]
    fn an_unpacked_subchart_counts_as_vendored() {
        let deps = [dep("coordinator", "0.1.0", COORD)];
        let v = [Vendored::Dir { name: "coordinator".into(), version: "0.1.0".into(), modified: at(10) }];
        assert_eq!(verdict(&deps, Some(&deps), &v, &BTreeMap::new()), Verdict::Fresh);
    }

    #[test]
    fn exact_versions() {
        assert!(is_exact_version("0.1.0") && is_exact_version("v1.2.3-rc.1") && is_exact_version("1.0.0+b"));
        assert!(!is_exact_version("^1.2") && !is_exact_version("1.x") && !is_exact_version(">=1.0.0 <2"));
        assert!(!is_exact_version("*") && !is_exact_version("1.2"));
    }

    #[test]
    fn the_private_copy_resolves_relative_file_sources_to_the_real_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("charts");
        for c in ["umbrella/templates", "coordinator"] {
            std::fs::create_dir_all(base.join(c)).unwrap();
        }
        std::fs::write(base.join("umbrella/Chart.yaml"), "name: umbrella\n").unwrap();
        std::fs::write(base.join("coordinator/Chart.yaml"), "name: coordinator\n").unwrap();
        let root = tmp.path().join("private");
        let deps = [dep("coordinator", "0.1.0", COORD)];
        let copy = private_copy(&base.join("umbrella"), &deps, &root).unwrap();
        assert!(copy.starts_with(&root) && copy.join("Chart.yaml").exists() && copy.join("templates").is_dir());
        let resolved = deps[0].file_source(&copy).unwrap();
        assert_eq!(std::fs::canonicalize(resolved).unwrap(), std::fs::canonicalize(base.join("coordinator")).unwrap());
        assert_eq!(check_file_source(&deps[0], &copy), None);
        let missing = dep("coordinator", "0.1.0", "file://../nowhere");
        assert!(check_file_source(&missing, &base.join("umbrella")).unwrap().contains("does not exist"));
        let wrong = dep("gateway", "0.1.0", COORD);
        assert!(check_file_source(&wrong, &base.join("umbrella")).unwrap().contains("not 'gateway'"));
    }
}
