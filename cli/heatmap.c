/* Pictures of attention maps through cairo (see heatmap.h). Sizes are in pixels
 * (points in a PDF); text uses cairo's own font selection ("sans-serif" through
 * fontconfig), measured with metric hinting off so that every format lays out
 * alike. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "heatmap.h"

#include "attn/core.h"
#include "attn/io.h"
#include "cli.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Layout, in pixels. */
#define MARGIN 14.0
#define TITLE_SIZE 15.0
#define NOTE_SIZE 11.0 /* the line under the title and the heads' names */
#define TICK_SIZE 10.0
#define LABEL_GAP 5.0  /* between labels and cells */
#define PANEL_GAP 24.0 /* between the panels of a grid */
#define BAR_GAP 22.0
#define BAR_WIDTH 14.0
#define BAR_MIN_HEIGHT 100.0
#define TICK_LENGTH 4.0
#define DEFAULT_CELL 28.0
#define FIT_SIDE 720.0 /* the default cell shrinks so that a panel's longer side fits */
#define MIN_AUTO_CELL 3.0
#define QUARTER_TURN 1.57079632679489661923 /* radians */

enum {
    TOKEN_CHARS = 16, /* characters of a token drawn before an ellipsis */
    TOKEN_BYTES = TOKEN_CHARS * 4 + 8,
    TITLE_CHARS = 200,
    TITLE_BYTES = TITLE_CHARS * 4 + 8
};

static const char *const FONT = "sans-serif";

/* ---- text ------------------------------------------------------------------------- */

/* What stands for an ASCII control character or a space in a token. */
static const char *visible_sign(unsigned char c)
{
    switch (c) {
    case ' ': return "\u2423"; /* open box */
    case '\n': return "\u21b5";
    case '\t': return "\u21e5";
    default: return "\ufffd";
    }
}

/* Copies s into out (size bytes) as cairo can draw it: a byte that does not begin
 * a valid UTF-8 character becomes U+FFFD, since cairo refuses a string with one.
 * A token's spaces and control characters become visible signs; a title's
 * control characters become spaces. At most max_chars characters, then "…". */
static void drawable_text(const char *s, bool token, int max_chars, char *out, size_t size)
{
    static const char ellipsis[] = "\u2026";
    size_t used = 0;
    int chars = 0;
    const unsigned char *end = (const unsigned char *)s + strlen(s);
    for (const unsigned char *p = (const unsigned char *)s; p < end;) {
        int n = attn_utf8_char((const char *)p, (size_t)(end - p), NULL);
        const char *piece = (const char *)p;
        size_t piece_len = (size_t)n;
        if (n == 0) {
            piece = "\ufffd";
            piece_len = strlen(piece);
            n = 1;
        } else if (*p <= ' ' || *p == 0x7f) {
            piece = token ? visible_sign(*p) : " ";
            piece_len = strlen(piece);
        }
        if (chars == max_chars || used + piece_len + sizeof ellipsis > size) {
            memcpy(out + used, ellipsis, sizeof ellipsis);
            return;
        }
        memcpy(out + used, piece, piece_len);
        used += piece_len;
        chars++;
        p += n;
    }
    out[used] = '\0';
}

/* The tokens labelling a map's rows and columns, and how many the record has. */
static void map_tokens(const attn_record *r, const attn_attention_map *m, char *const **rows,
                       int *n_rows, char *const **cols, int *n_cols)
{
    *rows = attn_map_row_tokens(r, m);
    *cols = attn_map_col_tokens(r, m);
    *n_rows = *rows == r->queries ? r->n_queries : r->n_keys;
    *n_cols = *cols == r->queries ? r->n_queries : r->n_keys;
}

static double text_width(cairo_t *cr, const char *text)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, text, &e);
    return e.x_advance;
}

static void set_font(cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* ---- the picture ------------------------------------------------------------------ */

/* A picture ready to draw: the matrices of its panels and where everything goes. */
typedef struct picture {
    const attn_attention_map *m;
    heatmap_layout layout;
    const float *panel[HEATMAP_PANELS_MAX]; /* (rows, cols) each */
    float *mean;                            /* (rows, cols) for HEATMAP_AVERAGE, owned */
    char *const *row_tokens, *const *col_tokens;
    char title[TITLE_BYTES];
    const char *note;
    double label_size;
    int label_step; /* every label_step-th label is drawn where cells are small */
    bool upright;   /* column labels turned to read upwards */
} picture;

static bool fail(char *err, size_t size, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, size, fmt, args);
    va_end(args);
    return false;
}

void heatmap_colour(double t, double rgb[3])
{
    /* A sequential blue scale whose lightness falls steadily, so the order of
     * weights reads in grey too; linear between these stops. */
    static const double stops[][3] = {{1.000, 1.000, 1.000},
                                      {0.816, 0.886, 0.949},
                                      {0.502, 0.694, 0.851},
                                      {0.208, 0.459, 0.714},
                                      {0.031, 0.188, 0.420}};
    enum { LAST = sizeof stops / sizeof stops[0] - 1 };
    if (!(t > 0.0)) t = 0.0;
    if (t > 1.0) t = 1.0;
    double x = t * LAST;
    int i = (int)x;
    if (i >= LAST) i = LAST - 1;
    double f = x - i;
    for (int c = 0; c < 3; c++) rgb[c] = stops[i][c] + f * (stops[i + 1][c] - stops[i][c]);
}

bool heatmap_format_from_path(const char *path, heatmap_format *format)
{
    static const struct {
        const char *ext;
        heatmap_format format;
    } known[] = {{".png", HEATMAP_PNG}, {".svg", HEATMAP_SVG}, {".pdf", HEATMAP_PDF}};
    const char *dot = strrchr(path, '.');
    if (dot == NULL || strchr(dot, '/') != NULL) return false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcasecmp(dot, known[i].ext) == 0) {
            *format = known[i].format;
            return true;
        }
    return false;
}

/* Checks the map's sizes against its tokens and every weight drawn, and returns
 * the largest (averaged for HEATMAP_AVERAGE; 0 if all are) in *vmax. */
