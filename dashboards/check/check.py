#!/usr/bin/env python3
"""Checks the syncer's Grafana dashboard and Prometheus rules against a real Prometheus scraping a real syncer.

1. Static: the dashboard JSON is what dashboards/build.py generates and is importable as written (schemaVersion,
   no __inputs, the datasource/vc variables, unique panel ids, every query on the ${datasource} variable);
   `promtool check rules` and `promtool test rules` (the alert unit tests) pass.
2. Live: starts the syncer's embedded default (simulated super + tenant API servers in-process) with its metrics
   on a loopback port, drives extra pod load into the simulated tenants over their HTTP API, starts Prometheus
   on loopback scraping the syncer every second with the rules loaded, and waits until the series have enough
   samples and every rule has been evaluated.
3. Evaluates through /api/v1/query every panel query of the dashboard (with $vc, $__rate_interval and
   $__interval substituted as Grafana would: once with "All", once with a single VC), the vc variable query,
   every recording rule (its expression and the recorded series), and every alert expression WITHOUT its
   threshold: each alert expression is split at top-level `and`/`or`/`unless` and comparison operators and each
   operand that is not a number must return data. So "no data" means a broken query (wrong metric or label
   name), never a quiet alert. Any error or empty result fails the check.

Python 3 standard library only. Bounded in time; every child process is stopped on exit.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
RULES_DIR = DASHBOARDS / "rules"
JOB = "vc-syncer"
RATE_INTERVAL = "15s"
INTERVAL = "2s"


class CheckFailed(Exception):
    """A check failed; the message says which and why."""


def log(msg):
    print(f"[dashboards-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


# ---------------------------------------------------------------------------------------------------------------
# Static checks


def dashboard_files():
    return sorted(p for p in DASHBOARDS.glob("*.json"))


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def static_checks():
    out = subprocess.run([sys.executable, str(DASHBOARDS / "build.py"), "--check"], capture_output=True, text=True)
    if out.returncode != 0:
        raise CheckFailed(f"dashboard JSON out of date: {out.stderr.strip()}")
    files = dashboard_files()
    if not files:
        raise CheckFailed("no dashboard JSON in dashboards/")
    for path in files:
        d = json.loads(path.read_text(encoding="utf-8"))
        where = path.name
        if "__inputs" in d:
            raise CheckFailed(f"{where}: has __inputs (must import without a data source mapping step)")
        if int(d.get("schemaVersion", 0)) < 39:
            raise CheckFailed(f"{where}: schemaVersion {d.get('schemaVersion')} < 39")
        if not d.get("uid") or not d.get("title"):
            raise CheckFailed(f"{where}: uid and title are required")
        variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
        ds = variables.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            raise CheckFailed(f"{where}: needs a `datasource` variable of type datasource (prometheus)")
        vc = variables.get("vc")
        if not vc or vc.get("type") != "query" or not vc.get("multi") or not vc.get("includeAll"):
            raise CheckFailed(f"{where}: needs a `vc` query variable with multi and include all")
        ids = set()
        for p in walk_panels(d.get("panels", [])):
            if p["id"] in ids:
                raise CheckFailed(f"{where}: duplicate panel id {p['id']}")
            ids.add(p["id"])
            gp = p.get("gridPos", {})
            if not all(k in gp for k in ("h", "w", "x", "y")) or gp["x"] + gp["w"] > 24:
                raise CheckFailed(f"{where}: panel {p.get('title')!r} has a bad gridPos {gp}")
            if p.get("type") == "row":
                continue
            if p.get("datasource", {}).get("uid") != "${datasource}":
                raise CheckFailed(f"{where}: panel {p.get('title')!r} is not on the ${{datasource}} variable")
            if not p.get("targets"):
                raise CheckFailed(f"{where}: panel {p.get('title')!r} has no query")
            for t in p["targets"]:
                if t.get("datasource", {}).get("uid") != "${datasource}" or not t.get("expr"):
                    raise CheckFailed(f"{where}: a query of {p.get('title')!r} has no expr or another data source")
    rule_files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    if not rule_files:
        raise CheckFailed("no rule files in dashboards/rules/")
    run_tool(["promtool", "check", "rules", *rule_files])
    tests = sorted(str(p) for p in (RULES_DIR / "tests").glob("*.yml"))
    if tests:
        run_tool(["promtool", "test", "rules", *tests], cwd=RULES_DIR / "tests")
    log(f"static: {len(files)} dashboard(s), {len(rule_files)} rule file(s) checked, {len(tests)} rule test file(s) pass")
    return rule_files


def run_tool(cmd, cwd=None):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=60)
    if out.returncode != 0:
        raise CheckFailed(f"{' '.join(cmd[:3])} failed:\n{out.stdout}\n{out.stderr}")


# ---------------------------------------------------------------------------------------------------------------
# PromQL helpers


def top_level_split(expr):
    """Splits at top-level set operators (and/or/unless) and comparisons; returns the operand strings.

    Only looks at depth 0 (outside (), [], {} and string literals), which is where a threshold sits in an
    alert expression like `rate(x[5m]) > 0.1 and y > 1000`. Grouping modifiers after an operator (`bool`,
    `on(..)`, `ignoring(..)`, `group_left(..)`, `group_right(..)`) are dropped from the following operand.
    """
    parts, depth, i, start, quote = [], 0, 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
            i += 1
            continue
        if c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            op_len = 0
            if expr.startswith(("==", "!=", ">=", "<="), i):
                op_len = 2
            elif c in "<>":
                op_len = 1
            else:
                m = re.match(r"(and|or|unless)\b", expr[i:])
                if m and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_:")):
                    op_len = len(m.group(1))
            if op_len:
                parts.append(expr[start:i])
                i += op_len
                start = i
                continue
        i += 1
    parts.append(expr[start:])
    cleaned = []
    for p in parts:
        p = p.strip()
        while True:
            m = re.match(r"(bool\b|(on|ignoring|group_left|group_right)\s*\([^)]*\))\s*", p)
            if not m:
                break
            p = p[m.end():]
        if p:
            cleaned.append(p)
    return cleaned


def is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def substitute(expr, vc_regex):
    e = expr.replace("$__rate_interval", RATE_INTERVAL).replace("${__rate_interval}", RATE_INTERVAL)
    e = e.replace("$__interval", INTERVAL).replace("${__interval}", INTERVAL)
    e = e.replace("${vc}", vc_regex).replace("$vc", vc_regex)
    left = re.findall(r"\$\{?\w+", e)
    if left:
        raise CheckFailed(f"unsubstituted variable(s) {left} in {expr!r}")
    return e


def grafana_regex_escape(value):
    """A variable value as Grafana's Prometheus data source puts it into a regex matcher's string literal."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


