/*
 * procstat: what the kernel says about this process (procfs), for
 * /debug/perf's process section, /metrics' process_* lines and the alerts.
 */
#ifndef HP_PROCSTAT_H
#define HP_PROCSTAT_H

#include <stdint.h>

typedef struct st_hp_proc_stats_t {
    double cpu_user_s, cpu_system_s, start_time_s;
    uint64_t rss_bytes, vsize_bytes, threads, fds, max_fds, ctx_voluntary, ctx_involuntary;
} hp_proc_stats_t;

/** Reads everything: /proc/self/stat, every task's context switches, the open descriptors. */
void hp_proc_read(hp_proc_stats_t *ps);

/**
 * Reads only CPU seconds and RSS, with open(2) and read(2) into the stack: for
 * the once-a-second alert sample, which must neither allocate (fopen,
 * opendir) nor walk every task and descriptor.
 */
void hp_proc_cpu_rss(double *cpu_s, double *rss_bytes);

/** @return the CPUs this process may run on: its affinity mask, which taskset and cpusets narrow */
int hp_proc_cpus(void);

#endif
