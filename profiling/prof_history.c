/*
 * prof_history: continuous profiling (see prof_history.h).
 *
 * Ownership: everything here belongs to the admin thread, which alone runs the
 * tick, the saved-profile callbacks and the route. The entries are kept in
 * memory in start order (the folder's listing at start, then each profile as
 * it is saved), so the route never lists the folder. The file work (a rename,
 * a sidecar of a few hundred bytes, an unlink per pruned profile, and the
 * download of one profile of a few hundred kilobytes at most) is synchronous
 * on the admin loop, like the temp files of prof.c: local files, bounded.
 */
#include "profiling/prof_history.h"
#include "base/flags.h"
#include "base/log.h"
#include "base/timefmt.h"
#include "runtime/http.h"
#include "runtime/migrate.h"
#include "runtime/params.h"
#include "runtime/thread.h"
#include "profiling/heap.h"
#include "profiling/pprof_proto.h"
#include "profiling/prof.h"
#include "version.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The most profiles of one kind kept, whatever --profile-keep says (config.c allows 1..1000). */
#define HP__HIST_MAX_KEEP 1000

typedef struct st_hp__hist_entry_t {
    char id[40]; /* "20261203T081500Z-cpu": the start in UTC and the kind; the file names */
    int heap;
    int64_t time_s; /* the start, Unix seconds */
    int seconds;
    size_t bytes;
    char commit[48];
    char flags[512]; /* "name=value name=value ..." */
} hp__hist_entry_t;

/* What a saved profile's callback needs: the entry it will become. */
typedef struct st_hp__hist_pending_t {
    hp__hist_entry_t e;
} hp__hist_pending_t;

static struct {
    char dir[PATH_MAX];
    const char *error; /* why the folder is unusable, or NULL */
    int keep;
    hp_thread_t *thr;
    h2o_timeout_t tick;
    h2o_timeout_entry_t entry;
    uint64_t last_round_ms; /* h2o_now() of the last round, 0 before the first */
    hp__hist_entry_t *entries;
    size_t num_entries, cap_entries;
    uint64_t rounds, saved, preempted, failed, skipped;
} hp__hist = {.keep = 60};

void hp_prof_history_configure(const char *dir, int keep)
{
    const char *home = getenv("HOTPLATE_HOME"), *tmp = getenv("TMPDIR");
    int n;
    if (dir != NULL && dir[0] != '\0')
        n = snprintf(hp__hist.dir, sizeof(hp__hist.dir), "%s", dir);
    else if (home != NULL && home[0] != '\0')
        n = snprintf(hp__hist.dir, sizeof(hp__hist.dir), "%s/profiles", home);
    else
        n = snprintf(hp__hist.dir, sizeof(hp__hist.dir), "%s/hotplate-profiles", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(hp__hist.dir) - 48)
        hp__hist.error = "the profile folder's path is too long";
    hp__hist.keep = keep < 1 ? 1 : keep > HP__HIST_MAX_KEEP ? HP__HIST_MAX_KEEP : keep;
}

/* ---- the entries ----------------------------------------------------------------------------- */

/* DIR/ID+SUFFIX; configure keeps the folder 48 bytes short of PATH_MAX, so a path never comes out cut (else it is ""). */
static void hp__hist_path(char *buf, size_t len, const char *id, const char *suffix)
{
    int n = snprintf(buf, len, "%s/%s%s", hp__hist.dir, id, suffix);
    if (n < 0 || (size_t)n >= len)
        buf[0] = '\0';
}

/* Inserts e in start order (a restart's folder may hold profiles newer than the clock, after a clock change). */
static void hp__hist_add(const hp__hist_entry_t *e)
{
    if (hp__hist.num_entries == hp__hist.cap_entries) {
        size_t cap = hp__hist.cap_entries != 0 ? hp__hist.cap_entries * 2 : 64;
        hp__hist_entry_t *n = realloc(hp__hist.entries, cap * sizeof(*n));
        if (n == NULL)
            return;
        hp__hist.entries = n;
        hp__hist.cap_entries = cap;
    }
    size_t i = hp__hist.num_entries;
    while (i != 0 && (hp__hist.entries[i - 1].time_s > e->time_s ||
                      (hp__hist.entries[i - 1].time_s == e->time_s && strcmp(hp__hist.entries[i - 1].id, e->id) > 0)))
        --i;
    memmove(hp__hist.entries + i + 1, hp__hist.entries + i, (hp__hist.num_entries - i) * sizeof(*e));
    hp__hist.entries[i] = *e;
    ++hp__hist.num_entries;
}