static bool check_map(const attn_record *r, const attn_attention_map *m, const heatmap_options *o,
                      double *vmax, char *err, size_t size)
{
    char *const *rows, *const *cols;
    int n_rows, n_cols;
    map_tokens(r, m, &rows, &n_rows, &cols, &n_cols);
    if (m->heads < 1 || m->rows < 1 || m->cols < 1 || m->weights == NULL)
        return fail(err, size, "map '%s' is empty (%d heads, %d rows, %d columns)", m->name,
                    m->heads, m->rows, m->cols);
    if (m->rows != n_rows || m->cols != n_cols)
        return fail(err, size, "map '%s' is %d x %d but its tokens are %d x %d", m->name,
                    m->rows, m->cols, n_rows, n_cols);
    if (o->view == HEATMAP_HEAD && (o->head < 0 || o->head >= m->heads))
        return fail(err, size, "head %d does not exist: map '%s' has %d head%s (0 to %d)",
                    o->head, m->name, m->heads, m->heads == 1 ? "" : "s", m->heads - 1);
    if (o->view == HEATMAP_GRID && m->heads > HEATMAP_PANELS_MAX)
        return fail(err, size, "a grid draws up to %d heads, and map '%s' has %d",
                    HEATMAP_PANELS_MAX, m->name, m->heads);
    size_t plane = (size_t)m->rows * m->cols;
    int h0 = o->view == HEATMAP_HEAD ? o->head : 0;
    int h1 = o->view == HEATMAP_HEAD ? o->head + 1 : m->heads;
    *vmax = 0.0;
    for (size_t k = 0; k < plane; k++) {
        double sum = 0.0;
        for (int h = h0; h < h1; h++) {
            float w = m->weights[(size_t)h * plane + k];
            if (!isfinite(w) || w < 0.0f)
                return fail(err, size,
                            "map '%s' has the weight %g at head %d, row %zu, column %zu; "
                            "weights are finite and not negative",
                            m->name, (double)w, h, k / m->cols, k % m->cols);
            sum += w;
            if (o->view != HEATMAP_AVERAGE && w > *vmax) *vmax = w;
        }
        if (o->view == HEATMAP_AVERAGE && sum / m->heads > *vmax) *vmax = sum / m->heads;
    }
    return true;
}

static void default_title(const attn_record *r, const attn_attention_map *m,
                          const heatmap_options *o, char *out, size_t size)
{
    char text[TITLE_BYTES];
    int n = snprintf(text, sizeof text, "%s%s%s (%s%s)", r->model, r->model[0] ? " \u00b7 " : "",
                     m->name, attn_map_kind_name(m->kind), m->hard ? ", hard" : "");
    size_t used = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    if (m->heads > 1) {
        if (o->view == HEATMAP_HEAD)
            snprintf(text + used, sizeof text - used, " \u00b7 head %d of %d", o->head, m->heads);
        else if (o->view == HEATMAP_AVERAGE)
            snprintf(text + used, sizeof text - used, " \u00b7 mean of %d heads", m->heads);
        else
            snprintf(text + used, sizeof text - used, " \u00b7 %d heads", m->heads);
    }
    drawable_text(text, false, TITLE_CHARS, out, size);
}

/* The ticks of the colour bar: multiples of a round step (1, 2, 2.5 or 5 times a
 * power of ten) up to vmax, returned in ticks[0 .. n - 1]. */
static int round_ticks(double vmax, double *ticks, int max_ticks)
{
    double raw = vmax / 4.0, power = pow(10.0, floor(log10(raw))), f = raw / power;
    double nice = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 2.5 ? 2.5 : f <= 5.0 ? 5.0 : 10.0;
    double step = nice * power;
    int n = 0;
    for (int k = 0; n < max_ticks && k * step <= vmax * (1.0 + 1e-9); k++) ticks[n++] = k * step;
    return n;
}

enum { TICKS_MAX = 8 };

/* The ticks drawn: the round ones, with vmax at the top in place of a round one
 * too close to it to label apart. */
static int bar_ticks(const heatmap_rect *bar, double vmax, double *ticks)
{
    int n = round_ticks(vmax, ticks, TICKS_MAX - 1);
    if (n > 1 && (vmax - ticks[n - 1]) / vmax * bar->h < 1.3 * TICK_SIZE) n--;
    ticks[n++] = vmax;
    return n;
}

static void tick_text(double value, double vmax, char *out, size_t size)
{
    snprintf(out, size, value == vmax ? "%.3g" : "%g", value);
}

/* The right edge of the colour bar's tick labels. */
static double bar_right(cairo_t *cr, const heatmap_rect *bar, double vmax)
{
    double ticks[TICKS_MAX], tick_w = 0.0;
    char text[32];
    int n = bar_ticks(bar, vmax, ticks);
    set_font(cr, TICK_SIZE, false);
    for (int k = 0; k < n; k++) {
        tick_text(ticks[k], vmax, text, sizeof text);
        tick_w = fmax(tick_w, text_width(cr, text));
    }
    return bar->x + bar->w + TICK_LENGTH + 3.0 + tick_w;
}

/* The height the title and the note under it take from the top of the picture,
 * and in *width the wider of them. */
static double heading_height(cairo_t *cr, const char *title, const char *note, double *width)
{
    cairo_font_extents_t fe;
    set_font(cr, TITLE_SIZE, true);
    cairo_font_extents(cr, &fe);
    *width = text_width(cr, title);
    double top = MARGIN + fe.ascent + fe.descent + 4.0;
    set_font(cr, NOTE_SIZE, false);
    cairo_font_extents(cr, &fe);
    *width = fmax(*width, text_width(cr, note));
    return top + fe.ascent + fe.descent + 12.0;
}

