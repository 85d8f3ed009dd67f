//! Finding processes to trace: `/proc` scans, an executable's identity, container labels from
//! the cgroup path, and the user's filters. Reads procfs only; no BPF.

use std::{os::unix::fs::MetadataExt, path::PathBuf};

/// Which file a process runs, as the kernel's uprobes see it.
///
/// Two containers started from one image reach the same file through different overlay mounts:
/// `stat` then gives different `st_dev` but the same `st_ino` (overlayfs reports the real
/// inode number when its layers share a filesystem), and a uprobe attached through either path
/// lands on the same real inode and fires for both. Keying on (inode, size, mtime) rather than
/// (device, inode) attaches such a file once, so its events are not counted twice.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ExeIdentity {
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds.
    pub mtime_ns: i128,
}

/// What the agent learns about one process when it finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id (tgid).
    pub pid: u32,
    /// `/proc/PID/exe`: opens the right file even inside another mount namespace.
    pub exe_path: PathBuf,
    /// The executable's path as the process sees it (may end in " (deleted)").
    pub exe_display: String,
    /// The file's identity.
    pub identity: ExeIdentity,
    /// Container labels from `/proc/PID/cgroup`.
    pub container: Container,
}

/// Container and Kubernetes pod a process runs in, from its cgroup path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    /// The cgroup v2 path (or the first v1 hierarchy's path).
    pub cgroup: String,
    /// The container runtime's 64-hex container id, if the path names one.
    pub container_id: String,
    /// The Kubernetes pod UID, if the path names one (`kubepods…pod<UID>…`).
    pub pod_uid: String,
}

/// The identity of an open file.
pub fn identity(file: &std::fs::File) -> Option<ExeIdentity> {
    file.metadata().ok().map(|m| identity_of(&m))
}

fn identity_of(meta: &std::fs::Metadata) -> ExeIdentity {
    ExeIdentity {
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    }
}

/// Every process id in `/proc`.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Reads what the agent needs about `pid`; `None` for kernel threads, exited processes and
/// processes whose executable cannot be resolved.
pub fn process(pid: u32) -> Option<ProcessInfo> {
    let exe_path = PathBuf::from(format!("/proc/{pid}/exe"));
    let display = std::fs::read_link(&exe_path).ok()?;
    let identity = identity_of(&std::fs::metadata(&exe_path).ok()?);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    Some(ProcessInfo {
        pid,
        exe_path,
        exe_display: display.display().to_string(),
        identity,
        container: parse_cgroup(&cgroup),
    })
}

/// Container labels from a `/proc/PID/cgroup` text.
///
/// Handles the shapes Kubernetes and container runtimes produce:
/// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/
/// cri-containerd-<id>.scope` (systemd driver), `/kubepods/burstable/pod<uid>/<id>` (cgroupfs
/// driver), `/system.slice/docker-<id>.scope` and `/docker/<id>`.
pub fn parse_cgroup(text: &str) -> Container {
    // (hierarchy id, path) per line. cgroup v2 is the "0::" line. On hybrid hosts it is
    // often "/" while the v1 hierarchies hold the real path: then take the first v1 path that
    // names a container or pod, else the first that is not the root.
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let id = f.next()?;
            f.next()?;
            Some((id, f.next()?.trim()))
        })
        .collect();
    let named =
        |p: &str| p.contains("pod") || p.split('/').any(|part| container_id(part).is_some());
    let path = lines
        .iter()
        .find(|(id, p)| *id == "0" && *p != "/")
        .or_else(|| lines.iter().find(|(_, p)| named(p)))
        .or_else(|| lines.iter().find(|(_, p)| *p != "/"))
        .or_else(|| lines.first())
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let mut c = Container {
        cgroup: path.clone(),
        ..Container::default()
    };
    for part in path.split('/') {
        if let Some(i) = part.rfind("pod") {
            let rest = &part[i + 3..];
            let uid: String = rest
                .chars()
                .take_while(|ch| ch.is_ascii_hexdigit() || *ch == '_' || *ch == '-')
                .map(|ch| if ch == '_' { '-' } else { ch })
                .collect();
            if uid.len() == 36 {
                c.pod_uid = uid;
            }
        }
        if let Some(id) = container_id(part) {
            c.container_id = id.to_string();
        }
    }
    c
}

/// The container id in one cgroup path component: a 64-hex run, possibly wrapped as
/// `<runtime>-<id>.scope` or `<runtime>:<id>`.
fn container_id(part: &str) -> Option<&str> {
    let core = part.strip_suffix(".scope").unwrap_or(part);
    let core = core.rsplit('-').next().unwrap_or(core);
    let core = core.rsplit(':').next().unwrap_or(core);
    (core.len() == 64 && core.bytes().all(|b| b.is_ascii_hexdigit())).then_some(core)
}