/* Removes the oldest profiles of each kind beyond keep, files and entries. */
static void hp__hist_prune(void)
{
    size_t count[2] = {0, 0};
    for (size_t i = 0; i != hp__hist.num_entries; ++i)
        ++count[hp__hist.entries[i].heap];
    size_t o = 0;
    for (size_t i = 0; i != hp__hist.num_entries; ++i) {
        hp__hist_entry_t *e = &hp__hist.entries[i];
        if (count[e->heap] > (size_t)hp__hist.keep) {
            char path[PATH_MAX];
            hp__hist_path(path, sizeof(path), e->id, ".pb.gz");
            unlink(path);
            hp__hist_path(path, sizeof(path), e->id, ".json");
            unlink(path);
            --count[e->heap];
            continue;
        }
        hp__hist.entries[o++] = *e;
    }
    hp__hist.num_entries = o;
}

static json_t *hp__hist_flags_json(const char *flags)
{
    json_t *o = json_object();
    char buf[sizeof(((hp__hist_entry_t *)0)->flags)];
    snprintf(buf, sizeof(buf), "%s", flags);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        json_object_set_new(o, tok, json_string(eq + 1));
    }
    return o;
}

static json_t *hp__hist_entry_json(const hp__hist_entry_t *e)
{
    char at[HP_TIME_RFC3339_MAX];
    hp_time_rfc3339(at, sizeof(at), (uint64_t)e->time_s * 1000000, 0);
    return json_pack("{ss ss ss sI si sI ss so}", "id", e->id, "kind", e->heap ? "heap" : "cpu", "time", at, "unix_s",
                     (json_int_t)e->time_s, "seconds", e->seconds, "bytes", (json_int_t)e->bytes, "commit", e->commit, "flags",
                     hp__hist_flags_json(e->flags));
}

