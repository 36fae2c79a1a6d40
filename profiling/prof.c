/*
 * prof: CPU and heap profiles on demand (see prof.h).
 *
 * A profile is a job with three phases, driven by one 100 ms tick on the
 * admin loop:
 *
 *   SAMPLING    the profiler is on; the job waits for its deadline. The
 *               request is attached as an hp_op_t, so a client that leaves
 *               stops the profiler from on_abandon, right away.
 *   CONVERTING  the profile is written; `hotplate pprof-encode` (this
 *               binary, run again as a child) symbolizes it and turns it into
 *               profile.proto, or into folded stacks (pprof_fold.h) for the
 *               folded and svg formats, so every format names the same
 *               frames. The child writes into a pipe whose read end is an
 *               h2o socket on the admin loop, and the tick reaps it with
 *               waitpid(WNOHANG). Past its deadline the child's whole
 *               process group is killed (anything it started would
 *               otherwise keep the pipe open) and the request gets 504.
 *   IDLE        nothing runs; the temp files are gone.
 *
 * The job outlives its request (a conversion still has a child to reap after
 * the client left), so it lives in static storage, one per kind; that is also
 * what enforces "one profile of each kind at a time". Only the admin thread
 * serves these routes, so only the admin thread ever touches the jobs.
 *
 * The tick rather than one timer per duration: h2o 2.2.5 keeps one fixed
 * duration per h2o_timeout_t, and the tick also polls for the child's exit,
 * so one 100 ms timeout serves every deadline (each ends at most a tick late).
 */
#include "profiling/prof.h"
#include "base/log.h"
#include "base/router.h"
#include "runtime/http.h"
#include "runtime/params.h"
#include "profiling/flame.h"
#include "profiling/heap.h"
#include "profiling/pprof_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef HOTPLATE_CPU_PROFILER
#define HOTPLATE_CPU_PROFILER 0
#endif
#if HOTPLATE_CPU_PROFILER
#include <gperftools/profiler.h>
#endif

/* jemalloc's control interface, when the binary links jemalloc (sanitizer builds do not). */

extern char **environ;

#define HP_PROF_TICK_MS 100

/* MERGE is no profiler: its job runs `hotplate pprof-merge` on saved profiles (hp_prof_merge), with a slot of its own. */
typedef enum { HP_PROF_CPU = 0, HP_PROF_HEAP, HP_PROF_MERGE, HP_PROF__KINDS } hp_prof_kind_t;
/*
 * What an answer carries: the profiler's own file (gperftools' or jemalloc's),
 * folded stacks, a flame graph, or pprof's profile.proto (pprof_proto.h).
 * Every format but RAW is made by a child process from the raw file.
 */
typedef enum { HP_PROF_RAW = 0, HP_PROF_FOLDED, HP_PROF_SVG, HP_PROF_PROTO } hp_prof_format_t;
typedef enum { HP_PROF_IDLE = 0, HP_PROF_SAMPLING, HP_PROF_CONVERTING } hp_prof_phase_t;

typedef struct st_hp_prof_job_t {
    hp_op_t op; /* attached to the waiting request; op.req is NULL once it is answered or gone */
    hp_prof_kind_t kind;
    hp_prof_phase_t phase;
    hp_prof_format_t format;
    hp_pprof_kind_t proto_kind; /* HP_PROF_PROTO: cpu, heap or allocs (which sample type a viewer shows first) */
    int64_t started_ns;         /* when the sampling started (Unix time), for the profile.proto */
    int seconds;
    int was_active; /* heap: prof.active before we switched it on, restored after */
    hp_thread_t *thr;
    uint64_t deadline; /* h2o_now(), in ms: end of the sampling, then of the conversion */
    h2o_timeout_entry_t tick;
    char path[PATH_MAX];     /* the raw profile; "" when there is none */
    char err_path[PATH_MAX]; /* the viewer's stderr; "" when there is none */
    pid_t child;             /* the viewer; 0 once reaped */
    pid_t pgid;              /* its process group (its pid), kept after the reap for the stragglers; 0 when none */
    int child_status;        /* as waitpid() reports it */
    const char *kill_reason; /* why the viewer was killed, or NULL */
    h2o_socket_t *out;       /* the read end of the viewer's stdout, until EOF */
    char *output;            /* what the viewer printed (malloc'd, at most HP_PROF_MAX_OUTPUT bytes); freed by finish */
    size_t output_len, output_cap;
    int out_done;         /* EOF seen, or reading given up */
    hp_prof_folded_cb cb; /* hp_prof_cpu_collect(): the folded stacks go to cb instead of an answer */
    void *cb_ud;
    /*
     * A saved profile (hp_prof_save, continuous profiling): no request; the
     * child writes straight into save_path, and saved_cb hears how it ended,
     * exactly once. A request for a profile of the same kind preempts it
     * while it samples.
     */
    int background;
    char save_path[PATH_MAX];
    char *comments[HP_PPROF_MAX_COMMENTS]; /* malloc'd; passed to pprof-encode as --comment */
    size_t num_comments;
    hp_prof_saved_cb saved_cb;
    void *saved_ud;
    char **merge_files; /* HP_PROF_MERGE: the saved profiles to merge (malloc'd, NULL-terminated) */
} hp_prof_job_t;

static struct {
    int initialized;
    h2o_timeout_t tick; /* HP_PROF_TICK_MS, on the admin loop */
    hp_prof_job_t jobs[HP_PROF__KINDS];
} hp__prof;

static const char *const hp__prof_kind_names[HP_PROF__KINDS] = {"cpu", "heap", "merge"};
static const char *const hp__prof_proto_kinds[] = {[HP_PPROF_CPU] = "cpu", [HP_PPROF_HEAP] = "heap", [HP_PPROF_ALLOCS] = "allocs"};

/* The child that makes job's format: the server itself, as pprof-merge for a merge and pprof-encode otherwise. */
static const char *hp__prof_tool(const hp_prof_job_t *job)
{
    return job->kind == HP_PROF_MERGE ? "hotplate pprof-merge" : "hotplate pprof-encode";
}

