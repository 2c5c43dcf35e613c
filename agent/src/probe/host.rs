//! Host capacity probe via sysinfo: refreshes only the groups a check asks for and
//! keeps its sysinfo objects between calls (CPU utilisation is a difference of two
//! samples; the first sample is taken when the probe is built).
//!
//! Invariants: collection runs on the blocking pool (it reads /proc) under the
//! deadline; values are in base units; a threshold is an upper bound on every value of
//! that name (any resource); a named process that is not running fails the check.
//! A link speed comes from the check's `network_speed` table, else from
//! `/sys/class/net/<iface>/speed` (Linux, Mbit/s); an interface whose speed neither
//! knows (loopback, many virtual NICs: the file is missing, unreadable or `-1`) gets no
//! speed value, and the collector then derives no utilisation for it.
//!
//! Values (resource in brackets):
//!
//! | name                          | unit    | group       |
//! |-------------------------------|---------|-------------|
//! | `cpu_utilization_ratio`       | 0..1    | cpu         |
//! | `load1`, `load5`, `load15`    | load    | load        |
//! | `memory_used_bytes`           | bytes   | memory      |
//! | `memory_available_bytes`      | bytes   | memory      |
//! | `memory_total_bytes`          | bytes   | memory      |
//! | `swap_used_bytes`             | bytes   | memory      |
//! | `swap_total_bytes`            | bytes   | memory      |
//! | `filesystem_used_bytes`       | bytes   | filesystems [mount point] |
//! | `filesystem_total_bytes`      | bytes   | filesystems [mount point] |
//! | `filesystem_used_ratio`       | 0..1    | filesystems [mount point] |
//! | `filesystem_inodes_used`      | inodes  | filesystems [mount point] |
//! | `filesystem_inodes_total`     | inodes  | filesystems [mount point] |
//! | `network_rx_bytes`            | bytes, counter | network [interface] |
//! | `network_tx_bytes`            | bytes, counter | network [interface] |
//! | `network_rx_errors`           | count, counter | network [interface] |
//! | `network_tx_errors`           | count, counter | network [interface] |
//! | `network_speed_bytes_per_second` | bytes/s | network [interface], when known |
//! | `process_running`             | 1 or 0  | processes [process name] |

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use attest_config::HostCheck;
use attest_config::wire::{FailureReason, Phase, Value};
use sysinfo::{Disks, MemoryRefreshKind, Networks, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::time::Instant;

use super::net::{Failure, Outcome};
use super::{BuildError, Probe, ProbeFuture};

/// Every value name this probe can produce; thresholds must name one of them.
pub const VALUE_NAMES: &[&str] = &[
    "cpu_utilization_ratio",
    "load1",
    "load5",
    "load15",
    "memory_used_bytes",
    "memory_available_bytes",
    "memory_total_bytes",
    "swap_used_bytes",
    "swap_total_bytes",
    "filesystem_used_bytes",
    "filesystem_total_bytes",
    "filesystem_used_ratio",
    "filesystem_inodes_used",
    "filesystem_inodes_total",
    "network_rx_bytes",
    "network_tx_bytes",
    "network_rx_errors",
    "network_tx_errors",
    "network_speed_bytes_per_second",
    "process_running",
];

/// The sysinfo objects kept between probes; only the asked-for groups exist.
struct State {
    system: System,
    disks: Option<Disks>,
    networks: Option<Networks>,
}

pub struct HostProbe {
    spec: HostCheck,
    state: Arc<Mutex<State>>,
}

impl HostProbe {
    pub fn new(id: &str, spec: &HostCheck) -> Result<Self, BuildError> {
        if let Some(bad) = spec
            .thresholds
            .keys()
            .find(|k| !VALUE_NAMES.contains(&k.as_str()))
        {
            return Err(BuildError::invalid(
                id,
                format!(
                    "threshold on unknown value {bad:?}; known values: {}",
                    VALUE_NAMES.join(", ")
                ),
            ));
        }
        let unavailable = |e: sysinfo::Error| {
            BuildError::invalid(id, format!("host statistics unavailable: {e}"))
        };
        let mut system = System::new().map_err(unavailable)?;
        if spec.cpu {
            system.refresh_cpu_usage();
        }
        let disks = spec
            .filesystems
            .then(Disks::new)
            .transpose()
            .map_err(unavailable)?;
        let networks = spec
            .network
            .then(Networks::new)
            .transpose()
            .map_err(unavailable)?;
        Ok(HostProbe {
            spec: spec.clone(),
            state: Arc::new(Mutex::new(State {
                system,
                disks,
                networks,
            })),
        })
    }

    async fn run(&self, deadline: Instant, out: &mut Outcome) -> Result<(), Failure> {
        let state = self.state.clone();
        let spec = self.spec.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut guard = match state.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            collect(&mut guard, &spec)
        });
        let collected = out
            .timed(Phase::Collect, deadline, async {
                task.await.map_err(|e| {
                    Failure::new(
                        FailureReason::Agent,
                        Phase::Collect,
                        format!("collection task failed: {e}"),
                    )
                })
            })
            .await?;
        out.values.extend(collected);
        self.judge(&out.values)
    }

    fn judge(&self, values: &[Value]) -> Result<(), Failure> {
        for v in values {
            let what = || match &v.resource {
                Some(r) => format!("{}[{r}]", v.name),
                None => v.name.clone(),
            };
            if v.name == "process_running" && v.value < 1.0 {
                return Err(Failure::check(
                    FailureReason::Threshold,
                    format!("process {} not running", what()),
                ));
            }
            if let Some(limit) = self.spec.thresholds.get(&v.name)
                && v.value > *limit
            {
                return Err(Failure::check(
                    FailureReason::Threshold,
                    format!("{} = {} exceeds {limit}", what(), v.value),
                ));
            }
        }
        Ok(())
    }
}

