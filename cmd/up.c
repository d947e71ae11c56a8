/*
 * cmd/up.c - `kiln up` and `kiln down`: the embedded stack under stack.dir.
 *
 *   <stack.dir>/pg/data        Postgres 15 cluster (run as the postgres user when root)
 *   <stack.dir>/broker.addr    the mock broker's bootstrap address
 *   <stack.dir>/objects/       file:// object store
 *   <stack.dir>/run/NAME.pid     broker, scheduler, worker-wN, worker-sN (speak)
 *   <stack.dir>/log/NAME.log     one log per process
 *   <stack.dir>/stack.conf     pg.* and paths, read by every kiln command
 *
 * `kiln up` is idempotent: it starts only what is not running. When it has
 * to (re)start the broker while Postgres already holds offsets, the broker's
 * log is gone (memory only): it resets the stored offsets, fences the old
 * assignment and re-produces every job without a terminal row.
 */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/stack.h"
#include "kiln/log.h"
#include "kiln/pg.h"
#include "kiln/producer.h"

pid_t kiln_stack_pid(const kiln_conf_t *conf, const char *name) {
    char rel[128];
    snprintf(rel, sizeof(rel), "run/%s.pid", name);
    char *path = kiln_conf_stack_path(conf, rel);
    FILE *fp = fopen(path, "r");
    free(path);
    if (!fp)
        return 0;
    int pid = 0;
    if (fscanf(fp, "%d", &pid) != 1)
        pid = 0;
    fclose(fp);
    if (pid <= 0 || kill(pid, 0) != 0)
        return 0;
    char proc[64], cmd[256] = "";
    snprintf(proc, sizeof(proc), "/proc/%d/cmdline", pid);
    FILE *cf = fopen(proc, "r");
    if (cf) {
        size_t n = fread(cmd, 1, sizeof(cmd) - 1, cf);
        cmd[n] = '\0';
        for (size_t i = 0; i < n; i++) /* every argument: a daemon under a wrapper */
            if (!cmd[i])                /* (valgrind, taskset) still counts */
                cmd[i] = ' ';
        fclose(cf);
    }
    return strstr(cmd, "kiln") ? pid : 0;
}

const char *kiln_stack_pg_bindir(void) {
    static char dir[256];
    for (int v = 17; v >= 13; v--) {
        snprintf(dir, sizeof(dir), "/usr/lib/postgresql/%d/bin", v);
        char p[300];
        snprintf(p, sizeof(p), "%s/pg_ctl", dir);
        if (access(p, X_OK) == 0)
            return dir;
    }
    return "/usr/lib/postgresql/15/bin";
}

char *kiln_stack_pgdata(const kiln_conf_t *conf) {
    const char *d = kiln_conf_get(conf, "stack.pg_datadir");
    if (*d)
        return strdup(d);
    return kiln_conf_stack_path(conf, "pg/data");
}

int kiln_stack_run_pg(char *const argv[], int quiet) {
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (geteuid() == 0) {
            struct passwd *pw = getpwnam("postgres");
            if (!pw) {
                fprintf(stderr, "kiln: running as root needs the postgres user (initdb refuses root)\n");
                _exit(127);
            }
            if (setgid(pw->pw_gid) || setuid(pw->pw_uid))
                _exit(127);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int kiln_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &al)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int kiln_mkdirs(const char *path, mode_t mode) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return (mkdir(tmp, mode) && errno != EEXIST) ? -1 : 0;
}

/* Can the postgres user write into dir (and traverse to it)? */
static int kiln_pg_can_use(const char *dir) {
    if (geteuid() != 0)
        return 1;
    struct passwd *pw = getpwnam("postgres");
    if (!pw)
        return 0;
    if (chown(dir, pw->pw_uid, pw->pw_gid))
        return 0;
    char *argv[] = {"/usr/bin/test", "-w", (char *)dir, "-a", "-x", (char *)dir, NULL};
    return kiln_stack_run_pg(argv, 1) == 0;
}

