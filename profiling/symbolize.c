/*
 * symbolize: libdwfl behind a small interface (see symbolize.h).
 *
 * Why libdwfl rather than dladdr(): dladdr() sees only the dynamic symbols,
 * so every static function of hotplate (most of its handlers) would be
 * named after the exported symbol before it, and it cannot read a maps text
 * of another process. libdwfl computes each module's load bias from the maps
 * lines and the file's program headers, which is the part that is easy to
 * get wrong by hand.
 *
 * The kernel's vDSO (where clock_gettime runs without a system call) is
 * mapped from no file, so libdwfl, which reads each module's file, has none
 * to read for a maps line named [vdso]. Every process on one kernel maps the
 * same vDSO image, though, and a profile is encoded on the machine that
 * recorded it (by the server's pprof-encode child, or by hand beside it), so
 * the image this process has mapped names the profiled process's vDSO
 * frames too. The image is used only when its size matches the mapping's:
 * a profile carried to another kernel keeps [vdso]+OFFSET frames rather
 * than wrong names.
 *
 * Inlined code: an address in a function the compiler inlined is named
 * after the function whose symbol covers it, and DWARF's
 * DW_TAG_inlined_subroutine entries say which functions were inlined there
 * and from which lines (hp__inlined), which pprof's Location carries as one
 * Line each.
 *
 * A PLT stub (the few bytes a call into another object, or into one of its
 * own IFUNC-resolved functions such as libc's memcpy, goes through) is
 * covered by no symbol, so libdwfl names none; on a busy event loop libc's
 * stubs alone took 2.5% of a CPU profile as one "libc.so.6+0x26150". They are
 * named as objdump and perf name them, NAME@plt (hp__plt_name).
 */
#include "profiling/symbolize.h"

#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A NAME@plt string, owned by its table. */
typedef struct st_hp__plt_name_t {
    struct st_hp__plt_name_t *next;
    char name[];
} hp__plt_name_t;

struct st_hp_symtab_t {
    Dwfl *dwfl;
    hp__plt_name_t *plt_names; /* every NAME@plt handed out, each once */
};

/* Where separate debug files are looked for: libdwfl's default (the file's directory, .debug, /usr/lib/debug). */
static char *hp__symtab_debuginfo_path = NULL;

/*
 * This process's vDSO image: its address from the auxiliary vector, its
 * length where its section headers end (the kernel links them last).
 * @return the image's size, 0 when there is none
 */
static size_t hp__vdso_image(const char **image)
{
    const unsigned char *base = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    if (base == NULL || memcmp(base, ELFMAG, SELFMAG) != 0 || base[EI_CLASS] != ELFCLASS64)
        return 0;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    size_t size = (size_t)eh->e_shoff + (size_t)eh->e_shnum * eh->e_shentsize;
    /* A vDSO is a page or two; anything larger is not one this code understands, and is not read. */
    if (size < sizeof(*eh) || size > (size_t)1 << 20)
        return 0;
    *image = (const char *)base;
    return size;
}

/* libdwfl's finder for live processes, except that a [vdso] module of the right size gets this process's image. */
static int hp__symtab_find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base, char **file_name, Elf **elfp)
{
    if (name != NULL && strcmp(name, "[vdso]") == 0) {
        Dwarf_Addr start = 0, end = 0;
        dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
        const char *image = NULL;
        size_t size = hp__vdso_image(&image);
        /* The mapping is the image rounded up to whole pages. */
        long page = sysconf(_SC_PAGESIZE);
        if (size != 0 && page > 0 && end - start == (size + (size_t)page - 1) / (size_t)page * (size_t)page) {
            elf_version(EV_CURRENT);
            /* elf_memory() does not copy: the image stays mapped as long as this process lives. */
            *elfp = elf_memory((char *)image, size);
            *file_name = NULL;
            return -1;
        }
        return -1;
    }
    return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
}

static const Dwfl_Callbacks hp__symtab_callbacks = {
    .find_elf = hp__symtab_find_elf,
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

/*
 * libdwfl reports only the file-backed lines of a maps text, so the [vdso]
 * line is reported here, as a module with no file: hp__symtab_find_elf gives
 * it its image when libdwfl first needs one.
 */
static void hp__symtab_report_vdso(hp_symtab_t *t, const char *maps, size_t len)
{
    static const char tag[] = "[vdso]";
    const char *p = maps, *end = maps + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t n = (size_t)(le - p);
        if (n > sizeof(tag) - 1 && memcmp(le - (sizeof(tag) - 1), tag, sizeof(tag) - 1) == 0) {
            char line[64];
            unsigned long long lo, hi;
            memcpy(line, p, n < sizeof(line) - 1 ? n : sizeof(line) - 1);
            line[n < sizeof(line) - 1 ? n : sizeof(line) - 1] = '\0';
            if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && lo < hi)
                dwfl_report_module(t->dwfl, tag, (Dwarf_Addr)lo, (Dwarf_Addr)hi);
            return;
        }
        p = le + 1;
    }
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
    if (rc == 0)
        hp__symtab_report_vdso(t, maps, len);
    return hp__symtab_done(t, rc, err);
}