impl Probe for HostProbe {
    fn probe(&self, deadline: Instant) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut out = Outcome::default();
            let result = self.run(deadline, &mut out).await;
            out.into_report(result)
        })
    }
}

fn val(name: &str, resource: Option<&str>, value: f64) -> Value {
    Value {
        name: name.to_string(),
        resource: resource.map(str::to_string),
        value,
    }
}

fn collect(state: &mut State, spec: &HostCheck) -> Vec<Value> {
    let mut values = Vec::new();
    if spec.cpu {
        state.system.refresh_cpu_usage();
        let ratio = f64::from(state.system.global_cpu_usage()) / 100.0;
        values.push(val("cpu_utilization_ratio", None, ratio.clamp(0.0, 1.0)));
    }
    if spec.load
        && let Ok(load) = System::load_average()
    {
        values.push(val("load1", None, load.one));
        values.push(val("load5", None, load.five));
        values.push(val("load15", None, load.fifteen));
    }
    if spec.memory {
        collect_memory(&mut state.system, &mut values);
    }
    if let Some(disks) = &mut state.disks {
        collect_filesystems(disks, &mut values);
    }
    if let Some(networks) = &mut state.networks {
        collect_network(networks, &spec.network_speeds, &mut values);
    }
    if !spec.processes.is_empty() {
        collect_processes(&mut state.system, &spec.processes, &mut values);
    }
    values
}

fn collect_memory(system: &mut System, values: &mut Vec<Value>) {
    system.refresh_memory_specifics(MemoryRefreshKind::everything());
    values.push(val("memory_used_bytes", None, system.used_memory() as f64));
    values.push(val(
        "memory_available_bytes",
        None,
        system.available_memory() as f64,
    ));
    values.push(val(
        "memory_total_bytes",
        None,
        system.total_memory() as f64,
    ));
    values.push(val("swap_used_bytes", None, system.used_swap() as f64));
    values.push(val("swap_total_bytes", None, system.total_swap() as f64));
}

