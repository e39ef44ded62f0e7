#!/usr/bin/env python3
"""Checks the chart's Grafana dashboards and alerts against the metrics the code exports.

    check.py RENDERED_CHART OUT_DIR
    check.py --panel-exprs [NAME=VALUE]...
    check.py --metric-names < EXPRESSIONS.json

RENDERED_CHART is `helm template` of charts/paddock with the dashboards, the PrometheusRule and
the monitors enabled. The script

- reads every metric the runtime and the operator register with prometheus_client, or encode in a
  Collector at each scrape, from their Rust sources (name, type, label names), so a panel or an
  alert cannot use a metric or a label that does not exist;
- checks each dashboard under charts/paddock/files/dashboards/: valid JSON, a unique uid and
  title, unique panel ids, a Prometheus target with an expression in every data panel, and the
  same JSON in the rendered ConfigMaps;
- checks every PromQL expression of the dashboards, of their template variables, of the alerts
  and of the input series of the alert tests: each metric name is exported, each label of a
  selector is one the metric has (or Prometheus' target labels, with the ones the chart's
  monitors add; a label of both is renamed exported_<label> unless the monitor honors labels), and each label of `by`, `without`, `on` and `ignoring` is one of those of the
  expression's metrics;
- checks that every alert has summary, description and a runbook_url whose anchor is a heading
  of docs/runbooks.md, and that the unit tests (e2e/monitoring/alerts.test.yaml) test every
  alert both firing and not firing;
- writes OUT_DIR/rules.yaml (the PrometheusRule's spec, for promtool check rules and test
  rules) and OUT_DIR/dashboard-exprs.yaml (each dashboard expression as a recording rule, with
  Grafana's variables replaced, so that promtool check rules parses them).

Exits non-zero with every problem listed.

With --panel-exprs it checks nothing: it prints, as JSON, every dashboard's template variables
(the expression and label of each label_values query) and every panel target's expression,
with the Grafana variables NAME replaced by VALUE (`tenant=acme`, `__rate_interval=15s`;
unnamed ones as in the recording rules above). The e2e scenario that evaluates every panel
against a real Prometheus reads the dashboards through it, the same way as the checks here.
With --metric-names it reads a JSON list of PromQL expressions (the alerts', say) on stdin and
prints the sorted metric names they use, as JSON.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "charts/paddock/files/dashboards"
RUNBOOKS = ROOT / "docs/runbooks.md"
ALERT_TESTS = Path(__file__).resolve().parent / "alerts.test.yaml"
CRATES = {"runtime": ROOT / "runtime/src", "operator": ROOT / "operator/src"}

# Labels Prometheus gives every series it scrapes through a ServiceMonitor or a PodMonitor.
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance"}

problems = []


def problem(msg):
    problems.append(msg)


# --- the metrics in the Rust sources -------------------------------------------------------

LABEL_STRUCT = re.compile(
    r"#\[derive\([^)]*\bEncodeLabelSet\b[^)]*\)\]\s*(?:#\[[^\]]*\]\s*)*"
    r"(?:pub(?:\([^)]*\))?\s+)?struct\s+(\w+)\s*\{(.*?)\n\}",
    re.S,
)
FIELD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:", re.M)
REGISTER = re.compile(
    r"(\w+)\s*\.\s*register\(\s*\"(\w+)\"\s*,\s*\"(?:[^\"\\]|\\.)*\"\s*,\s*(.*?)\)\s*;", re.S
)
# A Collector's metric, encoded at each scrape: encode_descriptor("name", "help", unit, ident.metric_type()).
DESCRIBE = re.compile(
    r"encode_descriptor\(\s*\"(\w+)\"\s*,\s*\"(?:[^\"\\]|\\.)*\"\s*,\s*[^,]+,\s*(\w+)\s*\.\s*metric_type\(\s*\)\s*,?\s*\)",
    re.S,
)
SUB_PREFIX = re.compile(r"let\s+(?:mut\s+)?(\w+)\s*=\s*[\w.]+\.sub_registry_with_prefix\(\s*\"(\w+)\"\s*\)")
TYPE_ALIAS = re.compile(r"\btype\s+(\w+)(?:<[^>]*>)?\s*=\s*(.+?);", re.S)


def rust_files(src):
    return sorted(p for p in src.rglob("*.rs"))


def metric_kind(text):
    for kind in ("Histogram", "Counter", "Gauge"):
        if re.search(rf"\b{kind}\b", text):
            return kind.lower()
    return None


def crate_metrics(crate, src):
    """name of each series -> (type, set of labels) for one crate."""
    prefixes = set()
    for f in rust_files(src):
        prefixes.update(re.findall(r"Registry::with_prefix\(\s*\"(\w+)\"\s*\)", f.read_text()))
    if len(prefixes) != 1:
        problem(f"{crate}: expected one Registry::with_prefix in {src}, found {sorted(prefixes)}")
        return {}
    prefix = prefixes.pop()
    series = {}
    for f in rust_files(src):
        text = f.read_text()
        if ".register(" not in text and "encode_descriptor(" not in text:
            continue
        structs = {m.group(1): set(FIELD.findall(m.group(2))) for m in LABEL_STRUCT.finditer(text)}
        aliases = {m.group(1): m.group(2) for m in TYPE_ALIAS.finditer(text)}
        subs = dict(SUB_PREFIX.findall(text))
        found = []
        for m in REGISTER.finditer(text):
            receiver, name, arg = m.groups()
            ident = re.findall(r"(\w+)\s*(?:\.\s*clone\(\s*\))?\s*,?\s*$", arg.strip())
            if not ident:
                problem(f"{f.relative_to(ROOT)}: cannot read the metric of register(\"{name}\", ..)")
                continue
            found.append((receiver, name, ident[0]))
        found += [(None, name, ident) for name, ident in DESCRIBE.findall(text)]
        for receiver, name, ident in found:
            decls = re.findall(rf"\b{ident}\s*:\s*([^\n]+)", text)
            decls += re.findall(rf"\blet\s+{ident}\s*=\s*(.+?);", text, re.S)
            typed = [d for d in decls if metric_kind(d) or any(a in d for a in aliases)]
            if not typed:
                problem(f"{f.relative_to(ROOT)}: cannot tell the type of metric {name} ({ident})")
                continue
            decl = typed[0]
            for alias, body in aliases.items():
                if re.search(rf"\b{alias}\b", decl):
                    decl += " " + body
            kind = metric_kind(decl)
            labels = set()
            for struct, fields in structs.items():
                if re.search(rf"\b{struct}\b", decl):
                    labels |= fields
            if "Family" in decl and not labels:
                problem(f"{f.relative_to(ROOT)}: cannot find the label set of metric {name}")
            full = prefix + "_" + (subs[receiver] + "_" if receiver in subs else "") + name
            if kind == "counter":
                series[full + "_total"] = ("counter", labels)
            elif kind == "histogram":
                series[full + "_bucket"] = ("histogram", labels | {"le"})
                series[full + "_sum"] = ("histogram", labels)
                series[full + "_count"] = ("histogram", labels)
            else:
                series[full] = ("gauge", labels)
    if not series:
        problem(f"{crate}: found no metric registrations under {src}")
    return series


# --- PromQL, as far as names go --------------------------------------------------------------

TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<range>\[[^\]]*\])
    |(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)
    |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^@=<>(){},])""",
    re.X,
)
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio"}