/* Starts a detached kiln subprocess; its pid goes to run/<name>.pid. */
static pid_t kiln_spawn(const kiln_conf_t *conf, const char *name, char **args, int nargs) {
    char rel[128];
    snprintf(rel, sizeof(rel), "log/%s.log", name);
    char *logp = kiln_conf_stack_path(conf, rel);
    snprintf(rel, sizeof(rel), "run/%s.pid", name);
    char *pidp = kiln_conf_stack_path(conf, rel);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        char *argv[96];
        int k = 0;
        argv[k++] = (char *)kiln_cli_self();
        for (int i = 0; i < nargs && k < 94; i++)
            argv[k++] = args[i];
        argv[k] = NULL;
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0) {
        FILE *fp = fopen(pidp, "w");
        if (fp) {
            fprintf(fp, "%d\n", (int)pid);
            fclose(fp);
        }
    }
    free(logp);
    free(pidp);
    return pid;
}

/* Writes stack.conf (pg.* keys and the data directory). */
/* Is \p line ("key = value") overridden by one of \p sets ("key=value")? */
static int kiln_set_overrides(const char *line, char **sets, int n_sets) {
    size_t kl = strcspn(line, " =");
    for (int i = 0; i < n_sets; i++)
        if (!strncmp(sets[i], line, kl) && sets[i][kl] == '=')
            return 1;
    return 0;
}

static int kiln_write_stack_conf(const kiln_conf_t *conf, int port, const char *datadir,
                                 char **sets, int n_sets) {
    char *path = kiln_conf_stack_path(conf, "stack.conf");
    /* settings from earlier `kiln up --set` runs stay unless overridden now */
    char kept[8192] = "";
    size_t kept_len = 0;
    FILE *old = fopen(path, "r");
    if (old) {
        char line[1024];
        int in_sets = 0;
        while (fgets(line, sizeof(line), old)) {
            if (!strncmp(line, "# from kiln up --set", 20)) {
                in_sets = 1;
                continue;
            }
            if (in_sets && line[0] != '#' && !kiln_set_overrides(line, sets, n_sets) &&
                kept_len + strlen(line) < sizeof(kept)) {
                memcpy(kept + kept_len, line, strlen(line) + 1);
                kept_len += strlen(line);
            }
        }
        fclose(old);
    }
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "kiln up: could not write \"%s\": %s\n", path, strerror(errno));
        free(path);
        return -1;
    }
    fprintf(fp, "# written by `kiln up`: where the embedded stack's services are\n"
                "pg.host = 127.0.0.1\npg.port = %d\npg.dbname = kiln\npg.user = postgres\n"
                "stack.pg_datadir = %s\n", port, datadir);
    /* settings given to `kiln up` hold for every command that uses this stack
     * (partition counts, topic prefix, limits...) */
    fprintf(fp, "# from kiln up --set\n%s", kept);
    for (int i = 0; i < n_sets; i++) {
        const char *eq = strchr(sets[i], '=');
        if (!eq || !strncmp(sets[i], "stack.dir=", 10) || !strncmp(sets[i], "worker.id=", 10) ||
            !strncmp(sets[i], "pg.", 3) || !strncmp(sets[i], "stack.pg_datadir=", 17))
            continue;
        fprintf(fp, "%.*s = %s\n", (int)(eq - sets[i]), sets[i], eq + 1);
    }
    fclose(fp);
    free(path);
    return 0;
}

