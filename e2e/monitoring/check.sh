#!/usr/bin/env bash
# Checks the chart's Grafana dashboards and Prometheus alerts, offline:
#   e2e/monitoring/check.sh
#
# 1. lints and renders charts/paddock with the dashboards, the PrometheusRule and the monitors
#    enabled;
# 2. check.py: the metric and label names every dashboard panel, template variable, alert and
#    alert test uses are ones the runtime and the operator export (read from their Rust
#    sources); dashboards are valid JSON with unique uids; every alert has its annotations and
#    a runbook section in docs/runbooks.md; it writes the rule groups and, as throwaway
#    recording rules, every dashboard expression;
# 3. promtool check rules on both (PromQL parses, rule files are valid);
# 4. promtool test rules e2e/monitoring/alerts.test.yaml: each alert fires on the series it
#    should and not on the others;
# 5. renders the rules again with each threshold, window or `for` changed, and requires the
#    unit tests to fail on every one: the values reach the rules, and the tests notice.
#
# promtool and helm come from e2e/tools/build.sh (built once per version). Needs python3 with
# PyYAML (installed from its pinned wheel when missing).
set -euo pipefail

# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
PADDOCK_LOG_TAG=monitoring
cd "$PADDOCK_REPO_ROOT"

case ${1:-} in
  "") ;;
  -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument $1" ;;
esac

start=$SECONDS
eval "$(e2e/tools/build.sh helm promtool)"

if ! python3 -c 'import yaml' 2>/dev/null; then
  wheel=$(pip_download pyyaml==6.0.3 "$PADDOCK_CACHE/downloads" \
    b8bb0864c5a28024fac8a632c443c87c5aa6f215c0b126c449ae1a150412f31d)
  export PYTHONPATH=$wheel${PYTHONPATH:+:$PYTHONPATH}
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

render() {
  "$HELM" template paddock charts/paddock --namespace paddock-system \
    --set dashboards.enabled=true --set prometheusRule.enabled=true \
    --set serviceMonitor.enabled=true "$@"
}

# rules_of RENDERED OUT: the PrometheusRule's spec, as a Prometheus rule file.
rules_of() {
  python3 -c '
import sys, yaml
rule = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"]
assert len(rule) == 1, "expected one PrometheusRule"
yaml.safe_dump(rule[0]["spec"], open(sys.argv[2], "w"), sort_keys=False)' "$1" "$2"
}

"$HELM" lint --strict charts/paddock --set dashboards.enabled=true --set prometheusRule.enabled=true \
  --set serviceMonitor.enabled=true >/dev/null
render >"$work/chart.yaml"
python3 e2e/monitoring/check.py "$work/chart.yaml" "$work"
"$PROMTOOL" check rules "$work/rules.yaml" >&2
"$PROMTOOL" check rules "$work/dashboard-exprs.yaml" >&2
cp e2e/monitoring/alerts.test.yaml "$work/"
(cd "$work" && "$PROMTOOL" test rules alerts.test.yaml) >&2

# Each of these changes one value so that some test's expectation no longer holds.
mutations=(
  prometheusRule.alerts.errorRate.ratio=0.1
  'prometheusRule.alerts.errorRate.statusRegex=-32603|tool_error'
  prometheusRule.alerts.databaseUnavailable.for=20m
  prometheusRule.alerts.hybridSearchLatency.p99Seconds=3
  prometheusRule.alerts.embeddingBreakerOpen.for=10m
  prometheusRule.alerts.tasksStuck.for=30m
  prometheusRule.alerts.budgetWarning.percent=90
  prometheusRule.alerts.budgetExceeded.for=20m
  prometheusRule.alerts.reconcileFailing.for=35m
  prometheusRule.alerts.operatorNoLeader.for=15m
  prometheusRule.alerts.operatorNoLeader.severity=warning
  prometheusRule.alerts.toolServerNotVerified.for=30m
  prometheusRule.alerts.tenantNotReady.for=30m
  prometheusRule.alerts.agentTasksStuck.maxAgeSeconds=7200
  prometheusRule.alerts.agentTasksStuck.for=20m
  prometheusRule.alertLabels.team=platform
  prometheusRule.runbookUrl=https://docs.example/runbooks.md
)
mkdir "$work/mutated"
cp e2e/monitoring/alerts.test.yaml "$work/mutated/"
for m in "${mutations[@]}"; do
  render --set-string "$m" >"$work/mutated/chart.yaml"
  rules_of "$work/mutated/chart.yaml" "$work/mutated/rules.yaml"
  if (cd "$work/mutated" && "$PROMTOOL" test rules alerts.test.yaml) >/dev/null 2>&1; then
    die "the alert tests still pass with $m: that value does not reach the rules, or no test covers it"
  fi
done
log "the alert tests fail, as they should, with each of ${#mutations[@]} changed values"

# Every alert disabled: the chart still renders a valid (empty) rule file.
off=()
for a in errorRate databaseUnavailable hybridSearchLatency embeddingBreakerOpen tasksStuck \
  budgetWarning budgetExceeded reconcileFailing operatorNoLeader toolServerNotVerified \
  tenantNotReady agentTasksStuck; do
  off+=(--set "prometheusRule.alerts.$a.enabled=false")
done
render "${off[@]}" >"$work/mutated/chart.yaml"
rules_of "$work/mutated/chart.yaml" "$work/mutated/rules.yaml"
"$PROMTOOL" check rules "$work/mutated/rules.yaml" >/dev/null 2>&1 \
  || die "with every alert disabled the PrometheusRule is not a valid rule file"

log "dashboards and alerts checked in $((SECONDS - start))s"
