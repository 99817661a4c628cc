/* attn show's pictures (cli/heatmap.c): a known map is drawn, read back and its
 * pixels checked (every cell's shade, the largest weight the darkest cell, the
 * labels, the colour bar, hard attention's squares); SVG holds the tokens as
 * text, PDF is a PDF; bad maps, sizes and paths fail naming the problem. The
 * model view of every map is read back the same way, and one of a long record
 * stays within its bounds, averaging soft weights and keeping hard ones. */
#define _POSIX_C_SOURCE 200809L /* access */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cairo.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heatmap.h"
#include "testutil.h"

enum { HEADS = 2, ROWS = 5, COLS = 7 };

/* One shade channel may differ by this much from heatmap_colour: PNG's 8 bits. */
#define CHANNEL_TOLERANCE (1.5 / 255.0)
#define NOTE_LINE 12.0 /* about a line of the heads' and maps' names, in pixels */

static const char *const QUERIES[ROWS] = {"alpha", "b&<", "\u03b3", "de lta",
                                          "epsilon-zeta-eta-theta"};
static const char *const KEYS[COLS] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6"};

typedef struct fixture {
    char *dir;
    attn_record r;
    float *w;           /* (HEADS, ROWS, COLS) in the record */
    int head, row, col; /* the largest weight */
} fixture;

static void path_in(const fixture *f, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", f->dir, name);
}

/* A cross map of small random weights but one large one at a random cell. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    f->dir = test_temp_dir("heatmap");
    attn_record_init(&f->r, "gru-bahdanau", "dates");
    if (attn_record_set_queries(&f->r, QUERIES, ROWS) != ATTN_OK ||
        attn_record_set_keys(&f->r, KEYS, COLS) != ATTN_OK ||
        attn_record_add_map(&f->r, "decoder.attention", 0, ATTN_MAP_CROSS, false, HEADS, ROWS,
                            COLS, &f->w) != ATTN_OK)
        return -1;
    attn_rng rng = test_rng(1);
    attn_rng_fill_uniform(&rng, f->w, (size_t)HEADS * ROWS * COLS, 0.0f, 0.3f);
    f->head = (int)attn_rng_below(&rng, HEADS);
    f->row = (int)attn_rng_below(&rng, ROWS);
    f->col = (int)attn_rng_below(&rng, COLS);
    f->w[((size_t)f->head * ROWS + f->row) * COLS + f->col] = 0.95f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    test_temp_dir_remove(f->dir);
    attn_record_free(&f->r);
    free(f);
    return 0;
}

/* ---- reading pictures back ---- */

typedef struct image {
    cairo_surface_t *surface;
    const unsigned char *data;
    int width, height, stride;
} image;

static image read_png(const char *path)
{
    image im = {.surface = cairo_image_surface_create_from_png(path)};
    assert_int_equal(cairo_surface_status(im.surface), CAIRO_STATUS_SUCCESS);
    cairo_surface_flush(im.surface);
    im.data = cairo_image_surface_get_data(im.surface);
    im.width = cairo_image_surface_get_width(im.surface);
    im.height = cairo_image_surface_get_height(im.surface);
    im.stride = cairo_image_surface_get_stride(im.surface);
    return im;
}

/* The colour at (x, y) in [0, 1]; cairo keeps a pixel as a native-endian 32-bit
 * word 0xAARRGGBB (opaque here, so not premultiplied). */
static void pixel(const image *im, double x, double y, double rgb[3])
{
    int px = (int)floor(x), py = (int)floor(y);
    assert_true(px >= 0 && px < im->width && py >= 0 && py < im->height);
    uint32_t v;
    memcpy(&v, im->data + (size_t)py * im->stride + (size_t)px * 4, sizeof v);
    rgb[0] = ((v >> 16) & 0xff) / 255.0;
    rgb[1] = ((v >> 8) & 0xff) / 255.0;
    rgb[2] = (v & 0xff) / 255.0;
}

