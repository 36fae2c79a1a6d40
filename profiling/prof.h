/*
 * prof: on-demand CPU and heap profiles of the running server, on the admin
 * listener.
 *
 *   GET  /debug/pprof/profile?seconds=N&format=pprof|folded|svg
 *        gperftools' CPU profiler (SIGPROF sampling of every thread, 100 Hz)
 *        for N seconds.
 *   POST /debug/heap/profile?seconds=N&format=raw|folded&lg_sample=K
 *        jemalloc's heap profiler switched on for N seconds, then dumped.
 *
 * Both run on the admin thread without ever blocking its loop: the wait is a
 * timer, and the conversions to folded stacks (`google-pprof --collapsed`,
 * `jeprof --collapsed`) are child processes whose output is read through the
 * loop. One profile of each kind runs at a time; a second request gets 409.
 * A client that goes away stops its profile at once. Both need the admin token
 * when one is configured, because both change how the whole process runs.
 *
 * The routes are exported through hp_prof_routes (declared in admin.h). This
 * file is compiled into the hotplate executable rather than the hpcore
 * archive (CMakeLists.txt): admin.c refers to the table only weakly, and a
 * weak reference never pulls a member out of a static library.
 */
#ifndef HP_PROF_H
#define HP_PROF_H

/* Bounds of the `seconds` parameter, and its default. */
#define HP_PROF_MIN_SECONDS 1
#define HP_PROF_MAX_SECONDS 60
#define HP_PROF_DEFAULT_SECONDS 10

/* Bounds of the heap profile's `lg_sample` (log2 of the mean bytes between samples), and its default. */
#define HP_PROF_MIN_LG_SAMPLE 12
#define HP_PROF_MAX_LG_SAMPLE 24
#define HP_PROF_DEFAULT_LG_SAMPLE 17

/* How long a conversion (google-pprof or jeprof) may take before it is killed and the request answered 504, in ms. */
#define HP_PROF_CONVERT_TIMEOUT_MS 20000

/* Largest raw profile or converted output served, in bytes. */
#define HP_PROF_MAX_OUTPUT (32u * 1024 * 1024)

#endif
