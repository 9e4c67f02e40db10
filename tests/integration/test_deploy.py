"""Deployment files (docs/architecture.md, deployment) against the real thing: Debian's
Prometheus scrapes a real pgvalve-proxy in front of a real PostgreSQL while the test makes
traffic, errors, a table observation (POST /observe) and a hold with a parked session; then
every panel query of deploy/grafana/pgvalve.json and every template variable query evaluates
through Prometheus's HTTP API and returns data, every rule of deploy/prometheus/alerts.yml
evaluates without error, and the alerts for what the test created (a hold, a parked session,
an error burst, a target that is down) go pending. promtool checks the rules, and its unit
tests (deploy/prometheus/alerts_test.yml) show every alert firing after its "for:"; the Kubernetes
manifests parse and agree with each other (selectors, ports, the dns:// name the coordinator
holds), and the proxy config they ship passes pgvalve-proxy --check.

Never judged by a clock: every wait is for a condition Prometheus reports."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import psycopg
import pytest
import yaml

import harness
from holds import hold, make_table, release, wait_parked

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "pgvalve.json")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
KUBE = os.path.join(ROOT, "deploy", "kubernetes")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
JOB = "pgvalve-proxy"
OBSERVED = "public.deploy_obs"
BURST = 20  # unique violations in the error burst (the alert rules ask for >= 10)

# Grafana's variables, as Grafana would expand them with "All" selected; $__rate_interval is
# Grafana's rate window (at least four scrape intervals): one minute covers the test's traffic.
GRAFANA_VARS = {"$__rate_interval": "1m", "$job": ".*", "$instance": ".*", "$table": ".*"}


def expand(expr):
    for name in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARS[name])
    assert "$" not in expr, f"a Grafana variable the test does not know in {expr!r}"
    return expr


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panel_targets():
    """(panel title, expr) for every query of every panel, rows included."""
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
    walk(dashboard()["panels"])
    return out


def alert_rules():
    with open(ALERTS) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


class Prometheus:
    """Debian's prometheus on a free loopback port, scraping 'targets' every second and
    evaluating alerts.yml every second; killed in stop()."""

    def __init__(self, workdir, targets):
        self.workdir = workdir
        self.targets = targets
        self.proc = None
        self.port = None
        self.log_path = os.path.join(workdir, "prometheus.log")

    def start(self, attempts=3):
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [ALERTS],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": self.targets}]}],
        }
        path = os.path.join(self.workdir, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        for _ in range(attempts):
            self.port = harness.free_port()
            log = open(self.log_path, "w")
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={path}",
                 f"--storage.tsdb.path={os.path.join(self.workdir, 'data')}",
                 f"--web.listen-address={harness.HOST}:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            try:
                harness.wait_for(self._ready_or_dead, 60, interval=0.2, what="prometheus /-/ready")
            except TimeoutError:
                self.stop()
                raise AssertionError(f"prometheus did not become ready:\n{self.log()[-3000:]}")
            if self.proc.poll() is None:
                return self
            if "address already in use" not in self.log():
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        raise AssertionError("prometheus lost the race for a port three times")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def _ready_or_dead(self):
        if self.proc.poll() is not None:
            return True
        try:
            with urllib.request.urlopen(f"http://{harness.HOST}:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def api(self, path, **params):
        url = f"http://{harness.HOST}:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as e:   # 400/422: a bad query; the body says why
            doc = json.loads(e.read())
        return doc

    def query(self, expr):
        """An instant query: the result list; fails the test on any error."""
        doc = self.api("query", query=expr)
        assert doc["status"] == "success", f"{expr!r}: {doc.get('errorType')}: {doc.get('error')}"
        assert not doc.get("warnings"), f"{expr!r}: {doc['warnings']}"
        assert doc["data"]["resultType"] == "vector", expr
        return doc["data"]["result"]

    def value(self, expr, **labels):
        """The value of the one series of 'expr' whose labels include 'labels', or None."""
        found = [float(s["value"][1]) for s in self.query(expr)
                 if all(s["metric"].get(k) == v for k, v in labels.items())]
        assert len(found) <= 1, f"{expr!r} {labels}: {found}"
        return found[0] if found else None

    def alerts(self):
        doc = self.api("alerts")
        assert doc["status"] == "success", doc
        return doc["data"]["alerts"]


@pytest.fixture
def tables(direct):
    make_table(direct, "deploy_obs", "id int PRIMARY KEY, v int NOT NULL")
    make_table(direct, "deploy_held", "v int")
    direct.execute("INSERT INTO deploy_obs SELECT g, g FROM generate_series(1, 100) g")
    yield
    direct.execute("DROP TABLE IF EXISTS deploy_obs, deploy_held")


@pytest.fixture
def prometheus_factory(tmp_path):
    started = []

    def _start(targets):
        workdir = tmp_path / f"prometheus{len(started)}"
        workdir.mkdir()
        p = Prometheus(str(workdir), targets)
        started.append(p)
        return p.start()
    yield _start
    for p in started:
        p.stop()


def test_dashboard_and_alerts_against_prometheus_scraping_a_proxy(proxy, connect, tables,
                                                                  prometheus_factory):
    dead = f"{harness.HOST}:{harness.free_port()}"          # a proxy that is down
    live = f"{harness.HOST}:{proxy.admin_port}"
    prom = prometheus_factory([live, dead])

    # Counters Prometheus first sees at a value > 0 show no increase: every series the test
    # makes grow is scraped once before it grows.
    status, obs = proxy.admin("POST", "/observe", {"tables": [OBSERVED], "lease_ms": 300000})
    assert status == 201, obs
    app = connect(proxy, autocommit=True)
    took = []      # the client's time for each statement on the observed table, in seconds

    def run(sql, params, sqlstate=None):
        t0 = time.perf_counter()
        try:
            cur = app.execute(sql, params)
            if cur.description:
                cur.fetchall()
            assert sqlstate is None, f"{sql} {params} succeeded"
        except psycopg.Error as e:
            assert e.sqlstate == sqlstate, e
        took.append(time.perf_counter() - t0)
    run("INSERT INTO deploy_obs VALUES (1, 1)", None, "23505")
    harness.wait_for(lambda: prom.value("pgvalve_errors_total", instance=live, sqlstate="23505") == 1
                     and prom.value("pgvalve_table_latency_seconds_count", instance=live,
                                    table=OBSERVED, kind="read") is not None,
                     60, interval=0.2, what="Prometheus scraped the first error and the observation")

    for i in range(40):
        run("SELECT v FROM deploy_obs WHERE id = %s", (i % 100 + 1,))
    for i in range(BURST):
        run("UPDATE deploy_obs SET v = v + 1 WHERE id = %s", (i + 1,))
    for i in range(BURST):
        run("INSERT INTO deploy_obs VALUES (%s, 0)", (i + 1,), "23505")
    longest = max(took)     # the proxy's time for a unit lies within the client's
    statements = proxy.metrics()["pgvalve_statements_total"]

    # A hold with a session parked behind it, kept until the end.
    held = hold(proxy, ["public.deploy_held"], mode="writes", policy="queue",
                lease_ms=300000, max_wait_ms=300000)
    parked_conn = connect(proxy, autocommit=True)
    writer = threading.Thread(target=lambda: parked_conn.execute("INSERT INTO deploy_held VALUES (1)"),
                              daemon=True)
    writer.start()
    try:
        wait_parked(proxy, 1)
        harness.wait_for(lambda: prom.value("pgvalve_parked", instance=live) == 1
                         and prom.value("pgvalve_errors_total", instance=live, sqlstate="23505") == 1 + BURST
                         and prom.value("pgvalve_statements_total", instance=live) >= statements,
                         60, interval=0.2, what="Prometheus scraped the traffic, the errors and the hold")

        check_panels(prom, live, longest)
        check_variables(prom, live)
        check_rules(prom, live, dead)
    finally:
        release(proxy, held["id"])
        writer.join(timeout=30)
    assert not writer.is_alive(), "the parked INSERT did not finish after the release"
    proxy.admin("DELETE", f"/observe/{obs['id']}")


def check_panels(prom, live, longest):
    targets = panel_targets()
    assert len(targets) >= 20
    empty = []
    for title, expr in targets:
        result = prom.query(expand(expr))
        values = [float(s["value"][1]) for s in result]
        if not values or all(math.isnan(v) for v in values):
            empty.append(f"{title}: {expr}")
    assert not empty, "panel queries without data although the test made some:\n" + "\n".join(empty)

    def by_title(title, query=0):
        expr = [e for t, e in targets if t == title][query]   # the panel's query-th query
        return prom.query(expand(expr))

    def one(title, query=0, **labels):
        found = [float(s["value"][1]) for s in by_title(title, query)
                 if all(s["metric"].get(k) == v for k, v in labels.items())]
        assert len(found) == 1, f"{title} {labels}: {found}"
        return found[0]

    # What the test made, as the panels show it.
    assert one("Active holds") == 1
    assert one("Parked sessions", instance=live) == 1
    assert one("Clients by state", state="parked") == 1
    assert one("Client sessions") >= 2
    assert one("Errors/s by SQLSTATE", sqlstate="23505") > 0
    assert one("Constraint violations/s", sqlstate="23505") > 0
    assert one("Constraint violations/s", query=1, constraint="deploy_obs_pkey") > 0
    assert 0 < one("Error ratio") < 1
    assert one("Proxies accepting") >= 1
    # A quantile lies within the bucket holding it: at most the upper edge ("le") of the bucket
    # that holds the slowest statement the client timed.
    les = sorted(float(s["metric"]["le"]) for s in
                 prom.query(f'pgvalve_table_latency_seconds_bucket{{table="{OBSERVED}", kind="read"}}')
                 if s["metric"]["le"] != "+Inf")
    edge = min(le for le in les if le >= longest)
    for title in ("p50 latency per table", "p99 latency per table"):
        for kind in ("read", "write"):
            v = one(title, table=OBSERVED, kind=kind)
            assert 0 < v <= edge, f"{title} {kind}: {v} s; the slowest statement took {longest} s (bucket <= {edge})"
    assert one("Units/s per observed table", table=OBSERVED, kind="read") > 0
    assert 0 < one("Parse cache hit ratio") <= 1


def check_variables(prom, live):
    """label_values(SELECTOR, LABEL) template queries: the selector has series carrying LABEL."""
    for var in dashboard()["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"]["query"])
        assert m, var
        values = {s["metric"].get(m.group(2)) for s in prom.query(expand(m.group(1)))} - {None}
        expected = {"job": JOB, "instance": live, "table": OBSERVED}[var["name"]]
        assert expected in values, f"${var['name']}: {values}"


def check_rules(prom, live, dead):
    rules = alert_rules()
    for r in rules:
        prom.query(r["expr"])          # evaluates without error (a raise fails the test)

    def evaluated():
        doc = prom.api("rules")
        got = {r["name"]: r for g in doc["data"]["groups"] for r in g["rules"]}
        return got if all(got.get(r["alert"], {}).get("health") == "ok" for r in rules) else None
    got = harness.wait_for(evaluated, 60, interval=0.2, what="every rule evaluated by Prometheus")
    assert {r["alert"] for r in rules} == set(got)
    for name, r in got.items():
        assert not r.get("lastError"), f"{name}: {r.get('lastError')}"

    expected = {("PgvalveProxyDown", dead), ("PgvalveHoldTooLong", live), ("PgvalveParkedSessions", live),
                ("PgvalveErrorSpike", live), ("PgvalveConstraintViolations", live)}

    def active():
        now = {(a["labels"]["alertname"], a["labels"].get("instance")) for a in prom.alerts()
               if a["state"] in ("pending", "firing")}
        return now if expected <= now else None
    try:
        now = harness.wait_for(active, 60, interval=0.2, what="the alerts for what the test made")
    except TimeoutError:
        raise AssertionError(f"active alerts {prom.alerts()}, expected {expected}") from None
    assert ("PgvalveProxyDown", live) not in now
    assert ("PgvalveProxyDraining", live) not in now


def test_dashboard_names_only_metrics_the_proxy_exports(proxy):
    status, body = proxy.admin_get("/metrics")
    assert status == 200
    exported = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}
    exported |= {f"{n}{s}" for n in exported for s in ("_bucket", "_sum", "_count")}
    exported.add("up")                                           # Prometheus's own, per target
    exprs = [e for _, e in panel_targets()] + [r["expr"] for r in alert_rules()]
    exprs += [v["query"]["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    used = {name for e in exprs for name in re.findall(r"\bpgvalve_\w+", e)}
    used |= {"up" for e in exprs if re.search(r"\bup\{", e)}
    assert used - exported == set()
    # The dashboard covers what the deployment contract lists.
    for name in ("pgvalve_clients", "pgvalve_statements_total", "pgvalve_errors_total", "pgvalve_holds",
                 "pgvalve_parked", "pgvalve_table_latency_seconds_bucket", "pgvalve_parse_cache_hits_total",
                 "pgvalve_auth_logins_total"):
        assert name in used, name
    ids = []

    def walk(panels):
        for p in panels:
            ids.append(p["id"])
            walk(p.get("panels", []))
    walk(dashboard()["panels"])
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_promtool_checks_the_rules():
    r = subprocess.run([PROMTOOL, "check", "rules", ALERTS], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in r.stdout
    for rule in alert_rules():
        assert rule["annotations"]["summary"] and rule["labels"]["severity"] in ("warning", "critical")


def test_alerts_fire_after_their_durations_in_promtool():
    """alerts_test.yml: synthetic series through the rules with their "for:" durations, on
    promtool's own clock: each alert fires when it should and not before or after."""
    tests = os.path.join(os.path.dirname(ALERTS), "alerts_test.yml")
    with open(tests) as f:
        doc = yaml.safe_load(f)
    tested = {t["alertname"] for g in doc["tests"] for t in g["alert_rule_test"] if t["exp_alerts"]}
    assert tested == {r["alert"] for r in alert_rules()}, "every alert is shown firing"
    r = subprocess.run([PROMTOOL, "test", "rules", tests], capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(ALERTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def load_manifests(*parts):
    docs = []
    for path in sorted(os.listdir(os.path.join(KUBE, *parts))):
        if path.endswith(".yaml"):
            with open(os.path.join(KUBE, *parts, path)) as f:
                docs += [(path, d) for d in yaml.safe_load_all(f) if d]
    return docs


def of_kind(docs, kind, name=None):
    found = [d for _, d in docs if d["kind"] == kind and (name is None or d["metadata"].get("name") == name)]
    assert found, f"no {kind} {name or ''}"
    return found


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_ports(pod_spec):
    containers = pod_spec.get("containers", []) + pod_spec.get("initContainers", [])
    return {p["name"]: p["containerPort"] for c in containers for p in c.get("ports", [])}


def check_apply_job(job, configmaps, headless, container_port):
    """The Job runs `pgvalve apply` with a config whose proxy is dns://HEADLESS:PORT."""
    pod = job["spec"]["template"]["spec"]
    [c] = pod["containers"]
    argv = c["command"] + c["args"]
    assert argv[0].endswith("/pgvalve") and argv[1] == "apply", argv
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    config_path = argv[argv.index("--config") + 1]
    volumes = {v["name"]: v for v in pod["volumes"]}
    [mount] = [m for m in c["volumeMounts"] if config_path.startswith(m["mountPath"] + "/")]
    cm_name = volumes[mount["name"]]["configMap"]["name"]
    [cm] = [d for d in configmaps if d["metadata"]["name"] == cm_name]
    config = json.loads(cm["data"][os.path.basename(config_path)])
    urls = [p["url"] for p in config["proxies"]]
    [admin_port] = headless["spec"]["ports"]
    assert urls == [f"dns://{headless['metadata']['name']}:{admin_port['port']}"], urls
    # The token the proxies check is mounted where the config says.
    token = config["proxies"][0]["token_file"]
    assert any(token.startswith(m["mountPath"] + "/") and "secret" in volumes[m["name"]]
               for m in c["volumeMounts"]), token
    assert "PGVALVE_DB" in {e["name"] for e in c.get("env", [])}
    return container_port


def proxy_config_passes_check(tmp_path, text):
    """The shipped proxy config through the real binary's --check: only the token file (a
    Secret in the cluster) and the upstream (a cluster DNS name) are local stand-ins."""
    config = json.loads(text)
    token = tmp_path / "token"
    token.write_text("t" * 32 + "\n")
    config["admin"]["token_file"] = str(token)
    path = tmp_path / "pgvalve-proxy.json"
    path.write_text(json.dumps(config))
    r = subprocess.run([harness.proxy_binary(), "-c", str(path), "--upstream", "127.0.0.1:5432", "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return config


def test_kubernetes_fleet_manifests_agree(tmp_path):
    docs = load_manifests()
    with open(os.path.join(KUBE, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    for res in kustomization["resources"]:
        assert os.path.exists(os.path.join(KUBE, res)), res
    [dep] = of_kind(docs, "Deployment", "pgvalve-proxy")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selects(dep["spec"]["selector"]["matchLabels"], pod_labels)
    pod = dep["spec"]["template"]["spec"]
    ports = pod_ports(pod)
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}

    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    client, headless = services["pgvalve-proxy"], services["pgvalve-proxy-admin"]
    for svc in (client, headless):
        assert selects(svc["spec"]["selector"], pod_labels), svc["metadata"]["name"]
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, p
    assert client["spec"].get("clusterIP") != "None"
    assert headless["spec"]["clusterIP"] == "None"
    assert not headless["spec"].get("publishNotReadyAddresses", False)

    [pdb] = of_kind(docs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    [pm] = of_kind(docs, "PodMonitor")
    assert selects(pm["spec"]["selector"]["matchLabels"], pod_labels)
    assert [e["port"] for e in pm["spec"]["podMetricsEndpoints"]] == ["admin"]
    [sm] = of_kind(docs, "ServiceMonitor")
    assert selects(sm["spec"]["selector"]["matchLabels"], headless["metadata"]["labels"])
    assert not selects(sm["spec"]["selector"]["matchLabels"], client["metadata"]["labels"])
    assert [e["port"] for e in sm["spec"]["endpoints"]] == [headless["spec"]["ports"][0]["name"]]

    configmaps = of_kind(docs, "ConfigMap")
    [cm] = [d for d in configmaps if d["metadata"]["name"] == "pgvalve-config"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = container["args"][container["args"].index("-c") + 1]
    [mount] = [m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"] + "/")]
    assert volumes[mount["name"]]["configMap"]["name"] == "pgvalve-config"
    config = proxy_config_passes_check(tmp_path, cm["data"][os.path.basename(config_path)])
    assert ports["postgres"] == config["listen"]["port"]
    assert ports["admin"] == config["admin"]["port"]
    token_file = json.loads(cm["data"][os.path.basename(config_path)])["admin"]["token_file"]
    assert any(token_file.startswith(m["mountPath"] + "/") and "secret" in volumes[m["name"]]
               for m in container["volumeMounts"])

    [job] = of_kind(docs, "Job")
    check_apply_job(job, configmaps, headless, ports["admin"])


def test_kubernetes_sidecar_manifests_agree(tmp_path):
    docs = load_manifests("sidecar")
    [dep] = of_kind(docs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    pod = dep["spec"]["template"]["spec"]
    [proxy] = [c for c in pod.get("initContainers", []) if c["name"] == "pgvalve-proxy"]
    assert proxy["restartPolicy"] == "Always"          # a native sidecar
    ports = pod_ports(pod)
    [headless] = [s for s in of_kind(docs, "Service") if s["spec"].get("clusterIP") == "None"]
    assert selects(headless["spec"]["selector"], pod_labels)
    assert headless["spec"]["ports"][0]["targetPort"] in ports
    [pm] = of_kind(docs, "PodMonitor")
    assert selects(pm["spec"]["selector"]["matchLabels"], pod_labels)
    assert [e["port"] for e in pm["spec"]["podMetricsEndpoints"]] == [headless["spec"]["ports"][0]["targetPort"]]
    [pdb] = of_kind(docs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    [cm] = of_kind(docs, "ConfigMap")
    config = proxy_config_passes_check(tmp_path, cm["data"]["pgvalve-proxy.json"])
    assert config["listen"]["host"] == "127.0.0.1"     # the application's own proxy only
    assert ports[headless["spec"]["ports"][0]["targetPort"]] == config["admin"]["port"]
    [app] = pod["containers"]
    assert any(f":{config['listen']['port']}/" in e.get("value", "") for e in app.get("env", []))
    [job] = of_kind(docs, "Job")
    check_apply_job(job, of_kind(docs, "ConfigMap"), headless, ports[headless["spec"]["ports"][0]["targetPort"]])