/* Measures the labels and places the panels, the title and the bar. */
static bool lay_out(picture *p, const heatmap_options *o, cairo_t *cr, char *err, size_t size)
{
    const attn_attention_map *m = p->m;
    heatmap_layout *l = &p->layout;
    int side = m->rows > m->cols ? m->rows : m->cols;
    double cell = o->cell;
    if (cell <= 0.0) {
        cell = DEFAULT_CELL;
        if (side * cell > FIT_SIDE) cell = floor(FIT_SIDE / side);
        if (cell < MIN_AUTO_CELL) cell = MIN_AUTO_CELL;
    }
    l->cell = cell;
    p->label_size = fmin(12.0, fmax(7.0, 0.6 * cell));
    p->label_step = (int)ceil(1.1 * p->label_size / cell);

    cairo_font_extents_t fe;
    char text[TOKEN_BYTES];
    set_font(cr, p->label_size, false);
    cairo_font_extents(cr, &fe);
    double row_w = 0.0, col_w = 0.0;
    for (int i = 0; i < m->rows; i += p->label_step) {
        drawable_text(p->row_tokens[i], true, TOKEN_CHARS, text, sizeof text);
        row_w = fmax(row_w, text_width(cr, text));
    }
    for (int j = 0; j < m->cols; j++) {
        drawable_text(p->col_tokens[j], true, TOKEN_CHARS, text, sizeof text);
        col_w = fmax(col_w, text_width(cr, text));
    }
    p->upright = col_w > cell - 2.0;
    double col_h = p->upright ? col_w : fe.ascent + fe.descent;

    double title_w, top = heading_height(cr, p->title, p->note, &title_w);
    set_font(cr, NOTE_SIZE, false);
    cairo_font_extents(cr, &fe);
    double head_h = o->view == HEATMAP_GRID ? fe.ascent + fe.descent + 6.0 : 0.0;

    l->panels = o->view == HEATMAP_GRID ? m->heads : 1;
    int per_row = l->panels <= 16 ? (l->panels < 4 ? l->panels : 4)
                                  : (int)ceil(sqrt((double)l->panels));
    double block_w = ceil(row_w) + LABEL_GAP + m->cols * cell;
    double block_h = head_h + ceil(col_h) + LABEL_GAP + m->rows * cell;
    for (int k = 0; k < l->panels; k++) {
        double x = MARGIN + (k % per_row) * (block_w + PANEL_GAP);
        double y = top + (k / per_row) * (block_h + PANEL_GAP);
        double cx = x + ceil(row_w) + LABEL_GAP, cy = y + head_h + ceil(col_h) + LABEL_GAP;
        l->cells[k] = (heatmap_rect){cx, cy, m->cols * cell, m->rows * cell};
        l->row_labels[k] = (heatmap_rect){x, cy, ceil(row_w), m->rows * cell};
        l->col_labels[k] = (heatmap_rect){cx, y + head_h, m->cols * cell, ceil(col_h)};
    }
    int panel_rows = (l->panels + per_row - 1) / per_row;
    double right = MARGIN + per_row * block_w + (per_row - 1) * PANEL_GAP;
    l->bar = (heatmap_rect){right + BAR_GAP, l->cells[0].y, BAR_WIDTH,
                            fmax(BAR_MIN_HEIGHT, l->cells[0].h)};

    l->width = ceil(fmax(bar_right(cr, &l->bar, l->vmax), MARGIN + title_w) + MARGIN);
    l->height = ceil(fmax(top + panel_rows * block_h + (panel_rows - 1) * PANEL_GAP,
                          l->bar.y + l->bar.h + TICK_SIZE / 2) +
                     MARGIN);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        return fail(err, size, "cannot measure the labels: %s",
                    cairo_status_to_string(cairo_status(cr)));
    if (l->width > HEATMAP_SIDE_MAX || l->height > HEATMAP_SIDE_MAX)
        return fail(err, size,
                    "the picture would be %.0f x %.0f pixels, more than %d a side: "
                    "a cell of %g pixels is too large for map '%s' (%d x %d)",
                    l->width, l->height, HEATMAP_SIDE_MAX, cell, m->name, m->rows, m->cols);
    return true;
}

static void picture_free(picture *p)
{
    free(p->mean);
    p->mean = NULL;
}

/* Text measured on an image surface lays out a vector one alike: metric hinting
 * off rounds no advance to whole pixels. */
static void set_font_options(cairo_t *cr)
{
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
}

/* A context to measure text on as the picture will draw it. */
static cairo_t *measuring_context(void)
{
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *cr = cairo_create(scratch);
    cairo_surface_destroy(scratch); /* cr holds it */
    set_font_options(cr);
    return cr;
}

static bool check_cell(const heatmap_options *o, char *err, size_t size)
{
    return (o->cell >= 0.0 && isfinite(o->cell)) ||
           fail(err, size, "a cell of %g pixels cannot be drawn", o->cell);
}

static bool picture_init(picture *p, const attn_record *r, const attn_attention_map *m,
                         const heatmap_options *o, char *err, size_t size)
{
    *p = (picture){.m = m};
    if (r == NULL || m == NULL || o == NULL) return fail(err, size, "no record or map to draw");
    if (!check_cell(o, err, size)) return false;
    if (!check_map(r, m, o, &p->layout.vmax, err, size)) return false;
    if (p->layout.vmax == 0.0) p->layout.vmax = 1.0;
    int n_rows, n_cols;
    map_tokens(r, m, &p->row_tokens, &n_rows, &p->col_tokens, &n_cols);
    size_t plane = (size_t)m->rows * m->cols;
    if (o->view == HEATMAP_AVERAGE) {
        p->mean = malloc(plane * sizeof *p->mean);
        if (p->mean == NULL)
            return fail(err, size, "out of memory for a %d x %d map", m->rows, m->cols);
        for (size_t k = 0; k < plane; k++) {
            double sum = 0.0;
            for (int h = 0; h < m->heads; h++) sum += m->weights[(size_t)h * plane + k];
            p->mean[k] = (float)(sum / m->heads);
        }
        p->panel[0] = p->mean;
    } else if (o->view == HEATMAP_HEAD) {
        p->panel[0] = m->weights + (size_t)o->head * plane;
    } else {
        for (int h = 0; h < m->heads; h++) p->panel[h] = m->weights + (size_t)h * plane;
    }
    if (o->title != NULL) drawable_text(o->title, false, TITLE_CHARS, p->title, sizeof p->title);
    else default_title(r, m, o, p->title, sizeof p->title);
    p->note = m->kind == ATTN_MAP_CROSS ? "rows: output tokens \u00b7 columns: input tokens"
                                        : "rows: queries \u00b7 columns: keys";

    cairo_t *cr = measuring_context();
    bool ok = lay_out(p, o, cr, err, size);
    cairo_destroy(cr);
    if (!ok) picture_free(p);
    return ok;
}

bool heatmap_layout_compute(const attn_record *r, const attn_attention_map *m,
                            const heatmap_options *o, heatmap_layout *layout, char *err,
                            size_t err_size)
{
    picture p;
    if (!picture_init(&p, r, m, o, err, err_size)) return false;
    *layout = p.layout;
    picture_free(&p);
    return true;
}

