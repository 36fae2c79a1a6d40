/*
 * symbolize: libdwfl behind a small interface (see symbolize.h).
 *
 * Why libdwfl rather than dladdr(): dladdr() sees only the dynamic symbols,
 * so every static function of hotplate (most of its handlers) would be
 * named after the exported symbol before it, and it cannot read a maps text
 * of another process. libdwfl computes each module's load bias from the maps
 * lines and the file's program headers, which is the part that is easy to
 * get wrong by hand.
 */
#include "profiling/symbolize.h"

#include <elfutils/libdwfl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct st_hp_symtab_t {
    Dwfl *dwfl;
};

/* Where separate debug files are looked for: libdwfl's default (the file's directory, .debug, /usr/lib/debug). */
static char *hp__symtab_debuginfo_path = NULL;

static const Dwfl_Callbacks hp__symtab_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &hp__symtab_debuginfo_path,
};

static hp_symtab_t *hp__symtab_new(const char **err)
{
    hp_symtab_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        *err = "out of memory";
        return NULL;
    }
    if ((t->dwfl = dwfl_begin(&hp__symtab_callbacks)) == NULL) {
        *err = dwfl_errmsg(-1);
        free(t);
        return NULL;
    }
    dwfl_report_begin(t->dwfl);
    return t;
}

static hp_symtab_t *hp__symtab_done(hp_symtab_t *t, int rc, const char **err)
{
    if (rc != 0 || dwfl_report_end(t->dwfl, NULL, NULL) != 0) {
        *err = rc > 0 ? strerror(rc) : dwfl_errmsg(-1);
        hp_symtab_close(t);
        return NULL;
    }
    return t;
}

hp_symtab_t *hp_symtab_open_maps(const char *maps, size_t len, const char **err)
{
    hp_symtab_t *t = hp__symtab_new(err);
    if (t == NULL)
        return NULL;
    /* libdwfl reads a maps text from a FILE; fmemopen does not copy it. An empty text has no modules. */
    FILE *f = len != 0 ? fmemopen((void *)maps, len, "r") : NULL;
    int rc = 0;
    if (f != NULL) {
        rc = dwfl_linux_proc_maps_report(t->dwfl, f);
        fclose(f);
    }
    return hp__symtab_done(t, rc, err);
}

hp_symtab_t *hp_symtab_open_self(const char **err)
{
    hp_symtab_t *t = hp__symtab_new(err);
    if (t == NULL)
        return NULL;
    return hp__symtab_done(t, dwfl_linux_proc_report(t->dwfl, getpid()), err);
}

int hp_symtab_lookup(hp_symtab_t *t, uint64_t addr, hp_sym_t *out)
{
    memset(out, 0, sizeof(*out));
    Dwfl_Module *mod = dwfl_addrmodule(t->dwfl, (Dwarf_Addr)addr);
    if (mod == NULL)
        return 0;
    Dwarf_Addr start = 0, end = 0;
    out->module = dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
    out->module_start = start;
    out->module_end = end;
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(mod, (GElf_Addr)addr, &off, &sym, NULL, NULL, NULL);
    if (name != NULL && name[0] != '\0') {
        out->function = name;
        out->function_start = addr - off;
    }
    Dwfl_Line *line = dwfl_module_getsrc(mod, (Dwarf_Addr)addr);
    if (line != NULL) {
        int lineno = 0;
        const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
        if (file != NULL) {
            out->file = file;
            out->line = lineno;
        }
    }
    return 1;
}

void hp_symtab_close(hp_symtab_t *t)
{
    if (t == NULL)
        return;
    dwfl_end(t->dwfl);
    free(t);
}