static double luminance(const double rgb[3])
{
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
}

static void expect_colour(const double got[3], const double want[3], const char *what, int i,
                          int j)
{
    for (int c = 0; c < 3; c++)
        if (fabs(got[c] - want[c]) > CHANNEL_TOLERANCE) {
            print_error("%s (%d, %d): colour (%.3f, %.3f, %.3f), want (%.3f, %.3f, %.3f)\n", what,
                        i, j, got[0], got[1], got[2], want[0], want[1], want[2]);
            fail();
        }
}

/* Pixels in the rectangle darker than the background's white. */
static int ink(const image *im, double x, double y, double w, double h)
{
    int n = 0;
    double rgb[3];
    for (double py = floor(y); py < y + h; py++)
        for (double px = floor(x); px < x + w; px++) {
            pixel(im, px, py, rgb);
            n += luminance(rgb) < 0.6;
        }
    return n;
}

/* Each cell's centre has the shade of expected[i][j] / vmax (the panel's
 * matrix), and the darkest cell is (row, col). */
static void expect_cells(const image *im, const heatmap_layout *l, int panel,
                         const float *expected, int row, int col)
{
    const heatmap_rect *c = &l->cells[panel];
    double darkest = INFINITY, rgb[3], want[3];
    int dark_i = -1, dark_j = -1;
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) {
            pixel(im, c->x + (j + 0.5) * l->cell, c->y + (i + 0.5) * l->cell, rgb);
            heatmap_colour(expected[i * COLS + j] / l->vmax, want);
            expect_colour(rgb, want, "cell", i, j);
            if (luminance(rgb) < darkest) {
                darkest = luminance(rgb);
                dark_i = i;
                dark_j = j;
            }
        }
    if (row >= 0) {
        assert_int_equal(dark_i, row);
        assert_int_equal(dark_j, col);
    }
}

/* Every row and every column has its label drawn beside it. */
static void expect_labels(const image *im, const heatmap_layout *l, int panel)
{
    const heatmap_rect *rl = &l->row_labels[panel], *cl = &l->col_labels[panel];
    for (int i = 0; i < ROWS; i++)
        if (ink(im, rl->x, rl->y + i * l->cell, rl->w, l->cell) < 5) {
            print_error("no label left of row %d\n", i);
            fail();
        }
    for (int j = 0; j < COLS; j++)
        if (ink(im, cl->x + j * l->cell, cl->y, l->cell, cl->h) < 5) {
            print_error("no label above column %d\n", j);
            fail();
        }
}

/* The bar runs from the scale's 0 at the bottom to its top, with tick labels. */
static void expect_bar(const image *im, const heatmap_rect *b, double width)
{
    double rgb[3], want[3];
    for (int k = 0; k <= 4; k++) {
        double t = 0.05 + 0.9 * k / 4.0, y = b->y + b->h * (1.0 - t);
        pixel(im, b->x + b->w / 2, y, rgb);
        heatmap_colour((b->y + b->h - (floor(y) + 0.5)) / b->h, want);
        expect_colour(rgb, want, "colour bar at", k, 0);
    }
    assert_true(ink(im, b->x + b->w + 1, b->y - 6, width - b->x - b->w - 1, b->h + 12) > 20);
    pixel(im, 1, 1, rgb);
    assert_true(luminance(rgb) > 0.999);
}

static void layout_of(const fixture *f, const heatmap_options *o, heatmap_layout *l)
{
    char err[512] = "";
    if (!heatmap_layout_compute(&f->r, &f->r.maps[0], o, l, err, sizeof err)) {
        print_error("layout: %s\n", err);
        fail();
    }
}

static void write_png(const fixture *f, const heatmap_options *o, const char *path)
{
    char err[512] = "";
    if (!heatmap_write(&f->r, &f->r.maps[0], o, path, HEATMAP_PNG, err, sizeof err)) {
        print_error("write: %s\n", err);
        fail();
    }
}

/* ---- tests ---- */