def tokens(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r}")
        pos = m.end()
        for kind in ("str", "range", "num", "ident", "op"):
            if m.group(kind) is not None:
                out.append((kind, m.group(kind)))
    return out


def names_in(expr):
    """(metrics, {metric: selector labels}, grouping labels) of a PromQL expression."""
    toks = tokens(expr)
    metrics, matchers, grouping = [], {}, set()
    i = 0
    while i < len(toks):
        kind, val = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and val in GROUPING:
            i += 1
            if nxt == "(":
                i += 1
                while i < len(toks) and toks[i][1] != ")":
                    if toks[i][0] == "ident":
                        grouping.add(toks[i][1])
                    i += 1
            continue
        if kind == "ident" and nxt == "(":
            i += 1  # a function or an aggregation
            continue
        if kind == "ident" and (val.lower() in KEYWORDS or val in AGGREGATIONS):
            i += 1
            continue
        metric = None
        if kind == "ident":
            metric = val
            metrics.append(val)
            matchers.setdefault(val, set())
            i += 1
            kind, val = toks[i] if i < len(toks) else (None, None)
        if val == "{":
            i += 1
            while i < len(toks) and toks[i][1] != "}":
                if toks[i][0] == "ident" and i + 1 < len(toks) and toks[i + 1][1] in ("=", "!=", "=~", "!~"):
                    matchers.setdefault(metric, set()).add(toks[i][1])
                i += 1
            i += 1
            continue
        if metric is None:
            i += 1
    return metrics, matchers, grouping