/* ---- drawing ---------------------------------------------------------------------- */

static void set_colour(cairo_t *cr, double t)
{
    double rgb[3];
    heatmap_colour(t, rgb);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
}

/* Soft weights: every cell shaded (white cells are left as the background is). */
static void draw_soft(cairo_t *cr, const heatmap_rect *c, const float *w, int rows, int cols,
                      double cell, double vmax)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double t = w[(size_t)i * cols + j] / vmax;
            if (t <= 0.0) continue;
            set_colour(cr, t);
            cairo_rectangle(cr, c->x + j * cell, c->y + i * cell, cell, cell);
            cairo_fill(cr);
        }
}

/* Hard attention: a faint grid of positions, and each chosen cell (each weight
 * above 0; fractions where heads were averaged) a square inset in its cell,
 * shaded by its weight and outlined. */
static void draw_hard(cairo_t *cr, const heatmap_rect *c, const float *w, int rows, int cols,
                      double cell, double vmax)
{
    if (cell >= 6.0) {
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_set_line_width(cr, 1.0);
        for (int i = 1; i < rows; i++) {
            cairo_move_to(cr, c->x, c->y + i * cell + 0.5);
            cairo_rel_line_to(cr, c->w, 0.0);
        }
        for (int j = 1; j < cols; j++) {
            cairo_move_to(cr, c->x + j * cell + 0.5, c->y);
            cairo_rel_line_to(cr, 0.0, c->h);
        }
        cairo_stroke(cr);
    }
    double inset = fmax(1.0, round(0.15 * cell)), line = fmax(1.0, round(cell / 14.0));
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double t = w[(size_t)i * cols + j] / vmax;
            if (t <= 0.0) continue;
            double x = c->x + j * cell + inset, y = c->y + i * cell + inset;
            double s = cell - 2.0 * inset;
            set_colour(cr, t);
            cairo_rectangle(cr, x, y, s, s);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
            cairo_set_line_width(cr, line);
            cairo_rectangle(cr, x + line / 2, y + line / 2, s - line, s - line);
            cairo_stroke(cr);
        }
}

/* The query tokens right-aligned left of the cells, the key tokens above them. */
static void draw_labels(cairo_t *cr, const picture *p, int k)
{
    const heatmap_layout *l = &p->layout;
    const heatmap_rect *rl = &l->row_labels[k], *cl = &l->col_labels[k];
    char text[TOKEN_BYTES];
    cairo_font_extents_t fe;
    set_font(cr, p->label_size, false);
    cairo_font_extents(cr, &fe);
    double centre = (fe.ascent - fe.descent) / 2; /* baseline offset that centres a line */
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (int i = 0; i < p->m->rows; i += p->label_step) {
        drawable_text(p->row_tokens[i], true, TOKEN_CHARS, text, sizeof text);
        cairo_move_to(cr, rl->x + rl->w - text_width(cr, text),
                      rl->y + (i + 0.5) * l->cell + centre);
        cairo_show_text(cr, text);
    }
    for (int j = 0; j < p->m->cols; j += p->upright ? p->label_step : 1) {
        drawable_text(p->col_tokens[j], true, TOKEN_CHARS, text, sizeof text);
        double x = cl->x + (j + 0.5) * l->cell;
        if (p->upright) {
            cairo_save(cr);
            cairo_translate(cr, x + centre, cl->y + cl->h);
            cairo_rotate(cr, -QUARTER_TURN);
            cairo_move_to(cr, 0.0, 0.0);
            cairo_show_text(cr, text);
            cairo_restore(cr);
        } else {
            cairo_move_to(cr, x - text_width(cr, text) / 2, cl->y + cl->h - fe.descent);
            cairo_show_text(cr, text);
        }
    }
}

static void draw_bar(cairo_t *cr, const heatmap_rect *b, double vmax)
{
    cairo_pattern_t *gradient = cairo_pattern_create_linear(0.0, b->y + b->h, 0.0, b->y);
    for (int k = 0; k <= 4; k++) {
        double rgb[3];
        heatmap_colour(k / 4.0, rgb);
        cairo_pattern_add_color_stop_rgb(gradient, k / 4.0, rgb[0], rgb[1], rgb[2]);
    }
    cairo_rectangle(cr, b->x, b->y, b->w, b->h);
    cairo_set_source(cr, gradient);
    cairo_fill(cr);
    cairo_pattern_destroy(gradient);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, b->x - 0.5, b->y - 0.5, b->w + 1.0, b->h + 1.0);
    cairo_stroke(cr);

    double ticks[TICKS_MAX];
    int n = bar_ticks(b, vmax, ticks);
    char text[32];
    cairo_font_extents_t fe;
    set_font(cr, TICK_SIZE, false);
    cairo_font_extents(cr, &fe);
    for (int k = 0; k < n; k++) {
        double y = round(b->y + b->h - ticks[k] / vmax * b->h) + 0.5;
        cairo_move_to(cr, b->x + b->w, y);
        cairo_rel_line_to(cr, TICK_LENGTH, 0.0);
        cairo_stroke(cr);
        tick_text(ticks[k], vmax, text, sizeof text);
        cairo_move_to(cr, b->x + b->w + TICK_LENGTH + 3.0, y + (fe.ascent - fe.descent) / 2);
        cairo_show_text(cr, text);
    }
}

/* The white background, the title and the note under it (as heading_height
 * measured them). */
static void draw_heading(cairo_t *cr, const char *title, const char *note)
{
    cairo_font_extents_t fe;
    set_font_options(cr);
    cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
    cairo_paint(cr);

    set_font(cr, TITLE_SIZE, true);
    cairo_font_extents(cr, &fe);
    cairo_set_source_rgb(cr, 0.0, 0.0, 0.0);
    double y = MARGIN + fe.ascent;
    cairo_move_to(cr, MARGIN, y);
    cairo_show_text(cr, title);
    y += fe.descent + 4.0;
    set_font(cr, NOTE_SIZE, false);
    cairo_font_extents(cr, &fe);
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    cairo_move_to(cr, MARGIN, y + fe.ascent);
    cairo_show_text(cr, note);
}