fn collect_filesystems(disks: &mut Disks, values: &mut Vec<Value>) {
    disks.refresh(true);
    let mut seen = BTreeSet::new();
    for disk in disks.iter() {
        let mount = disk.mount_point();
        let name = mount.to_string_lossy().to_string();
        if !seen.insert(name.clone()) {
            continue;
        }
        let total = disk.total_space();
        let used = total.saturating_sub(disk.available_space());
        values.push(val("filesystem_used_bytes", Some(&name), used as f64));
        values.push(val("filesystem_total_bytes", Some(&name), total as f64));
        if total > 0 {
            values.push(val(
                "filesystem_used_ratio",
                Some(&name),
                used as f64 / total as f64,
            ));
        }
        if let Some((used_inodes, total_inodes)) = inodes(mount) {
            values.push(val(
                "filesystem_inodes_used",
                Some(&name),
                used_inodes as f64,
            ));
            values.push(val(
                "filesystem_inodes_total",
                Some(&name),
                total_inodes as f64,
            ));
        }
    }
}

/// `(used, total)` inodes via statvfs; `None` where the filesystem has no inode count.
// `fsfilcnt_t` is u32 on some targets, u64 on others: the casts are needed there.
#[allow(clippy::unnecessary_cast)]
fn inodes(mount: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(mount.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid NUL-terminated string and `st` points to writable
    // memory of the right type; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised the struct.
    let st = unsafe { st.assume_init() };
    let total = st.f_files as u64;
    (total > 0).then(|| (total.saturating_sub(st.f_ffree as u64), total))
}

fn collect_network(
    networks: &mut Networks,
    configured: &BTreeMap<String, u64>,
    values: &mut Vec<Value>,
) {
    networks.refresh(true);
    let mut names: Vec<_> = networks.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (iface, data) in names {
        let name = iface.to_string_lossy();
        values.push(val(
            "network_rx_bytes",
            Some(&name),
            data.total_received() as f64,
        ));
        values.push(val(
            "network_tx_bytes",
            Some(&name),
            data.total_transmitted() as f64,
        ));
        values.push(val(
            "network_rx_errors",
            Some(&name),
            data.total_errors_on_received() as f64,
        ));
        values.push(val(
            "network_tx_errors",
            Some(&name),
            data.total_errors_on_transmitted() as f64,
        ));
        if let Some(speed) = link_speed(&name, configured) {
            values.push(val(
                "network_speed_bytes_per_second",
                Some(&name),
                speed as f64,
            ));
        }
    }
}

/// The configured speed of `iface`, else what Linux reports; `None` when neither knows.
fn link_speed(iface: &str, configured: &BTreeMap<String, u64>) -> Option<u64> {
    if let Some(&s) = configured.get(iface) {
        return Some(s);
    }
    // An interface name is one path component; never follow anything else.
    if iface.is_empty() || iface.contains('/') || iface.starts_with('.') {
        return None;
    }
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(iface).join("speed"));
    text.ok().and_then(|t| sysfs_speed(&t))
}

/// `/sys/class/net/*/speed` holds Mbit/s; `-1` (or 0) means unknown.
fn sysfs_speed(text: &str) -> Option<u64> {
    let mbit: i64 = text.trim().parse().ok()?;
    u64::try_from(mbit)
        .ok()
        .filter(|m| *m > 0)
        .map(|m| m * 1_000_000 / 8)
}

fn collect_processes(system: &mut System, wanted: &[String], values: &mut Vec<Value>) {
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    for name in wanted {
        let running = system
            .processes_by_exact_name(OsStr::new(name))
            .next()
            .is_some();
        values.push(val(
            "process_running",
            Some(name),
            if running { 1.0 } else { 0.0 },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_speed_is_megabits_and_minus_one_is_unknown() {
        assert_eq!(sysfs_speed("1000\n"), Some(125_000_000));
        assert_eq!(sysfs_speed("10"), Some(1_250_000));
        assert_eq!(sysfs_speed("-1\n"), None);
        assert_eq!(sysfs_speed("0"), None);
        assert_eq!(sysfs_speed("fast"), None);
    }

    #[test]
    fn configured_speed_wins_and_odd_names_are_not_paths() {
        let configured = BTreeMap::from([("lo".to_string(), 42u64)]);
        assert_eq!(link_speed("lo", &configured), Some(42));
        assert_eq!(link_speed("../../etc", &BTreeMap::new()), None);
        // Loopback has no speed on Linux (the read fails with EINVAL).
        assert_eq!(link_speed("lo", &BTreeMap::new()), None);
    }
}