static const char hp__prof_killed_timeout[] = "timeout";
static const char hp__prof_killed_gone[] = "client gone";
static const char hp__prof_killed_stopping[] = "shutting down";
static const char hp__prof_killed_too_large[] = "output too large";

static void hp__prof_on_tick(h2o_timeout_entry_t *entry);

/* ---- lifecycle ------------------------------------------------------------------------------- */

/* Removes what a job left on disk and kills what it left running; safe to call at any time. */
static void hp__prof_scrub(hp_prof_job_t *job)
{
    if (job->child > 0 && job->pgid > 0)
        kill(-job->pgid, SIGKILL);
    if (job->path[0] != '\0')
        unlink(job->path);
    if (job->err_path[0] != '\0')
        unlink(job->err_path);
    job->path[0] = job->err_path[0] = '\0';
}

/*
 * At exit, a profile may still be running: the drain on SIGTERM is bounded by
 * the grace period, and a conversion may be slower. The files are ours to
 * remove, and a viewer must not outlive the server.
 */
static void hp__prof_atexit(void)
{
    for (int k = 0; k != HP_PROF__KINDS; ++k)
        hp__prof_scrub(&hp__prof.jobs[k]);
}

static void hp__prof_init(hp_thread_t *thr)
{
    if (hp__prof.initialized)
        return;
    hp__prof.initialized = 1;
    h2o_timeout_init(thr->loop, &hp__prof.tick, HP_PROF_TICK_MS);
    for (int k = 0; k != HP_PROF__KINDS; ++k) {
        hp_prof_job_t *job = &hp__prof.jobs[k];
        job->kind = (hp_prof_kind_t)k;
        job->thr = thr;
        job->tick.cb = hp__prof_on_tick;
    }
    atexit(hp__prof_atexit);
}

/* Tells a saved profile's owner how it ended, once; err is NULL when save_path holds the profile. */
static void hp__prof_saved(hp_prof_job_t *job, const char *err)
{
    hp_prof_saved_cb cb = job->saved_cb;
    job->saved_cb = NULL;
    if (cb != NULL)
        cb(job->saved_ud, err != NULL ? NULL : job->save_path, err);
}

/* Ends a job: closes the pipe, removes the files, stops the tick. The request must already be answered or gone. */
static void hp__prof_finish(hp_prof_job_t *job)
{
    if (job->background) {
        hp__prof_saved(job, "stopped");
        for (size_t i = 0; i != job->num_comments; ++i)
            free(job->comments[i]);
        job->num_comments = 0;
        job->background = 0;
    }
    if (job->merge_files != NULL) {
        for (char **f = job->merge_files; *f != NULL; ++f)
            free(*f);
        free(job->merge_files);
        job->merge_files = NULL;
    }
    hp_op_detach(&job->op);
    if (job->out != NULL) {
        h2o_socket_close(job->out);
        job->out = NULL;
    }
    free(job->output);
    job->output = NULL;
    job->output_len = job->output_cap = 0;
    hp__prof_scrub(job);
    job->child = job->pgid = 0;
    job->kill_reason = NULL;
    job->out_done = 0;
    job->cb = NULL;
    job->cb_ud = NULL;
    job->phase = HP_PROF_IDLE;
    if (h2o_timeout_is_linked(&job->tick))
        h2o_timeout_unlink(&job->tick);
}

/* Detaches the job's request and returns it, or NULL when the client is gone. */
static hp_req_t *hp__prof_take_req(hp_prof_job_t *job)
{
    hp_req_t *r = job->op.req;
    hp_op_detach(&job->op);
    return r;
}

/*
 * Every answer is sent after the job's files are removed (and its viewer, if
 * any, killed): once the client holds its answer, the process may be killed
 * at any moment (a test's teardown does exactly that), and a file removed
 * after the answer would then stay behind.
 */
static void hp__prof_fail(hp_prof_job_t *job, hp_error_t code, const char *message)
{
    hp__prof_scrub(job);
    if (job->background) {
        if (job->save_path[0] != '\0')
            unlink(job->save_path);
        hp__prof_saved(job, message);
        return;
    }
    hp_req_t *r = hp__prof_take_req(job);
    if (r == NULL)
        return;
    if (job->cb != NULL)
        job->cb(r, job->cb_ud, NULL, 0, message);
    else
        hp_respond_error(r, code, message);
}

/* ---- the profilers ---------------------------------------------------------------------------- */

static int hp__prof_heap_supported(void)
{
    if (!hp_heap_has_jemalloc())
        return 0;
    bool on = false;
    size_t len = sizeof(on);
    return hp_mallctl("opt.prof", &on, &len, NULL, 0) == 0 && on;
}

static int hp__prof_heap_set_active(bool on)
{
    return hp_mallctl("prof.active", NULL, NULL, &on, sizeof(on));
}

/* Starts the profiler of job->kind writing to job->path. @return 0, or -1 with *why set */
static int hp__prof_start(hp_prof_job_t *job, int lg_sample, const char **why)
{
    if (job->kind == HP_PROF_CPU) {
#if HOTPLATE_CPU_PROFILER
        /*
         * gperftools 2.10 arms one process-wide ITIMER_PROF here and disarms it
         * in ProfilerStop (its SIGPROF handler is installed at load and does
         * nothing while no profile runs). The kernel sends that SIGPROF to
         * whichever thread is using the CPU, so the workers are sampled
         * without ProfilerRegisterThread(), which only matters with
         * CPUPROFILE_PER_THREAD_TIMERS. Checked with strace: no timer is armed
         * outside a profile.
         */
        if (ProfilerStart(job->path))
            return 0;
        *why = "the CPU profiler did not start (another profile, or CPUPROFILE in the environment, holds it)";
#else
        (void)lg_sample;
        *why = "this build has no CPU profiler";
#endif
        return -1;
    }
    bool was = false;
    size_t len = sizeof(was);
    size_t lg = (size_t)lg_sample;
    /* prof.reset drops what earlier windows sampled, so the dump shows this window only, at the rate asked for. */
    if (hp_mallctl("prof.active", &was, &len, NULL, 0) != 0 || hp_mallctl("prof.reset", NULL, NULL, &lg, sizeof(lg)) != 0 ||
        hp__prof_heap_set_active(true) != 0) {
        *why = "jemalloc refused to start heap profiling";
        return -1;
    }
    job->was_active = was;
    return 0;
}