hp_symtab_t *hp_symtab_open_self(const char **err)
{
    hp_symtab_t *t = hp__symtab_new(err);
    if (t == NULL)
        return NULL;
    int rc = dwfl_linux_proc_report(t->dwfl, getpid());
    const char *image = NULL;
    size_t size = hp__vdso_image(&image);
    long page = sysconf(_SC_PAGESIZE);
    if (rc == 0 && size != 0 && page > 0)
        dwfl_report_module(t->dwfl, "[vdso]", (Dwarf_Addr)(uintptr_t)image,
                           (Dwarf_Addr)(uintptr_t)image + (size + (size_t)page - 1) / (size_t)page * (size_t)page);
    return hp__symtab_done(t, rc, err);
}

/* @return the table's copy of NAME@plt, made on first use, or NULL without memory */
static const char *hp__plt_intern(hp_symtab_t *t, const char *name)
{
    size_t n = strlen(name);
    for (hp__plt_name_t *p = t->plt_names; p != NULL; p = p->next)
        if (strncmp(p->name, name, n) == 0 && strcmp(p->name + n, "@plt") == 0)
            return p->name;
    hp__plt_name_t *p = malloc(sizeof(*p) + n + sizeof("@plt"));
    if (p == NULL)
        return NULL;
    memcpy(p->name, name, n);
    memcpy(p->name + n, "@plt", sizeof("@plt"));
    p->next = t->plt_names;
    t->plt_names = p;
    return p->name;
}

/*
 * The name of the PLT stub at addr in mod, if it is one: the stub's
 * jmp *disp32(%rip) names the GOT slot it goes through, and the relocation of
 * that slot in .rela.plt names the function. A JUMP_SLOT carries its symbol;
 * an IRELATIVE (an IFUNC of the object's own) carries its resolver's address,
 * whose symbol is the function's name. x86-64 stubs only: the lazy ones of
 * .plt (jmp first) and the IBT ones of .plt.sec (endbr64, bnd jmp). PLT0 and
 * .plt's IBT entries jump through no slot of their own and stay unnamed.
 * @return the name, or NULL
 */
static const char *hp__plt_name(hp_symtab_t *t, Dwfl_Module *mod, uint64_t addr)
{
#if defined(__x86_64__)
    Dwarf_Addr bias = 0;
    Elf *elf = dwfl_module_getelf(mod, &bias);
    size_t shstrndx;
    if (elf == NULL || elf_getshdrstrndx(elf, &shstrndx) != 0)
        return NULL;
    GElf_Addr a = (GElf_Addr)(addr - bias);
    Elf_Scn *scn = NULL, *plt = NULL, *rela = NULL;
    GElf_Shdr sh, plt_sh = {0}, rela_sh = {0};
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        const char *name = gelf_getshdr(scn, &sh) != NULL ? elf_strptr(elf, shstrndx, sh.sh_name) : NULL;
        if (name == NULL)
            continue;
        if (strcmp(name, ".rela.plt") == 0 && sh.sh_type == SHT_RELA)
            rela = scn, rela_sh = sh;
        else if ((strcmp(name, ".plt") == 0 || strcmp(name, ".plt.sec") == 0) && sh.sh_type == SHT_PROGBITS && a >= sh.sh_addr &&
                 a - sh.sh_addr < sh.sh_size)
            plt = scn, plt_sh = sh;
    }
    if (plt == NULL || rela == NULL || rela_sh.sh_entsize == 0)
        return NULL;
    Elf_Data *code = elf_getdata(plt, NULL);
    GElf_Addr entry = plt_sh.sh_addr + ((a - plt_sh.sh_addr) & ~(GElf_Addr)15);
    size_t off = (size_t)(entry - plt_sh.sh_addr);
    if (code == NULL || code->d_buf == NULL || off + 16 > code->d_size)
        return NULL;
    const unsigned char *e = (const unsigned char *)code->d_buf + off;
    GElf_Addr slot = 0;
    for (size_t i = 0; i + 6 <= 16 && slot == 0; ++i) {
        if (e[i] == 0xff && e[i + 1] == 0x25) {
            int32_t disp;
            memcpy(&disp, e + i + 2, sizeof(disp));
            slot = entry + i + 6 + (GElf_Addr)(int64_t)disp;
        }
    }
    Elf_Data *relocs = elf_getdata(rela, NULL);
    Elf_Scn *dynsym = elf_getscn(elf, rela_sh.sh_link);
    GElf_Shdr dynsym_sh;
    if (slot == 0 || relocs == NULL)
        return NULL;
    for (size_t i = 0, n = (size_t)(rela_sh.sh_size / rela_sh.sh_entsize); i != n; ++i) {
        GElf_Rela r;
        if (gelf_getrela(relocs, (int)i, &r) == NULL || r.r_offset != slot)
            continue;
        const char *name = NULL;
        if (GELF_R_TYPE(r.r_info) == R_X86_64_JUMP_SLOT && dynsym != NULL && gelf_getshdr(dynsym, &dynsym_sh) != NULL) {
            GElf_Sym sym;
            Elf_Data *syms = elf_getdata(dynsym, NULL);
            if (syms != NULL && gelf_getsym(syms, (int)GELF_R_SYM(r.r_info), &sym) != NULL)
                name = elf_strptr(elf, dynsym_sh.sh_link, sym.st_name);
        } else if (GELF_R_TYPE(r.r_info) == R_X86_64_IRELATIVE) {
            name = dwfl_module_addrname(mod, (GElf_Addr)r.r_addend + bias);
        }
        return name != NULL && name[0] != '\0' ? hp__plt_intern(t, name) : NULL;
    }