/* Reads a sidecar back. @return 0, or -1 when it is not one of ours */
static int hp__hist_read_sidecar(const char *path, hp__hist_entry_t *e)
{
    json_t *doc = json_load_file(path, 0, NULL);
    const char *id = NULL, *kind = NULL, *commit = NULL;
    json_int_t unix_s = 0, bytes = 0;
    int seconds = 0;
    json_t *flags = NULL;
    int rc = doc != NULL &&
                     json_unpack(doc, "{ss ss sI si sI ss so}", "id", &id, "kind", &kind, "unix_s", &unix_s, "seconds", &seconds,
                                 "bytes", &bytes, "commit", &commit, "flags", &flags) == 0 &&
                     strlen(id) < sizeof(e->id) && strchr(id, '/') == NULL && id[0] != '.'
                 ? 0
                 : -1;
    if (rc == 0) {
        memset(e, 0, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", id);
        e->heap = strcmp(kind, "heap") == 0;
        e->time_s = unix_s;
        e->seconds = seconds;
        e->bytes = (size_t)bytes;
        snprintf(e->commit, sizeof(e->commit), "%s", commit);
        size_t len = 0;
        const char *k;
        json_t *v;
        json_object_foreach(flags, k, v)
        {
            if (json_is_string(v) && len < sizeof(e->flags))
                len += (size_t)snprintf(e->flags + len, sizeof(e->flags) - len, "%s%s=%s", len != 0 ? " " : "", k,
                                        json_string_value(v));
        }
    }
    json_decref(doc);
    return rc;
}

/* Creates the folder (and its parent) and reads back what an earlier run kept. */
static void hp__hist_open_folder(void)
{
    if (hp__hist.error != NULL)
        return;
    if (mkdir(hp__hist.dir, 0700) != 0 && errno == ENOENT) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s", hp__hist.dir);
        char *slash = strrchr(parent, '/');
        if (slash != NULL && slash != parent) {
            *slash = '\0';
            mkdir(parent, 0700);
        }
        mkdir(hp__hist.dir, 0700);
    }
    DIR *d = opendir(hp__hist.dir);
    if (d == NULL) {
        hp__hist.error = "the profile folder cannot be created or read";
        hp_log(HP_LOG_WARN, "continuous profiling: %s: %s", hp__hist.dir, strerror(errno));
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        char path[PATH_MAX];
        if (n > 5 && strcmp(de->d_name + n - 5, ".part") == 0) {
            /* A profile a killed server was writing. */
            hp__hist_path(path, sizeof(path), de->d_name, "");
            unlink(path);
            continue;
        }
        if (n <= 5 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        hp__hist_path(path, sizeof(path), de->d_name, "");
        hp__hist_entry_t e;
        struct stat st;
        char pb[PATH_MAX];
        if (hp__hist_read_sidecar(path, &e) != 0)
            continue;
        hp__hist_path(pb, sizeof(pb), e.id, ".pb.gz");
        if (stat(pb, &st) == 0)
            hp__hist_add(&e);
        else
            unlink(path);
    }
    closedir(d);
    hp__hist_prune();
}

/* ---- the rounds ------------------------------------------------------------------------------ */

static void hp__hist_saved(void *ud, const char *path, const char *err)
{
    hp__hist_pending_t *p = ud;
    if (err != NULL) {
        if (strstr(err, "preempted") != NULL) {
            ++hp__hist.preempted;
        } else {
            ++hp__hist.failed;
            hp_log(HP_LOG_WARN, "continuous profiling: the %s profile %s was not saved: %s", p->e.heap ? "heap" : "cpu", p->e.id,
                   err);
        }
        free(p);
        return;
    }
    char final[PATH_MAX], sidecar[PATH_MAX];
    struct stat st;
    hp__hist_path(final, sizeof(final), p->e.id, ".pb.gz");
    hp__hist_path(sidecar, sizeof(sidecar), p->e.id, ".json");
    if (rename(path, final) != 0 || stat(final, &st) != 0) {
        ++hp__hist.failed;
        unlink(path);
        free(p);
        return;
    }
    p->e.bytes = (size_t)st.st_size;
    json_t *doc = hp__hist_entry_json(&p->e);
    if (doc == NULL || json_dump_file(doc, sidecar, JSON_COMPACT) != 0) {
        ++hp__hist.failed;
        unlink(final);
    } else {
        ++hp__hist.saved;
        hp__hist_add(&p->e);
        hp__hist_prune();
    }
    json_decref(doc);
    free(p);
}

/* Starts one saved profile of the round. */
static void hp__hist_start(int heap, int64_t now_s, int seconds, const char *stamp, const char *flags)
{
    hp__hist_pending_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return;
    snprintf(p->e.id, sizeof(p->e.id), "%s-%s", stamp, heap ? "heap" : "cpu");
    p->e.heap = heap;
    p->e.time_s = now_s;
    p->e.seconds = seconds;
    snprintf(p->e.commit, sizeof(p->e.commit), "%s", HOTPLATE_COMMIT);
    snprintf(p->e.flags, sizeof(p->e.flags), "%s", flags);
    char path[PATH_MAX], c_commit[96], c_flags[600], c_what[96];
    hp__hist_path(path, sizeof(path), p->e.id, ".pb.gz.part");
    snprintf(c_commit, sizeof(c_commit), "hotplate commit %s", HOTPLATE_COMMIT);
    snprintf(c_flags, sizeof(c_flags), "flags: %s", flags);
    snprintf(c_what, sizeof(c_what), "continuous profiling: %d s every %d s", seconds, hp_flag_get(HP_FLAG_profile_every_s));
    const char *comments[] = {c_what, c_commit, c_flags};
    const char *why = NULL;
    if (hp_prof_save(hp__hist.thr, heap, seconds, HP_PROF_HISTORY_LG_SAMPLE, path, comments, 3, hp__hist_saved, p, &why) != 0) {
        /* A profile of that kind runs already (someone asked for one): this round keeps none of the kind. */
        ++hp__hist.skipped;
        free(p);
    }
}

static void hp__hist_round(void)
{
    int every = hp_flag_get(HP_FLAG_profile_every_s);
    uint64_t now = h2o_now(hp__hist.thr->loop);
    if (every <= 0 || hp__hist.error != NULL) {
        hp__hist.last_round_ms = 0; /* the next time it is switched on, a round starts at once */
        return;
    }
    if (hp__hist.last_round_ms != 0 && now - hp__hist.last_round_ms < (uint64_t)every * 1000)
        return;
    hp__hist.last_round_ms = now;
    ++hp__hist.rounds;
    int seconds = every / 2 < 1 ? 1 : every / 2 > HP_PROF_HISTORY_MAX_SECONDS ? HP_PROF_HISTORY_MAX_SECONDS : every / 2;
    time_t t = time(NULL);
    struct tm tm;
    char stamp[32], flags[512], val[32];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    size_t len = 0;
    for (int id = 0; id != HP_FLAG__COUNT && len < sizeof(flags); ++id)
        len += (size_t)snprintf(flags + len, sizeof(flags) - len, "%s%s=%s", id != 0 ? " " : "",
                                hp_flag_def((hp_flag_id_t)id)->name, hp_flag_value_str((hp_flag_id_t)id, val, sizeof(val)));
    hp__hist_start(0, (int64_t)t, seconds, stamp, flags);
    if (hp_heap_has_jemalloc())
        hp__hist_start(1, (int64_t)t, seconds, stamp, flags);
}

static void hp__hist_tick(h2o_timeout_entry_t *entry)
{
    (void)entry;
    hp__hist_round();
    if (!atomic_load(&hp__hist.thr->stopping))
        h2o_timeout_link(hp__hist.thr->loop, &hp__hist.tick, &hp__hist.entry);
}

int hp_prof_history_admin_thread_init(hp_thread_t *thr)
{
    hp__hist.thr = thr;
    if (hp__hist.dir[0] == '\0')
        hp_prof_history_configure(NULL, hp__hist.keep);
    hp__hist_open_folder();
    h2o_timeout_init(thr->loop, &hp__hist.tick, 1000);
    hp__hist.entry.cb = hp__hist_tick;
    h2o_timeout_link(thr->loop, &hp__hist.tick, &hp__hist.entry);
    return 0;
}

void hp_prof_history_admin_thread_dispose(hp_thread_t *thr)
{
    (void)thr;
    if (h2o_timeout_is_linked(&hp__hist.entry))
        h2o_timeout_unlink(&hp__hist.entry);
    free(hp__hist.entries);
    hp__hist.entries = NULL;
    hp__hist.num_entries = hp__hist.cap_entries = 0;
}

/* ---- the route ------------------------------------------------------------------------------- */

/* A kind parameter: -1 when absent, 0 cpu, 1 heap; -2 after answering 400. */
static int hp__hist_kind(hp_req_t *r, const char *name)
{
    h2o_iovec_t v;
    int rc = hp_query_param(r, name, &v);
    if (rc == 0)
        return -1;
    if (rc > 0 && h2o_memis(v.base, v.len, H2O_STRLIT("cpu")))
        return 0;
    if (rc > 0 && h2o_memis(v.base, v.len, H2O_STRLIT("heap")))
        return 1;
    hp_respond_error(r, HP_E_bad_param, hp_pool_printf(r, "%s must be cpu or heap", name));
    return -2;
}

static void hp__hist_download(hp_req_t *r, h2o_iovec_t id)
{
    const hp__hist_entry_t *e = NULL;
    for (size_t i = 0; i != hp__hist.num_entries && e == NULL; ++i)
        if (h2o_memis(id.base, id.len, hp__hist.entries[i].id, strlen(hp__hist.entries[i].id)))
            e = &hp__hist.entries[i];
    if (e == NULL) {
        hp_respond_error(r, HP_E_not_found, "no kept profile has this id (GET /debug/pprof/history lists them)");
        return;
    }
    char path[PATH_MAX];
    hp__hist_path(path, sizeof(path), e->id, ".pb.gz");
    size_t len = 0;
    char *data = hp_migrate_read_file(path, &len);
    if (data == NULL || len > HP_PROF_MAX_OUTPUT) {
        free(data);
        hp_respond_error(r, HP_E_profile_failed, "the profile file could not be read");
        return;
    }
    char *body = h2o_mem_alloc_pool(&r->h2o->pool, len + 1);
    memcpy(body, data, len);
    free(data);
    hp_add_header(r, "content-type", "application/octet-stream");
    hp_add_header(r, "content-disposition", hp_pool_printf(r, "attachment; filename=\"hotplate-%s.pb.gz\"", e->id));
    hp_respond_raw(r, 200, h2o_iovec_init(body, len));
}

static void hp__hist_merge(hp_req_t *r, int heap)
{
    int64_t from, to;
    if (hp_param_int(r, "from", 0, INT64_MAX / 2, 0, &from) != 0 ||
        hp_param_int(r, "to", 0, INT64_MAX / 2, INT64_MAX / 2, &to) != 0)
        return;
    const char **files = h2o_mem_alloc_pool(&r->h2o->pool, (HP_PPROF_MAX_MERGE + 1) * sizeof(*files));
    size_t n = 0;
    for (size_t i = hp__hist.num_entries; i-- != 0 && n != HP_PPROF_MAX_MERGE;) {
        const hp__hist_entry_t *e = &hp__hist.entries[i];
        if (e->heap != heap || e->time_s < from || e->time_s > to)
            continue;
        char *path = h2o_mem_alloc_pool(&r->h2o->pool, PATH_MAX);
        hp__hist_path(path, PATH_MAX, e->id, ".pb.gz");
        files[n++] = path;
    }
    if (n == 0) {
        hp_respond_error(r, HP_E_not_found, "no kept profile of this kind started in [from, to]");
        return;
    }
    hp_prof_merge(r, files, n, heap);
}

/* GET /debug/pprof/history[?kind=cpu|heap | ?id=ID | ?merge=cpu|heap&from=T&to=T] */
static void hp__hist_handle(hp_req_t *r)
{
    h2o_iovec_t id;
    int rc = hp_query_param(r, "id", &id);
    if (rc > 0) {
        hp__hist_download(r, id);
        return;
    }
    int merge = hp__hist_kind(r, "merge");
    if (merge == -2)
        return;
    if (merge >= 0) {
        hp__hist_merge(r, merge);
        return;
    }
    int kind = hp__hist_kind(r, "kind");
    if (kind == -2)
        return;
    json_t *list = json_array();
    for (size_t i = hp__hist.num_entries; i-- != 0;) {
        const hp__hist_entry_t *e = &hp__hist.entries[i];
        if (kind >= 0 && e->heap != kind)
            continue;
        json_t *o = hp__hist_entry_json(e);
        json_object_set_new(o, "url", json_string(hp_pool_printf(r, "/debug/pprof/history?id=%s", e->id)));
        json_array_append_new(list, o);
    }
    int every = hp_flag_get(HP_FLAG_profile_every_s);
    int seconds = every / 2 < 1 ? 1 : every / 2 > HP_PROF_HISTORY_MAX_SECONDS ? HP_PROF_HISTORY_MAX_SECONDS : every / 2;
    json_t *doc = json_pack("{sb si si si ss ss s{sI sI sI sI sI} so}", "enabled", every > 0 && hp__hist.error == NULL, "every_s",
                            every, "seconds", every > 0 ? seconds : 0, "keep", hp__hist.keep, "dir", hp__hist.dir, "commit",
                            HOTPLATE_COMMIT, "rounds", "started", (json_int_t)hp__hist.rounds, "saved", (json_int_t)hp__hist.saved,
                            "preempted", (json_int_t)hp__hist.preempted, "failed", (json_int_t)hp__hist.failed, "skipped",
                            (json_int_t)hp__hist.skipped, "profiles", list);
    if (hp__hist.error != NULL)
        json_object_set_new(doc, "error", json_string(hp__hist.error));
    hp_respond_json(r, 200, doc);
}

const hp_route_t hp_prof_history_routes[] = {
    {"GET", "/debug/pprof/history", hp__hist_handle, 0},
};
const size_t hp_prof_history_num_routes = sizeof(hp_prof_history_routes) / sizeof(hp_prof_history_routes[0]);