static int kiln_up_postgres(kiln_cli_t *cli, char *errstr, size_t sz) {
    kiln_conf_t *conf = cli->conf;
    const char *bindir = kiln_stack_pg_bindir();
    char *pgdir = kiln_conf_stack_path(conf, "pg");
    kiln_mkdirs(pgdir, 0755);
    char datadir[PATH_MAX];
    const char *recorded = kiln_conf_get(conf, "stack.pg_datadir");
    if (*recorded)
        snprintf(datadir, sizeof(datadir), "%s", recorded);
    else if (kiln_pg_can_use(pgdir))
        snprintf(datadir, sizeof(datadir), "%s/data", pgdir);
    else {
        /* the checkout is not reachable by the postgres user (e.g. under /root) */
        unsigned h = 5381;
        for (const char *c = pgdir; *c; c++)
            h = h * 33 + (unsigned char)*c;
        snprintf(datadir, sizeof(datadir), "/tmp/kiln-pg-%08x/data", h);
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "/tmp/kiln-pg-%08x", h);
        kiln_mkdirs(parent, 0700);
        kiln_pg_can_use(parent);
    }
    free(pgdir);
    int port = (int)kiln_conf_get_int(conf, "stack.pg_port");
    if (!port && *kiln_conf_get(conf, "pg.port"))
        port = atoi(kiln_conf_get(conf, "pg.port"));
    char pgver[PATH_MAX];
    snprintf(pgver, sizeof(pgver), "%s/PG_VERSION", datadir);
    if (access(pgver, F_OK) != 0) {
        KILN_LOG_INFO("initialising Postgres in %s", datadir);
        char initdb[300];
        snprintf(initdb, sizeof(initdb), "%s/initdb", bindir);
        char *argv[] = {initdb, "-D", datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync", NULL};
        if (kiln_stack_run_pg(argv, 1)) {
            snprintf(errstr, sz, "could not initialise Postgres in \"%s\" (initdb failed)", datadir);
            return -1;
        }
    }
    /* running already? */
    char pidf[PATH_MAX];
    snprintf(pidf, sizeof(pidf), "%s/postmaster.pid", datadir);
    int running = 0;
    FILE *fp = fopen(pidf, "r");
    if (fp) {
        int pid = 0, p2 = 0;
        char line[256];
        if (fscanf(fp, "%d", &pid) == 1 && pid > 0 && kill(pid, 0) == 0) {
            running = 1;
            /* line 4 of postmaster.pid is the port */
            for (int i = 0; i < 3 && fgets(line, sizeof(line), fp); i++)
                ;
            if (fscanf(fp, "%d", &p2) == 1 && p2 > 0)
                port = p2;
        }
        fclose(fp);
    }
    if (!running) {
        if (!port)
            port = kiln_free_port();
        char pgctl[300], opts[PATH_MAX + 128], *logp = kiln_conf_stack_path(conf, "log/postgres.log");
        snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", bindir);
        char sockdir[PATH_MAX];
        snprintf(sockdir, sizeof(sockdir), "%s", datadir);
        snprintf(opts, sizeof(opts),
                 "-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", port, sockdir);
        /* the log file must be writable by postgres */
        int lfd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0666);
        if (lfd >= 0) {
            struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;
            if (pw && fchown(lfd, pw->pw_uid, pw->pw_gid)) {
                /* fine: pg_ctl reports a log problem itself */
            }
            close(lfd);
        }
        char *argv[] = {pgctl, "-D", datadir, "-l", logp, "-w", "-t", "60", "-o", opts, "start", NULL};
        int rc = kiln_stack_run_pg(argv, 1);
        free(logp);
        if (rc) {
            snprintf(errstr, sz, "could not start Postgres (pg_ctl exit %d); see %s/log/postgres.log",
                     rc, kiln_conf_get(conf, "stack.dir"));
            return -1;
        }
    }
    if (kiln_write_stack_conf(conf, port, datadir, cli->sets, cli->n_sets))
        return -1;
    char e2[256], ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    kiln_conf_set(conf, "pg.host", "127.0.0.1", e2, sizeof(e2));
    kiln_conf_set(conf, "pg.port", ps, e2, sizeof(e2));
    kiln_conf_set(conf, "pg.user", "postgres", e2, sizeof(e2));
    kiln_conf_set(conf, "stack.pg_datadir", datadir, e2, sizeof(e2));
    /* database + schema */
    kiln_conf_set(conf, "pg.dbname", "postgres", e2, sizeof(e2));
    PGconn *pg = kiln_pg_connect(conf, "kiln-up", errstr, sz);
    if (!pg)
        return -1;
    PGresult *r = PQexec(pg, "SELECT 1 FROM pg_database WHERE datname = 'kiln'");
    int exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    PQclear(r);
    if (!exists && kiln_pg_exec(pg, "CREATE DATABASE kiln", errstr, sz)) {
        PQfinish(pg);
        return -1;
    }
    PQfinish(pg);
    kiln_conf_set(conf, "pg.dbname", "kiln", e2, sizeof(e2));
    pg = kiln_pg_connect(conf, "kiln-up", errstr, sz);
    if (!pg)
        return -1;
    int n = kiln_pg_migrate(pg, errstr, sz);
    PQfinish(pg);
    if (n < 0)
        return -1;
    KILN_LOG_INFO("Postgres ready on 127.0.0.1:%d (database kiln, %d migration(s) applied)", port, n);
    return 0;
}

