/*
 * Unit tests of profiling/flame: the folded-stack parser (merging, counts,
 * malformed lines, bounds) through the tree it builds, and the SVG renderer
 * through its output: widths proportional to counts, escaping, determinism,
 * the empty graph and the output bound.
 *
 * The .c file is included so the tests can look at the parsed tree directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiling/flame.c"

/* ---- helpers ---- */

static int parse(hp_flame_tree_t *t, const char *s)
{
    assert_int_equal(hp__flame_tree_init(t), 0);
    return hp__flame_parse(t, s, strlen(s));
}

/* @return the node reached by following `path` ("a;b;c") from the root, or -1 */
static int64_t find(const hp_flame_tree_t *t, const char *path)
{
    uint32_t cur = 0;
    const char *p = path;
    while (*p != '\0') {
        const char *semi = strchr(p, ';');
        size_t len = semi != NULL ? (size_t)(semi - p) : strlen(p);
        int64_t next = -1;
        for (size_t i = 1; i != t->num; ++i)
            if (t->nodes[i].parent == cur && t->nodes[i].name_len == len && memcmp(t->nodes[i].name, p, len) == 0)
                next = (int64_t)i;
        if (next < 0)
            return -1;
        cur = (uint32_t)next;
        p += len + (semi != NULL);
    }
    return cur;
}

/* The rendered SVG contains needle, or does not; a failure names the text. */
static void assert_has(const char *svg, const char *needle)
{
    if (strstr(svg, needle) == NULL)
        fail_msg("the SVG has no \"%s\"", needle);
}

static void assert_lacks(const char *svg, const char *needle)
{
    if (strstr(svg, needle) != NULL)
        fail_msg("the SVG has \"%s\"", needle);
}

static char *render(const char *folded, const char *title)
{
    char *svg = NULL;
    size_t len = 0;
    assert_int_equal(hp_flame_svg(folded, strlen(folded), &svg, &len, title, NULL), 0);
    assert_non_null(svg);
    assert_int_equal(strlen(svg), len);
    return svg;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        ++n;
    return n;
}

/* The width attribute of the rectangle whose tooltip starts with `tooltip`. */
static double width_of(const char *svg, const char *tooltip)
{
    char needle[256];
    snprintf(needle, sizeof(needle), "<title>%s", tooltip);
    const char *p = strstr(svg, needle);
    assert_non_null(p);
    p = strstr(p, " width=\"");
    assert_non_null(p);
    return strtod(p + 8, NULL);
}

/* ---- parsing ---- */

static void test_merges_identical_prefixes(void **state)
{
    (void)state;
    hp_flame_tree_t t;
    assert_int_equal(parse(&t, "main;a;b 3\nmain;a;c 2\nmain;d 5\nmain;a;b 1\n"), 0);
    /* all, main, a, b, c, d: the repeated stack and the shared prefixes are one node each. */
    assert_int_equal(t.num, 6);
    assert_int_equal(t.nodes[0].count, 11);
    assert_int_equal(t.nodes[find(&t, "main")].count, 11);
    assert_int_equal(t.nodes[find(&t, "main;a")].count, 6);
    assert_int_equal(t.nodes[find(&t, "main;a;b")].count, 4);
    assert_int_equal(t.nodes[find(&t, "main;a;c")].count, 2);
    assert_int_equal(t.nodes[find(&t, "main;d")].count, 5);
    assert_int_equal(t.nodes[find(&t, "main;a;b")].depth, 3);
    /* The same name under a different parent is a different node. */
    hp__flame_tree_free(&t);
    assert_int_equal(parse(&t, "x;y 1\ny;x 1\n"), 0);
    assert_int_equal(t.num, 5);
    hp__flame_tree_free(&t);
}

static void test_names_with_spaces_and_crlf(void **state)
{
    (void)state;
    hp_flame_tree_t t;
    /* The count is after the last space; CRLF endings and blank lines are fine. */
    assert_int_equal(parse(&t, "main;operator new(unsigned long) 7\r\n\n   \nmain;[unknown]  2\r\n"), 0);
    assert_int_equal(t.nodes[find(&t, "main;operator new(unsigned long)")].count, 7);
    assert_int_equal(t.nodes[find(&t, "main;[unknown]")].count, 2);
    assert_int_equal(t.nodes[0].count, 9);
    hp__flame_tree_free(&t);
}

