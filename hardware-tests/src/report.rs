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
    /// `ERROR <text>`, with the scenario that was running (`None`: the guest's
    /// own set-up, before any scenario — that fails them all).
    pub errors: Vec<(Option<String>, String)>,
    /// scenario -> the number of checks it declared (`PLAN <scenario> <n>`).
    pub planned: BTreeMap<String, usize>,
    /// The scenario between its BEGIN and END.
    current: Option<String>,
    pub done: bool,
}

fn fields(rest: &str) -> BTreeMap<String, String> {
    rest.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Report {
    /// Take in the report of another boot (other scenarios): its checks,
    /// plans, ends, measures, notes and errors join this one's. An error of
    /// the other guest's own set-up stays attributed to no scenario — it
    /// fails every scenario, as it would have in one boot.
    pub fn merge(&mut self, other: Report) {
        self.pfs.extend(other.pfs);
        self.vfs.extend(other.vfs);
        self.checks.extend(other.checks);
        self.ended.extend(other.ended);
        self.begun.extend(other.begun);
        self.measures.extend(other.measures);
        self.notes.extend(other.notes);
        self.errors.extend(other.errors);
        self.planned.extend(other.planned);
        self.done = (self.done || self.begun.is_empty()) && other.done;
    }

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
            "BEGIN" => {
                self.begun.push(rest.to_string());
                self.current = Some(rest.to_string());
            }
            "END" => {
                let mut it = rest.split_whitespace();
                if let (Some(name), Some(rc)) = (it.next(), it.next()) {
                    let rc = rc.trim_start_matches("rc=").parse().unwrap_or(-1);
                    self.ended.insert(name.to_string(), rc);
                }
                self.current = None;
            }
            "PLAN" => {
                let mut it = rest.split_whitespace();
                if let (Some(name), Some(n)) = (it.next(), it.next()) {
                    // An unparsable count plans an impossible number of checks.
                    self.planned
                        .insert(name.to_string(), n.parse().unwrap_or(usize::MAX));
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
            "ERROR" => self.errors.push((self.current.clone(), rest.to_string())),
            "NOTE" => self.notes.push(rest.to_string()),
            "DONE" => self.done = true,
            _ => {}
        }
    }

    /// Why `scenario` did not pass, or `None` when it ran to its end (rc 0),
    /// reported exactly the checks it planned, each passed, and neither it nor
    /// the guest's set-up logged an ERROR.
    pub fn scenario_failure(&self, scenario: &str) -> Option<String> {
        if !self.begun.iter().any(|s| s == scenario) {
            return Some(format!("scenario {scenario} never started"));
        }
        let Some(rc) = self.ended.get(scenario) else {
            return Some(format!("scenario {scenario} never finished"));
        };
        let mut why = Vec::new();
        if *rc != 0 {
            why.push(format!(
                "its script stopped with rc={rc} before its end (a syntax error or an exit)"
            ));
        }
        for (at, e) in &self.errors {
            match at {
                Some(s) if s == scenario => why.push(format!("ERROR {e}")),
                None => why.push(format!("ERROR in the guest's set-up: {e}")),
                _ => {}
            }
        }
        let checks: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.scenario == scenario)
            .collect();
        match self.planned.get(scenario) {
            None => why.push("it declared no plan (`plan N` in lib.sh)".into()),
            Some(n) if *n != checks.len() => why.push(format!(
                "it planned {n} checks and reported {}",
                checks.len()
            )),
            _ => {}
        }
        if checks.is_empty() {
            why.push("it reported no checks".into());
        }
        why.extend(
            checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail)),
        );
        (!why.is_empty()).then(|| format!("{scenario}: {}", why.join("; ")))
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
            "VFPLEX-LAB: PLAN 00-lab 2",
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

    fn run(lines: &[&str]) -> Report {
        let mut r = Report::default();
        for l in lines {
            r.feed(&format!("{PREFIX}{l}"));
        }
        r
    }

    #[test]
    fn a_scenario_passes_only_when_it_ran_its_plan_to_the_end() {
        let good = [
            "BEGIN s",
            "PLAN s 2",
            "CHECK s a ok",
            "CHECK s b ok",
            "END s rc=0",
        ];
        assert_eq!(run(&good).scenario_failure("s"), None);
        let cases: [(&[&str], &str); 6] = [
            (
                &["BEGIN s", "PLAN s 2", "CHECK s a ok", "END s rc=2"],
                "rc=2",
            ),
            (
                &[
                    "BEGIN s",
                    "PLAN s 3",
                    "CHECK s a ok",
                    "CHECK s b ok",
                    "END s rc=0",
                ],
                "planned 3 checks and reported 2",
            ),
            (&["BEGIN s", "CHECK s a ok", "END s rc=0"], "no plan"),
            (
                &[
                    "BEGIN s",
                    "PLAN s 1",
                    "ERROR insmod x failed",
                    "CHECK s a ok",
                    "END s rc=0",
                ],
                "ERROR insmod x failed",
            ),
            (
                &[
                    "ERROR insmod igb failed",
                    "BEGIN s",
                    "PLAN s 1",
                    "CHECK s a ok",
                    "END s rc=0",
                ],
                "guest's set-up",
            ),
            (&["BEGIN s", "PLAN s 1", "CHECK s a ok"], "never finished"),
        ];
        for (lines, needle) in cases {
            let f = run(lines).scenario_failure("s");
            assert!(
                f.as_deref().is_some_and(|f| f.contains(needle)),
                "{lines:?}: {f:?}"
            );
        }
        // An ERROR in another scenario is that scenario's.
        let r = run(&[
            "BEGIN t",
            "PLAN t 1",
            "ERROR t broke",
            "CHECK t a ok",
            "END t rc=0",
            "BEGIN s",
            "PLAN s 1",
            "CHECK s a ok",
            "END s rc=0",
        ]);
        assert_eq!(r.scenario_failure("s"), None);
        assert!(r.scenario_failure("t").is_some());
    }
}
