/*
 * procstat: procfs readers (see procstat.h).
 */
#include "profiling/procstat.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void hp_proc_read(hp_proc_stats_t *ps)
{
    memset(ps, 0, sizeof(*ps));
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof(buf), f) != NULL) {
            /* The command name may hold spaces; fields resume after its closing parenthesis. */
            char *p = strrchr(buf, ')');
            unsigned long utime = 0, stime = 0, vsize = 0;
            long threads = 0, rss = 0;
            unsigned long long starttime = 0;
            if (p != NULL &&
                sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld %*d %llu %lu %ld", &utime,
                       &stime, &threads, &starttime, &vsize, &rss) == 6) {
                ps->cpu_user_s = (double)utime / (double)ticks;
                ps->cpu_system_s = (double)stime / (double)ticks;
                ps->threads = (uint64_t)threads;
                ps->vsize_bytes = vsize;
                ps->rss_bytes = (uint64_t)rss * (uint64_t)page;
                ps->start_time_s = (double)starttime / (double)ticks;
            }
        }
        fclose(f);
    }
    if ((f = fopen("/proc/stat", "r")) != NULL) {
        unsigned long long btime;
        while (fgets(buf, sizeof(buf), f) != NULL)
            if (sscanf(buf, "btime %llu", &btime) == 1)
                ps->start_time_s += (double)btime;
        fclose(f);
    }
    /* Context switches are per thread in procfs; the process's are the sum over its tasks. */
    DIR *tasks = opendir("/proc/self/task");
    if (tasks != NULL) {
        struct dirent *t;
        while ((t = readdir(tasks)) != NULL) {
            if (t->d_name[0] == '.')
                continue;
            char path[64];
            snprintf(path, sizeof(path), "/proc/self/task/%.20s/status", t->d_name);
            if ((f = fopen(path, "r")) == NULL)
                continue;
            unsigned long long v;
            while (fgets(buf, sizeof(buf), f) != NULL) {
                if (sscanf(buf, "voluntary_ctxt_switches: %llu", &v) == 1)
                    ps->ctx_voluntary += v;
                else if (sscanf(buf, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
                    ps->ctx_involuntary += v;
            }
            fclose(f);
        }
        closedir(tasks);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                ++ps->fds;
        closedir(d);
        if (ps->fds != 0)
            --ps->fds; /* the directory stream's own descriptor */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        ps->max_fds = rl.rlim_cur;
}

int hp_proc_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void hp_proc_cpu_rss(double *cpu_s, double *rss_bytes)
{
    char buf[1024];
    *cpu_s = *rss_bytes = 0;
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    long rss = 0;
    if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %*u %ld",
                            &utime, &stime, &rss) == 3) {
        *cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
        *rss_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
    }
}