class Prom:
    def __init__(self, base):
        self.base = base

    def query(self, q):
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            body = json.loads(http_get(url, timeout=20))
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            raise CheckFailed(f"query error ({e.code}) for {q!r}: {detail}") from None
        if body.get("status") != "success":
            raise CheckFailed(f"query failed for {q!r}: {body}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def ready(self):
        try:
            http_get(f"{self.base}/-/ready", timeout=2)
            return True
        except (urllib.error.URLError, OSError):
            return False

    def rules(self):
        return json.loads(http_get(f"{self.base}/api/v1/rules", timeout=10))["data"]["groups"]


# ---------------------------------------------------------------------------------------------------------------
# Processes and load


class Children:
    """Started processes, stopped (TERM, then KILL) in reverse order by `stop_all`."""

    def __init__(self):
        self.procs = []

    def start(self, name, cmd, logfile, cwd=None):
        fh = open(logfile, "wb")
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, stdin=subprocess.DEVNULL)
        self.procs.append((name, p, fh))
        log(f"started {name} (pid {p.pid})")
        return p

    def stop_all(self):
        for name, p, fh in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
            fh.close()
        self.procs.clear()


def tenant_servers(kubeconfig_dir):
    servers = []
    for path in sorted(Path(kubeconfig_dir).glob("vc-*.yaml")):
        m = re.search(r"server:\s*(\S+)", path.read_text(encoding="utf-8"))
        if m:
            servers.append(m.group(1).rstrip("/"))
    return servers


class PodLoad(threading.Thread):
    """Creates `per_round` pods per tenant every second in namespace `batch` and deletes those two rounds old."""

    def __init__(self, servers, per_round, stop):
        super().__init__(daemon=True)
        self.servers, self.per_round, self.stop = servers, per_round, stop
        self.created = 0
        self.errors = 0

    def call(self, method, url, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
            return True
        except (urllib.error.URLError, OSError):
            self.errors += 1
            return False

    def run(self):
        rnd = 0
        while not self.stop.is_set():
            for server in self.servers:
                base = f"{server}/api/v1/namespaces/batch/pods"
                for i in range(self.per_round):
                    name = f"check-{rnd}-{i}"
                    pod = {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": name, "labels": {"app": "dashboards-check"}},
                        "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
                    }
                    if self.call("POST", base, pod):
                        self.created += 1
                    if rnd >= 2:
                        self.call("DELETE", f"{base}/check-{rnd - 2}-{i}")
            rnd += 1
            self.stop.wait(1.0)


# ---------------------------------------------------------------------------------------------------------------
# Live check


def wait_for(what, cond, deadline, every=1.0):
    while True:
        ok, detail = cond()
        if ok:
            return
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out waiting for {what}: {detail}")
        time.sleep(every)


def panel_queries():
    out = []
    for path in dashboard_files():
        d = json.loads(path.read_text(encoding="utf-8"))
        for p in walk_panels(d.get("panels", [])):
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"{path.name}: {p.get('title')} [{t.get('refId')}]", t["expr"]))
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v.get("query")
                q = q.get("query") if isinstance(q, dict) else q
                out.append((f"{path.name}: variable ${v['name']}", q))
    return out