/*
 * Stops the profiler of job->kind; with `dump`, the heap profile is then
 * written to job->path (the CPU profile is written as it runs, and flushed by
 * ProfilerStop). @return 0, or -1 when the dump failed
 */
static int hp__prof_stop(hp_prof_job_t *job, int dump)
{
    if (job->kind == HP_PROF_CPU) {
#if HOTPLATE_CPU_PROFILER
        ProfilerStop();
#endif
        return 0;
    }
    /* Off first: switching off keeps what was sampled, and nothing allocated after the window joins the dump. */
    int rc = 0;
    if (!job->was_active)
        hp__prof_heap_set_active(false);
    if (dump) {
        const char *p = job->path;
        rc = hp_mallctl("prof.dump", NULL, NULL, &p, sizeof(p)) == 0 ? 0 : -1;
    }
    return rc;
}

/* The client is gone and its request detached: stop sampling now, or kill the viewer (the tick reaps it). */
static void hp__prof_abandon(hp_prof_job_t *job)
{
    hp_log(HP_LOG_INFO, "%s profile: the client went away; stopping it", hp__prof_kind_names[job->kind]);
    if (job->phase == HP_PROF_SAMPLING) {
        hp__prof_stop(job, 0);
        hp__prof_finish(job);
    } else if (job->phase == HP_PROF_CONVERTING && job->kill_reason == NULL && job->pgid > 0) {
        job->kill_reason = hp__prof_killed_gone;
        kill(-job->pgid, SIGKILL);
    }
}

/* h2o disposed the request (called during the pool's disposal; the op is already detached). */
static void hp__prof_on_abandon(hp_op_t *op)
{
    hp__prof_abandon(H2O_STRUCT_FROM_MEMBER(hp_prof_job_t, op, op));
}

/*
 * Whether the client closed its connection. libh2o 2.2.5 does not read an
 * HTTP/1 connection while its request is being handled, so a client that
 * hangs up during a 60 s profile is only noticed when the answer is written,
 * and on_abandon would come a minute late. The tick therefore peeks at the
 * connection: a read of 0 is the client's FIN (or a half-close, which HTTP
 * clients waiting for an answer do not do); pending bytes (a pipelined
 * request) or EAGAIN mean it is still there.
 */