def check_expr(where, expr, exported, target_labels):
    try:
        metrics, matchers, grouping = names_in(expr)
    except ValueError as e:
        problem(f"{where}: {e}")
        return
    known = set()
    for metric in metrics:
        if metric not in exported:
            problem(f"{where}: metric {metric} is not exported by the runtime or the operator")
            continue
        known |= exported[metric][1] | target_labels[metric]
    for metric, labels in matchers.items():
        if metric is None or metric not in exported:
            continue
        allowed = exported[metric][1] | target_labels[metric] | {"__name__"}
        for label in sorted(labels - allowed):
            problem(f"{where}: {metric} has no label {label!r} (it has {sorted(allowed)})")
    if metrics and all(m in exported for m in metrics):
        for label in sorted(grouping - known):
            problem(f"{where}: label {label!r} in by/without/on/ignoring is on none of {sorted(set(metrics))}")


# --- Grafana --------------------------------------------------------------------------------

GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def grafana_to_promql(expr, values=None):
    values = {**GRAFANA_BUILTINS, **(values or {})}

    def sub(m):
        name = m.group(1) or m.group(2)
        return values.get(name, "value")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", sub, expr)


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def variable_queries(board):
    """(variable, its query text, label_values' expression or None, its label) of each query variable."""
    for v in board.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q or "")
        yield v, q, (m.group(1) if m else None), (m.group(2) if m else None)


def data_panels(board):
    """Each panel that shows data (not a row or text), with its targets."""
    for p in all_panels(board.get("panels", [])):
        if p.get("type") not in ("row", "text"):
            yield p, p.get("targets") or []


def panel_exprs(values):
    """Every dashboard's variables and panel expressions, Grafana's variables replaced by values."""
    out = []
    for f in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(f.read_text())
        out.append({
            "file": str(f.relative_to(ROOT)),
            "uid": board.get("uid"),
            "variables": [
                {"name": v.get("name"), "expr": grafana_to_promql(e, values), "label": label}
                for v, _, e, label in variable_queries(board) if e is not None
            ],
            "targets": [
                {"panel": p.get("id"), "title": p.get("title"), "refId": t.get("refId"),
                 "expr": grafana_to_promql(t["expr"], values)}
                for p, targets in data_panels(board) for t in targets if t.get("expr")
            ],
        })
    return out


