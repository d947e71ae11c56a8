# 0910-deploy_static: the deployment files under deploy/ checked without
# deploying anything. Every YAML parses; every KILN_* variable, --set key and
# kiln.conf key they (and docs/operations.md) use exists in the property table
# of this binary, and kiln accepts the values; the ConfigMap is what
# deploy/gen-configmap.sh makes from the table today; the Kubernetes objects
# refer to each other correctly (kubectl kustomize); compose has the services
# the issue asks for, with GPU reservations and mounts that exist; the
# Dockerfile builds what the Makefile needs; systemd units pass
# `systemd-analyze verify`; Prometheus configs pass promtool; `docker compose
# config` runs where the compose plugin exists. Tools that are missing turn
# their sub-check into "ok - ... # SKIP". Starts nothing; a few seconds.
. "$(dirname "$0")/lib.sh"
SRC=$KILN_SRC
DEPLOY=$SRC/deploy
python3 -c 'import yaml' 2>/dev/null || { echo "skip - PyYAML is not installed (python3-yaml)"; exit 77; }

# a clean place to run kiln: no stack.conf, no kiln.conf, no KILN_* from the caller
mkdir -p "$TMPROOT/cwd" "$TMPROOT/stack"
kiln_clean() { (cd "$TMPROOT/cwd" && env -i PATH="$PATH" KILN_STACK_DIR="$TMPROOT/stack" "$@"); }
kiln_clean "$KILN" conf --reference > "$TMPROOT/reference"
check "kiln conf --reference lists the property table" test "$(grep -c '^  [a-z]' "$TMPROOT/reference")" -ge 30

# ---- YAML, config keys, ConfigMap currency, k8s and compose structure (python)
KILN_REF=$TMPROOT/reference KILN_CONF_C=$SRC/lib/conf.c TMPROOT=$TMPROOT python3 - "$DEPLOY" "$SRC" <<'PY'
import glob, os, re, subprocess, sys, yaml

deploy, src = sys.argv[1], sys.argv[2]
tmp = os.environ["TMPROOT"]
kiln = os.environ["KILN"]
fails = 0

def check(name, ok, why=""):
    global fails
    print(("ok - " if ok else "not ok - ") + name)
    if not ok:
        fails += 1
        for line in str(why).splitlines()[:15]:
            print("#   " + line)

def skip(name, reason):
    print("ok - %s # SKIP %s" % (name, reason))

def rel(p):
    return os.path.relpath(p, src)

def run_kiln(args, env=None, cwd=None):
    e = {"PATH": os.environ["PATH"], "KILN_STACK_DIR": os.path.join(tmp, "stack")}
    e.update(env or {})
    return subprocess.run([kiln] + args, env=e, cwd=cwd or os.path.join(tmp, "cwd"),
                          capture_output=True, text=True)

files = sorted(p for p in glob.glob(deploy + "/**/*", recursive=True)
               if os.path.isfile(p) and "/secrets/" not in p)

# -- every YAML file parses
docs = {}
for p in files:
    if p.endswith((".yml", ".yaml")):
        try:
            docs[p] = [d for d in yaml.safe_load_all(open(p)) if d is not None]
            check("%s parses" % rel(p), len(docs[p]) > 0, "no document")
        except yaml.YAMLError as e:
            check("%s parses" % rel(p), False, e)
check("deploy/ has compose, k8s and monitoring YAML", len(docs) >= 10, sorted(docs))

# -- the property table of this binary, and the KILN_* variables it reads
props = set(re.findall(r"^  ([a-z][a-z0-9_.*]+) +(?:string|int|bool) ", open(os.environ["KILN_REF"]).read(), re.M))
env_of = lambda k: "KILN_" + k.upper().replace(".", "_")
table_envs = {env_of(k) for k in props if "*" not in k}
# pass-through secrets read from the environment (lib/conf.c pass_env[])
pass_envs = set(re.findall(r'\{"(KILN_[A-Z_]+)", "(?:pg|kafka)\.', open(os.environ["KILN_CONF_C"]).read()))
check("lib/conf.c names its pass-through environment variables", "KILN_PG_PASSWORD" in pass_envs, pass_envs)
def key_known(k):
    return k in props or k.startswith(("kafka.", "pg."))