static int hp__prof_client_gone(hp_req_t *r)
{
    h2o_conn_t *conn = r->h2o->conn;
    h2o_socket_t *sock = conn->callbacks->get_socket != NULL ? conn->callbacks->get_socket(conn) : NULL;
    if (sock == NULL)
        return 0;
    char c;
    ssize_t n = recv(h2o_socket_get_fd(sock), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

/* ---- answering ------------------------------------------------------------------------------- */

/* Sends the raw profile file. Reading a local temp file of bounded size is the one synchronous step. */
static void hp__prof_send_file(hp_prof_job_t *job)
{
    hp_req_t *r = hp__prof_take_req(job);
    if (r == NULL)
        return;
    int fd = open(job->path, O_RDONLY | O_CLOEXEC);
    hp__prof_scrub(job); /* the open descriptor keeps the data readable */
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        hp_respond_error(r, HP_E_profile_failed, "the profile file could not be read");
        return;
    }
    if ((uint64_t)st.st_size > HP_PROF_MAX_OUTPUT) {
        close(fd);
        hp_respond_error(r, HP_E_profile_too_large, "the profile is larger than the server serves");
        return;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = h2o_mem_alloc_pool(&r->h2o->pool, size + 1);
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    hp_add_header(r, "content-type", "application/octet-stream");
    hp_add_header(r, "content-disposition",
                  job->kind == HP_PROF_CPU ? "attachment; filename=\"hotplate-cpu.prof\""
                                           : "attachment; filename=\"hotplate-heap.prof\"");
    hp_respond_raw(r, 200, h2o_iovec_init(buf, got));
}

/* The first line of the viewer's stderr, for the error message. */
static char *hp__prof_stderr_head(hp_prof_job_t *job, hp_req_t *r)
{
    char head[200] = "";
    int fd = job->err_path[0] != '\0' ? open(job->err_path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        ssize_t n = read(fd, head, sizeof(head) - 1);
        close(fd);
        head[n > 0 ? n : 0] = '\0';
        head[strcspn(head, "\r\n")] = '\0';
    }
    return hp_pool_printf(r, "%s", head);
}

/*
 * Answers 200 with a copy of len bytes in the request's pool. The job's output
 * buffer and the flame renderer's string are malloc'd and freed before h2o
 * sends the body, which must live as long as the request.
 */
static void hp__prof_respond_copy(hp_req_t *r, const char *content_type, const char *data, size_t len)
{
    char *body = h2o_mem_alloc_pool(&r->h2o->pool, len + 1);
    if (len != 0)
        memcpy(body, data, len);
    hp_add_header(r, "content-type", content_type);
    hp_respond_raw(r, 200, h2o_iovec_init(body, len));
}

/* The viewer has exited and its output is read: answer with it. */
static void hp__prof_send_converted(hp_prof_job_t *job)
{
    if (job->background) {
        int ok = job->kill_reason == NULL && WIFEXITED(job->child_status) && WEXITSTATUS(job->child_status) == 0;
        hp__prof_scrub(job);
        if (!ok)
            unlink(job->save_path);
        hp__prof_saved(job, ok ? NULL : job->kill_reason != NULL ? job->kill_reason : "pprof-encode failed");
        return;
    }
    hp_req_t *r = hp__prof_take_req(job);
    if (r == NULL)
        return;
    const char *tool = hp__prof_tool(job);
    int failed = job->kill_reason == NULL && (!WIFEXITED(job->child_status) || WEXITSTATUS(job->child_status) != 0);
    char *why = failed ? hp__prof_stderr_head(job, r) : NULL;
    hp__prof_scrub(job);
    if (job->cb != NULL) {
        if (job->kill_reason != NULL || failed) {
            job->cb(r, job->cb_ud, NULL, 0,
                    failed ? hp_pool_printf(r, "%s failed: %s", tool, why) : hp_pool_printf(r, "%s: %s", tool, job->kill_reason));
            return;
        }
        job->cb(r, job->cb_ud, job->output != NULL ? job->output : "", job->output_len, NULL);
        return;
    }
    if (job->kill_reason == hp__prof_killed_timeout) {
        hp_respond_error(r, HP_E_profile_timeout,
                         hp_pool_printf(r, "%s did not finish within %d ms", tool, HP_PROF_CONVERT_TIMEOUT_MS));
        return;
    }
    if (job->kill_reason == hp__prof_killed_stopping) {
        hp_respond_error(r, HP_E_shutting_down, "the server is shutting down");
        return;
    }
    if (job->kill_reason != NULL) {
        hp_respond_error(r, HP_E_profile_too_large, hp_pool_printf(r, "the output of %s is larger than the server serves", tool));
        return;
    }
    if (failed) {
        hp_log(HP_LOG_WARN, "%s profile: %s failed (status %d): %s", hp__prof_kind_names[job->kind], tool, job->child_status, why);
        hp_respond_error(r, HP_E_profile_failed, hp_pool_printf(r, "%s failed: %s", tool, why));
        return;
    }
    if (job->format == HP_PROF_PROTO) {
        /* As Go's net/http/pprof answers: a download named after the profile; the bytes are gzip, not a content encoding. */
        hp_add_header(r, "content-disposition",
                      hp_pool_printf(r, "attachment; filename=\"hotplate-%s.pb.gz\"", hp__prof_proto_kinds[job->proto_kind]));
        hp__prof_respond_copy(r, "application/octet-stream", job->output, job->output_len);
        return;
    }
    if (job->format == HP_PROF_FOLDED) {
        hp__prof_respond_copy(r, "text/plain; charset=utf-8", job->output, job->output_len);
        return;
    }
    char *svg = NULL, title[96];
    size_t len = 0;
    /* A heap profile's folded stacks count bytes (in use at the end of the window, or allocated in it), a CPU profile's samples. */
    int heap = job->kind == HP_PROF_HEAP;
    snprintf(title, sizeof(title),
             !heap                                ? "hotplate CPU profile, %d s"
             : job->proto_kind == HP_PPROF_ALLOCS ? "hotplate heap profile, bytes allocated in %d s"
                                                  : "hotplate heap profile, bytes in use after %d s",
             job->seconds);
    int rc = hp_flame_svg(job->output, job->output_len, &svg, &len, title, heap ? "bytes" : "samples");
    if (rc != 0) {
        hp_log(HP_LOG_WARN, "%s profile: the flame graph failed: %s", hp__prof_kind_names[job->kind], strerror(-rc));
        hp_respond_error(r, HP_E_profile_failed, hp_pool_printf(r, "the flame graph could not be drawn: %s", strerror(-rc)));
        return;
    }
    hp__prof_respond_copy(r, "image/svg+xml", svg, len);
    free(svg);
}

/* ---- the viewer child ------------------------------------------------------------------------ */

static void hp__prof_kill(hp_prof_job_t *job, const char *reason)
{
    if (job->kill_reason != NULL || job->pgid <= 0)
        return;
    /* The group too: after the viewer exited, a helper it started may still hold the pipe open. */
    job->kill_reason = reason;
    kill(-job->pgid, SIGKILL);
    hp_log(HP_LOG_WARN, "%s profile: killed %s (%s)", hp__prof_kind_names[job->kind], hp__prof_tool(job), reason);
}

static void hp__prof_advance(hp_prof_job_t *job);

/*
 * The pipe is readable (the socket is H2O_SOCKET_FLAG_DONT_READ, so h2o only
 * tells us): drain it into job->output until it would block. At EOF, on an
 * error or past the bound, the socket is closed at once rather than only
 * stopped: epoll reports a pipe's hang-up whether or not it is asked for, so
 * a socket left registered would wake the loop on every iteration.
 */
static void hp__prof_on_output(h2o_socket_t *sock, const char *err)
{
    hp_prof_job_t *job = sock->data;
    int fd = h2o_socket_get_fd(sock), done = err != NULL;
    while (!done) {
        if (job->output_cap - job->output_len < 4096) {
            size_t cap = job->output_cap != 0 ? job->output_cap * 2 : 65536;
            char *p = cap <= HP_PROF_MAX_OUTPUT + 65536 ? realloc(job->output, cap) : NULL;
            if (p == NULL) {
                hp__prof_kill(job, hp__prof_killed_too_large);
                done = 1;
                break;
            }
            job->output = p;
            job->output_cap = cap;
        }
        ssize_t n = read(fd, job->output + job->output_len, job->output_cap - job->output_len);
        if (n > 0) {
            job->output_len += (size_t)n;
            if (job->output_len > HP_PROF_MAX_OUTPUT) {
                hp__prof_kill(job, hp__prof_killed_too_large);
                done = 1;
            }
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            done = 1; /* EOF, the usual end, or a read error */
        } else if (errno == EAGAIN) {
            return; /* more later */
        }
    }
    h2o_socket_read_stop(sock);
    h2o_socket_close(sock);
    job->out = NULL;
    job->out_done = 1;
    hp__prof_advance(job);
}

/* Makes a temp file from a template ending in XXXXXX plus `suffix_len` characters. @return its fd, or -1 */
static int hp__prof_mktemp(char *path, size_t size, const char *kind, const char *suffix)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    int n = snprintf(path, size, "%s/hotplate-%s-XXXXXX%s", dir, kind, suffix);
    if (n < 0 || (size_t)n >= size) {
        path[0] = '\0';
        return -1;
    }
    /* mkstemps creates the file with O_EXCL and mode 0600: no other user can swap it for a symlink. */
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0)
        path[0] = '\0';
    return fd;
}