/* The grey line around a panel's cells, just outside them. */
static void draw_frame(cairo_t *cr, const heatmap_rect *c)
{
    cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, c->x - 0.5, c->y - 0.5, c->w + 1.0, c->h + 1.0);
    cairo_stroke(cr);
}

static void draw_map(cairo_t *cr, const void *what)
{
    const picture *p = what;
    const heatmap_layout *l = &p->layout;
    const attn_attention_map *m = p->m;
    cairo_font_extents_t fe;
    draw_heading(cr, p->title, p->note);
    set_font(cr, NOTE_SIZE, false);
    cairo_font_extents(cr, &fe);
    for (int k = 0; k < l->panels; k++) {
        const heatmap_rect *c = &l->cells[k];
        if (l->panels > 1) {
            char name[32];
            snprintf(name, sizeof name, "head %d", k);
            set_font(cr, NOTE_SIZE, false);
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            cairo_move_to(cr, c->x, l->col_labels[k].y - 6.0 - fe.descent);
            cairo_show_text(cr, name);
        }
        if (m->hard) draw_hard(cr, c, p->panel[k], m->rows, m->cols, l->cell, l->vmax);
        else draw_soft(cr, c, p->panel[k], m->rows, m->cols, l->cell, l->vmax);
        draw_frame(cr, c);
        draw_labels(cr, p, k);
    }
    draw_bar(cr, &l->bar, l->vmax);
}

/* ---- files ------------------------------------------------------------------------ */

/* cairo's output, gathered in memory so that the file is written in one go
 * (attn_write_file_atomically) once the picture is whole. */
typedef struct sink {
    unsigned char *bytes;
    size_t size, capacity;
} sink;

static cairo_status_t write_memory(void *closure, const unsigned char *data, unsigned int length)
{
    sink *s = closure;
    if (s->size + length > s->capacity) {
        size_t capacity = s->capacity ? s->capacity : 65536;
        while (capacity < s->size + length) capacity *= 2;
        unsigned char *bytes = realloc(s->bytes, capacity);
        if (bytes == NULL) return CAIRO_STATUS_NO_MEMORY;
        s->bytes = bytes;
        s->capacity = capacity;
    }
    memcpy(s->bytes + s->size, data, length);
    s->size += length;
    return CAIRO_STATUS_SUCCESS;
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void xml_tokens(FILE *f, const char *what, char *const *tokens, int n)
{
    char text[TOKEN_BYTES];
    fprintf(f, "%s:", what);
    for (int i = 0; i < n; i++) {
        drawable_text(tokens[i], true, TOKEN_CHARS, text, sizeof text);
        fputc(' ', f);
        xml_text(f, text);
    }
}

/* What a file needs of a picture: its size, its title, how to draw it and what
 * an SVG's <desc> says of it. */
typedef struct artwork {
    double width, height;
    const char *title;
    void (*draw)(cairo_t *cr, const void *what);
    void (*describe)(FILE *f, const void *what); /* text, XML-escaped */
    const void *what;
} artwork;

/* A map's <desc>: its tokens. */
static void describe_map(FILE *f, const void *what)
{
    const picture *p = what;
    xml_tokens(f, "rows", p->row_tokens, p->m->rows);
    fputs("; ", f);
    xml_tokens(f, "columns", p->col_tokens, p->m->cols);
}

/* cairo draws an SVG's text as glyph outlines; the title and the description go
 * in as text too, in <title> and <desc> after the <svg> tag, for search and
 * screen readers. The elements as a malloc'd string of *size bytes, or NULL
 * without memory. */
static char *svg_text(const artwork *a, size_t *size)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, size);
    if (f == NULL) return NULL;
    fputs("\n<title>", f);
    xml_text(f, a->title);
    fputs("</title>\n<desc>", f);
    a->describe(f, a->what);
    fputs("</desc>", f);
    bool ok = !ferror(f);
    if (fclose(f) != 0 || !ok) {
        free(text);
        return NULL;
    }
    return text;
}

/* Draws a in the format into out. */
static cairo_status_t render(const artwork *a, heatmap_format format, sink *out)
{
    int w = (int)a->width, h = (int)a->height;
    cairo_surface_t *surface;
    if (format == HEATMAP_PNG) {
        surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    } else if (format == HEATMAP_SVG) {
        surface = cairo_svg_surface_create_for_stream(write_memory, out, w, h);
        cairo_svg_surface_set_document_unit(surface, CAIRO_SVG_UNIT_PX);
    } else {
        surface = cairo_pdf_surface_create_for_stream(write_memory, out, w, h);
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, a->title);
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "attn show");
    }
    cairo_t *cr = cairo_create(surface);
    a->draw(cr, a->what);
    cairo_status_t s = cairo_status(cr);
    cairo_destroy(cr);
    if (s == CAIRO_STATUS_SUCCESS && format == HEATMAP_PNG)
        s = cairo_surface_write_to_png_stream(surface, write_memory, out);
    cairo_surface_finish(surface);
    if (s == CAIRO_STATUS_SUCCESS) s = cairo_surface_status(surface);
    cairo_surface_destroy(surface);
    return s;
}

/* Writes the drawing of a to path, an SVG with its text (svg_text) after the
 * <svg> tag. */
static bool write_picture(const artwork *a, heatmap_format format, const sink *drawing,
                          const char *path, char *err, size_t err_size)
{
    attn_file_part parts[3] = {{drawing->bytes, drawing->size}};
    int count = 1;
    char *text = NULL;
    if (format == HEATMAP_SVG) {
        const unsigned char *start = NULL, *end = NULL;
        for (size_t k = 0; k + 4 <= drawing->size && start == NULL; k++)
            if (memcmp(drawing->bytes + k, "<svg", 4) == 0) start = drawing->bytes + k;
        if (start != NULL)
            end = memchr(start, '>', (size_t)(drawing->bytes + drawing->size - start));
        if (end == NULL)
            return fail(err, err_size, "cannot draw '%s': cairo wrote no <svg> tag", path);
        size_t head = (size_t)(end + 1 - drawing->bytes), size;
        if ((text = svg_text(a, &size)) == NULL)
            return fail(err, err_size, "out of memory for the text of '%s'", path);
        parts[0].size = head;
        parts[1] = (attn_file_part){text, size};
        parts[2] = (attn_file_part){drawing->bytes + head, drawing->size - head};
        count = 3;
    }
    bool ok = attn_write_file_atomically(path, parts, count) == ATTN_OK;
    free(text);
    return ok || fail(err, err_size, "%s", attn_last_error());
}