# -- every KILN_* variable, --set key and kiln.conf key used in deploy/ and docs/operations.md
scan = files + [os.path.join(src, "docs", "operations.md")]
bad_env, bad_set, bad_conf, n_env, n_set, n_conf = [], [], [], 0, 0, 0
conf_blocks = []  # (where, text) of kiln.conf contents
for p in scan:
    if not os.path.exists(p):
        continue
    text = open(p, errors="replace").read()
    for v in set(re.findall(r"\bKILN_[A-Z0-9_]*[A-Z0-9]\b", text)):
        n_env += 1
        if v not in table_envs and v not in pass_envs:
            bad_env.append("%s: %s" % (rel(p), v))
    for k in set(re.findall(r"--set[\s\"',=\[]+([a-z][a-z0-9_]*\.[a-z0-9_.]+)=", text)):
        n_set += 1
        if not key_known(k):
            bad_set.append("%s: --set %s" % (rel(p), k))
    if re.search(r"\.conf(\.example)?$", p):
        conf_blocks.append((rel(p), text))
    for i, block in enumerate(re.findall(r"^```ini\n(.*?)^```", text, re.M | re.S)):
        conf_blocks.append(("%s (ini block %d)" % (rel(p), i + 1), block))
for p, ds in docs.items():
    for d in ds:
        if isinstance(d, dict) and d.get("kind") == "ConfigMap":
            for k, v in (d.get("data") or {}).items():
                if k.endswith(".conf"):
                    conf_blocks.append(("%s:%s" % (rel(p), k), v))
conf_re = re.compile(r"^\s*#?\s*([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)\s*=\s*(.*?)\s*$", re.M)
for where, text in conf_blocks:
    for k, _ in conf_re.findall(text):
        n_conf += 1
        if not key_known(k):
            bad_conf.append("%s: %s" % (where, k))
check("every KILN_* variable is a property or a pass-through secret (%d)" % n_env, n_env > 20 and not bad_env, "\n".join(sorted(bad_env)))
check("every --set key is a property (%d)" % n_set, n_set > 0 and not bad_set, "\n".join(sorted(bad_set)))
check("every kiln.conf key is a property or kafka.*/pg.* (%d)" % n_conf, n_conf > 10 and not bad_conf, "\n".join(sorted(bad_conf)))

# -- kiln accepts the values (types, ranges): each kiln.conf, each environment
def defile(v):  # "@file:/run/secrets/x" cannot be read here: any string will do
    return re.sub(r"@file:\S+", "secret", str(v))
def interp(v):  # compose "${VAR:-default}" -> default
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v))
for where, text in conf_blocks:
    path = os.path.join(tmp, "check.conf")
    open(path, "w").write("\n".join(defile(l) for l in text.splitlines()) + "\n")
    r = run_kiln(["conf", "--conf", path])
    check("kiln accepts %s" % where, r.returncode == 0, r.stderr)
def check_env(where, env):
    env = {k: defile(interp(v)) for k, v in env.items() if k.startswith("KILN_")}
    r = run_kiln(["conf"], env)
    check("kiln accepts the environment of %s (%d KILN_* variables)" % (where, len(env)),
          r.returncode == 0 and env, r.stderr)

# -- the ConfigMap is what gen-configmap.sh makes from this binary's table
cm_path = os.path.join(deploy, "k8s", "configmap.yaml")
head = open(cm_path).readline()
m = re.match(r"# Generated by: deploy/gen-configmap.sh(.*)$", head)
check("k8s/configmap.yaml records how it was generated", m, head)
if m:
    import shlex
    r = subprocess.run(["bash", os.path.join(deploy, "gen-configmap.sh"), "--kiln", kiln] + shlex.split(m.group(1)),
                       capture_output=True, text=True, cwd=src)
    current = open(cm_path).read()
    check("k8s/configmap.yaml is current (rerun the command in its first line)",
          r.returncode == 0 and r.stdout == current,
          r.stderr or "\n".join(l for l in __import__("difflib").unified_diff(
              current.splitlines(), r.stdout.splitlines(), "committed", "generated", lineterm=""))[:2000])
cm = yaml.safe_load(open(cm_path))
data = cm.get("data") or {}
check("ConfigMap holds no secret", not any(k in data for k in ("KILN_S3_ACCESS_KEY", "KILN_S3_SECRET_KEY", "KILN_PG_PASSWORD")), sorted(data))
want = {env_of(k) for k in props if "*" not in k and not k.startswith("stack.") and k not in
        ("broker.addr_file", "broker.partition_cap_bytes", "worker.id", "s3.access_key", "s3.secret_key")}
