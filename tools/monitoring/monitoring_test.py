#!/usr/bin/python3
"""Checks what tools/monitoring/ ships with Debian's promtool (package prometheus):

- relay.rules.yml passes `promtool check rules`, and its unit tests (relay.rules_test.yml) pass
  `promtool test rules`; every alert has a case where it fires, one where it does not, and is quiet
  in the healthy-relay case;
- prometheus.yml (the scrape job the rules expect) passes `promtool check config`;
- relay-dashboard.json is a Grafana dashboard (the schema fields Grafana needs to import it) whose
  every PromQL expression parses (each one, its variables replaced, becomes a recording rule that
  `promtool check rules` parses);
- every metric the rules and the dashboard name is one relayd exports: the names come from the
  relay's own registry (//relay/metrics:render_metrics prints what GET /metrics serves), and that
  exposition passes `promtool check metrics`.

usage: monitoring_test.py RENDER_METRICS
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
import checks  # noqa: E402  (the project's own helper, found through the path above)

RENDER = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="monitoring-", dir=os.environ.get("TEST_TMPDIR"))


def check(cond, what, detail=""):
    """checks.check, printing what was seen when it fails."""
    if not checks.check(cond, what) and detail:
        print(detail)
    return cond


def promtool(*args, stdin=None):
    return subprocess.run(["promtool"] + list(args), input=stdin, capture_output=True, text=True,
                          cwd=HERE)


# --- what relayd exports --------------------------------------------------------------------------
exposition = subprocess.run([RENDER, TMP], capture_output=True, text=True, check=True).stdout
lint = promtool("check", "metrics", stdin=exposition)
check(lint.returncode == 0, "relayd's exposition passes promtool check metrics",
      lint.stdout + lint.stderr)
EXPORTED = set()
for line in exposition.splitlines():
    if line and not line.startswith("#"):
        EXPORTED.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
check(len(EXPORTED) > 40 and "relay_queue_oldest_message_age_seconds" in EXPORTED and
      "relay_queue_fsync_seconds_bucket" in EXPORTED,
      "%d sample names read from the registry's exposition" % len(EXPORTED))

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}


def metric_names(expr):
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names (inside {} or after by/without/on/ignoring/group_*), durations or
    string contents. Linear: a few regular-expression passes without backtracking."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue  # 1e3, 5m
        if e[m.end():].lstrip().startswith("("):
            continue  # a function
        if m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


# The extraction itself, on an expression with every kind of identifier it must leave out.
sample = ('sum by (site) (rate(foo_total{a="b",c=~"x|y"}[5m] offset 1h)) / on(instance) '
          'group_left(le) bar:ratio > 1e3 and histogram_quantile(0.99, baz_bucket) unless '
          'label_replace(qux, "d", "$1", "e", "(.*)")')
check(metric_names(sample) == {"foo_total", "bar:ratio", "baz_bucket", "qux"},
      "metric names are read out of PromQL", str(metric_names(sample)))


def names_exported(where, expr, allowed=()):
    unknown = metric_names(expr) - EXPORTED - set(allowed)
    check(not unknown, "%s names only exported metrics" % where,
          "unknown: %s in %s" % (sorted(unknown), expr))


# --- the alert rules --------------------------------------------------------------------------
r = promtool("check", "rules", "relay.rules.yml")
check(r.returncode == 0, "promtool check rules relay.rules.yml", r.stdout + r.stderr)
r = promtool("test", "rules", "relay.rules_test.yml")
check(r.returncode == 0, "promtool test rules relay.rules_test.yml", r.stdout + r.stderr)
r = promtool("check", "config", "prometheus.yml")
check(r.returncode == 0, "promtool check config prometheus.yml", r.stdout + r.stderr)

rules = yaml.safe_load(open(os.path.join(HERE, "relay.rules.yml")))
alerts = [rule for g in rules["groups"] for rule in g["rules"] if "alert" in rule]
for rule in alerts:
    # `up` is Prometheus' own series for the scrape.
    names_exported("alert %s (%s)" % (rule["alert"], rule["labels"]["severity"]), rule["expr"],
                   allowed=["up"])
    check(rule["labels"].get("severity") in ("warning", "critical") and
          {"summary", "description"} <= set(rule.get("annotations", {})),
          "alert %s has a severity, a summary and a description" % rule["alert"])

tests = yaml.safe_load(open(os.path.join(HERE, "relay.rules_test.yml")))
fires, quiet, healthy = {}, set(), set()
for case in tests["tests"]:
    instances = {re.search(r'instance="([^"]+)"', s["series"]).group(1)
                 for s in case["input_series"] if "instance=" in s["series"]}
    for t in case["alert_rule_test"]:
        if t["exp_alerts"]:
            for a in t["exp_alerts"]:
                fires.setdefault(t["alertname"], set()).add(a["exp_labels"]["severity"])
        else:
            quiet.add(t["alertname"])
            if len(case["alert_rule_test"]) > 10:  # the healthy-relay case names every alert
                healthy.add(t["alertname"])
for rule in alerts:
    name = rule["alert"]
    check(rule["labels"]["severity"] in fires.get(name, set()),
          "%s (%s) fires in a unit test" % (name, rule["labels"]["severity"]))
    check(name in quiet and name in healthy,
          "%s stays quiet before its time and on a healthy relay" % name)

# --- the dashboard ----------------------------------------------------------------------------
try:
    dash = json.load(open(os.path.join(HERE, "relay-dashboard.json")))
    check(True, "relay-dashboard.json is JSON")
except ValueError as e:
    check(False, "relay-dashboard.json is JSON", str(e))
    dash = {}
check(isinstance(dash.get("title"), str) and isinstance(dash.get("uid"), str) and
      isinstance(dash.get("schemaVersion"), int) and isinstance(dash.get("panels"), list) and
      isinstance(dash.get("templating", {}).get("list"), list) and "time" in dash,
      "dashboard has title, uid, schemaVersion, time, templating and panels")
variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
check({"datasource", "instance", "site"} <= set(variables) and
      variables["datasource"]["type"] == "datasource" and
      variables["datasource"]["query"] == "prometheus",
      "dashboard variables: a Prometheus data source, instance and site")

KNOWN_PANELS = {"row", "stat", "timeseries", "gauge", "bargauge", "table", "text"}
ids, exprs = set(), []
for p in dash.get("panels", []):
    where = "panel %r" % p.get("title")
    ok = (isinstance(p.get("id"), int) and p["id"] not in ids and p.get("type") in KNOWN_PANELS
          and isinstance(p.get("title"), str) and
          all(isinstance(p.get("gridPos", {}).get(k), int) for k in "hwxy") and
          p["gridPos"]["x"] + p["gridPos"]["w"] <= 24)
    check(ok, "%s: unique id, known type, title, a gridPos within 24 columns" % where, str(p)[:300])
    ids.add(p.get("id"))
    if p.get("type") == "row":
        continue
    targets = p.get("targets") or []
    check(targets and all(t.get("refId") and t.get("expr") for t in targets) and
          p.get("datasource", {}).get("uid") == "${datasource}",
          "%s: targets with refId and expr, on the data source variable" % where)
    exprs += [("%s target %s" % (where, t.get("refId")), t.get("expr", "")) for t in targets]
for name in ("instance", "site"):
    q = variables.get(name, {}).get("query", {}).get("query", "")
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
    check(m is not None, "variable %s is a label_values() query" % name, q)
    if m:
        exprs.append(("variable %s" % name, m.group(1)))
check(len(exprs) >= 40, "%d dashboard expressions" % len(exprs))


def substitute(expr):
    """Grafana's variables replaced by values PromQL accepts."""
    e = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    e = e.replace("$instance", ".*").replace("$site", ".*")
    return e


rule_file = {"groups": [{"name": "dashboard", "rules": []}]}
for i, (where, expr) in enumerate(exprs):
    names_exported(where, expr)
    e = substitute(expr)
    check("$" not in e, "%s uses only known variables" % where, expr)
    rule_file["groups"][0]["rules"].append({"record": "dashboard:expr_%d" % i, "expr": e})
path = os.path.join(TMP, "dashboard.rules.yml")
with open(path, "w") as f:
    yaml.safe_dump(rule_file, f)
r = promtool("check", "rules", path)
check(r.returncode == 0, "every dashboard expression parses (promtool check rules)",
      r.stdout + r.stderr)
# The check above must be able to fail: a broken expression is refused.
with open(path, "w") as f:
    yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum(rate(relay_messages_received_total[5m])"}]}]}, f)
check(promtool("check", "rules", path).returncode != 0, "promtool refuses a broken expression")

checks.finish()