static void test_rejects_malformed_lines(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "main;a\n",                 /* no count */
        "main;a x\n",               /* count not a number */
        "main;a 12x\n",             /* trailing garbage */
        "main;a -3\n",              /* sign */
        "main;a +3\n",              /* sign */
        "main;a 0\n",               /* zero samples */
        "main;a 3.5\n",             /* not an integer */
        "main;;a 1\n",              /* empty frame */
        ";main 1\n",                /* leading separator */
        "main; 1\n",                /* trailing separator */
        " 4\n",                     /* no stack */
        "main 99999999999999999\n", /* over HP_FLAME_MAX_COUNT */
        "ok 1\nbroken\n",           /* one bad line spoils the input */
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        hp_flame_tree_t t;
        int rc = parse(&t, bad[i]);
        if (rc != -EINVAL)
            fail_msg("line %zu (%s) gave %d, expected -EINVAL", i, bad[i], rc);
        hp__flame_tree_free(&t);
        char *svg = (char *)0x1;
        assert_int_equal(hp_flame_svg(bad[i], strlen(bad[i]), &svg, NULL, "t", NULL), -EINVAL);
        assert_ptr_equal(svg, (char *)0x1); /* untouched on failure */
    }
}

static void test_total_overflow_is_refused(void **state)
{
    (void)state;
    char in[128];
    snprintf(in, sizeof(in), "a %llu\nb %llu\n", (unsigned long long)HP_FLAME_MAX_COUNT, 1ull);
    hp_flame_tree_t t;
    assert_int_equal(parse(&t, in), -E2BIG);
    hp__flame_tree_free(&t);
}

static void test_depth_is_bounded(void **state)
{
    (void)state;
    /* A stack twice as deep as the bound keeps HP_FLAME_MAX_DEPTH frames and all its samples. */
    size_t frames = HP_FLAME_MAX_DEPTH * 2;
    char *in = malloc(frames * 4 + 16), *p = in;
    for (size_t i = 0; i != frames; ++i)
        p += sprintf(p, "%s%c", i ? ";" : "", 'a' + (int)(i % 26));
    strcpy(p, " 5\n");
    hp_flame_tree_t t;
    assert_int_equal(parse(&t, in), 0);
    assert_int_equal(t.num, HP_FLAME_MAX_DEPTH + 1);
    for (size_t i = 0; i != t.num; ++i) {
        assert_true(t.nodes[i].depth <= HP_FLAME_MAX_DEPTH);
        assert_int_equal(t.nodes[i].count, 5);
    }
    hp__flame_tree_free(&t);
    char *svg = render(in, "deep");
    free(svg);
    free(in);
}

static void test_many_distinct_frames(void **state)
{
    (void)state;
    /* Enough siblings to make the hash table grow several times; each must stay findable. */
    size_t n = 5000;
    char *in = malloc(n * 24), *p = in;
    for (size_t i = 0; i != n; ++i)
        p += sprintf(p, "root;f%zu %zu\n", i, i + 1);
    hp_flame_tree_t t;
    assert_int_equal(hp__flame_tree_init(&t), 0);
    assert_int_equal(hp__flame_parse(&t, in, (size_t)(p - in)), 0);
    assert_int_equal(t.num, n + 2);
    char path[32];
    for (size_t i = 0; i < n; i += 499) {
        snprintf(path, sizeof(path), "root;f%zu", i);
        assert_int_equal(t.nodes[find(&t, path)].count, i + 1);
    }
    hp__flame_tree_free(&t);
    free(in);
}

/* ---- rendering ---- */