def check_dashboards(rendered, exported, target_labels):
    files = sorted(DASHBOARDS.glob("*.json"))
    if not files:
        problem(f"no dashboards in {DASHBOARDS}")
    exprs, uids, titles = [], {}, {}
    configmaps = {}
    for doc in rendered:
        if doc.get("kind") == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                if key.endswith(".json"):
                    configmaps[key] = value
    for f in files:
        where = f.relative_to(ROOT)
        try:
            board = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            problem(f"{where}: not valid JSON: {e}")
            continue
        if f.name not in configmaps:
            problem(f"{where}: no rendered ConfigMap holds it")
        elif json.loads(configmaps[f.name]) != board:
            problem(f"{where}: the rendered ConfigMap differs from the file")
        uid, title = board.get("uid"), board.get("title")
        if not uid or not isinstance(uid, str) or len(uid) > 40:
            problem(f"{where}: uid must be a string of 1 to 40 characters, is {uid!r}")
        elif uid in uids:
            problem(f"{where}: uid {uid!r} is also the uid of {uids[uid]}")
        uids[uid] = where
        if not title or title in titles:
            problem(f"{where}: title {title!r} is missing or also the title of {titles.get(title)}")
        titles[title] = where
        # The recording rule of each expression is named after its dashboard, panel and target.
        record_prefix = "dashboard:" + re.sub(r"\W", "_", str(uid))
        variables = {v.get("name") for v in board.get("templating", {}).get("list", [])}
        if "datasource" not in variables:
            problem(f"{where}: no `datasource` template variable")
        for v, q, var_expr, label in variable_queries(board):
            if var_expr is None:
                problem(f"{where}: variable {v.get('name')}: query {q!r} is not label_values(expr, label)")
                continue
            vw = f"{where} variable {v['name']}"
            check_expr(vw, grafana_to_promql(var_expr), exported, target_labels)
            check_expr(vw, f"sum by ({label}) ({grafana_to_promql(var_expr)})", exported, target_labels)
            exprs.append((f"{record_prefix}:variable_{v['name']}", grafana_to_promql(var_expr)))
        ids = set()
        for p in all_panels(board.get("panels", [])):
            pw = f"{where} panel {p.get('id')} {p.get('title')!r}"
            if p.get("id") in ids or not isinstance(p.get("id"), int):
                problem(f"{pw}: the panel id is missing or not unique")
            ids.add(p.get("id"))
            if not isinstance(p.get("gridPos"), dict):
                problem(f"{pw}: no gridPos")
            if p.get("type") in ("row", "text"):
                continue
            ds = p.get("datasource") or {}
            if ds.get("type") != "prometheus" or ds.get("uid") != "${datasource}":
                problem(f"{pw}: the datasource must be the prometheus ${{datasource}} variable")
            targets = p.get("targets") or []
            if not targets:
                problem(f"{pw}: no targets")
            refs = set()
            for t in targets:
                if not t.get("expr") or not t.get("refId") or t["refId"] in refs:
                    problem(f"{pw}: a target without expr or with a missing or repeated refId")
                    continue
                refs.add(t["refId"])
                expr = grafana_to_promql(t["expr"])
                check_expr(f"{pw} target {t['refId']}", expr, exported, target_labels)
                exprs.append((f"{record_prefix}:panel_{p.get('id')}_{t['refId']}", expr))
    return exprs


# --- alerts ---------------------------------------------------------------------------------

def anchors(markdown):
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def check_alerts(rule, exported, target_labels):
    groups = rule.get("spec", {}).get("groups", [])
    runbook_anchors = anchors(RUNBOOKS.read_text()) if RUNBOOKS.exists() else set()
    if not RUNBOOKS.exists():
        problem(f"{RUNBOOKS.relative_to(ROOT)} does not exist")
    alerts = []
    for g in groups:
        for r in g.get("rules", []):
            name = r.get("alert") or r.get("record")
            check_expr(f"rule {name}", r.get("expr", ""), exported, target_labels)
            if "alert" not in r:
                continue
            alerts.append(name)
            ann = r.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                if not ann.get(key):
                    problem(f"alert {name}: no {key} annotation")
            url = ann.get("runbook_url", "")
            if "docs/runbooks.md#" not in url:
                problem(f"alert {name}: runbook_url {url!r} does not point into docs/runbooks.md")
            elif url.split("#", 1)[1] not in runbook_anchors:
                problem(f"alert {name}: docs/runbooks.md has no section #{url.split('#', 1)[1]}")
            if "severity" not in (r.get("labels") or {}):
                problem(f"alert {name}: no severity label")
    if len(alerts) != len(set(alerts)):
        problem(f"alert names repeat: {sorted(alerts)}")
    return alerts


def check_alert_tests(alerts, exported, target_labels):
    import yaml

    tests = yaml.safe_load(ALERT_TESTS.read_text())
    fired, silent = set(), set()
    for ti, test in enumerate(tests.get("tests", [])):
        for s in test.get("input_series", []):
            check_expr(f"{ALERT_TESTS.name} test {ti} input series", s["series"], exported, target_labels)
        for a in test.get("alert_rule_test", []):
            (fired if a.get("exp_alerts") else silent).add(a["alertname"])
    for name in alerts:
        if name not in fired:
            problem(f"{ALERT_TESTS.name}: no test in which {name} fires")
        if name not in silent:
            problem(f"{ALERT_TESTS.name}: no test in which {name} must not fire")
    for name in sorted((fired | silent) - set(alerts)):
        problem(f"{ALERT_TESTS.name}: tests {name}, which the chart does not define")