#else
    (void)t, (void)mod, (void)addr;
#endif
    return NULL;
}

/* The name of a subprogram or inlined instance, through its abstract origin: DW_AT_name, or NULL. */
static const char *hp__die_name(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    return dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
}

/* The call site an inlined instance records (DW_AT_call_file and DW_AT_call_line), in the file table of its unit. */
static void hp__call_site(Dwarf_Die *die, Dwarf_Files *files, size_t num_files, const char **file, int *line)
{
    Dwarf_Attribute attr;
    Dwarf_Word v = 0;
    *file = NULL;
    *line = 0;
    if (files != NULL && dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &v) == 0 && v < num_files)
        *file = dwarf_filesrc(files, v, NULL, NULL);
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &v) == 0)
        *line = (int)v;
}

/*
 * Fills out->inlined and moves the outer function's line to the outermost
 * call site (see symbolize.h). dwarf_getscopes finds the innermost inlined
 * instance at the address, but past it lists the scopes of that function's
 * abstract definition, not of the code it was inlined into; so the chain
 * outwards is the instance's own parents in the DIE tree, from
 * dwarf_getscopes_die, up to the first subprogram (as eu-addr2line -i
 * walks it).
 */
static void hp__inlined(Dwfl_Module *mod, uint64_t addr, hp_sym_t *out)
{
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(mod, (Dwarf_Addr)addr, &bias);
    Dwarf_Die *scopes = NULL, *chain = NULL;
    int n = cu != NULL ? dwarf_getscopes(cu, (Dwarf_Addr)addr - bias, &scopes) : 0, m = 0;
    for (int i = 0; i < n && m == 0; ++i) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram)
            break;
        if (tag == DW_TAG_inlined_subroutine)
            m = dwarf_getscopes_die(&scopes[i], &chain);
    }
    Dwarf_Files *files = NULL;
    size_t num_files = 0;
    if (m > 0 && dwarf_getsrcfiles(cu, &files, &num_files) != 0)
        files = NULL;
    const char *file = out->file;
    int line = out->line;
    for (int i = 0; i < m; ++i) {
        int tag = dwarf_tag(&chain[i]);
        if (tag == DW_TAG_subprogram)
            break;
        if (tag != DW_TAG_inlined_subroutine)
            continue;
        /* Past the limit the innermost are dropped and the slots shift, so the chain still ends at the outer function. */
        if (out->num_inlined == HP_SYM_MAX_INLINED) {
            memmove(out->inlined, out->inlined + 1, (HP_SYM_MAX_INLINED - 1) * sizeof(out->inlined[0]));
            --out->num_inlined;
        }
        const char *name = hp__die_name(&chain[i]);
        out->inlined[out->num_inlined++] = (hp_sym_inlined_t){name != NULL ? name : "??", file, line};
        hp__call_site(&chain[i], files, num_files, &file, &line);
    }
    free(chain);
    free(scopes);
    if (out->num_inlined != 0) {
        out->file = file;
        out->line = line;
    }
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
    } else if ((name = hp__plt_name(t, mod, addr)) != NULL) {
        out->function = name;
        out->function_start = addr & ~(uint64_t)15; /* the stub's first byte: stubs are 16 bytes, 16-aligned */
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
    if (out->function != NULL)
        hp__inlined(mod, addr, out);
    return 1;
}

void hp_symtab_close(hp_symtab_t *t)
{
    if (t == NULL)
        return;
    dwfl_end(t->dwfl);
    while (t->plt_names != NULL) {
        hp__plt_name_t *next = t->plt_names->next;
        free(t->plt_names);
        t->plt_names = next;
    }
    free(t);
}