static void test_one_head(void **state)
{
    fixture *f = *state;
    char path[256];
    path_in(f, "head.png", path, sizeof path);
    heatmap_options o = {.view = HEATMAP_HEAD, .head = f->head};
    write_png(f, &o, path);
    heatmap_layout l;
    layout_of(f, &o, &l);
    assert_int_equal(l.panels, 1);
    assert_float_equal(l.vmax, 0.95, 1e-6);
    image im = read_png(path);
    assert_int_equal(im.width, (int)l.width);
    assert_int_equal(im.height, (int)l.height);
    expect_cells(&im, &l, 0, f->w + (size_t)f->head * ROWS * COLS, f->row, f->col);
    expect_labels(&im, &l, 0);
    expect_bar(&im, &l.bar, l.width);
    cairo_surface_destroy(im.surface);

    /* the other head is drawn on its own scale */
    o.head = 1 - f->head;
    write_png(f, &o, path);
    layout_of(f, &o, &l);
    im = read_png(path);
    expect_cells(&im, &l, 0, f->w + (size_t)o.head * ROWS * COLS, -1, -1);
    cairo_surface_destroy(im.surface);
}

static void test_average(void **state)
{
    fixture *f = *state;
    char path[256];
    path_in(f, "mean.png", path, sizeof path);
    heatmap_options o = {.view = HEATMAP_AVERAGE, .cell = 20};
    write_png(f, &o, path);
    heatmap_layout l;
    layout_of(f, &o, &l);
    assert_float_equal(l.cell, 20.0, 0.0);
    float mean[ROWS * COLS];
    float vmax = 0.0f;
    for (int k = 0; k < ROWS * COLS; k++) {
        mean[k] = (float)(((double)f->w[k] + f->w[ROWS * COLS + k]) / 2);
        vmax = fmaxf(vmax, mean[k]);
    }
    assert_float_equal(l.vmax, vmax, 1e-6);
    image im = read_png(path);
    expect_cells(&im, &l, 0, mean, f->row, f->col);
    expect_labels(&im, &l, 0);
    expect_bar(&im, &l.bar, l.width);
    cairo_surface_destroy(im.surface);
}

static void test_grid(void **state)
{
    fixture *f = *state;
    char path[256];
    path_in(f, "grid.png", path, sizeof path);
    heatmap_options o = {.view = HEATMAP_GRID};
    write_png(f, &o, path);
    heatmap_layout l;
    layout_of(f, &o, &l);
    assert_int_equal(l.panels, HEADS);
    assert_true(l.cells[1].x >= l.cells[0].x + l.cells[0].w); /* side by side */
    assert_float_equal(l.cells[1].y, l.cells[0].y, 0.0);
    image im = read_png(path);
    for (int h = 0; h < HEADS; h++) {
        /* one scale for all heads: only the head with the large weight reaches it */
        bool top = h == f->head;
        expect_cells(&im, &l, h, f->w + (size_t)h * ROWS * COLS, top ? f->row : -1,
                     top ? f->col : -1);
        expect_labels(&im, &l, h);
    }
    expect_bar(&im, &l.bar, l.width);
    cairo_surface_destroy(im.surface);
}

/* Hard attention: a chosen cell is a square shaded at the top of the scale with
 * an outline darker than its fill between the cell's edge and its centre; the
 * other cells stay white. */