static void test_widths_proportional_to_counts(void **state)
{
    (void)state;
    char *svg = render("main;a 30\nmain;b 10\nmain;a;x 60\n", "widths");
    double all = width_of(svg, "all ("), a = width_of(svg, "a ("), b = width_of(svg, "b ("), x = width_of(svg, "x (");
    assert_true(all > 1000);
    /* a = 90 of 100 samples, b = 10, x = 60: each to within the printed precision. */
    assert_true(a / all > 0.8999 && a / all < 0.9001);
    assert_true(b / all > 0.0999 && b / all < 0.1001);
    assert_true(x / all > 0.5999 && x / all < 0.6001);
    assert_has(svg, "a (90 samples, 90.00%)");
    /* The heading carries the sample count. */
    assert_has(svg, "widths (100 samples)");
    /* One rectangle per node, plus the background. */
    assert_int_equal(count_of(svg, "<rect "), 5 + 1);
    free(svg);
}

/* A heap profile's counts are bytes: the heading and every tooltip say so, and never "samples". */
static void test_heap_counts_are_bytes(void **state)
{
    (void)state;
    const char *folded = "main;hp_recent_record;malloc 1048576\nmain;other 4096\n";
    char *svg = NULL;
    assert_int_equal(hp_flame_svg(folded, strlen(folded), &svg, NULL, "heap", "bytes"), 0);
    assert_has(svg, "heap (1052672 bytes)");
    assert_has(svg, "hp_recent_record (1048576 bytes, 99.61%)");
    assert_lacks(svg, "samples");
    free(svg);
    assert_int_equal(hp_flame_svg("", 0, &svg, NULL, "empty", "bytes"), 0);
    assert_has(svg, "no bytes");
    free(svg);
}

static void test_depth_places_rows(void **state)
{
    (void)state;
    char *svg = render("main;a;b 1\n", NULL);
    /* The root is at the bottom, each level one row (16 px) above its parent. */
    const char *pa = strstr(svg, "<title>all ("), *pb = strstr(svg, "<title>b (");
    assert_non_null(pa);
    assert_non_null(pb);
    int ya = atoi(strstr(pa, " y=\"") + 4), yb = atoi(strstr(pb, " y=\"") + 4);
    assert_int_equal(ya - yb, 3 * HP_FLAME_ROW);
    assert_has(svg, "Flame graph (1 samples)");
    free(svg);
}

static void test_escapes_xml(void **state)
{
    (void)state;
    char *svg = render("main;std::vector<int>::push_back&\"q\"'s 4\nmain;bad\x01\xff name 1\n", "a <title> & \"more\"");
    assert_has(svg, "std::vector&lt;int&gt;::push_back&amp;&quot;q&quot;&#39;s");
    assert_lacks(svg, "vector<int>");
    assert_has(svg, "a &lt;title&gt; &amp; &quot;more&quot; (5 samples)");
    /* A control character and a byte that is not UTF-8 become '?'. */
    assert_has(svg, "bad?? name");
    assert_null(strchr(svg, '\x01'));
    assert_null(strchr(svg, '\xff'));
    /* Valid UTF-8 passes through. */
    free(svg);
    svg = render("main;caf\xc3\xa9 1\n", "t");
    assert_has(svg, "caf\xc3\xa9 (1 samples");
    free(svg);
}

static void test_long_names_are_shortened(void **state)
{
    (void)state;
    char name[2000];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    char *in = malloc(sizeof(name) + 32);
    sprintf(in, "main;%s 3\nmain;z 997\n", name);
    char *svg = render(in, "t");
    /* The tooltip stops at HP_FLAME_MAX_TOOLTIP characters with "..". */
    char want[HP_FLAME_MAX_TOOLTIP + 8];
    memset(want, 'n', HP_FLAME_MAX_TOOLTIP - 2);
    strcpy(want + HP_FLAME_MAX_TOOLTIP - 2, ".. (");
    assert_has(svg, want);
    free(svg);
    free(in);
}

static void test_empty_input(void **state)
{
    (void)state;
    const char *inputs[] = {"", "\n\n", "  \r\n"};
    for (size_t i = 0; i != 3; ++i) {
        char *svg = render(inputs[i], "nothing");
        assert_has(svg, "nothing (0 samples)");
        assert_has(svg, "no samples");
        assert_int_equal(count_of(svg, "<rect "), 1);
        assert_has(svg, "</svg>");
        free(svg);
    }
    char *svg = NULL;
    assert_int_equal(hp_flame_svg(NULL, 0, &svg, NULL, NULL, NULL), 0);
    assert_has(svg, "(0 samples)");
    free(svg);
}