/// The executable's file name, as used in metric labels ("server", not "/app/bin/server").
pub fn exe_name(display: &str) -> String {
    let path = display.strip_suffix(" (deleted)").unwrap_or(display);
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Shell-style match with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Which processes the agent may trace.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Executable name globs to trace (empty: all).
    pub include: Vec<String>,
    /// Executable name globs never to trace.
    pub exclude: Vec<String>,
    /// Cgroup path substrings a process must match one of (empty: all).
    pub cgroups: Vec<String>,
    /// Cgroup path substrings that exclude a process.
    pub exclude_cgroups: Vec<String>,
    /// Container id prefixes a process must match one of (empty: all).
    pub containers: Vec<String>,
}

impl Filters {
    /// Whether a process passes every filter.
    pub fn allows(&self, p: &ProcessInfo) -> bool {
        let name = exe_name(&p.exe_display);
        let cg = &p.container.cgroup;
        (self.include.is_empty() || self.include.iter().any(|g| glob(g, &name)))
            && !self.exclude.iter().any(|g| glob(g, &name))
            && (self.cgroups.is_empty() || self.cgroups.iter().any(|s| cg.contains(s.as_str())))
            && !self.exclude_cgroups.iter().any(|s| cg.contains(s.as_str()))
            && (self.containers.is_empty()
                || self.containers.iter().any(|c| {
                    !p.container.container_id.is_empty()
                        && p.container.container_id.starts_with(c.as_str())
                }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";

    #[test]
    fn test_cgroup_kubernetes_systemd_driver() {
        let text = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c4d5e6f_1a2b_4c3d_8e9f_0a1b2c3d4e5f.slice/cri-containerd-{ID}.scope\n"
        );
        let c = parse_cgroup(&text);
        assert_eq!(c.pod_uid, "0c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f");
        assert_eq!(c.container_id, ID);
    }

    #[test]
    fn test_cgroup_kubernetes_cgroupfs_driver_and_docker() {
        let c = parse_cgroup(&format!(
            "0::/kubepods/besteffort/pod0c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f/{ID}\n"
        ));
        assert_eq!(c.pod_uid, "0c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f");
        assert_eq!(c.container_id, ID);
        let c = parse_cgroup(&format!("0::/system.slice/docker-{ID}.scope\n"));
        assert_eq!((c.pod_uid.as_str(), c.container_id.as_str()), ("", ID));
        // cgroup v1: first hierarchy.
        let c = parse_cgroup(&format!("12:pids:/docker/{ID}\n11:cpu:/docker/{ID}\n"));
        assert_eq!(c.container_id, ID);
        assert_eq!(c.cgroup, format!("/docker/{ID}"));
    }

    #[test]
    fn test_cgroup_hybrid_host_prefers_the_v1_path_naming_the_container() {
        let text = format!(
            "12:memory:/kubepods/burstable/pod0c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f/{ID}\n11:pids:/\n0::/\n"
        );
        let c = parse_cgroup(&text);
        assert_eq!(c.container_id, ID);
        assert_eq!(c.pod_uid, "0c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f");
        // This VM's own shape: v2 at the root, one odd v1 path.
        let c = parse_cgroup("4:memory:/process_api/1c77\n0::/\n");
        assert_eq!(c.cgroup, "/process_api/1c77");
        assert_eq!(parse_cgroup("1:cpu:/\n0::/\n").cgroup, "/");
    }

    #[test]
    fn test_cgroup_host_process_has_no_container() {
        let c = parse_cgroup("0::/user.slice/user-0.slice/session-3.scope\n");
        assert_eq!(c.container_id, "");
        assert_eq!(c.pod_uid, "");
        assert_eq!(c.cgroup, "/user.slice/user-0.slice/session-3.scope");
        assert_eq!(parse_cgroup(""), Container::default());
    }

    #[test]
    fn test_glob_and_names() {
        assert!(glob("*", "server"));
        assert!(glob("serv*", "server"));
        assert!(glob("*-api", "orders-api"));
        assert!(glob("s?rver", "server"));
        assert!(!glob("serv", "server"));
        assert!(!glob("*-api", "orders-apix"));
        assert_eq!(exe_name("/app/bin/server (deleted)"), "server");
        assert_eq!(exe_name("server"), "server");
    }

    #[test]
    fn test_filters() {
        let p = ProcessInfo {
            pid: 1,
            exe_path: "/proc/1/exe".into(),
            exe_display: "/app/orders-api".into(),
            identity: ExeIdentity {
                ino: 1,
                size: 2,
                mtime_ns: 3,
            },
            container: parse_cgroup(&format!("0::/system.slice/docker-{ID}.scope\n")),
        };
        assert!(Filters::default().allows(&p));
        let f = Filters {
            include: vec!["*-api".into()],
            ..Filters::default()
        };
        assert!(f.allows(&p));
        let f = Filters {
            exclude: vec!["orders*".into()],
            ..Filters::default()
        };
        assert!(!f.allows(&p));
        let f = Filters {
            containers: vec!["3f4e".into()],
            cgroups: vec!["docker".into()],
            ..Filters::default()
        };
        assert!(f.allows(&p));
        let f = Filters {
            exclude_cgroups: vec!["system.slice".into()],
            ..Filters::default()
        };
        assert!(!f.allows(&p));
    }
}