def live_check(args, rule_files, workdir, children):
    deadline_all = time.monotonic() + args.timeout
    metrics_port, prom_port = free_port(), free_port()
    data_dir = workdir / "syncer-data"
    syncer_cmd = [
        "timeout", "-k", "5", str(args.timeout + 20),
        args.syncer, "--data-dir", str(data_dir), "--metrics-addr", f"127.0.0.1:{metrics_port}",
        "--duration", f"{args.timeout + 10}s",
    ]
    help_text = subprocess.run([args.syncer, "--help"], capture_output=True, text=True, timeout=30).stdout
    patrol = "--patrol-interval" in help_text
    if patrol:
        # Several patrol passes inside the check, so the patroller's pass metrics have samples.
        syncer_cmd += ["--patrol-interval", "3s"]
    syncer = children.start("syncer", syncer_cmd, workdir / "syncer.log")
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    def metrics_up():
        if syncer.poll() is not None:
            raise CheckFailed(f"syncer exited with {syncer.returncode}: see {workdir / 'syncer.log'}")
        try:
            return b"vc_syncer_tenant_up" in http_get(metrics_url, timeout=2), "no vc_syncer_tenant_up yet"
        except (urllib.error.URLError, OSError) as e:
            return False, str(e)

    wait_for("the syncer's /metrics", metrics_up, time.monotonic() + 60)
    servers = tenant_servers(data_dir / "kubeconfigs")
    if not servers:
        raise CheckFailed(f"no tenant kubeconfigs under {data_dir / 'kubeconfigs'}")
    stop = threading.Event()
    load = PodLoad(servers, args.pods_per_round, stop)
    load.start()
    log(f"driving {args.pods_per_round} pods/s into each of {len(servers)} tenants")

    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n" + "".join(f"  - {json.dumps(f)}\n" for f in rule_files) +
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n",
        encoding="utf-8",
    )
    run_tool(["promtool", "check", "config", str(config)])
    prom_cmd = [
        "timeout", "-k", "5", str(args.timeout + 20),
        args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
    ]
    prom_proc = children.start("prometheus", prom_cmd, workdir / "prometheus.log")
    prom = Prom(f"http://127.0.0.1:{prom_port}")

    def prom_ready():
        if prom_proc.poll() is not None:
            raise CheckFailed(f"prometheus exited with {prom_proc.returncode}: see {workdir / 'prometheus.log'}")
        return prom.ready(), "not ready"

    wait_for("Prometheus ready", prom_ready, time.monotonic() + 60)

    def enough_data():
        if syncer.poll() is not None:
            raise CheckFailed(f"syncer exited with {syncer.returncode}")
        samples = prom.query(f'count_over_time(up{{job="{JOB}"}}[1m])')
        n = int(float(samples[0]["value"][1])) if samples else 0
        dirs = {r["metric"].get("direction") for r in prom.query(
            "sum by (direction) (increase(vc_syncer_sync_lag_seconds_count[30s])) > 0")}
        recorded = prom.query("job_direction_kind:vc_syncer_sync_lag_seconds:p99_5m")
        passes = prom.query("sum(vc_syncer_patrol_pass_seconds_count)") if patrol else [{"value": [0, "1"]}]
        passed = bool(passes) and float(passes[0]["value"][1]) >= 2
        ok = n >= args.min_samples and {"down", "up"} <= dirs and recorded and passed
        return ok, (
            f"{n} scrapes (want {args.min_samples}), lag observed in directions {sorted(d for d in dirs if d)}, "
            f"recorded p99 series: {len(recorded)}, two patrol passes: {passed}"
        )

    wait_for("enough samples", enough_data, min(deadline_all, time.monotonic() + 120), every=2.0)
    stop.set()
    load.join(timeout=10)
    log(f"load: {load.created} pods created ({load.errors} failed calls)")
    if load.created == 0:
        raise CheckFailed("the load driver created no pods")

    failures = []

    # Every rule file loaded, every rule evaluated without error. The rules are then taken from Prometheus
    # itself (/api/v1/rules: name, type and the expression as Prometheus parsed it), not re-parsed from YAML.
    loaded = []

    def rules_evaluated():
        groups = prom.rules()
        files = {os.path.realpath(g["file"]) for g in groups}
        missing = [f for f in rule_files if os.path.realpath(f) not in files]
        bad, pending = [], []
        loaded.clear()
        for g in groups:
            for r in g["rules"]:
                loaded.append((Path(g["file"]).name, r["type"], r["name"], r["query"]))
                if r.get("health") == "err":
                    bad.append(f"{r['name']}: {r.get('lastError')}")
                elif r.get("health") != "ok":
                    pending.append(r["name"])
        if bad:
            raise CheckFailed("rules failing in Prometheus: " + "; ".join(bad))
        return not missing and not pending, f"rule files not loaded {missing}, rules not evaluated yet {pending}"

    wait_for("every rule evaluated", rules_evaluated, time.monotonic() + 30)

    vcs = sorted({r["metric"].get("vc") for r in prom.query("vc_syncer_tenant_up") if r["metric"].get("vc")})
    if not vcs:
        raise CheckFailed("no vc label values on vc_syncer_tenant_up")
    checked = 0
    nan_only = []
    for where, expr in panel_queries():
        if expr.startswith("label_values("):
            m = re.match(r"label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$", expr)
            if not m:
                failures.append(f"{where}: unsupported variable query {expr!r}")
                continue
            url = f"{prom.base}/api/v1/label/{m.group(2)}/values?" + urllib.parse.urlencode({"match[]": m.group(1)})
            values = json.loads(http_get(url))["data"]
            checked += 1
            if not values:
                failures.append(f"{where}: {expr} returned no values")
            continue
        # "All" (allValue .*) and a multi-selection of up to two VCs, formatted as Grafana does.
        for vc_value in (".*", "(" + "|".join(grafana_regex_escape(v) for v in vcs[:2]) + ")"):
            q = substitute(expr, vc_value)
            try:
                res = prom.query(q)
            except CheckFailed as e:
                failures.append(f"{where}: {e}")
                continue
            checked += 1
            if not res:
                failures.append(f"{where}: no data for {q}")
            elif all(r["value"][1] == "NaN" for r in res):
                nan_only.append(f"{where}: {q}")
            if "$vc" not in expr and "${vc}" not in expr:
                break
    log(f"panel queries: {checked} evaluated")

    rule_checks = 0
    for rule_file, kind, name, expr in loaded:
        where = f"{rule_file}: {kind} {name}"
        queries = [expr, name] if kind == "recording" else [
            p for p in top_level_split(expr) if not is_number(p)
        ]
        if kind == "alerting":
            try:
                prom.query(expr)  # the full expression must evaluate (an empty result is a quiet alert)
            except CheckFailed as e:
                failures.append(f"{where}: {e}")
        for q in queries:
            try:
                res = prom.query(q)
            except CheckFailed as e:
                failures.append(f"{where}: {e}")
                continue
            rule_checks += 1
            if not res:
                failures.append(f"{where}: no data for {q}")
    if not loaded:
        raise CheckFailed("Prometheus reports no rules")
    log(f"rules: {len(loaded)} loaded; {rule_checks} expressions evaluated (alerts without their thresholds)")
    for n in nan_only:
        log(f"note: only NaN (no observations in the window) for {n}")
    if failures:
        raise CheckFailed("\n  ".join(["queries without data or with errors:"] + failures))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--syncer", required=True, help="path to the syncer binary")
    ap.add_argument("--prometheus", default="prometheus")
    ap.add_argument("--timeout", type=int, default=150, help="seconds the live part may take")
    ap.add_argument("--min-samples", type=int, default=20, help="scrapes to wait for before querying")
    ap.add_argument("--pods-per-round", type=int, default=5, help="extra pods created per tenant per second")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, TSDB)")
    args = ap.parse_args()

    children = Children()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="dashboards-check-"))
    started = time.monotonic()
    ok = False
    try:
        rule_files = static_checks()
        live_check(args, rule_files, workdir, children)
        ok = True
    except CheckFailed as e:
        log(f"FAILED: {e}")
    finally:
        children.stop_all()
        if not ok:
            for name in ("syncer.log", "prometheus.log"):
                p = workdir / name
                if p.exists():
                    tail = p.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
                    log(f"last lines of {name}:\n    " + "\n    ".join(tail))
        if args.keep or not ok:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"{'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