/* Draws a and writes it to path. */
static bool write_artwork(const artwork *a, const char *path, heatmap_format format, char *err,
                          size_t err_size)
{
    sink drawing = {0};
    cairo_status_t s = render(a, format, &drawing);
    bool ok = s == CAIRO_STATUS_SUCCESS
                  ? write_picture(a, format, &drawing, path, err, err_size)
                  : fail(err, err_size, "cannot draw '%s': %s", path, cairo_status_to_string(s));
    free(drawing.bytes);
    return ok;
}

bool heatmap_write(const attn_record *r, const attn_attention_map *m, const heatmap_options *o,
                   const char *path, heatmap_format format, char *err, size_t err_size)
{
    picture p;
    if (!picture_init(&p, r, m, o, err, err_size)) return false;
    const artwork a = {p.layout.width, p.layout.height, p.title, draw_map, describe_map, &p};
    bool ok = write_artwork(&a, path, format, err, err_size);
    picture_free(&p);
    return ok;
}

/* ---- the model view --------------------------------------------------------------- */

#define THUMB_SIDE 128.0 /* a thumbnail's longer side by default (less for short maps) */
#define MIN_THUMB 8.0    /* the smallest one fitted into HEATMAP_SIDE_MAX */
#define THUMB_GAP 10.0
#define MODEL_BAR_MAX_HEIGHT 320.0

enum {
    NAME_CHARS = 24, /* a row's label, before parts of it are dropped */
    NAME_BYTES = NAME_CHARS * 4 + 8,
    NAME_PARTS_MAX = ATTN_RECORD_NAME_MAX / 2 + 1
};

static const char *const MODEL_NOTE =
    "a row per map, a column per head \u00b7 each: queries down, keys across";

/* A model view ready to draw. */
typedef struct model_view {
    const attn_record *r;
    heatmap_model_layout layout;
    char title[TITLE_BYTES];
} model_view;

/* What the layout of a model view measures once, whatever the thumbnails' size. */
typedef struct model_measures {
    double top;              /* below the title and the note */
    double title_w;          /* the wider of those */
    double label_w, label_h; /* the rows' labels (two lines each) */
    double head_w, head_h;   /* the heads' names above the columns */
} model_measures;

/* Checks every map as a grid of its heads, and returns the largest weight of all
 * (1 if none is above 0) in *vmax. */
static bool check_maps(const attn_record *r, double *vmax, char *err, size_t size)
{
    const heatmap_options every_head = {.view = HEATMAP_GRID};
    if (r->n_maps < 1) return fail(err, size, "the record holds no attention maps");
    *vmax = 0.0;
    for (int i = 0; i < r->n_maps; i++) {
        double map_max = 0.0;
        if (!check_map(r, &r->maps[i], &every_head, &map_max, err, size)) return false;
        *vmax = fmax(*vmax, map_max);
    }
    if (*vmax == 0.0) *vmax = 1.0;
    return true;
}

/* The name a map's row is labelled with: its name without the layer, which the
 * line under it gives (the part that is the layer's number and the part before
 * it that holds the layers, such as "layers" or "h", unless that part comes
 * first), then without parts from the front while it is longer than
 * NAME_CHARS: "transformer.encoder.layers.0.self_attn" reads "encoder.self_attn",
 * "transformer.h.2.attn" "transformer.attn". */
static void short_name(const attn_attention_map *m, char *out, size_t size)
{
    char copy[ATTN_RECORD_NAME_MAX], joined[ATTN_RECORD_NAME_MAX], layer[16];
    const char *parts[NAME_PARTS_MAX];
    int n = 0, layer_at = -1; /* the part that is the layer's number */
    snprintf(copy, sizeof copy, "%s", m->name);
    snprintf(layer, sizeof layer, "%d", m->layer);
    for (char *s = copy, *end; n < NAME_PARTS_MAX && s != NULL; s = end ? end + 1 : NULL) {
        if ((end = strchr(s, '.')) != NULL) *end = '\0';
        if (strcmp(s, layer) == 0 && layer_at < 0) layer_at = n;
        parts[n++] = s;
    }
    size_t length = 0; /* of the parts kept, a dot after each */
    int kept = 0, first = 0;
    for (int k = 0; k < n; k++) {
        bool of_layer = k == layer_at || (k == layer_at - 1 && k > 0);
        if (of_layer) {
            parts[k] = NULL;
        } else {
            length += strlen(parts[k]) + 1;
            kept++;
        }
    }
    for (; length > NAME_CHARS + 1 && kept > 1; first++)
        if (parts[first] != NULL) {
            length -= strlen(parts[first]) + 1;
            kept--;
        }
    joined[0] = '\0';
    for (int k = first; k < n; k++)
        if (parts[k] != NULL)
            snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s",
                     joined[0] ? "." : "", parts[k]);
    drawable_text(joined, false, NAME_CHARS, out, size);
}

/* The line under a row's name: "layer 1 · cross", and "· hard" for hard attention. */
static void map_detail(const attn_attention_map *m, char *out, size_t size)
{
    snprintf(out, size, "layer %d \u00b7 %s%s", m->layer, attn_map_kind_name(m->kind),
             m->hard ? " \u00b7 hard" : "");
}

static void head_name(int head, char *out, size_t size)
{
    snprintf(out, size, "head %d", head);
}

static double line_height(cairo_t *cr, double font_size)
{
    cairo_font_extents_t fe;
    set_font(cr, font_size, false);
    cairo_font_extents(cr, &fe);
    return fe.ascent + fe.descent;
}

static void measure_model(cairo_t *cr, const model_view *v, model_measures *s)
{
    const attn_record *r = v->r;
    char text[NAME_BYTES];
    s->top = ceil(heading_height(cr, v->title, MODEL_NOTE, &s->title_w));
    s->label_w = 0.0;
    for (int i = 0; i < r->n_maps; i++) {
        set_font(cr, NOTE_SIZE, false);
        short_name(&r->maps[i], text, sizeof text);
        s->label_w = fmax(s->label_w, text_width(cr, text));
        set_font(cr, TICK_SIZE, false);
        map_detail(&r->maps[i], text, sizeof text);
        s->label_w = fmax(s->label_w, text_width(cr, text));
    }
    s->label_w = ceil(s->label_w);
    s->label_h = line_height(cr, NOTE_SIZE) + line_height(cr, TICK_SIZE) + 2.0;
    set_font(cr, NOTE_SIZE, false);
    head_name(v->layout.heads - 1, text, sizeof text);
    s->head_w = ceil(text_width(cr, text));
    s->head_h = ceil(line_height(cr, NOTE_SIZE) + 6.0);
}