static void test_hard(void **state)
{
    fixture *f = *state;
    attn_record r;
    float *w;
    attn_record_init(&r, "gru-hard", "dates");
    assert_int_equal(attn_record_set_queries(&r, QUERIES, ROWS), ATTN_OK);
    assert_int_equal(attn_record_set_keys(&r, KEYS, COLS), ATTN_OK);
    assert_int_equal(attn_record_add_map(&r, "decoder.attention", 0, ATTN_MAP_CROSS, true, 1, ROWS,
                                         COLS, &w),
                     ATTN_OK);
    attn_rng rng = test_rng(2);
    int chosen[ROWS];
    for (int i = 0; i < ROWS; i++) {
        chosen[i] = (int)attn_rng_below(&rng, COLS);
        w[i * COLS + chosen[i]] = 1.0f;
    }
    char path[256], err[512] = "";
    path_in(f, "hard.png", path, sizeof path);
    heatmap_options o = {.view = HEATMAP_HEAD};
    heatmap_layout l;
    assert_true(heatmap_write(&r, &r.maps[0], &o, path, HEATMAP_PNG, err, sizeof err));
    assert_true(heatmap_layout_compute(&r, &r.maps[0], &o, &l, err, sizeof err));
    image im = read_png(path);
    double rgb[3], top[3], white[3] = {1.0, 1.0, 1.0};
    heatmap_colour(1.0, top);
    const heatmap_rect *c = &l.cells[0];
    for (int i = 0; i < ROWS; i++) {
        double y = c->y + (i + 0.5) * l.cell;
        for (int j = 0; j < COLS; j++) {
            double x0 = c->x + j * l.cell;
            pixel(&im, x0 + 0.5 * l.cell, y, rgb);
            if (j != chosen[i]) {
                expect_colour(rgb, white, "unchosen cell", i, j);
                continue;
            }
            expect_colour(rgb, top, "chosen cell", i, j);
            double outline = INFINITY;
            for (double x = x0 + 1; x < x0 + 0.5 * l.cell; x++) {
                pixel(&im, x, y, rgb);
                outline = fmin(outline, luminance(rgb));
            }
            assert_true(outline < luminance(top) - 0.05);
        }
    }
    expect_labels(&im, &l, 0);
    cairo_surface_destroy(im.surface);
    attn_record_free(&r);
}

static char *read_text(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    assert_int_equal(fseek(file, 0, SEEK_END), 0);
    long n = ftell(file);
    assert_true(n > 0);
    rewind(file);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, file), (size_t)n);
    text[n] = '\0';
    fclose(file);
    *size = (size_t)n;
    return text;
}

/* SVG holds the title and every token as text (escaped, spaces shown, long
 * tokens cut); PDF starts as one. */
static void test_svg_pdf(void **state)
{
    fixture *f = *state;
    char path[256], err[512] = "";
    size_t size;
    path_in(f, "map.svg", path, sizeof path);
    heatmap_options o = {.view = HEATMAP_GRID, .title = "my \xff title"};
    assert_true(heatmap_write(&f->r, &f->r.maps[0], &o, path, HEATMAP_SVG, err, sizeof err));
    char *svg = read_text(path, &size);
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, "<title>my \ufffd title</title>"));
    static const char *const drawn[] = {"alpha", "b&amp;&lt;", "\u03b3", "de\u2423lta",
                                        "epsilon-zeta-eta\u2026", "k0", "k6"};
    for (size_t k = 0; k < sizeof drawn / sizeof drawn[0]; k++)
        if (strstr(svg, drawn[k]) == NULL) {
            print_error("the SVG lacks the token '%s'\n", drawn[k]);
            fail();
        }
    assert_null(strstr(svg, "epsilon-zeta-eta-"));
    assert_null(strstr(svg, "b&<"));
    free(svg);

    path_in(f, "map.pdf", path, sizeof path);
    o = (heatmap_options){.view = HEATMAP_AVERAGE};
    assert_true(heatmap_write(&f->r, &f->r.maps[0], &o, path, HEATMAP_PDF, err, sizeof err));
    char *pdf = read_text(path, &size);
    assert_true(size > 1000);
    assert_memory_equal(pdf, "%PDF-", 5);
    free(pdf);
}