/* Common args forwarded to children: stack.dir + the user's --conf/--set. */
static int kiln_child_args(kiln_cli_t *cli, const char *stackdir, char **args, char *buf, size_t bufsz) {
    int k = 0;
    snprintf(buf, bufsz, "stack.dir=%s", stackdir);
    if (cli->conf_file) {
        args[k++] = "--conf";
        args[k++] = (char *)cli->conf_file;
    }
    for (int i = 0; i < cli->n_sets && k < 80; i++) {
        args[k++] = "--set";
        args[k++] = cli->sets[i];
    }
    args[k++] = "--set";
    args[k++] = buf;
    return k;
}

static int kiln_up_broker(kiln_cli_t *cli, const char *stackdir, char *errstr, size_t sz) {
    if (kiln_stack_pid(cli->conf, "broker"))
        return 0;
    char *addr = kiln_conf_stack_path(cli->conf, "broker.addr");
    int restarted = access(addr, F_OK) == 0;
    unlink(addr);
    char *args[96], buf[PATH_MAX + 16];
    args[0] = "broker";
    int k = 1 + kiln_child_args(cli, stackdir, args + 1, buf, sizeof(buf));
    pid_t pid = kiln_spawn(cli->conf, "broker", args, k);
    for (int i = 0; i < 300 && access(addr, F_OK) != 0; i++) {
        if (pid <= 0 || waitpid(pid, NULL, WNOHANG) == pid)
            break;
        usleep(20000);
    }
    int ok = access(addr, F_OK) == 0;
    free(addr);
    if (!ok) {
        snprintf(errstr, sz, "could not start the broker; see %s/log/broker.log", stackdir);
        return -1;
    }
    KILN_LOG_INFO("broker up (pid %d)", (int)pid);
    /* the broker keeps its log in memory: after a restart, everything queued is gone */
    PGconn *pg = kiln_pg_connect(cli->conf, "kiln-up", errstr, sz);
    if (!pg)
        return -1;
    PGresult *r = PQexec(pg, "SELECT count(*) FROM offsets");
    long had = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    if (restarted || had) {
        KILN_LOG_WARN("broker restarted: its log is empty; resetting offsets and re-producing "
                      "every job without a terminal row");
        if (kiln_pg_exec(pg,
                         "BEGIN; UPDATE offsets SET next_offset = 0, updated_at = now();"
                         " UPDATE assignments SET epoch = epoch + 1; NOTIFY kiln_assign; COMMIT",
                         errstr, sz)) {
            PQfinish(pg);
            return -1;
        }
        PQfinish(pg);
        kiln_producer_t *kp = kiln_producer_new(cli->conf, errstr, sz);
        if (!kp)
            return -1;
        long n = kiln_producer_requeue(kp, 0, errstr, sz);
        kiln_err_t ferr = kiln_producer_flush(kp, 60000);
        kiln_producer_destroy(kp);
        if (n < 0 || ferr) {
            if (n >= 0)
                snprintf(errstr, sz, "could not re-produce jobs: %s", kiln_err2str(ferr));
            return -1;
        }
        KILN_LOG_INFO("re-produced %ld job(s)", n);
    } else
        PQfinish(pg);
    return 0;
}