def main():
    if sys.argv[1:2] == ["--metric-names"]:
        names = set()
        for expr in json.load(sys.stdin):
            names.update(names_in(expr)[0])
        json.dump(sorted(names), sys.stdout)
        return 0
    if sys.argv[1:2] == ["--panel-exprs"]:
        values = dict(a.split("=", 1) for a in sys.argv[2:])
        json.dump(panel_exprs(values), sys.stdout, indent=1)
        return 0
    # Only the checks need PyYAML (check.sh provides it); --panel-exprs runs without it.
    import yaml

    rendered_path, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    rendered = [d for d in yaml.safe_load_all(rendered_path.read_text()) if d]

    exported = {}
    for crate, src in CRATES.items():
        for name, (kind, labels) in crate_metrics(crate, src).items():
            exported[name] = (kind, labels, crate)
    # Target labels: those the Prometheus Operator gives every target of a PodMonitor or a
    # ServiceMonitor, with the ones the chart's relabelings add or drop. A series label of the
    # same name would be renamed exported_<name>, unless every endpoint has honorLabels.
    base = {"PodMonitor": TARGET_LABELS, "ServiceMonitor": TARGET_LABELS | {"service"}}
    crate_of = {"PodMonitor": "runtime", "ServiceMonitor": "operator"}
    monitors = {d["kind"]: d for d in rendered if d.get("kind") in base}
    if set(monitors) != set(base):
        problem("the rendered chart needs its PodMonitor and ServiceMonitor (serviceMonitor.enabled)")
    targets = {"runtime": set(TARGET_LABELS), "operator": TARGET_LABELS | {"service"}}
    honored = set()
    for kind, d in monitors.items():
        labels = set(base[kind])
        endpoints = d["spec"].get("podMetricsEndpoints") or d["spec"].get("endpoints") or []
        if endpoints and all(e.get("honorLabels") is True for e in endpoints):
            honored.add(crate_of[kind])
        for e in endpoints:
            for r in e.get("relabelings", []):
                action = r.get("action", "replace").lower()
                if action in ("replace", "lowercase", "uppercase") and r.get("targetLabel"):
                    labels.add(r["targetLabel"])
                elif action == "labeldrop":
                    labels = {l for l in labels if not re.fullmatch(r["regex"], l)}
        targets[crate_of[kind]] = labels
    for name, (_, labels, crate) in exported.items():
        if crate in honored:
            continue  # honorLabels: the series' own label wins over the target's
        for label in sorted(labels & targets[crate]):
            problem(f"{name}: its label {label!r} is also a target label of the chart's monitor, "
                    f"so Prometheus would store it as exported_{label}")
    target_labels = {name: targets[crate] for name, (_, _, crate) in exported.items()}
    exported = {name: (kind, labels) for name, (kind, labels, _) in exported.items()}

    if "--list" in sys.argv:
        for name, (kind, labels) in sorted(exported.items()):
            print(f"{name}\t{kind}\t{','.join(sorted(labels))}\t+{','.join(sorted(target_labels[name]))}")
        return 0

    rules = [d for d in rendered if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        problem(f"expected one PrometheusRule in the rendered chart, found {len(rules)}")
        alerts = []
    else:
        rule = rules[0]
        if rule.get("apiVersion") != "monitoring.coreos.com/v1" or set(rule) != {"apiVersion", "kind", "metadata", "spec"}:
            problem("the PrometheusRule must be monitoring.coreos.com/v1 with metadata and spec only")
        if set(rule.get("spec", {})) != {"groups"}:
            problem("the PrometheusRule's spec must hold groups only")
        (out_dir / "rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
        alerts = check_alerts(rule, exported, target_labels)
        check_alert_tests(alerts, exported, target_labels)

    exprs = check_dashboards(rendered, exported, target_labels)
    recording = {"groups": [{"name": "dashboard-expressions", "rules": [
        {"record": record, "expr": e} for record, e in exprs
    ]}]}
    (out_dir / "dashboard-exprs.yaml").write_text(yaml.safe_dump(recording, sort_keys=False))

    print(f"metrics exported by the code: {len(exported)} series names; alerts: {len(alerts)}; "
          f"dashboard expressions: {len(exprs)}", file=sys.stderr)
    if problems:
        print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
        print(f"{len(problems)} problems", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