static void test_formats(void **state)
{
    (void)state;
    heatmap_format format;
    assert_true(heatmap_format_from_path("a/b.png", &format));
    assert_int_equal(format, HEATMAP_PNG);
    assert_true(heatmap_format_from_path("B.SVG", &format));
    assert_int_equal(format, HEATMAP_SVG);
    assert_true(heatmap_format_from_path("x.tar.pdf", &format));
    assert_int_equal(format, HEATMAP_PDF);
    assert_false(heatmap_format_from_path("pic.jpg", &format));
    assert_false(heatmap_format_from_path("png", &format));
    assert_false(heatmap_format_from_path("dir.png/pic", &format));
    double rgb[3], darker[3];
    heatmap_colour(-1.0, rgb);
    assert_float_equal(luminance(rgb), 1.0, 1e-12);
    for (int k = 1; k <= 20; k++) {
        heatmap_colour(k / 20.0, darker);
        assert_true(luminance(darker) < luminance(rgb));
        memcpy(rgb, darker, sizeof rgb);
    }
}

static void expect_failure(const fixture *f, const attn_attention_map *m,
                           const heatmap_options *o, const char *path, const char *fragment)
{
    char err[512] = "";
    assert_false(heatmap_write(&f->r, m, o, path, HEATMAP_PNG, err, sizeof err));
    if (strstr(err, fragment) == NULL) {
        print_error("message '%s' lacks '%s'\n", err, fragment);
        fail();
    }
}

/* Bad heads, weights, sizes and paths fail with a message and leave no file. */
static void test_errors(void **state)
{
    fixture *f = *state;
    char path[256], missing[256];
    path_in(f, "bad.png", path, sizeof path);
    path_in(f, "no/such/dir.png", missing, sizeof missing);
    attn_attention_map *m = &f->r.maps[0];
    heatmap_options o = {.view = HEATMAP_HEAD, .head = HEADS};
    expect_failure(f, m, &o, path, "head 2 does not exist: map 'decoder.attention' has 2 heads");
    o = (heatmap_options){.view = HEATMAP_HEAD};
    expect_failure(f, m, &o, missing, "cannot create");

    size_t k = ((size_t)1 * ROWS + 2) * COLS + 3;
    float saved = m->weights[k];
    m->weights[k] = NAN;
    o = (heatmap_options){.view = HEATMAP_AVERAGE};
    expect_failure(f, m, &o, path, "head 1, row 2, column 3");
    m->weights[k] = -0.5f;
    expect_failure(f, m, &o, path, "weight -0.5");
    m->weights[k] = saved;

    m->rows = ROWS - 1;
    expect_failure(f, m, &o, path, "is 4 x 7 but its tokens are 5 x 7");
    m->rows = ROWS;
    assert_int_equal(access(path, F_OK), -1);
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
}

/* A picture past HEATMAP_SIDE_MAX is refused before anything is drawn. */
static void test_too_large(void **state)
{
    fixture *f = *state;
    enum { WIDE = 100 };
    const char *keys[WIDE];
    for (int j = 0; j < WIDE; j++) keys[j] = "k";
    attn_record r;
    float *w;
    attn_record_init(&r, "gpt", "text");
    assert_int_equal(attn_record_set_queries(&r, QUERIES, 1), ATTN_OK);
    assert_int_equal(attn_record_set_keys(&r, keys, WIDE), ATTN_OK);
    assert_int_equal(attn_record_add_map(&r, "wide", 0, ATTN_MAP_CROSS, false, 1, 1, WIDE, &w),
                     ATTN_OK);
    char path[256], err[512] = "";
    path_in(f, "wide.png", path, sizeof path);
    heatmap_options o = {.view = HEATMAP_HEAD, .cell = 200.0};
    assert_false(heatmap_write(&r, &r.maps[0], &o, path, HEATMAP_PNG, err, sizeof err));
    assert_non_null(strstr(err, "more than 16384 a side"));
    assert_non_null(strstr(err, "map 'wide' (1 x 100)"));
    o.cell = 100.0;
    assert_true(heatmap_write(&r, &r.maps[0], &o, path, HEATMAP_PNG, err, sizeof err));
    attn_record_free(&r);
}

/* ---- the model view ---- */