/* Speak workers to start by default (stack.speak_workers; -1: one when the
 * default voice is installed and \p workers_given is 0: `--workers N` pins
 * the fleet, as tests and benchmarks want). The voice directory is made
 * absolute in \p voices_abs (workers may run from another directory). */
static int kiln_up_speak_default(const kiln_conf_t *conf, int workers_given, char *voices_abs,
                                 size_t sz) {
    const char *vd = kiln_conf_get(conf, "speak.voices_dir");
    char cfg[PATH_MAX + 80];
    if (!realpath(vd, voices_abs))
        snprintf(voices_abs, sz, "%s", vd);
    snprintf(cfg, sizeof(cfg), "%s/%s/config.json", voices_abs,
             kiln_conf_get(conf, "speak.default_voice"));
    int n = (int)kiln_conf_get_int(conf, "stack.speak_workers");
    return n >= 0 ? n : !workers_given && access(cfg, R_OK) == 0;
}

/* Starts worker <kind><n> (run/worker-<kind><n>.pid, worker.id=<kind><n>)
 * unless it runs, with the extra --set \p sets. */
static void kiln_up_worker(kiln_cli_t *cli, const char *stackdir, char kind, int n,
                           const char *const *sets, int n_sets) {
    char name[32], idbuf[64], buf[PATH_MAX + 16], *args[96];
    snprintf(name, sizeof(name), "worker-%c%d", kind, n);
    if (kiln_stack_pid(cli->conf, name))
        return;
    args[0] = "worker";
    int k = 1 + kiln_child_args(cli, stackdir, args + 1, buf, sizeof(buf));
    snprintf(idbuf, sizeof(idbuf), "worker.id=%c%d", kind, n);
    args[k++] = "--set";
    args[k++] = idbuf;
    for (int i = 0; i < n_sets; i++) {
        args[k++] = "--set";
        args[k++] = (char *)sets[i];
    }
    KILN_LOG_INFO("worker %c%d started (pid %d)", kind, n, (int)kiln_spawn(cli->conf, name, args, k));
}

static void kiln_up_help(void) {
    printf("usage: kiln up [--workers N] [--speak-workers N] [--wait-ready SECONDS] [OPTIONS]\n\n"
           "Starts the embedded stack under stack.dir (default ./var): Postgres on a free\n"
           "loopback port, the broker (mock cluster), the file:// object store, the\n"
           "scheduler, N workers (worker.engine: transcribe) and speak workers (engine\n"
           "piper, ids s1, s2, ...). Starts only what is not already running. Stop it with\n"
           "`kiln down`.\n\n"
           "  -w, --workers N        workers to run (default stack.workers = 2)\n"
           "      --speak-workers N  speak workers to run (default stack.speak_workers; when\n"
           "                         that is -1: one if speak.default_voice is installed in\n"
           "                         speak.voices_dir (`make voices`) and --workers is not\n"
           "                         given, else none)\n"
           "      --wait-ready S     wait up to S seconds for workers to hold partitions (default 30)\n");
    kiln_cli_common_help(stdout);
    kiln_conf_help(stdout, KILN_SCOPE_STACK);
}