/* Places the thumbnails, each in a square of side `box`, and the bar. */
static void place_model(cairo_t *cr, const model_measures *s, double box, heatmap_model_layout *l)
{
    l->step_x = fmax(box, s->head_w) + THUMB_GAP;
    l->step_y = ceil(fmax(box, s->label_h)) + THUMB_GAP;
    l->x = MARGIN + s->label_w + 2.0 * LABEL_GAP;
    l->y = s->top + s->head_h;
    double grid_w = l->heads * l->step_x - THUMB_GAP, grid_h = l->maps * l->step_y - THUMB_GAP;
    l->bar = (heatmap_rect){l->x + grid_w + BAR_GAP, l->y, BAR_WIDTH,
                            fmin(fmax(grid_h, BAR_MIN_HEIGHT), MODEL_BAR_MAX_HEIGHT)};
    l->width = ceil(fmax(bar_right(cr, &l->bar, l->vmax), MARGIN + s->title_w) + MARGIN);
    l->height = ceil(fmax(l->y + grid_h, l->bar.y + l->bar.h + TICK_SIZE / 2) + MARGIN);
}

static bool too_large(const heatmap_model_layout *l)
{
    return l->width > HEATMAP_SIDE_MAX || l->height > HEATMAP_SIDE_MAX;
}

/* Sizes the thumbnails: a cell of o->cell pixels, or by default a box of
 * THUMB_SIDE (cells no larger than the maps' default) that shrinks, labels and
 * gaps kept, until the picture fits HEATMAP_SIDE_MAX. */
static bool lay_out_model(model_view *v, const heatmap_options *o, cairo_t *cr, char *err,
                          size_t size)
{
    heatmap_model_layout *l = &v->layout;
    int longest = 1;
    for (int i = 0; i < v->r->n_maps; i++) {
        const attn_attention_map *m = &v->r->maps[i];
        longest = m->rows > longest ? m->rows : longest;
        longest = m->cols > longest ? m->cols : longest;
    }
    model_measures s;
    measure_model(cr, v, &s);
    double box = o->cell > 0.0 ? o->cell * longest : fmin(THUMB_SIDE, DEFAULT_CELL * longest);
    place_model(cr, &s, box, l);
    if (o->cell == 0.0 && too_large(l)) {
        double fit_w = (HEATMAP_SIDE_MAX - (l->width - l->heads * l->step_x)) / l->heads;
        double fit_h = (HEATMAP_SIDE_MAX - (l->height - l->maps * l->step_y)) / l->maps;
        box = fmax(MIN_THUMB, floor(fmin(fit_w, fit_h) - THUMB_GAP));
        place_model(cr, &s, box, l);
    }
    l->cell = box / longest;
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        return fail(err, size, "cannot measure the labels: %s",
                    cairo_status_to_string(cairo_status(cr)));
    if (too_large(l))
        return fail(err, size,
                    "the model view would be %.0f x %.0f pixels, more than %d a side: "
                    "%d maps x up to %d heads of up to %d tokens with a cell of %g pixels",
                    l->width, l->height, HEATMAP_SIDE_MAX, l->maps, l->heads, longest, l->cell);
    return true;
}

static bool model_view_init(model_view *v, const attn_record *r, const heatmap_options *o,
                            char *err, size_t size)
{
    *v = (model_view){.r = r};
    if (r == NULL || o == NULL) return fail(err, size, "no record to draw");
    if (!check_cell(o, err, size) || !check_maps(r, &v->layout.vmax, err, size)) return false;
    v->layout.maps = r->n_maps;
    for (int i = 0; i < r->n_maps; i++)
        if (r->maps[i].heads > v->layout.heads) v->layout.heads = r->maps[i].heads;
    char title[TITLE_BYTES];
    snprintf(title, sizeof title, "%s%smodel view", r->model, r->model[0] ? " \u00b7 " : "");
    drawable_text(o->title != NULL ? o->title : title, false, TITLE_CHARS, v->title,
                  sizeof v->title);
    cairo_t *cr = measuring_context();
    bool ok = lay_out_model(v, o, cr, err, size);
    cairo_destroy(cr);
    return ok;
}

bool heatmap_model_layout_compute(const attn_record *r, const heatmap_options *o,
                                  heatmap_model_layout *layout, char *err, size_t err_size)
{
    model_view v;
    if (!model_view_init(&v, r, o, err, err_size)) return false;
    *layout = v.layout;
    return true;
}

heatmap_rect heatmap_model_thumbnail(const heatmap_model_layout *l, const attn_attention_map *m,
                                     int map, int head)
{
    return (heatmap_rect){l->x + head * l->step_x, l->y + map * l->step_y, m->cols * l->cell,
                          m->rows * l->cell};
}

/* The shade of the cells [i0, i1) x [j0, j1) of w (rows of cols) as one pixel:
 * their mean, so that no weight is dropped, or for hard attention their largest,
 * so that a chosen cell stays as dark as it is alone, however many unchosen ones
 * share its pixel. */
static double covered_weight(const float *w, int cols, int i0, int i1, int j0, int j1, bool hard)
{
    float top = 0.0f;
    double sum = 0.0;
    for (int i = i0; i < i1; i++) {
        const float *row = w + (size_t)i * cols;
        if (hard)
            for (int j = j0; j < j1; j++) top = row[j] > top ? row[j] : top;
        else
            for (int j = j0; j < j1; j++) sum += row[j];
    }
    return hard ? top : sum / ((double)(i1 - i0) * (j1 - j0));
}

/* The cells [*lo, *hi) of n that pixel p of `pixels` covers: those between its
 * edges scaled to the cells', or where cells are larger than pixels the one
 * under its first edge. */