/*
 * Runs this binary again as `hotplate pprof-encode KIND <profile> [--folded]`
 * (or pprof-merge) with stdout into a pipe read by the loop, stderr into a
 * temp file, no inherited descriptors, default signal handling, and a
 * process group of its own. Its environment is reduced to PATH, HOME, TMPDIR
 * and the C locale, so the admin token and database URLs stay here.
 * @return 0, or a positive errno
 */
static int hp__prof_spawn(hp_prof_job_t *job)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    static const char deleted[] = " (deleted)";
    if (n > 0)
        exe[n] = '\0';
    /* A binary replaced since startup (a rebuild) is still readable, and runnable, through /proc. */
    if (n <= 0 || ((size_t)n > sizeof(deleted) - 1 && strcmp(exe + n - (sizeof(deleted) - 1), deleted) == 0))
        snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)getpid());

    int errfd = hp__prof_mktemp(job->err_path, sizeof(job->err_path), hp__prof_kind_names[job->kind], ".err");
    if (errfd < 0)
        return errno != 0 ? errno : EIO;
    /* A saved profile's child writes its file itself; every other child writes into a pipe the loop reads. */
    int pfd[2] = {-1, -1};
    if (job->background) {
        pfd[1] = open(job->save_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (pfd[1] < 0) {
            int e = errno;
            close(errfd);
            return e;
        }
    } else if (pipe2(pfd, O_CLOEXEC) != 0) {
        int e = errno;
        close(errfd);
        return e;
    }

    char env_path[1024], env_home[512], env_tmp[512];
    const char *p = getenv("PATH"), *h = getenv("HOME"), *t = getenv("TMPDIR");
    snprintf(env_path, sizeof(env_path), "PATH=%s", p != NULL && strlen(p) < sizeof(env_path) - 6 ? p : "/usr/bin:/bin");
    snprintf(env_home, sizeof(env_home), "HOME=%s", h != NULL && strlen(h) < sizeof(env_home) - 6 ? h : "/");
    snprintf(env_tmp, sizeof(env_tmp), "TMPDIR=%s", t != NULL && t[0] != '\0' && strlen(t) < sizeof(env_tmp) - 8 ? t : "/tmp");
    char *envp[] = {env_path, env_home, env_tmp, (char *)"LC_ALL=C", NULL};
    /*
     * Every format is the server's own encoder, run as a child so that reading
     * the ELF and DWARF files stays off the loop. The kind picks the folded
     * stacks' values too: /debug/pprof/allocs counts every byte allocated in
     * the window, the other heap routes the bytes still in use at its end.
     */
    char seconds[24], started[24];
    snprintf(seconds, sizeof(seconds), "%d", job->seconds);
    snprintf(started, sizeof(started), "%lld", (long long)job->started_ns);
    char *encoder[10 + 2 * HP_PPROF_MAX_COMMENTS] = {exe,
                                                     (char *)"pprof-encode",
                                                     (char *)hp__prof_proto_kinds[job->proto_kind],
                                                     job->path,
                                                     (char *)"--seconds",
                                                     seconds,
                                                     (char *)"--time-ns",
                                                     started};
    size_t a = 8;
    for (size_t i = 0; i != job->num_comments; ++i, a += 2) {
        encoder[a] = (char *)"--comment";
        encoder[a + 1] = job->comments[i];
    }
    if (job->format != HP_PROF_PROTO)
        encoder[a] = (char *)"--folded";
    /* The merger's argv is exe, pprof-merge, then the files; job->merge_files has room for the first two. */
    if (job->merge_files != NULL) {
        job->merge_files[0] = strdup(exe);
        job->merge_files[1] = strdup("pprof-merge");
        if (job->merge_files[0] == NULL || job->merge_files[1] == NULL) {
            close(errfd);
            if (pfd[0] >= 0)
                close(pfd[0]);
            close(pfd[1]);
            return ENOMEM;
        }
    }
    char **argv = job->merge_files != NULL ? job->merge_files : encoder;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&at);
    /* The server blocks SIGTERM in its threads and ignores SIGPIPE; the child should do neither. */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, exe, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pfd[1]);
    close(errfd);
    if (rc != 0) {
        if (pfd[0] >= 0)
            close(pfd[0]);
        return rc;
    }
    job->child = job->pgid = pid;
    if (job->background) {
        job->out_done = 1; /* nothing to read: the tick only waits for the exit */
        return 0;
    }
    /* Only our end is non-blocking: the viewer writes with ordinary blocking writes. */
    fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
    job->out = h2o_evloop_socket_create(job->thr->loop, pfd[0], H2O_SOCKET_FLAG_DONT_READ);
    job->out->data = job;
    h2o_socket_read_start(job->out, hp__prof_on_output);
    return 0;
}

/* ---- the state machine ----------------------------------------------------------------------- */

/* The end of the sampling: stop, then answer with the file or start the conversion. */
static void hp__prof_sampling_done(hp_prof_job_t *job)
{
    if (hp__prof_stop(job, 1) != 0) {
        hp__prof_fail(job, HP_E_profile_failed, "jemalloc could not write the heap profile");
        hp__prof_finish(job);
        return;
    }
    hp_log(HP_LOG_INFO, "%s profile: %d s sampled", hp__prof_kind_names[job->kind], job->seconds);
    if (job->format == HP_PROF_RAW) {
        hp__prof_send_file(job);
        hp__prof_finish(job);
        return;
    }
    int rc = hp__prof_spawn(job);
    if (rc != 0) {
        hp_log(HP_LOG_WARN, "%s profile: cannot run %s: %s", hp__prof_kind_names[job->kind], hp__prof_tool(job), strerror(rc));
        hp__prof_fail(job, HP_E_profile_failed, "the profile converter could not be started");
        hp__prof_finish(job);
        return;
    }
    job->phase = HP_PROF_CONVERTING;
    job->deadline = h2o_now(job->thr->loop) + HP_PROF_CONVERT_TIMEOUT_MS;
}