static void write_model(const attn_record *r, const heatmap_options *o, const char *path,
                        heatmap_model_layout *l)
{
    char err[512] = "";
    if (!heatmap_write_model(r, o, path, HEATMAP_PNG, err, sizeof err) ||
        !heatmap_model_layout_compute(r, o, l, err, sizeof err)) {
        print_error("model view: %s\n", err);
        fail();
    }
}

/* Each cell's centre in the thumbnail of head `head` of map `map` has the shade
 * of its weight on the picture's one scale. */
static void expect_thumbnail(const image *im, const heatmap_model_layout *l,
                             const attn_attention_map *m, int map, int head)
{
    heatmap_rect t = heatmap_model_thumbnail(l, m, map, head);
    const float *w = m->weights + (size_t)head * m->rows * m->cols;
    double rgb[3], want[3];
    for (int i = 0; i < m->rows; i++)
        for (int j = 0; j < m->cols; j++) {
            pixel(im, t.x + (j + 0.5) * l->cell, t.y + (i + 0.5) * l->cell, rgb);
            heatmap_colour(w[i * m->cols + j] / l->vmax, want);
            expect_colour(rgb, want, "thumbnail cell", i, j);
        }
}

/* A row per map and a column per head: the fixture's cross map (two heads, its
 * largest weight the top of the scale) above a self map of one head, whose
 * second column stays empty; the maps' names left of them, the heads' above. */
static void test_model_view(void **state)
{
    fixture *f = *state;
    float *w;
    assert_int_equal(attn_record_add_map(&f->r, "encoder.attention", 1, ATTN_MAP_SELF, false, 1,
                                         COLS, COLS, &w),
                     ATTN_OK);
    attn_rng rng = test_rng(3);
    attn_rng_fill_uniform(&rng, w, (size_t)COLS * COLS, 0.0f, 0.5f);
    char path[256];
    path_in(f, "model.png", path, sizeof path);
    heatmap_options o = {.view = HEATMAP_GRID};
    heatmap_model_layout l;
    write_model(&f->r, &o, path, &l);
    assert_int_equal(l.maps, 2);
    assert_int_equal(l.heads, HEADS);
    assert_float_equal(l.vmax, 0.95, 1e-6);
    image im = read_png(path);
    assert_int_equal(im.width, (int)l.width);
    assert_int_equal(im.height, (int)l.height);

    const attn_attention_map *cross = &f->r.maps[0], *self = &f->r.maps[1];
    for (int h = 0; h < HEADS; h++) expect_thumbnail(&im, &l, cross, 0, h);
    expect_thumbnail(&im, &l, self, 1, 0);
    heatmap_rect hot = heatmap_model_thumbnail(&l, cross, 0, f->head);
    double rgb[3], top[3];
    heatmap_colour(1.0, top);
    pixel(&im, hot.x + (f->col + 0.5) * l.cell, hot.y + (f->row + 0.5) * l.cell, rgb);
    expect_colour(rgb, top, "the largest weight", f->row, f->col);

    heatmap_rect empty = heatmap_model_thumbnail(&l, self, 1, 1);
    assert_int_equal(ink(&im, empty.x - 1, empty.y - 1, empty.w + 2, empty.h + 2), 0);
    pixel(&im, empty.x + empty.w / 2, empty.y + empty.h / 2, rgb);
    assert_true(luminance(rgb) > 0.999);
    for (int i = 0; i < l.maps; i++)
        assert_true(ink(&im, 1, l.y + i * l.step_y, l.x - 2, 2 * NOTE_LINE) > 20);
    for (int h = 0; h < l.heads; h++)
        assert_true(ink(&im, l.x + h * l.step_x, l.y - NOTE_LINE, l.step_x / 2, NOTE_LINE) > 5);
    expect_bar(&im, &l.bar, l.width);
    cairo_surface_destroy(im.surface);

    /* --cell sets the thumbnails' cells; a record without maps has no model view */
    o.cell = 6.0;
    write_model(&f->r, &o, path, &l);
    assert_float_equal(l.cell, 6.0, 0.0);
    attn_record none;
    attn_record_init(&none, "gpt", "text");
    char err[512] = "";
    assert_false(heatmap_write_model(&none, &o, path, HEATMAP_PNG, err, sizeof err));
    assert_non_null(strstr(err, "no attention maps"));
    attn_record_free(&none);
}