static void covered_cells(int p, int pixels, int n, int *lo, int *hi)
{
    *lo = (int)((long)p * n / pixels);
    *hi = (int)((long)(p + 1) * n / pixels);
    if (*hi == *lo) ++*hi;
}

double heatmap_pixel_weight(const float *w, const attn_attention_map *m, int x, int width, int y,
                            int height)
{
    int i0, i1, j0, j1;
    covered_cells(y, height, m->rows, &i0, &i1);
    covered_cells(x, width, m->cols, &j0, &j1);
    return covered_weight(w, m->cols, i0, i1, j0, j1, m->hard);
}

/* heatmap_colour(t) as an image surface's pixel. */
static uint32_t pixel_colour(double t)
{
    double rgb[3];
    heatmap_colour(t, rgb);
    return 0xff000000u | (uint32_t)lround(rgb[0] * 255.0) << 16 |
           (uint32_t)lround(rgb[1] * 255.0) << 8 | (uint32_t)lround(rgb[2] * 255.0);
}

/* One head's weights w (rows, cols) as an image of width x height pixels, pixel
 * (x, y) shaded by heatmap_pixel_weight. An
 * image, rather than a rectangle per cell, keeps a long map as quick to draw and
 * as small in a file as a short one. Without memory, cairo's error surface, which
 * fails the drawing. */
static cairo_surface_t *thumbnail_image(const float *w, const attn_attention_map *m, int width,
                                        int height, double vmax)
{
    cairo_surface_t *image = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    if (cairo_surface_status(image) != CAIRO_STATUS_SUCCESS) return image;
    cairo_surface_flush(image);
    unsigned char *data = cairo_image_surface_get_data(image);
    int stride = cairo_image_surface_get_stride(image);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            uint32_t v = pixel_colour(heatmap_pixel_weight(w, m, x, width, y, height) / vmax);
            memcpy(data + (size_t)y * stride + (size_t)x * 4, &v, sizeof v);
        }
    cairo_surface_mark_dirty(image);
    return image;
}

/* Paints head weights w of map m into t as an image of t's size in pixels, not
 * one of a pixel per cell scaled up: an SVG viewer would smooth that into a blur
 * (cairo's SVG does not say how to scale it), and cells are to be squares with
 * sharp edges. */
static void draw_thumbnail(cairo_t *cr, const heatmap_rect *t, const float *w,
                           const attn_attention_map *m, double vmax)
{
    int width = (int)ceil(t->w), height = (int)ceil(t->h);
    cairo_surface_t *image = thumbnail_image(w, m, width, height, vmax);
    cairo_save(cr);
    cairo_translate(cr, t->x, t->y);
    cairo_scale(cr, t->w / width, t->h / height);
    cairo_set_source_surface(cr, image, 0.0, 0.0);
    /* t's fraction of a pixel left over is no reason to blend neighbouring cells */
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0.0, 0.0, width, height);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(image);
}

/* A line of text at the left margin, its top at y, in the given size and grey;
 * returns the top of the next line. */
static double draw_margin_line(cairo_t *cr, double size, double grey, double y, const char *text)
{
    cairo_font_extents_t fe;
    set_font(cr, size, false);
    cairo_font_extents(cr, &fe);
    cairo_set_source_rgb(cr, grey, grey, grey);
    cairo_move_to(cr, MARGIN, y + fe.ascent);
    cairo_show_text(cr, text);
    return y + fe.ascent + fe.descent + 2.0;
}

/* A map's name and, under it, its layer and kind, left of its row. */
static void draw_row_label(cairo_t *cr, const attn_attention_map *m, double y)
{
    char text[NAME_BYTES];
    short_name(m, text, sizeof text);
    y = draw_margin_line(cr, NOTE_SIZE, 0.1, y, text);
    map_detail(m, text, sizeof text);
    draw_margin_line(cr, TICK_SIZE, 0.4, y, text);
}

static void draw_model(cairo_t *cr, const void *what)
{
    const model_view *v = what;
    const heatmap_model_layout *l = &v->layout;
    char text[32];
    cairo_font_extents_t fe;
    draw_heading(cr, v->title, MODEL_NOTE);
    set_font(cr, NOTE_SIZE, false);
    cairo_font_extents(cr, &fe);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    for (int h = 0; h < l->heads; h++) {
        head_name(h, text, sizeof text);
        cairo_move_to(cr, l->x + h * l->step_x, l->y - 6.0 - fe.descent);
        cairo_show_text(cr, text);
    }
    for (int i = 0; i < l->maps; i++) {
        const attn_attention_map *m = &v->r->maps[i];
        size_t plane = (size_t)m->rows * m->cols;
        draw_row_label(cr, m, l->y + i * l->step_y);
        for (int h = 0; h < m->heads; h++) {
            heatmap_rect t = heatmap_model_thumbnail(l, m, i, h);
            draw_thumbnail(cr, &t, m->weights + (size_t)h * plane, m, l->vmax);
            draw_frame(cr, &t);
        }
    }
    draw_bar(cr, &l->bar, l->vmax);
}

/* A model view's <desc>: its maps, by their full names. */
static void describe_model(FILE *f, const void *what)
{
    const model_view *v = what;
    char name[ATTN_RECORD_NAME_MAX * 4 + 8];
    fputs("maps:", f);
    for (int i = 0; i < v->r->n_maps; i++) {
        const attn_attention_map *m = &v->r->maps[i];
        drawable_text(m->name, false, ATTN_RECORD_NAME_MAX, name, sizeof name);
        fputs(i ? "; " : " ", f);
        xml_text(f, name);
        fprintf(f, " (layer %d, %s%s, %d head%s, %d x %d)", m->layer,
                attn_map_kind_name(m->kind), m->hard ? ", hard" : "", m->heads,
                m->heads == 1 ? "" : "s", m->rows, m->cols);
    }
}

bool heatmap_write_model(const attn_record *r, const heatmap_options *o, const char *path,
                         heatmap_format format, char *err, size_t err_size)
{
    model_view v;
    if (!model_view_init(&v, r, o, err, err_size)) return false;
    const artwork a = {v.layout.width, v.layout.height, v.title, draw_model, describe_model, &v};
    return write_artwork(&a, path, format, err, err_size);
}

void heatmap_release_caches(void)
{
    cairo_debug_reset_static_data(); /* first: cairo's fonts hold fontconfig's patterns */
    FcFini();
}
