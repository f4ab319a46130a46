#!/usr/bin/env python3
"""The test command's last line: what ran and what did not, and why.

Usage: test-summary.py SUMMARY_DIR FAILED_PHASE HOST_OK TOTAL_SECONDS PHASE...
where each PHASE is "name|seconds|status" as scripts/test.sh records it.
Reads the parts' own summaries in SUMMARY_DIR (lab.json from hardware-tests,
e2e.json and e2e-admission.json from the e2e, lab-host-netdevsim.json, marked
optional) and the phases' logs (NAME.log). Prints one line; exits 0 when every
part ran, 2 when a part (not an optional one) was skipped, 1 when something
failed.
"""

import json
import os
import re
import sys

PARTS = ["setup", "workspace", "determinism", "lab", "kit", "e2e", "fuzz"]


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def part_json(d, name):
    text = read(os.path.join(d, name))
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def reasons(entries):
    """Skipped or failed entries, grouped by their reason."""
    by = {}
    for e in entries:
        by.setdefault(e.get("why", "?"), []).append(e.get("name", "?"))
    out = []
    for why, names in by.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        out.append(f"{shown}: {why[:160]}")
    return "; ".join(out)


def main():
    d, failed, host_ok, total = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
    phases = {}
    for p in sys.argv[5:]:
        name, secs, status = (p.split("|") + ["", ""])[:3]
        phases[name] = status
    said = []
    skipped_required = False
    any_failed = bool(failed) or not host_ok

    log = read(os.path.join(d, "workspace.log")) or ""
    passed = sum(int(m) for m in re.findall(r"test result: ok\. (\d+) passed", log))
    if "workspace" in phases:
        said.append(f"workspace {passed} tests" + ("" if phases["workspace"] == "0" else " FAILED"))

    log = read(os.path.join(d, "determinism.log")) or ""
    m = re.search(r"determinism: (\d+) runs of (\d+) test binaries, all green", log)
    red = re.search(r"determinism: RED on run (\d+) of (\d+): (\S+)", log)
    if m:
        said.append(f"determinism {m.group(1)} runs x {m.group(2)} binaries")
    elif red:
        said.append(f"determinism RED on run {red.group(1)} of {red.group(2)} ({red.group(3)})")
    elif "determinism" in phases:
        said.append("determinism FAILED")

    for part, file, unit in (("lab", "lab.json", "scenarios"), ("e2e", "e2e.json", "steps"),
                             ("e2e", "e2e-admission.json", "admission steps")):
        if part not in phases:
            continue
        s = part_json(d, file)
        if s is None:
            said.append(f"{part}: no summary written (it did not get to report)")
            any_failed = True
            continue
        ran, fail, skip = s.get("ran", []), s.get("failed", []), s.get("skipped", [])
        text = f"{part} {len(ran)} {unit} run, {len(skip)} skipped"
        if fail:
            any_failed = True
            text += f", {len(fail)} FAILED ({reasons(fail)})"
        if skip:
            skipped_required = True
            text += f" ({reasons(skip)})"
        said.append(text)

    log = read(os.path.join(d, "fuzz.log")) or ""
    ok = len(re.findall(r"^fuzz \S+\s+ok ", log, re.M))
    crashed = len(re.findall(r"^fuzz \S+\s+CRASH", log, re.M))
    if "fuzz" in phases:
        said.append(f"fuzz {ok} targets" + (f", {crashed} CRASHED" if crashed else ""))

    not_run = [p for p in PARTS if p not in phases]
    if not_run:
        said.append("not run: " + ", ".join(not_run) + (f" (after {failed} failed)" if failed else ""))

    opt = part_json(d, "lab-host-netdevsim.json")
    if opt and opt.get("skipped"):
        said.append(f"optional, skipped: {reasons(opt['skipped'])}")
    if opt and opt.get("failed"):
        any_failed = True
        said.append(f"FAILED: {reasons(opt['failed'])}")

    left = read(os.path.join(d, "host.left"))
    if not host_ok:
        items = [l for l in (left or "").splitlines() if l]
        said.append(f"host LEFT CHANGED ({len(items)}: {'; '.join(items[:3])}{' ...' if len(items) > 3 else ''})")
    else:
        said.append("host as found")

    if any_failed:
        verdict, code = "FAILED" + (f" ({failed})" if failed else ""), 1
    elif skipped_required:
        verdict, code = "NOT ALL RAN", 2
    else:
        verdict, code = "PASSED", 0
    print(f"test.sh: {verdict} in {total // 60}m{total % 60:02d}s: " + "; ".join(said))
    return code


if __name__ == "__main__":
    sys.exit(main())
