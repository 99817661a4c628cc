/* Pictures of attention maps (attn/capture.h) through cairo: PNG, SVG or PDF.
 *
 * A picture holds a title, one panel per drawn matrix (one head, the mean over
 * the heads, or every head side by side) with the query tokens down the left and
 * the key tokens along the top (turned upright when they are wider than a cell),
 * and a colour bar from 0 to the largest weight drawn. Soft weights shade whole
 * cells from white (0) to dark blue (the largest); hard attention draws each
 * chosen cell as a filled square with a dark outline on a faint grid.
 *
 * The model view draws every map of a record at once: a row per map, in the
 * record's order, labelled with its name, layer and kind; a column per head; each
 * (map, head) a thumbnail of the head's weights without token labels, all on one
 * scale. A thumbnail is an image of its size in pixels, each pixel the mean of
 * the cells it covers (their largest for hard attention), so that a long record
 * draws as fast, and into as small a file, as a short one.
 *
 * The labels of a map's rows and columns are attn_map_row_tokens and
 * attn_map_col_tokens.
 *
 * Nothing here prints; failures return false with a message in err that names
 * the bad value or file. */
#ifndef ATTN_CLI_HEATMAP_H
#define ATTN_CLI_HEATMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "attn/capture.h"

enum {
    HEATMAP_PANELS_MAX = 64, /* heads a grid can draw */
    HEATMAP_SIDE_MAX = 16384 /* pixels (points for PDF) on either side of a picture */
};

typedef enum heatmap_view {
    HEATMAP_HEAD,    /* one head */
    HEATMAP_AVERAGE, /* the mean over the heads */
    HEATMAP_GRID     /* every head, side by side, up to four a row (more for > 16) */
} heatmap_view;

typedef enum heatmap_format { HEATMAP_PNG, HEATMAP_SVG, HEATMAP_PDF } heatmap_format;

typedef struct heatmap_options {
    heatmap_view view;
    int head;          /* HEATMAP_HEAD: 0 .. heads - 1 */
    double cell;       /* a cell's side in pixels; 0: 28, smaller for long sequences */
    const char *title; /* NULL: the model, the map and the head */
} heatmap_options;

typedef struct heatmap_rect {
    double x, y, w, h;
} heatmap_rect;

/* Where everything goes, in pixels from the top left (points in a PDF). */
typedef struct heatmap_layout {
    double width, height;
    double cell;
    double vmax; /* the weight at the top of the colour bar: the largest drawn (1 if none) */
    int panels;
    heatmap_rect cells[HEATMAP_PANELS_MAX];      /* a panel's rows x cols cells */
    heatmap_rect row_labels[HEATMAP_PANELS_MAX]; /* the query tokens, left of the cells */
    heatmap_rect col_labels[HEATMAP_PANELS_MAX]; /* the key tokens, above the cells */
    heatmap_rect bar;                            /* the colour bar (ticks to its right) */
} heatmap_layout;

/* The format named by path's extension (.png, .svg or .pdf, any case). */
bool heatmap_format_from_path(const char *path, heatmap_format *format);

/* The colour of t in [0, 1] (clamped) on the scale: rgb in [0, 1], darker as t grows. */
void heatmap_colour(double t, double rgb[3]);

/* The weight pixel (x, y) of a width x height picture of one head's weights w
 * (m->rows x m->cols) stands for: the mean of the cells between its edges
 * scaled to the map's, or for hard attention their largest (a chosen cell stays
 * as dark as alone); where cells are larger than pixels, the cell under its top
 * left corner. The model view's thumbnails and the page's are made of it. */
double heatmap_pixel_weight(const float *w, const attn_attention_map *m, int x, int width, int y,
                            int height);

/* The model view's layout (heatmap_model_thumbnail gives a thumbnail's place). */
typedef struct heatmap_model_layout {
    double width, height;
    double cell; /* a cell's side in every thumbnail; below 1, a pixel stands for several */
    double vmax; /* the weight at the top of the colour bar: the largest of all (1 if none) */
    int maps, heads; /* rows and columns of thumbnails: the maps, the most heads of one */
    double x, y;     /* the top left of the first row's first thumbnail */
    double step_x, step_y; /* from a thumbnail to the next one right of it, below it */
    heatmap_rect bar;
} heatmap_model_layout;

/* Checks that m (a map of r) can be drawn with o and lays the picture out. */
bool heatmap_layout_compute(const attn_record *r, const attn_attention_map *m,
                            const heatmap_options *o, heatmap_layout *layout, char *err,
                            size_t err_size);

/* Draws map m of record r as o says and writes it to path in the given format,
 * atomically (attn_write_file_atomically), so a failure leaves no partial
 * picture behind. */
bool heatmap_write(const attn_record *r, const attn_attention_map *m, const heatmap_options *o,
                   const char *path, heatmap_format format, char *err, size_t err_size);

/* Checks that every map of r can be drawn and lays out its model view: o->cell
 * (0: thumbnails of at most 128 pixels, smaller when the picture would pass
 * HEATMAP_SIDE_MAX) and o->title (NULL: the model and "model view") count; o's
 * view and head do not. */
bool heatmap_model_layout_compute(const attn_record *r, const heatmap_options *o,
                                  heatmap_model_layout *layout, char *err, size_t err_size);

/* Where head `head` of map `map` (r->maps[map]: m) is drawn in the model view:
 * its rows x cols cells from the top left of its place. */
heatmap_rect heatmap_model_thumbnail(const heatmap_model_layout *l, const attn_attention_map *m,
                                     int map, int head);

/* Draws the model view of r and writes it to path as heatmap_write does. */
bool heatmap_write_model(const attn_record *r, const heatmap_options *o, const char *path,
                         heatmap_format format, char *err, size_t err_size);

/* Frees the caches cairo and fontconfig keep for the process's life, so that a
 * leak checker sees only what is left of ours; nothing may be drawn after it. */
void heatmap_release_caches(void);

#endif
