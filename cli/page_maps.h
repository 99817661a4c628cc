/* The maps attn show --html's page shows: every map of the record, then those
 * the library derives from them (attn/capture.h), computed here once by the
 * functions attn analyze reports from, so that the page and attn analyze give
 * the same numbers:
 *   gradient-weighted  of every map recorded with its gradient
 *                      (attn_map_gradient_weighted: E_h[(dlogp/dA . A)+],
 *                      Chefer et al., 2021)
 *   rollout            of every place of self-attention in two layers or more
 *                      (attn_rollout, Abnar and Zuidema, 2020), as attn analyze
 *                      groups them: the maps of one site, in layer order
 *   relevance          of the same places when every layer has its gradient
 *                      (attn_gradient_rollout: R = I, R <- R + G R)
 * A derived map has one head and no q, k or gradient; its values are no
 * weights (relevance exceeds 1), so it has its own largest value. */
#ifndef ATTN_CLI_PAGE_MAPS_H
#define ATTN_CLI_PAGE_MAPS_H

#include "attn/capture.h"

typedef enum page_derived {
    PAGE_RECORDED,         /* one of the record's maps */
    PAGE_GRADIENT_WEIGHTED, /* of one map */
    PAGE_ROLLOUT,           /* of one site over its layers */
    PAGE_RELEVANCE          /* of one site over its layers */
} page_derived;

/* The query rows of a map the page holds exactly. */
typedef struct map_window {
    int first, count;
} map_window;

typedef struct page_map {
    /* A recorded map: a copy of it, its arrays the record's. A derived map: its
     * source's (the top layer's, for a rollout) name or site, layer, kind and
     * tokens, heads 1, its values in weights (owned), no q, k or gradient. */
    attn_attention_map m;
    page_derived derived;
    int layers; /* rollout and relevance: the layers multiplied */
    /* Set by the page (html_page.c): the rows it holds exactly, and the top of
     * the thumbnails' colour scale. */
    map_window window;
    float vmax;
} page_map;

typedef struct page_maps {
    page_map *maps;
    int n;
} page_maps;

/* "gradient-weighted", "rollout", "relevance"; NULL for a recorded map. */
const char *page_derived_name(page_derived d);

/* Fills *p with r's maps and those derived from them. EXIT_OK, or EXIT_RUNTIME
 * after saying why (no memory; a library call that failed), *p then empty. */
int page_maps_build(page_maps *p, const attn_record *r);
void page_maps_free(page_maps *p);

#endif