/* Moves a job on as far as it can go now; called by the tick and when the viewer's output ends. */
static void hp__prof_advance(hp_prof_job_t *job)
{
    uint64_t now = h2o_now(job->thr->loop);
    int stopping = atomic_load(&job->thr->stopping);

    if (job->op.req != NULL && hp__prof_client_gone(job->op.req)) {
        /* Answering makes h2o write, fail and dispose of the connection; 499 is how the logs name a client that left. */
        hp__prof_fail(job, HP_E_client_closed, "the client closed the connection");
        hp__prof_abandon(job);
    }

    if (job->phase == HP_PROF_SAMPLING) {
        if (stopping) {
            hp__prof_stop(job, 0);
            hp__prof_fail(job, HP_E_shutting_down, "the server is shutting down");
            hp__prof_finish(job);
            return;
        }
        if (now >= job->deadline)
            hp__prof_sampling_done(job);
    }

    if (job->phase == HP_PROF_CONVERTING) {
        if (stopping)
            hp__prof_kill(job, hp__prof_killed_stopping);
        else if (now >= job->deadline)
            hp__prof_kill(job, hp__prof_killed_timeout);
        if (job->child > 0) {
            int st = 0;
            pid_t got = waitpid(job->child, &st, WNOHANG);
            if (got == job->child || (got < 0 && errno == ECHILD)) {
                /* ECHILD: someone reaped it for us (SIGCHLD ignored); trust the output we read. */
                job->child_status = got == job->child ? st : 0;
                job->child = 0;
            }
        }
        /*
         * Done when the viewer is reaped and its output ended. After a kill the
         * whole group is dead, so the end of the output is not waited for.
         */
        if (job->child == 0 && (job->out_done || job->kill_reason != NULL)) {
            hp__prof_send_converted(job);
            hp__prof_finish(job);
            return;
        }
    }

    if (job->phase != HP_PROF_IDLE && !h2o_timeout_is_linked(&job->tick))
        h2o_timeout_link(job->thr->loop, &hp__prof.tick, &job->tick);
}

static void hp__prof_on_tick(h2o_timeout_entry_t *entry)
{
    hp__prof_advance(H2O_STRUCT_FROM_MEMBER(hp_prof_job_t, tick, entry));
}

/* ---- the handlers ---------------------------------------------------------------------------- */