cm_text = open(cm_path).read()
missing = sorted(e for e in want if not re.search(r"^  #? ?%s:" % e, cm_text, re.M))
check("ConfigMap covers every deployable property", not missing, missing)
check_env("k8s/configmap.yaml", data)

# -- Kubernetes: render with kustomize and check the references
k8s = os.path.join(deploy, "k8s")
kubectl = subprocess.run(["bash", "-c", "command -v kubectl"], capture_output=True, text=True).stdout.strip()
if not kubectl:
    skip("kubectl kustomize deploy/k8s", "no kubectl")
else:
    r = subprocess.run([kubectl, "kustomize", k8s], capture_output=True, text=True)
    check("kubectl kustomize deploy/k8s renders", r.returncode == 0, r.stderr)
    objs = [d for d in yaml.safe_load_all(r.stdout) if d] if r.returncode == 0 else []
    by = lambda kind: {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}
    deps, sos, cms = by("Deployment"), by("ScaledObject"), by("ConfigMap")
    secrets = {d["metadata"]["name"] for ds in docs.values() for d in ds if isinstance(d, dict) and d.get("kind") == "Secret"}
    check("every namespaced object is in namespace kiln",
          all(o["metadata"].get("namespace") == "kiln" for o in objs if o["kind"] != "Namespace"),
          [o["metadata"]["name"] for o in objs if o["kind"] != "Namespace" and o["metadata"].get("namespace") != "kiln"])
    workers = {n: d for n, d in deps.items() if n.startswith("kiln-worker-")}
    check("a worker Deployment per GPU node pool (%s)" % ", ".join(sorted(workers)), len(workers) >= 2, sorted(deps))
    refs_bad = []
    for n, d in deps.items():
        spec = d["spec"]["template"]["spec"]
        sel = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in sel.items()):
            refs_bad.append("%s: selector %s does not match the pod labels" % (n, sel))
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef and ef["configMapRef"]["name"] not in cms:
                    refs_bad.append("%s: no ConfigMap %s" % (n, ef["configMapRef"]["name"]))
                if "secretRef" in ef and ef["secretRef"]["name"] not in secrets:
                    refs_bad.append("%s: no Secret %s" % (n, ef["secretRef"]["name"]))
        for v in spec.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in cms:
                refs_bad.append("%s: no ConfigMap %s" % (n, v["configMap"]["name"]))
        env = dict(data)
        for c in spec["containers"]:
            env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
        check_env("Deployment %s" % n, env)
    check("Deployments match their pods and name ConfigMaps/Secrets that exist", deps and not refs_bad, "\n".join(refs_bad))
    for n, d in sorted(workers.items()):
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        gpus = int((c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0))
        envs = {e["name"] for e in c.get("env", [])}
        check("%s: nodeSelector, one nvidia.com/gpu, drains on SIGTERM (grace >= 300 s), worker.gpu set" % n,
              spec.get("nodeSelector") and gpus == 1 and spec.get("terminationGracePeriodSeconds", 30) >= 300
              and "KILN_WORKER_GPU" in envs and c["args"][0] == "worker", yaml.safe_dump(spec)[:1500])
    s = deps.get("kiln-scheduler")
    check("one scheduler (replicas 1, Recreate) that migrates first",
          s and s["spec"]["replicas"] == 1 and s["spec"]["strategy"]["type"] == "Recreate"
          and any(c["args"][0] == "migrate" for c in s["spec"]["template"]["spec"].get("initContainers", [])))
    check("a KEDA ScaledObject per worker pool", sorted(so["spec"]["scaleTargetRef"]["name"] for so in sos.values()) == sorted(workers),
          sorted(sos))
    for n, so in sorted(sos.items()):
        trig = so["spec"]["triggers"]
        q = " ".join(t["metadata"].get("query", "") for t in trig if t["type"] == "prometheus")
        mods = re.findall(r'kiln_scheduler_desired_workers\{modality="([a-z]+)"\}', q)
        check("%s scales on kiln_scheduler_desired_workers of a real modality" % n,
              mods and all(m in ("transcribe", "speak", "image") for m in mods)
              and so["spec"]["maxReplicaCount"] <= int(data.get("KILN_BROKER_PARTITIONS_TRANSCRIBE", 0)), q)