enum { LONG = 2048, LONG_LAYERS = 6, LONG_HEADS = 6, STRIDE = 8, SHIFT = 40 };

/* Head h's row i (every STRIDE-th: the rest stay 0, and most of the weights'
 * pages untouched) attends to one key, SHIFT h before it. */
static void fill_long(float *w)
{
    for (int h = 0; h < LONG_HEADS; h++)
        for (int i = 0; i < LONG; i += STRIDE) {
            int j = i >= SHIFT * h ? i - SHIFT * h : 0;
            w[((size_t)h * LONG + i) * LONG + j] = 1.0f;
        }
}

/* A record of 2,048 tokens, 6 layers x 6 heads: the picture stays within
 * HEATMAP_SIDE_MAX with thumbnails of a pixel for many cells. A pixel of a soft
 * map is the mean of its cells, so the diagonal's few ones among them are pale; a
 * hard map's is their largest, so the same cells draw at the top of the scale. */
static void test_model_view_long(void **state)
{
    fixture *f = *state;
    static const char *keys[LONG];
    for (int j = 0; j < LONG; j++) keys[j] = "t";
    attn_record r;
    attn_record_init(&r, "gpt", "text");
    assert_int_equal(attn_record_set_keys(&r, keys, LONG), ATTN_OK);
    for (int layer = 0; layer < LONG_LAYERS; layer++) {
        float *w;
        bool hard = layer == LONG_LAYERS - 1;
        assert_int_equal(attn_record_add_map(&r, "transformer.h.*.attn", layer, ATTN_MAP_SELF,
                                             hard, LONG_HEADS, LONG, LONG, &w),
                         ATTN_OK);
        fill_long(w);
    }
    char path[256];
    path_in(f, "long.png", path, sizeof path);
    heatmap_options o = {.view = HEATMAP_GRID};
    heatmap_model_layout l;
    write_model(&r, &o, path, &l);
    assert_true(l.cell < 1.0);
    image im = read_png(path);
    assert_int_equal(im.width, (int)l.width);
    assert_int_equal(im.height, (int)l.height);
    assert_true(im.width <= HEATMAP_SIDE_MAX && im.height <= HEATMAP_SIDE_MAX);
    size_t size;
    free(read_text(path, &size));
    assert_true(size < 2000000);

    double soft[3], hard[3], top[3];
    heatmap_colour(1.0, top);
    heatmap_rect t = heatmap_model_thumbnail(&l, &r.maps[0], 0, 0);
    pixel(&im, t.x + (LONG / 2 + 0.5) * l.cell, t.y + (LONG / 2 + 0.5) * l.cell, soft);
    t = heatmap_model_thumbnail(&l, &r.maps[LONG_LAYERS - 1], LONG_LAYERS - 1, 0);
    pixel(&im, t.x + (LONG / 2 + 0.5) * l.cell, t.y + (LONG / 2 + 0.5) * l.cell, hard);
    assert_true(luminance(soft) > 0.9);
    expect_colour(hard, top, "hard map's diagonal", LONG / 2, LONG / 2);
    cairo_surface_destroy(im.surface);

    /* cells of 200 pixels would pass the bounds */
    o.cell = 200.0;
    char err[512] = "";
    assert_false(heatmap_model_layout_compute(&r, &o, &l, err, sizeof err));
    assert_non_null(strstr(err, "more than 16384 a side"));
    assert_non_null(strstr(err, "6 maps x up to 6 heads of up to 2048 tokens"));
    attn_record_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_average, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svg_pdf, setup, teardown),
        cmocka_unit_test(test_formats),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_view_long, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    heatmap_release_caches();
    return failed;
}
