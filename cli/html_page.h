/* attn show --html: one self-contained HTML page that draws a record's
 * attention (attn/capture.h). The page opens on the model view, every (map,
 * head) as a thumbnail on one colour scale, a row per map and a column per head;
 * clicking one (or Enter on it) opens it in the main view, where a person picks
 * a map and a head (or the mean over the heads) and switches between "lines"
 * (the key tokens in a column beside the query tokens, a window of 200 a side
 * past that; hovering or focusing a token draws a line to each key it attends
 * to, wider and darker by weight) and
 * "matrix" (a heatmap on a canvas, a row per query and a column per key, the
 * weight under the mouse read out). A record of causal self-attention over one
 * sequence (a language model's) also gets a step slider: the attention of the
 * token at step t over its context. Below, for a map recorded with its q and k,
 * the neuron view of one head and one query: q, each key's k and each
 * dimension's contribution q_d k_d scale to the key's score, the scores, the
 * weights and the softmax of the scores. Beside the record's maps, the map menu
 * offers those the library derives from them (page_maps.h): gradient-weighted
 * attention, rollout and relevance, as attn analyze reports them.
 *
 * What a page embeds is bounded, so that a long record opens as fast as a short
 * one: for each (map, head) a thumbnail of at most HTML_THUMB_SIDE values a side
 * (heatmap_pixel_weight: the mean of the cells a value covers, their largest for
 * hard attention) as a byte each, its shade to 1/255 of the largest weight of
 * the record, and the exact weights (float32) of a window of query rows,
 * at most HTML_WEIGHTS_MAX weights over all maps and heads (the derived maps
 * included, one head each). By default the
 * window is every row if they fit, else the last rows of each map (for a
 * language model the latest steps, which see the most context); --window
 * FIRST:COUNT chooses it. The page says which rows it holds in full, and shows
 * a map held in part whole as its thumbnail, enlarged, the held rows outlined.
 * q and k: each map's q of the held rows, and every key's k if they fit
 * HTML_QK_MAX values, else for each head the k of the HTML_NEURON_TOP keys each
 * held row weighs most (the neuron view then shows those). A record of 2,048
 * tokens, 6 layers x 6 heads makes a page of 3 MB, 6 rows in full (the rollout
 * over the layers is a map too), that opens in about half a second in headless
 * Chromium on an idle machine. The page loads
 * nothing: its style, script and the record itself are inside it. */
#ifndef ATTN_CLI_HTML_PAGE_H
#define ATTN_CLI_HTML_PAGE_H

#include <stdbool.h>

#include "attn/capture.h"

enum {
    HTML_THUMB_SIDE = 64,          /* a thumbnail's values a side, at most */
    HTML_WEIGHTS_MAX = 1 << 19, /* exact weights a page holds: 2 MiB as float32 */
    /* The q and k values a page holds for the neuron view: every key's k when
     * they fit, else for each head the HTML_NEURON_TOP (or fewer, to fit) keys
     * of largest weight of each held query row. */
    HTML_QK_MAX = 1 << 19,
    HTML_NEURON_TOP = 32,
    HTML_NEURON_ALL = 48 /* the neuron view shows every key up to this many */
};

/* The query rows whose weights the page holds exactly: [first, first + count)
 * of every map (fewer where a map has fewer rows), when given. */
typedef struct html_window {
    bool given;
    long first, count;
} html_window;

/* Writes the page of r to path atomically (attn_write_file_atomically, so a
 * failure leaves no partial page), and in *windowed how many maps it holds only
 * a window of rows of. Prints nothing on success; on failure prints
 * why to stderr and returns EXIT_USAGE for a window that does not fit the
 * record or HTML_WEIGHTS_MAX (naming the most rows that fit), EXIT_RUNTIME for
 * a map whose sizes disagree with the tokens, a weight outside [0, 1] or a file
 * that cannot be written. */
int cli_show_html(const attn_record *r, const char *path, const html_window *window,
                  int *windowed);

#endif
