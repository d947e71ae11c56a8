# 0410-promtool: the monitoring/ files are valid for Prometheus' own checker:
# `promtool check rules` on the alert and recording rules, `promtool test
# rules` on their unit tests (monitoring/alerts_test.yml: which alert fires
# when), `promtool check config` on the example prometheus.yml with a file_sd
# targets file written by monitoring/kiln-targets.sh, and the Grafana
# dashboard is JSON whose panels all carry a PromQL expression.
# Skips (77) without promtool (Debian package `prometheus`).
set -u
: "${KILN_SRC:?run through tests/run.sh}"
command -v promtool >/dev/null 2>&1 || { echo "skip - promtool not installed (Debian package prometheus)"; exit 77; }
FAILS=0
T=$(mktemp -d /tmp/kiln-0410.XXXXXX)
trap 'rm -rf "$T"' EXIT
check() {
  local name=$1; shift
  if "$@" > "$T/out" 2>&1; then echo "ok - $name"; else echo "not ok - $name"; sed 's/^/# /' "$T/out"; FAILS=$((FAILS+1)); fi
}
M=$KILN_SRC/monitoring

check "promtool check rules monitoring/alerts.yml" promtool check rules "$M/alerts.yml"
check "promtool test rules monitoring/alerts_test.yml" bash -c "cd '$M' && promtool test rules alerts_test.yml"

# file_sd targets from a stack's run/ directory
mkdir -p "$T/stack/run"
echo 41234 > "$T/stack/run/worker-w1.metrics"
echo 41235 > "$T/stack/run/worker-w2.metrics"
echo 41236 > "$T/stack/run/scheduler.metrics"
echo 999 > "$T/stack/run/worker-w1.pid"
cp "$M/prometheus.yml" "$M/alerts.yml" "$T/"
"$M/kiln-targets.sh" "$T/stack" > "$T/kiln-workers.json"
check "kiln-targets.sh lists both workers with a worker label" \
  bash -c "[ \"\$(jq -c '[.[] | [.targets[0], .labels.worker]]' '$T/kiln-workers.json')\" = '[[\"127.0.0.1:41234\",\"w1\"],[\"127.0.0.1:41235\",\"w2\"]]' ]"
check "kiln-targets.sh --job scheduler" \
  bash -c "[ \"\$('$M/kiln-targets.sh' --job scheduler '$T/stack' | jq -r '.[0].targets[0]')\" = 127.0.0.1:41236 ]"
check "kiln-targets.sh on an empty stack writes []" \
  bash -c "[ \"\$('$M/kiln-targets.sh' '$T/nothing' | jq -c .)\" = '[]' ]"
# promtool also parses the file_sd file when it exists
check "promtool check config monitoring/prometheus.yml (with its file_sd file)" \
  bash -c "promtool check config '$T/prometheus.yml' && ! promtool check config '$T/prometheus.yml' 2>&1 | grep -q WARNING"
echo '[{"targets": ["x:1"], "labels": {"bad-label": "1"}}]' > "$T/kiln-workers.json"
check "promtool check config rejects a bad targets file (the check has teeth)" \
  bash -c "! promtool check config '$T/prometheus.yml'"

D=$M/grafana/kiln.json
check "grafana dashboard is JSON with a uid and panels" \
  bash -c "jq -e '.uid == \"kiln-overview\" and (.panels | length) > 10' '$D'"
check "every non-row panel has a PromQL target" \
  bash -c "jq -e '[.panels[] | select(.type != \"row\") | (.targets // []) | length > 0 and all(.[]; (.expr // \"\") != \"\")] | all' '$D'"
check "dashboard covers queues, throughput, latency, batch sizes, GPU, DLQ" \
  bash -c "for m in kiln_queue_depth_messages kiln_backlog_work_units kiln_jobs_total kiln_job_latency_seconds_bucket kiln_batch_size_bucket kiln_gpu_utilization kiln_dlq_total kiln_inference_exec_count; do jq -r '.panels[].targets[]?.expr' '$D' | grep -q \$m || { echo missing \$m; exit 1; }; done"
check "panel grid positions do not overlap" python3 - "$D" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cells = {}
for p in d["panels"]:
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24, p["title"]
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            assert (x, y) not in cells, (p["title"], cells.get((x, y)))
            cells[(x, y)] = p["title"]
PY
exit $(( FAILS > 0 ? 1 : 0 ))