int kiln_cmd_up(int argc, char **argv) {
    static struct option opts[] = {{"workers", required_argument, 0, 'w'},
                                   {"speak-workers", required_argument, 0, 'W'},
                                   {"wait-ready", required_argument, 0, 'R'}, KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    int c, workers = -1, speakers = -1, wait_ready = 30;
    while ((c = getopt_long(argc, argv, "c:S:hw:", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        if (c == 'h') {
            kiln_up_help();
            return KILN_EXIT_OK;
        } else if (c == 'w')
            workers = atoi(optarg);
        else if (c == 'W')
            speakers = atoi(optarg);
        else if (c == 'R')
            wait_ready = atoi(optarg);
        else
            return KILN_EXIT_USAGE;
    }
    if (kiln_cli_load(&cli, "up"))
        return KILN_EXIT_USAGE;
    int speak_auto = 0;
    char voices_abs[PATH_MAX], voices_set[PATH_MAX + 32];
    speak_auto = kiln_up_speak_default(cli.conf, workers >= 0, voices_abs, sizeof(voices_abs));
    if (workers < 0)
        workers = (int)kiln_conf_get_int(cli.conf, "stack.workers");
    if (speakers < 0)
        speakers = speak_auto;
    snprintf(voices_set, sizeof(voices_set), "speak.voices_dir=%s", voices_abs);
    char errstr[1024];
    const char *sd = kiln_conf_get(cli.conf, "stack.dir");
    if (kiln_mkdirs(sd, 0755)) {
        fprintf(stderr, "kiln up: could not create \"%s\": %s\n", sd, strerror(errno));
        return KILN_EXIT_FAIL;
    }
    char stackdir[PATH_MAX];
    if (!realpath(sd, stackdir)) {
        fprintf(stderr, "kiln up: could not resolve \"%s\": %s\n", sd, strerror(errno));
        return KILN_EXIT_FAIL;
    }
    kiln_conf_set(cli.conf, "stack.dir", stackdir, errstr, sizeof(errstr));
    chmod(stackdir, 0755);
    const char *subdirs[] = {"run", "log", "objects"};
    for (int i = 0; i < 3; i++) {
        char *p = kiln_conf_stack_path(cli.conf, subdirs[i]);
        kiln_mkdirs(p, 0755);
        free(p);
    }
    if (kiln_up_postgres(&cli, errstr, sizeof(errstr)) ||
        kiln_up_broker(&cli, stackdir, errstr, sizeof(errstr))) {
        fprintf(stderr, "kiln up: %s\n", errstr);
        kiln_cli_free(&cli);
        return KILN_EXIT_FAIL;
    }
    char *args[96], buf[PATH_MAX + 16];
    if (!kiln_stack_pid(cli.conf, "scheduler")) {
        args[0] = "scheduler";
        int k = 1 + kiln_child_args(&cli, stackdir, args + 1, buf, sizeof(buf));
        KILN_LOG_INFO("scheduler started (pid %d)", (int)kiln_spawn(cli.conf, "scheduler", args, k));
    }
    for (int w = 1; w <= workers; w++)
        kiln_up_worker(&cli, stackdir, 'w', w, NULL, 0);
    const char *speak_sets[2] = {"worker.engine=piper", voices_set};
    for (int w = 1; w <= speakers; w++) /* speak workers: engine piper, ids sN */
        kiln_up_worker(&cli, stackdir, 's', w, speak_sets, 2);
    /* wait until the workers hold partitions */
    PGconn *pg = kiln_pg_connect(cli.conf, "kiln-up", errstr, sizeof(errstr));
    int ready = 0;
    for (int i = 0; pg && i < wait_ready * 10 && workers + speakers > 0; i++) {
        PGresult *r = PQexec(pg, "SELECT count(DISTINCT a.worker) FROM assignments a JOIN workers w"
                                 " ON w.id = a.worker WHERE w.status = 'up'"
                                 " AND w.heartbeat > now() - interval '10 seconds'");
        ready = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
        PQclear(r);
        if (ready >= workers + speakers)
            break;
        usleep(100000);
    }
    PQfinish(pg);
    printf("kiln stack up in %s: Postgres, broker, object store (file://%s/objects), "
           "scheduler, %d worker(s) + %d speak worker(s) (%d holding partitions)\n"
           "  logs: %s/log/   stop: kiln down --set stack.dir=%s\n",
           stackdir, stackdir, workers, speakers, ready, stackdir, stackdir);
    kiln_cli_free(&cli);
    return (workers + speakers > 0 && ready < workers + speakers) ? KILN_EXIT_TIMEOUT : KILN_EXIT_OK;
}

/* SIGTERM, then SIGKILL after \p grace_s. @returns 1 if it had to kill. */
static int kiln_stop_pid(pid_t pid, int grace_s) {
    kill(pid, SIGTERM);
    for (int i = 0; i < grace_s * 20; i++) {
        if (kill(pid, 0) != 0)
            return 0;
        waitpid(pid, NULL, WNOHANG);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    return 1;
}

static void kiln_down_help(void) {
    printf("usage: kiln down [--keep-pg] [OPTIONS]\n\n"
           "Stops the embedded stack: workers first (SIGTERM: they finish and commit their\n"
           "in-flight batch), then the scheduler, the broker, and Postgres (fast shutdown).\n"
           "Data under stack.dir stays; the broker's queue does not (it lives in memory) and\n"
           "`kiln up` re-produces what was still queued.\n\n"
           "      --keep-pg          leave Postgres running\n");
    kiln_cli_common_help(stdout);
}

int kiln_cmd_down(int argc, char **argv) {
    static struct option opts[] = {{"keep-pg", no_argument, 0, 'k'}, KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    int c, keep_pg = 0;
    while ((c = getopt_long(argc, argv, "c:S:hk", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        if (c == 'h') {
            kiln_down_help();
            return KILN_EXIT_OK;
        } else if (c == 'k')
            keep_pg = 1;
        else
            return KILN_EXIT_USAGE;
    }
    if (kiln_cli_load(&cli, "down"))
        return KILN_EXIT_USAGE;
    char *rundir = kiln_conf_stack_path(cli.conf, "run");
    /* workers first, in parallel */
    pid_t wp[256];
    int nw = 0;
    for (int w = 1; w <= 256 && nw < 256; w++) {
        for (const char *kind = "ws"; *kind && nw < 256; kind++) { /* workers, speak workers */
            char name[32];
            snprintf(name, sizeof(name), "worker-%c%d", *kind, w);
            pid_t pid = kiln_stack_pid(cli.conf, name);
            if (pid) {
                kill(pid, SIGTERM);
                wp[nw++] = pid;
            }
        }
    }
    for (int i = 0; i < nw; i++)
        kiln_stop_pid(wp[i], 30);
    const char *order[] = {"scheduler", "broker"};
    for (int i = 0; i < 2; i++) {
        pid_t pid = kiln_stack_pid(cli.conf, order[i]);
        if (pid)
            kiln_stop_pid(pid, 10);
    }
    free(rundir);
    int rc = 0;
    if (!keep_pg) {
        char *datadir = kiln_stack_pgdata(&*cli.conf);
        char pgctl[300];
        snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", kiln_stack_pg_bindir());
        char pidf[PATH_MAX];
        snprintf(pidf, sizeof(pidf), "%s/postmaster.pid", datadir);
        if (access(pidf, F_OK) == 0) {
            char *argv2[] = {pgctl, "-D", datadir, "-m", "fast", "-w", "stop", NULL};
            rc = kiln_stack_run_pg(argv2, 1);
        }
        free(datadir);
    }
    printf("kiln stack in %s stopped (%d worker(s))\n", kiln_conf_get(cli.conf, "stack.dir"), nw);
    kiln_cli_free(&cli);
    return rc ? KILN_EXIT_FAIL : KILN_EXIT_OK;
}
