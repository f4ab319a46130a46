//! What a lab run reports: the console lines prefixed `VFPLEX-LAB: `, parsed.

use std::collections::BTreeMap;

pub const PREFIX: &str = "VFPLEX-LAB: ";

/// One `CHECK <scenario> <name> ok|FAIL <detail>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub scenario: String,
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Everything a run reported.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub booted: Option<String>,
    pub pfs: Vec<BTreeMap<String, String>>,
    pub vfs: Vec<BTreeMap<String, String>>,
    pub checks: Vec<Check>,
    /// scenario -> exit status of its script.
    pub ended: BTreeMap<String, i32>,
    pub begun: Vec<String>,
    pub measures: Vec<(String, String, String)>,
    /// `NOTE <text>`: what a scenario wants a person to read.
    pub notes: Vec<String>,
    pub errors: Vec<String>,
    pub done: bool,
}

fn fields(rest: &str) -> BTreeMap<String, String> {
    rest.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Report {
    /// Feed one console line; lines without the prefix are ignored. The prefix may
    /// follow kernel output on the same line, so it is searched, not anchored.
    pub fn feed(&mut self, line: &str) {
        let Some(pos) = line.find(PREFIX) else { return };
        let body = line[pos + PREFIX.len()..].trim_end();
        let (kind, rest) = body.split_once(' ').unwrap_or((body, ""));
        match kind {
            "BOOTED" => self.booted = Some(rest.to_string()),
            "PF" => self.pfs.push(fields(rest)),
            "VF" => self.vfs.push(fields(rest)),
            "BEGIN" => self.begun.push(rest.to_string()),
            "END" => {
                let mut it = rest.split_whitespace();
                if let (Some(name), Some(rc)) = (it.next(), it.next()) {
                    let rc = rc.trim_start_matches("rc=").parse().unwrap_or(-1);
                    self.ended.insert(name.to_string(), rc);
                }
            }
            "CHECK" => {
                let mut it = rest.splitn(4, ' ');
                let scenario = it.next().unwrap_or_default().to_string();
                let name = it.next().unwrap_or_default().to_string();
                let ok = it.next() == Some("ok");
                let detail = it.next().unwrap_or_default().to_string();
                self.checks.push(Check {
                    scenario,
                    name,
                    ok,
                    detail,
                });
            }
            "MEASURE" => {
                let mut it = rest.splitn(3, ' ');
                let s = it.next().unwrap_or_default().to_string();
                let n = it.next().unwrap_or_default().to_string();
                let v = it.next().unwrap_or_default().to_string();
                self.measures.push((s, n, v));
            }
            "ERROR" => self.errors.push(rest.to_string()),
            "NOTE" => self.notes.push(rest.to_string()),
            "DONE" => self.done = true,
            _ => {}
        }
    }

    /// Why `scenario` did not pass, or `None` when it ran every check and each passed.
    pub fn scenario_failure(&self, scenario: &str) -> Option<String> {
        if !self.begun.iter().any(|s| s == scenario) {
            return Some(format!("scenario {scenario} never started"));
        }
        if !self.ended.contains_key(scenario) {
            return Some(format!("scenario {scenario} never finished"));
        }
        let checks: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.scenario == scenario)
            .collect();
        if checks.is_empty() {
            return Some(format!("scenario {scenario} reported no checks"));
        }
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        (!failed.is_empty()).then(|| format!("{scenario}: {}", failed.join("; ")))
    }

    /// The VF inventory as a table, for the test output.
    pub fn inventory(&self) -> String {
        let mut s = String::new();
        for pf in &self.pfs {
            s.push_str(&format!(
                "PF {} {} driver={} totalvfs={}\n",
                pf.get("name").map_or("?", String::as_str),
                pf.get("pci").map_or("?", String::as_str),
                pf.get("driver").map_or("?", String::as_str),
                pf.get("totalvfs").map_or("?", String::as_str),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for vf in &self.vfs {
            let g = |k: &str| vf.get(k).map_or("-", String::as_str).to_string();
            if !seen.insert((g("pf"), g("index"))) {
                continue;
            }
            s.push_str(&format!(
                "  VF {} of {}: {} {}:{} driver={} netdev={}\n",
                g("index"),
                g("pf"),
                g("pci"),
                g("vendor"),
                g("device"),
                g("driver"),
                g("netdev"),
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_line_kind() {
        let mut r = Report::default();
        for line in [
            "[    1.0] igb: loaded",
            "VFPLEX-LAB: BOOTED kernel=6.12 pfs=eth0",
            "VFPLEX-LAB: PF name=eth0 pci=0000:01:00.0 totalvfs=7 driver=igb",
            "VFPLEX-LAB: BEGIN 00-lab",
            "VFPLEX-LAB: VF pf=eth0 pf_pci=0000:01:00.0 index=0 pci=0000:01:10.0 vendor=0x8086 device=0x10ca driver=igbvf netdev=eth1",
            "VFPLEX-LAB: CHECK 00-lab vf-count ok",
            "junk VFPLEX-LAB: CHECK 00-lab ping FAIL 100% packet loss",
            "VFPLEX-LAB: MEASURE 00-lab add_ms 12",
            "VFPLEX-LAB: END 00-lab rc=0",
            "VFPLEX-LAB: DONE",
        ] {
            r.feed(line);
        }
        assert!(r.done);
        assert_eq!(r.vfs[0]["pci"], "0000:01:10.0");
        assert_eq!(r.checks.len(), 2);
        assert_eq!(r.checks[1].detail, "100% packet loss");
        assert_eq!(r.measures[0].2, "12");
        let f = r.scenario_failure("00-lab").unwrap();
        assert!(f.contains("ping"), "{f}");
        assert!(r.scenario_failure("01-x").is_some());
        assert!(r.inventory().contains("0000:01:10.0"));
    }
}
