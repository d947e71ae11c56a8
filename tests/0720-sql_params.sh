# 0720-sql_params: every SQL statement in kiln's C sources reaches Postgres as
# fixed text, with data in parameters. tests/0720-sql_scan.pl follows the SQL
# argument of every libpq exec call and of every wrapper around one; here it
# must pass on the tree, and fail on each kind of string-built SQL planted in
# a copy of it (so the scan is known to catch them), while a planted
# parameterised query passes.
set -u
: "${KILN_SRC:?run through tests/run.sh}"
FAILS=0
check() {
  local name=$1; shift
  if "$@"; then echo "ok - $name"; else echo "not ok - $name"; FAILS=$((FAILS+1)); fi
}
SCAN=$KILN_SRC/tests/0720-sql_scan.pl
DIRS=(lib workers scheduler producers cmd)
# Reviewed exceptions: fixed SQL the scan cannot see as a literal.
#  - lib/pg.c kiln_pg_migrate runs the migrations embedded at build time from
#    schema/NNN_*.sql (gen/schema_sql.c); they carry no data.
ALLOW=(--allow lib/pg.c:kiln_pg_migrate)
tmp=$(mktemp -d /tmp/kiln-sqlscan.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

scan() {  # dir -> output in $tmp/out, status returned
  (cd "$1" && perl "$SCAN" "${ALLOW[@]}" "${DIRS[@]}") > "$tmp/out" 2>&1
}
scan "$KILN_SRC"; rc=$?
sed 's/^/# /' "$tmp/out"
check "no string-built SQL in ${DIRS[*]}" test $rc -eq 0
n=$(sed -n 's/^# call sites checked: \([0-9]*\).*/\1/p' "$tmp/out")
check "the scan checked the SQL of at least 40 call sites" test "${n:-0}" -ge 40
check "the scan found the wrappers (kiln_pg_exec, kiln_pg_execp, kiln_tx_exec)" \
    grep -q 'kiln_pg_exec(arg 2).*kiln_pg_execp(arg 2).*kiln_tx_exec(arg 2)' "$tmp/out"

# plant FILE CONTENT: a copy of the tree with one more file in workers/
plant() {
  rm -rf "$tmp/tree"; mkdir "$tmp/tree"
  for d in "${DIRS[@]}"; do cp -r "$KILN_SRC/$d" "$tmp/tree/$d"; done
  printf '%s\n' "$2" > "$tmp/tree/workers/$1"
}
caught() {  # file line: the scan fails and names the planted line
  scan "$tmp/tree" && { echo "# the scan passed:"; sed 's/^/#   /' "$tmp/out"; return 1; }
  grep -q "^workers/$1:$2: " "$tmp/out" || { echo "# not reported at workers/$1:$2:"; sed 's/^/#   /' "$tmp/out"; return 1; }
}
HDR='#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include "kiln/pg.h"'

plant p1.c "$HDR
void p1(PGconn *pg, const char *id) {
    char q[256];
    snprintf(q, sizeof(q), \"SELECT * FROM jobs WHERE id = '%s'\", id);
    PQclear(PQexec(pg, q));
}"
check "caught: snprintf into a query passed to PQexec" caught p1.c 8

plant p2.c "$HDR
void p2(PGconn *pg, const char *tenant) {
    char q[256] = \"DELETE FROM jobs WHERE tenant = '\";
    strcat(q, tenant);
    strcat(q, \"'\");
    char e[64];
    kiln_pg_exec(pg, q, e, sizeof(e));
}"
check "caught: strcat into a query passed to kiln_pg_exec" caught p2.c 10

plant p3.c "$HDR
static void p3_run(PGconn *pg, const char *sql) {
    const char *none[1] = {NULL};
    PQclear(PQexecParams(pg, sql, 0, NULL, none, NULL, NULL, 0));
}
void p3(PGconn *pg, const char *id) {
    char q[128];
    sprintf(q, \"UPDATE jobs SET status = 'dead' WHERE id = '%s'\", id);
    p3_run(pg, q);
}"
check "caught: a built query through a new wrapper" caught p3.c 12

plant p4.c "$HDR
char *p4_sql(const char *id);
void p4(PGconn *pg, const char *id) {
    PQclear(PQexecParams(pg, p4_sql(id), 0, NULL, NULL, NULL, NULL, 0));
}"
check "caught: SQL computed by a function" caught p4.c 7

plant p5.c "$HDR
void p5(PGconn *pg, const char *id) {
    char *lit = PQescapeLiteral(pg, id, strlen(id));
    PQfreemem(lit);
}"
check "caught: PQescapeLiteral (quoting instead of parameters)" caught p5.c 6

plant p6.c "$HDR
void p6(PGconn *pg, const char *id, int done) {
    const char *sql = done ? \"SELECT 1\" : NULL;
    sql = id;
    PQclear(PQexec(pg, sql));
}"
check "caught: a query variable assigned a non-literal" caught p6.c 8

plant ok.c "$HDR
void ok(PGconn *pg, const char *id, int done) {
    const char *p[1] = {id};
    const char *sql = done ? \"SELECT status FROM jobs WHERE id = \$1\"
                           : \"SELECT attempts FROM jobs WHERE id = \$1\";
    char e[64];
    PQclear(kiln_pg_execp(pg, sql, 1, p, e, sizeof(e)));
    PQclear(PQexec(pg, \"NOTIFY kiln_assign\"));
    char msg[64];
    snprintf(msg, sizeof(msg), \"job %s done\", id);
}"
clean() {  # file: the scan ran and reports nothing in it (whatever the rest of the tree holds)
  scan "$tmp/tree"
  grep -q '^# call sites checked' "$tmp/out" && ! grep -q "^workers/$1:" "$tmp/out"
}
check "passes: parameterised and fixed SQL in a planted file" clean ok.c
exit $(( FAILS > 0 ? 1 : 0 ))