static void test_deterministic_and_ordered(void **state)
{
    (void)state;
    /* Input order does not matter: siblings are drawn by name, colours come from names. */
    char *s1 = render("m;zeta 2\nm;alpha 3\nm;mid 1\n", "t");
    char *s2 = render("m;mid 1\nm;alpha 3\nm;zeta 2\n", "t");
    assert_string_equal(s1, s2);
    const char *a = strstr(s1, "<title>alpha"), *mid = strstr(s1, "<title>mid"), *z = strstr(s1, "<title>zeta");
    assert_true(a < mid && mid < z);
    /* Same name, same colour, wherever it appears. */
    char *s3 = render("x;alpha 1\n", "t");
    const char *f1 = strstr(strstr(s1, "<title>alpha"), "fill=\""), *f3 = strstr(strstr(s3, "<title>alpha"), "fill=\"");
    assert_memory_equal(f1, f3, 22);
    free(s1);
    free(s2);
    free(s3);
}

static void test_narrow_frames_are_dropped(void **state)
{
    (void)state;
    /* 1 sample in 10^6 is ~0.001 px: not drawn, nor its subtree, but still counted in the total. */
    char *svg = render("main;big 999999\nmain;tiny;deeper 1\n", "t");
    assert_lacks(svg, "tiny");
    assert_lacks(svg, "deeper");
    assert_has(svg, "(1000000 samples)");
    free(svg);
}

static void test_output_is_bounded(void **state)
{
    (void)state;
    /* Input past HP_FLAME_MAX_INPUT is refused before parsing. */
    char *svg = NULL;
    assert_int_equal(hp_flame_svg("a 1\n", (size_t)HP_FLAME_MAX_INPUT + 1, &svg, NULL, "t", NULL), -E2BIG);
    assert_null(svg);
    /* A wide, deep profile renders, and within the output bound. */
    size_t lines = 20000;
    char *in = malloc(lines * 96), *p = in;
    for (size_t i = 0; i != lines; ++i)
        p += sprintf(p, "main;w%zu;x%zu;y%zu;z%zu 1\n", i % 200, i % 7, i, i);
    size_t len = 0;
    assert_int_equal(hp_flame_svg(in, (size_t)(p - in), &svg, &len, "big", NULL), 0);
    assert_true(len <= HP_FLAME_MAX_OUTPUT);
    assert_has(svg, "big (20000 samples)");
    free(svg);
    free(in);
    /* 1000 distinct stacks of HP_FLAME_MAX_DEPTH frames, each a pixel wide: half a million rectangles is too much. */
    lines = 1000;
    in = malloc(lines * (HP_FLAME_MAX_DEPTH * 2 + 16));
    p = in;
    for (size_t i = 0; i != lines; ++i) {
        p += sprintf(p, "r%zu", i);
        for (size_t d = 1; d != HP_FLAME_MAX_DEPTH; ++d)
            *p++ = ';', *p++ = 'x';
        p += sprintf(p, " 1\n");
    }
    svg = NULL;
    assert_int_equal(hp_flame_svg(in, (size_t)(p - in), &svg, &len, "huge", NULL), -E2BIG);
    assert_null(svg);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merges_identical_prefixes),
        cmocka_unit_test(test_names_with_spaces_and_crlf),
        cmocka_unit_test(test_rejects_malformed_lines),
        cmocka_unit_test(test_total_overflow_is_refused),
        cmocka_unit_test(test_depth_is_bounded),
        cmocka_unit_test(test_many_distinct_frames),
        cmocka_unit_test(test_widths_proportional_to_counts),
        cmocka_unit_test(test_heap_counts_are_bytes),
        cmocka_unit_test(test_depth_places_rows),
        cmocka_unit_test(test_escapes_xml),
        cmocka_unit_test(test_long_names_are_shortened),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_deterministic_and_ordered),
        cmocka_unit_test(test_narrow_frames_are_dropped),
        cmocka_unit_test(test_output_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