# -- compose
cpath = os.path.join(deploy, "compose", "docker-compose.yml")
cdir = os.path.dirname(cpath)
c = yaml.safe_load(open(cpath))
svc = c["services"]
img = lambda s: str(svc.get(s, {}).get("image", ""))
kafka_env = svc.get("kafka", {}).get("environment", {})
check("compose: Apache Kafka in KRaft mode (official image)",
      img("kafka").startswith("apache/kafka:") and "controller" in str(kafka_env.get("KAFKA_PROCESS_ROLES")))
check("compose: Postgres 15, MinIO with its bucket, Prometheus, Grafana",
      img("postgres").startswith("postgres:15") and img("minio").startswith("minio/minio")
      and "mc mb" in str(svc.get("minio-init", {}).get("command")) and "prometheus" in svc and "grafana" in svc)
kilns = {n: s for n, s in svc.items() if str(s.get("image", "")).startswith("kiln")}
check("compose: kiln scheduler and migrations", kilns.get("kiln-scheduler", {}).get("command", [""])[0] == "scheduler"
      and kilns.get("kiln-migrate", {}).get("command", [""])[0] == "migrate", sorted(kilns))
cw = {n: s for n, s in kilns.items() if s.get("command", [""])[0] == "worker"}
devs = []
for n, s in sorted(cw.items()):
    d = (((s.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    ok = len(d) == 1 and "gpu" in d[0].get("capabilities", []) and len(d[0].get("device_ids", [])) == 1
    devs += d[0].get("device_ids", []) if ok else []
    check("compose: %s reserves one GPU and drains on SIGTERM" % n,
          ok and s.get("stop_grace_period") and s.get("environment", {}).get("KILN_WORKER_GPU") in d[0].get("device_ids", []),
          yaml.safe_dump(s.get("deploy")))
check("compose: one worker per GPU (%d), distinct GPUs and worker ids" % len(cw),
      len(cw) >= 1 and len(set(devs)) == len(cw)
      and len({s["environment"].get("KILN_WORKER_ID") for s in cw.values()}) == len(cw))
for n, s in sorted(kilns.items()):
    check_env("compose service %s" % n, s.get("environment") or {})
mounts_bad = []
for n, s in svc.items():
    for v in s.get("volumes", []):
        src_ = str(v).split(":")[0]
        if src_.startswith((".", "/")):
            path = os.path.normpath(os.path.join(cdir, src_))
            if not os.path.exists(path):
                mounts_bad.append("%s: %s" % (n, src_))
    b = s.get("build")
    if b and not os.path.exists(os.path.join(cdir, b["context"], b.get("dockerfile", "Dockerfile"))):
        mounts_bad.append("%s: build %s" % (n, b))
check("compose: every bind mount and Dockerfile exists", not mounts_bad, "\n".join(mounts_bad))
dash = glob.glob(os.path.join(src, "monitoring", "grafana", "*.json"))
check("compose: Grafana gets the dashboards of monitoring/grafana (%d)" % len(dash),
      dash and any("monitoring/grafana:" in str(v) for v in svc["grafana"].get("volumes", [])))
prom = yaml.safe_load(open(os.path.join(cdir, "prometheus", "prometheus.yml")))
targets = [t.split(":")[0] for sc in prom["scrape_configs"] for st in sc.get("static_configs", []) for t in st["targets"]]
check("compose: Prometheus scrapes the scheduler and every worker",
      set(targets) == set(cw) | {"kiln-scheduler"}, targets)
topics = str(svc.get("kafka-init", {}).get("command"))
check("compose: kafka-init creates job and DLQ topics for every modality and the events topic",
      all("kiln.%s.jobs" % m in topics for m in ("transcribe", "speak", "image"))
      and "kiln.$$m.dlq" in topics and "kiln.events" in topics, topics)

# -- Dockerfile: it builds what the Makefile compiles, with the packages the Makefile lists
df = open(os.path.join(deploy, "docker", "Dockerfile")).read()
mk = open(os.path.join(src, "Makefile")).read()
src_dirs = set(re.findall(r"\b([a-z]+)/(?:\*|[a-z*]+/)[^ )]*\.c\b", " ".join(re.findall(r"^(?:LIB|CMD)_SRCS := (.*)$", mk, re.M))))
src_dirs |= {"schema", "include"}
copied = set(re.findall(r"^COPY (?!--)([a-z]+) ", df, re.M))
check("Dockerfile copies every source directory make needs (%s)" % " ".join(sorted(src_dirs)),
      src_dirs <= copied, sorted(src_dirs - copied))
build_stage = df.split("\nFROM ")[1]
debs = re.search(r"^DEB_PKGS := ((?:.*\\\n)*.*)$", mk, re.M).group(1).replace("\\\n", " ").split()
dev = [p for p in debs if p.endswith("-dev")]
check("Dockerfile build stage installs every -dev package of DEB_PKGS",
      all(re.search(r"\b%s\b" % re.escape(p), build_stage) for p in dev),
      [p for p in dev if not re.search(r"\b%s\b" % re.escape(p), build_stage)])
runtime_pkg = {"rdkafka": "librdkafka1", "pq": "libpq5", "sndfile": "libsndfile1", "jansson": "libjansson4",
               "soxr": "libsoxr0", "curl": "libcurl4", "crypto": "libssl3", "microhttpd": "libmicrohttpd12",
               "openblas": "libopenblas0", "fftw3f": "libfftw3-single3", "espeak-ng": "libespeak-ng1", "m": None}
libs = re.findall(r"-l([a-z0-9_+-]+)", re.search(r"^LIBS := (.*)$", mk, re.M).group(1))
runtime = df.split(" AS runtime\n")[1].split("\nFROM ")[0]
need = [l for l in libs if runtime_pkg.get(l, "?") is not None and
        (runtime_pkg.get(l) is None or not re.search(r"\b%s\b" % re.escape(runtime_pkg[l]), runtime))]
check("Dockerfile runtime stage has a package for every library kiln links (-l%s)" % " -l".join(libs), not need,
      "missing for: %s (add the runtime package to the Dockerfile and to runtime_pkg in this test)" % need)

sys.exit(1 if fails else 0)
PY
[ $? -eq 0 ] || FAILS=$((FAILS+1))

# ---- promtool on the compose Prometheus config (rule files from monitoring/)
if command -v promtool > /dev/null; then
  sed "s|/etc/prometheus/kiln/|$SRC/monitoring/|" "$DEPLOY/compose/prometheus/prometheus.yml" > "$TMPROOT/prometheus.yml"
  check "promtool check config deploy/compose/prometheus/prometheus.yml" \
      promtool check config "$TMPROOT/prometheus.yml"
else
  echo "ok - promtool check config # SKIP no promtool"
fi

# ---- systemd units (ExecStart pointed at this build's binary, which must exist)
if command -v systemd-analyze > /dev/null; then
  mkdir -p "$TMPROOT/units"
  for u in "$DEPLOY"/systemd/*.service; do
    sed "s|/usr/local/bin/kiln|$KILN|g" "$u" > "$TMPROOT/units/$(basename "$u")"
  done
  for u in "$TMPROOT"/units/*.service; do
    name=$(basename "$u"); inst=${name/@./@0.}
    out=$(cd "$TMPROOT/units" && systemd-analyze verify --man=no "./$inst" 2>&1); rc=$?
    check "systemd-analyze verify $name" eval '[ $rc -eq 0 ] && [ -z "$out" ] || { echo "$out" | sed "s/^/#   /"; false; }'
  done
  check "worker unit: one per GPU, SIGTERM drain with a long stop timeout, restart on failure" \
      bash -c "f='$DEPLOY/systemd/kiln-worker@.service'; grep -q '^KillSignal=SIGTERM' \$f && grep -q '^Restart=on-failure' \$f &&
               grep -q '^Environment=CUDA_VISIBLE_DEVICES=%i' \$f && [ \$(sed -n 's/^TimeoutStopSec=//p' \$f) -ge 300 ]"
  check "scheduler unit restarts on failure" grep -q '^Restart=on-failure' "$DEPLOY/systemd/kiln-scheduler.service"
else
  echo "ok - systemd-analyze verify # SKIP no systemd-analyze"
fi

# ---- docker compose config (needs the compose plugin; no daemon needed)
if docker compose version > /dev/null 2>&1; then
  bash "$DEPLOY/compose/init-secrets.sh" "$TMPROOT/secrets" > /dev/null
  out=$(SECRETS_DIR=$TMPROOT/secrets docker compose -f "$DEPLOY/compose/docker-compose.yml" config -q 2>&1); rc=$?
  check "docker compose config" eval '[ $rc -eq 0 ] || { echo "$out" | sed "s/^/#   /"; false; }'
else
  echo "ok - docker compose config # SKIP no docker compose plugin"
fi
finish
