/*
 * symbolize: addresses of a process to function names, source lines and the
 * file mapped there, through elfutils' libdwfl (Debian's libdw), which reads
 * each mapped file's symbol tables (.symtab, else the exported .dynsym),
 * its DWARF line table when it has one, and separate debug files under
 * /usr/lib/debug when they are installed.
 *
 * A table is built from the text of a /proc/PID/maps (the one a profile file
 * carries, so a profile is symbolized against the process that wrote it,
 * from another process) or from the calling process itself (for
 * /debug/pprof/symbol). Opening a table costs a few milliseconds and the
 * files are read lazily as addresses land in them. A table belongs to its
 * caller; it is not thread-safe.
 */
#ifndef HP_SYMBOLIZE_H
#define HP_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_hp_symtab_t hp_symtab_t;

/* The most inlined calls one address is looked up through; deeper ones (rare) are left out, the outermost kept. */
#define HP_SYM_MAX_INLINED 8

/* A function inlined at an address, and where in it the address is. */
typedef struct st_hp_sym_inlined_t {
    const char *function;
    const char *file; /* NULL when unknown */
    int line;
} hp_sym_inlined_t;

/*
 * What is known about one address. Strings belong to the table and live as long as it.
 *
 * When the address is in code the compiler inlined, DWARF says which
 * functions: inlined[0] is the innermost (the code at the address, at the
 * line table's line), each next one the function that inlined the one
 * before (at the line of that call). function, file and line are then the
 * symbol's own function and the line where it calls the outermost of them,
 * so a stack reads as it would without inlining, as addr2line -i prints it.
 */
typedef struct st_hp_sym_t {
    const char *function; /* NULL when no symbol covers the address */
    uint64_t function_start;
    const char *file; /* the source file, or NULL without DWARF */
    int line;
    hp_sym_inlined_t inlined[HP_SYM_MAX_INLINED];
    size_t num_inlined;
    const char *module; /* the mapped file's path, or NULL outside every module */
    uint64_t module_start, module_end;
} hp_sym_t;

/** A table for the process whose maps text this is. @return the table, or NULL with *err set */
hp_symtab_t *hp_symtab_open_maps(const char *maps, size_t len, const char **err);

/** A table for the calling process. @return the table, or NULL with *err set */
hp_symtab_t *hp_symtab_open_self(const char **err);

/**
 * Looks addr up. A caller's frame should pass its return address minus one,
 * so that the call instruction (not the one after it) is looked up.
 * @return 1 when a module covers addr (out filled, out->function possibly
 *         NULL), 0 when none does (out zeroed)
 */
int hp_symtab_lookup(hp_symtab_t *t, uint64_t addr, hp_sym_t *out);

void hp_symtab_close(hp_symtab_t *t);

#endif
