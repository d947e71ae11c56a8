# 0420-prometheus: a real Prometheus (Debian's `prometheus`) scrapes the
# workers of an embedded stack through file_sd targets written by
# monitoring/kiln-targets.sh, with monitoring/alerts.yml loaded. Workers hold
# a whole backlog in one long batch (max_queue_delay_us 15 s), so the queue
# stays put while we compare, through the Prometheus HTTP API:
#   - kiln_queue_depth_messages per partition = the open jobs per partition
#     in Postgres = high watermark - committed offset (kiln status);
#   - kiln_backlog_work_units = the queued work units in Postgres;
# then, once the batches commit: depth 0, jobs/DLQ/inference counters and
# the latency histogram add up, every dashboard query evaluates, and a
# worker's /metrics passes `promtool check metrics` (Triton names aside).
# Skips (77) without prometheus.
. "$(dirname "$0")/lib.sh"
command -v prometheus >/dev/null 2>&1 || { echo "skip - prometheus not installed (Debian package prometheus)"; exit 77; }
PROM_PID=
stop_prom() { [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null; PROM_PID=; }
trap 'stop_prom; cleanup' EXIT
M=$KILN_SRC/monitoring

check "stack up (2 workers, 15 s batches, static assignment)" stack_up --workers 2 \
  --set worker.max_queue_delay_us=15000000 --set worker.max_batch=4096 \
  --set scheduler.policy=static --set scheduler.worker_timeout_ms=120000
check "workers wrote their metrics port files" \
  wait_until 10 test -s "$KILN_STACK_DIR/run/worker-w1.metrics" -a -s "$KILN_STACK_DIR/run/worker-w2.metrics"

# Prometheus on a free loopback port, scraping every second
P=$TMPROOT/prom
mkdir -p "$P"
cp "$M/alerts.yml" "$P/"
"$M/kiln-targets.sh" "$KILN_STACK_DIR" > "$P/kiln-workers.json"
# the scheduler's port, when it serves /metrics (else its target stays down)
SCHED_PORT=$(cat "$KILN_STACK_DIR/run/scheduler.metrics" 2>/dev/null || echo 9464)
sed -e 's/scrape_interval: 15s/scrape_interval: 1s/' -e 's/evaluation_interval: 15s/evaluation_interval: 1s/' \
    -e 's/refresh_interval: 30s/refresh_interval: 1s/' -e "s/127.0.0.1:9464/127.0.0.1:$SCHED_PORT/" \
    "$M/prometheus.yml" > "$P/prometheus.yml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prometheus --config.file="$P/prometheus.yml" --storage.tsdb.path="$P/data" \
  --web.listen-address="127.0.0.1:$PORT" --log.level=warn > "$TMPROOT/prometheus.log" 2>&1 &
PROM_PID=$!
API=http://127.0.0.1:$PORT/api/v1
check "prometheus ready" wait_until 20 curl -sf "http://127.0.0.1:$PORT/-/ready" -o /dev/null

# promq EXPR: the instant query's result as "labelvalue value" lines (labels
# joined with ','), sorted; empty on no data
promq() {
  curl -s --max-time 5 --data-urlencode "query=$1" "$API/query" |
    jq -r 'select(.status == "success") | .data.result[] | "\([.metric[]] | join(",")) \(.value[1])"' | sort
}
promv() { promq "$1" | awk 'NR == 1 {print $NF}'; } # the value of a one-series result
is() { [ "$(promv "$1")" = "$2" ]; }

check "both workers are scraped (up == 1)" wait_until 15 is 'count(up{job="kiln-worker"} == 1)' 2
check "worker label from the targets file matches kiln_worker_info's worker_id" \
  eq "$(promq 'count by (worker, worker_id, instance) (kiln_worker_info{job="kiln-worker"} == 1)' | awk '{print $1}' | sort -t, -k2 | tr '\n' ' ')" \
  "127.0.0.1:$(cat "$KILN_STACK_DIR/run/worker-w1.metrics"),w1,w1 127.0.0.1:$(cat "$KILN_STACK_DIR/run/worker-w2.metrics"),w2,w2 "
check "alert rules loaded" eq "$(curl -s "$API/rules" | jq '[.data.groups[].rules[]] | length')" 16
check "no GPU here: gpu=none" bash -c "[ -n \"\$(nvidia-smi -L 2>/dev/null)\" ] || [ \"\$(curl -s --data-urlencode 'query=count(kiln_gpu_utilization{gpu=\"none\"} == 0)' '$API/query' | jq -r '.data.result[0].value[1]')\" = 2 ]"

# the backlog: 40 half-second tones and one undecodable file (-> DLQ)
N=40
tone "$TMPROOT/a.wav" 0.5
head -c 3000 /dev/urandom > "$TMPROOT/bad.wav"
files=(); for i in $(seq "$N"); do files+=("$TMPROOT/a.wav"); done
"$KILN" submit --tenant acme "${files[@]}" "$TMPROOT/bad.wav" > "$TMPROOT/ids" 2> "$TMPROOT/submit.err"
T=$((N + 1))
check "submit printed $T ids" eq "$(wc -l < "$TMPROOT/ids")" "$T"
check "queue depth reaches $T in Prometheus" wait_until 15 is 'sum(max by (partition) (kiln_queue_depth_messages))' "$T"
# everything is held in the workers' open batches: Postgres and Kafka agree
open_pg=$(q "SELECT kpartition, count(*) FROM jobs WHERE status IN ('queued', 'running') GROUP BY 1 ORDER BY 1" | tr '|' ' ')
depth_prom=$(promq 'max by (partition) (kiln_queue_depth_messages > 0)' | sort -n)
check "jobs still open in Postgres (batches not committed yet)" eq "$(q "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")" "$T"
check "kiln_queue_depth_messages per partition = open jobs per partition in Postgres" eq "$depth_prom" "$open_pg"
backlog_kafka=$("$KILN" status | awk '/kiln.transcribe.jobs/ {print $NF}')
check "sum of queue depth = Kafka high watermark - committed offset ($backlog_kafka)" eq "$(promv 'sum(max by (partition) (kiln_queue_depth_messages))')" "$backlog_kafka"
check "kiln_consumer_lag = queue depth" eq "$(promq 'max by (partition) (kiln_consumer_lag > 0)' | sort -n)" "$depth_prom"
check "queue depth has the modality label" eq "$(promq 'count by (modality) (kiln_queue_depth_messages)' | awk '{print $1}')" transcribe
wu_pg=$(q "SELECT round(sum(work_units)::numeric, 3) FROM jobs WHERE status IN ('queued', 'running')")
wu_prom=$(promv 'sum(max by (partition) (kiln_backlog_work_units))')
# an estimate (moving mean of kiln-work-units per partition): exact for the
# tones, off by at most one tone where the 0-unit bad file shares a partition
check "kiln_backlog_work_units ($wu_prom) = queued work units in Postgres ($wu_pg) within 0.5" \
  python3 -c "import sys; sys.exit(abs(float('$wu_prom') - float('$wu_pg')) > 0.5)"
check "recording rule kiln:queue_depth_messages:sum" wait_until 5 is 'kiln:queue_depth_messages:sum{modality="transcribe"}' "$T"
if [ -s "$KILN_STACK_DIR/run/scheduler.metrics" ]; then
  check "scheduler: kiln_scheduler_queued_jobs = $T" wait_until 5 is 'kiln_scheduler_queued_jobs{job="kiln-scheduler",modality="transcribe"}' "$T"
  check "scheduler: desired workers exported" wait_until 5 is 'count(kiln_scheduler_desired_workers{job="kiln-scheduler"})' 3
else
  echo "# the scheduler serves no /metrics here: its checks are skipped"
fi
check "all 32 partitions are reported" eq "$(promv 'count(count by (partition) (kiln_consumer_lag))')" 32
check "by exactly one worker each" eq "$(promq 'count by (partition) (kiln_consumer_lag) > 1')" ""

# the batches commit (15 s after their first message)
check "all jobs terminal" wait_until 40 all_terminal
check "queue depth drops to 0 in Prometheus" wait_until 10 is 'sum(kiln_queue_depth_messages)' 0
check "kiln_jobs_total done = $N" wait_until 5 is 'sum(kiln_jobs_total{status="done"})' "$N"
check "kiln_dlq_total{reason=BAD_INPUT} = 1" is 'sum(kiln_dlq_total{reason="BAD_INPUT",modality="transcribe"})' 1
check "kiln_inference_count = $N" is 'sum(kiln_inference_count{model="null"})' "$N"
check "kiln_inference_exec_count = batches with jobs" is 'sum(kiln_inference_exec_count)' "$(promv 'count(kiln_jobs_total{status="done"} > 0)')"
check "kiln_batch_size: one batch per worker with work, holding $T messages" \
  eq "$(promv 'sum(kiln_batch_size_sum)') $(promv 'sum(kiln_batch_size_count)')" "$T $(promv 'count(kiln_batch_size_count > 0)')"
check "kiln_job_latency_seconds counts $T jobs" is 'sum(kiln_job_latency_seconds_count)' "$T"
lat=$(promv 'sum(kiln_job_latency_seconds_sum) / sum(kiln_job_latency_seconds_count)')
pg_lat=$(q "SELECT round(avg(EXTRACT(EPOCH FROM finished_at - enqueued_at))::numeric, 3) FROM jobs")
check "mean job latency ($lat s) matches Postgres finished_at - enqueued_at ($pg_lat s) within 1 s" \
  python3 -c "import sys; sys.exit(abs(float('$lat') - float('$pg_lat')) > 1.0)"
check "latency buckets are cumulative" bash -c "promq() { curl -s --data-urlencode \"query=\$1\" '$API/query' | jq -r '.data.result[] | \"\(.metric.le) \(.value[1])\"'; }; promq 'sum by (le) (kiln_job_latency_seconds_bucket)' | sed 's/^+Inf/inf/' | sort -g | awk 'BEGIN{p=0} {if (\$2 < p) exit 1; p=\$2} END{exit p != $T}'"
check "work units done = $N x 0.5 s" is 'sum(kiln_work_units_total)' "$(python3 -c "print($N * 0.5)" | sed 's/\.0$//')"
check "queue duration counted (Triton-style, microseconds)" bash -c "[ \"\$(curl -s --data-urlencode 'query=sum(kiln_inference_queue_duration_us) > 0' '$API/query' | jq '.data.result | length')\" = 1 ]"

# every query of the Grafana dashboard evaluates on this Prometheus
bad=0
while IFS= read -r expr; do
  e=${expr//\$__rate_interval/1m}; e=${e//\$modality/.*}
  st=$(curl -s --data-urlencode "query=$e" "$API/query" | jq -r .status)
  [ "$st" = success ] || { echo "# dashboard query failed: $expr" >&2; bad=$((bad+1)); }
done < <(jq -r '.panels[].targets[]?.expr' "$M/grafana/kiln.json")
check "every Grafana dashboard query evaluates" eq "$bad" 0

# the exposition itself: promtool's linter finds nothing but the four
# Triton-compatible counter names (kept on purpose, see docs/monitoring.md)
curl -s "http://127.0.0.1:$(cat "$KILN_STACK_DIR/run/worker-w1.metrics")/metrics" > "$TMPROOT/w1.prom"
promtool check metrics < "$TMPROOT/w1.prom" > "$TMPROOT/lint" 2>&1
check "promtool check metrics: only the Triton names are flagged" \
  bash -c "! grep -v -E '^kiln_inference_(exec_count|count|queue_duration_us|compute_duration_us) ' '$TMPROOT/lint' | grep -q ."
check "/healthz" eq "$(curl -s "http://127.0.0.1:$(cat "$KILN_STACK_DIR/run/worker-w1.metrics")/healthz")" ok
stop_prom
stack_down
check "port files removed when workers exit" bash -c "! ls '$KILN_STACK_DIR'/run/*.metrics 2>/dev/null | grep -q ."
finish