/* An integer query parameter in [lo, hi], def when absent. @return 0, or -1 after answering 400 */
static int hp__prof_int(hp_req_t *r, const char *name, int def, int lo, int hi, int *out)
{
    int64_t v;
    if (hp_param_int(r, name, lo, hi, def, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* A route's formats: the names the `format` parameter takes, the first one the default. */
typedef struct st_hp_prof_format_name_t {
    const char *name;
    hp_prof_format_t format;
} hp_prof_format_name_t;

/* The format parameter, one of `names` (n of them; names[0] when absent). @return 0, or -1 after answering 400 */
static int hp__prof_format_param(hp_req_t *r, const hp_prof_format_name_t *names, size_t n, const char *valid,
                                 hp_prof_format_t *out)
{
    h2o_iovec_t v;
    int rc = hp_query_param(r, "format", &v);
    if (rc == 0) {
        *out = names[0].format;
        return 0;
    }
    for (size_t f = 0; rc > 0 && f != n; ++f) {
        if (v.len == strlen(names[f].name) && memcmp(v.base, names[f].name, v.len) == 0) {
            *out = names[f].format;
            return 0;
        }
    }
    hp_respond_error(r, HP_E_bad_param, hp_pool_printf(r, "format must be %s", valid));
    return -1;
}

/*
 * Starts a profile job for r. @return NULL, or why it could not start with the
 * answer's code (a profile of the kind already runs: 409 profile_in_progress).
 */
/*
 * Starts the profiler of a job that is idle. @return NULL, or why it could not
 * start (no request is attached: the caller attaches one, or marks the job a
 * background one).
 */
static const char *hp__prof_start_job(hp_thread_t *thr, hp_prof_job_t *job, hp_prof_format_t format, hp_pprof_kind_t proto_kind,
                                      int seconds, int lg_sample)
{
    hp__prof_init(thr);
    int fd = hp__prof_mktemp(job->path, sizeof(job->path), hp__prof_kind_names[job->kind], ".prof");
    if (fd < 0)
        return "no temporary file could be created (TMPDIR)";
    close(fd); /* the profilers open the path themselves */
    const char *why = NULL;
    if (hp__prof_start(job, lg_sample, &why) != 0) {
        hp__prof_scrub(job);
        return why;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    job->started_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    job->format = format;
    job->proto_kind = proto_kind;
    job->seconds = seconds;
    job->phase = HP_PROF_SAMPLING;
    job->deadline = h2o_now(job->thr->loop) + (uint64_t)seconds * 1000;
    h2o_timeout_link(job->thr->loop, &hp__prof.tick, &job->tick);
    hp_log(HP_LOG_INFO, "%s profile: started for %d s%s", hp__prof_kind_names[job->kind], seconds,
           job->background ? " (continuous profiling)" : "");
    return NULL;
}

/*
 * Starts a profile job for r. @return NULL, or why it could not start with the
 * answer's code (a profile of the kind already runs: 409 profile_in_progress).
 * A saved profile that is sampling gives way: what a person or the doctor
 * asks for now matters more than one point of the history.
 */
static const char *hp__prof_launch(hp_req_t *r, hp_prof_kind_t kind, hp_prof_format_t format, hp_pprof_kind_t proto_kind,
                                   int seconds, int lg_sample, hp_error_t *code)
{
    hp__prof_init(r->thr);
    hp_prof_job_t *job = &hp__prof.jobs[kind];
    *code = HP_E_profile_failed;
    if (job->background && job->phase == HP_PROF_SAMPLING) {
        hp__prof_stop(job, 0);
        hp__prof_scrub(job);
        hp__prof_saved(job, "preempted by a profile request");
        hp__prof_finish(job);
    }
    if (job->phase != HP_PROF_IDLE) {
        *code = HP_E_profile_in_progress;
        return job->background ? "the continuous profiler is saving its profile; try again in a second"
                               : hp_pool_printf(r, "a %s profile is already running; one at a time", hp__prof_kind_names[kind]);
    }
    const char *why = hp__prof_start_job(r->thr, job, format, proto_kind, seconds, lg_sample);
    if (why != NULL)
        return why;
    job->op.on_abandon = hp__prof_on_abandon;
    hp_op_attach(r, &job->op);
    return NULL;
}

static void hp__prof_begin(hp_req_t *r, hp_prof_kind_t kind, hp_prof_format_t format, hp_pprof_kind_t proto_kind, int seconds,
                           int lg_sample)
{
    hp_error_t code;
    const char *why = hp__prof_launch(r, kind, format, proto_kind, seconds, lg_sample, &code);
    if (why != NULL)
        hp_respond_error(r, code, why);
}

/* Starts a job whose folded stacks go to cb (hp_prof_cpu_collect, hp_prof_heap_collect). */
static int hp__prof_collect(hp_req_t *r, hp_prof_kind_t kind, int seconds, int lg_sample, hp_prof_folded_cb cb, void *ud,
                            const char **why)
{
    hp_error_t code;
    if (seconds < HP_PROF_MIN_SECONDS)
        seconds = HP_PROF_MIN_SECONDS;
    if (seconds > HP_PROF_MAX_SECONDS)
        seconds = HP_PROF_MAX_SECONDS;
    if ((*why = hp__prof_launch(r, kind, HP_PROF_FOLDED, kind == HP_PROF_CPU ? HP_PPROF_CPU : HP_PPROF_HEAP, seconds, lg_sample,
                                &code)) != NULL)
        return -1;
    hp__prof.jobs[kind].cb = cb;
    hp__prof.jobs[kind].cb_ud = ud;
    return 0;
}

int hp_prof_cpu_collect(hp_req_t *r, int seconds, hp_prof_folded_cb cb, void *ud, const char **why)
{
#if HOTPLATE_CPU_PROFILER
    return hp__prof_collect(r, HP_PROF_CPU, seconds, 0, cb, ud, why);
#else
    (void)r, (void)seconds, (void)cb, (void)ud;
    *why = "this build has no CPU profiler (HOTPLATE_CPU_PROFILER=OFF)";
    return -1;
#endif
}

int hp_prof_heap_collect(hp_req_t *r, int seconds, hp_prof_folded_cb cb, void *ud, const char **why)
{
    if (!hp__prof_heap_supported()) {
        *why = !hp_heap_has_jemalloc() ? "this build does not use jemalloc (sanitizer builds keep ASan's allocator)"
                                       : "jemalloc heap profiling is off (malloc_conf needs prof:true)";
        return -1;
    }
    return hp__prof_collect(r, HP_PROF_HEAP, seconds, HP_PROF_COLLECT_LG_SAMPLE, cb, ud, why);
}

int hp_prof_save(hp_thread_t *thr, int heap, int seconds, int lg_sample, const char *path, const char *const *comments,
                 size_t num_comments, hp_prof_saved_cb cb, void *ud, const char **why)
{
    hp_prof_kind_t kind = heap ? HP_PROF_HEAP : HP_PROF_CPU;
#if !HOTPLATE_CPU_PROFILER
    if (!heap) {
        *why = "this build has no CPU profiler (HOTPLATE_CPU_PROFILER=OFF)";
        return -1;
    }
#endif
    if (heap && !hp__prof_heap_supported()) {
        *why = "this build has no jemalloc heap profiling";
        return -1;
    }
    hp__prof_init(thr);
    hp_prof_job_t *job = &hp__prof.jobs[kind];
    if (job->phase != HP_PROF_IDLE) {
        *why = "a profile of this kind is running";
        return -1;
    }
    if (strlen(path) >= sizeof(job->save_path) || num_comments > HP_PPROF_MAX_COMMENTS) {
        *why = "the path or the comments are too long";
        return -1;
    }
    job->background = 1;
    strcpy(job->save_path, path);
    for (size_t i = 0; i != num_comments; ++i)
        if ((job->comments[job->num_comments] = strdup(comments[i])) != NULL)
            ++job->num_comments;
    if ((*why = hp__prof_start_job(thr, job, HP_PROF_PROTO, heap ? HP_PPROF_HEAP : HP_PPROF_CPU, seconds, lg_sample)) != NULL) {
        hp__prof_finish(job); /* before the callback is set: a profile that never started is not reported twice */
        return -1;
    }
    job->saved_cb = cb;
    job->saved_ud = ud;
    return 0;
}

void hp_prof_merge(hp_req_t *r, const char *const *files, size_t num_files, int heap)
{
    hp__prof_init(r->thr);
    hp_prof_job_t *job = &hp__prof.jobs[HP_PROF_MERGE];
    if (job->phase != HP_PROF_IDLE) {
        hp_respond_error(r, HP_E_profile_in_progress, "a merge is already running; one at a time");
        return;
    }
    /* Room for the executable and "pprof-merge" (filled in by the spawn), the files, and the NULL. */
    job->merge_files = calloc(num_files + 3, sizeof(*job->merge_files));
    int rc = job->merge_files != NULL ? 0 : ENOMEM;
    for (size_t i = 0; rc == 0 && i != num_files; ++i)
        if ((job->merge_files[2 + i] = strdup(files[i])) == NULL)
            rc = ENOMEM;
    job->format = HP_PROF_PROTO;
    job->proto_kind = heap ? HP_PPROF_HEAP : HP_PPROF_CPU;
    job->seconds = 0;
    if (rc == 0)
        rc = hp__prof_spawn(job);
    if (rc != 0) {
        hp_log(HP_LOG_WARN, "merge: cannot run pprof-merge: %s", strerror(rc));
        hp__prof_finish(job);
        hp_respond_error(r, HP_E_profile_failed, "the merge could not be started");
        return;
    }
    job->phase = HP_PROF_CONVERTING;
    job->deadline = h2o_now(job->thr->loop) + HP_PROF_CONVERT_TIMEOUT_MS;
    job->op.on_abandon = hp__prof_on_abandon;
    hp_op_attach(r, &job->op);
    h2o_timeout_link(job->thr->loop, &hp__prof.tick, &job->tick);
}

/*
 * GET /debug/pprof/profile?seconds=N&format=proto|gperftools|folded|svg.
 * proto is the default, as in Go's net/http/pprof, so that `go tool pprof URL`
 * reads it with every frame named; gperftools is the profiler's own file
 * (`pprof`, its name before profile.proto was served, still means it).
 */
static void hp__prof_cpu(hp_req_t *r)
{
    static const hp_prof_format_name_t formats[] = {{"proto", HP_PROF_PROTO},
                                                    {"gperftools", HP_PROF_RAW},
                                                    {"pprof", HP_PROF_RAW},
                                                    {"folded", HP_PROF_FOLDED},
                                                    {"svg", HP_PROF_SVG}};
    int seconds;
    hp_prof_format_t format;
    if (hp__prof_int(r, "seconds", HP_PROF_DEFAULT_SECONDS, HP_PROF_MIN_SECONDS, HP_PROF_MAX_SECONDS, &seconds) != 0 ||
        hp__prof_format_param(r, formats, sizeof(formats) / sizeof(formats[0]), "proto, gperftools, folded or svg", &format) != 0)
        return;
#if HOTPLATE_CPU_PROFILER
    hp__prof_begin(r, HP_PROF_CPU, format, HP_PPROF_CPU, seconds, 0);
#else
    hp_respond_error(r, HP_E_not_supported, "this build has no CPU profiler (configured with HOTPLATE_CPU_PROFILER=OFF)");
#endif
}

/* The heap profile routes' shared body: a window of `seconds` with jemalloc's profiler on, then the dump. */
static void hp__prof_heap_window(hp_req_t *r, const hp_prof_format_name_t *formats, size_t n, const char *valid,
                                 hp_pprof_kind_t proto_kind)
{
    int seconds, lg_sample;
    hp_prof_format_t format;
    if (hp__prof_int(r, "seconds", HP_PROF_DEFAULT_SECONDS, HP_PROF_MIN_SECONDS, HP_PROF_MAX_SECONDS, &seconds) != 0 ||
        hp__prof_format_param(r, formats, n, valid, &format) != 0 ||
        hp__prof_int(r, "lg_sample", HP_PROF_DEFAULT_LG_SAMPLE, HP_PROF_MIN_LG_SAMPLE, HP_PROF_MAX_LG_SAMPLE, &lg_sample) != 0)
        return;
    if (!hp__prof_heap_supported()) {
        hp_respond_error(r, HP_E_not_supported,
                         !hp_heap_has_jemalloc() ? "this build does not use jemalloc (sanitizer builds keep ASan's allocator)"
                                                 : "jemalloc heap profiling is off (malloc_conf needs prof:true)");
        return;
    }
    hp__prof_begin(r, HP_PROF_HEAP, format, proto_kind, seconds, lg_sample);
}

/* POST /debug/heap/profile?seconds=N&format=raw|folded|proto|svg&lg_sample=K */
static void hp__prof_heap(hp_req_t *r)
{
    static const hp_prof_format_name_t formats[] = {
        {"raw", HP_PROF_RAW}, {"folded", HP_PROF_FOLDED}, {"proto", HP_PROF_PROTO}, {"svg", HP_PROF_SVG}};
    hp__prof_heap_window(r, formats, 4, "raw, folded, proto or svg", HP_PPROF_HEAP);
}

/*
 * GET /debug/pprof/heap and /debug/pprof/allocs?seconds=N&format=proto|raw|folded|svg&lg_sample=K:
 * Go's names for the same window in pprof's format, where a viewer shows the
 * bytes still in use at the end (heap) or all the bytes allocated in it
 * (allocs) first. jemalloc's profiler is off between profiles, so unlike Go's
 * these always sample a window: what it costs is paid only while one runs.
 */
static const hp_prof_format_name_t hp__prof_pprof_heap_formats[] = {
    {"proto", HP_PROF_PROTO}, {"raw", HP_PROF_RAW}, {"folded", HP_PROF_FOLDED}, {"svg", HP_PROF_SVG}};

static void hp__prof_pprof_heap(hp_req_t *r)
{
    hp__prof_heap_window(r, hp__prof_pprof_heap_formats, 4, "proto, raw, folded or svg", HP_PPROF_HEAP);
}

static void hp__prof_pprof_allocs(hp_req_t *r)
{
    hp__prof_heap_window(r, hp__prof_pprof_heap_formats, 4, "proto, raw, folded or svg", HP_PPROF_ALLOCS);
}

const hp_route_t hp_prof_routes[] = {
    {"GET", "/debug/pprof/profile", hp__prof_cpu, HP_ROUTE_ADMIN_TOKEN},
    {"GET", "/debug/pprof/heap", hp__prof_pprof_heap, HP_ROUTE_ADMIN_TOKEN},
    {"GET", "/debug/pprof/allocs", hp__prof_pprof_allocs, HP_ROUTE_ADMIN_TOKEN},
    {"POST", "/debug/heap/profile", hp__prof_heap, HP_ROUTE_ADMIN_TOKEN},
};
const size_t hp_prof_num_routes = sizeof(hp_prof_routes) / sizeof(hp_prof_routes[0]);
