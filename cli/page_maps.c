/* The maps of attn show --html's page: the record's, and those the library
 * derives from them (page_maps.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"
#include "page_maps.h"

const char *page_derived_name(page_derived d)
{
    static const char *const names[] = {NULL, "gradient-weighted", "rollout", "relevance"};
    return names[d];
}

void page_maps_free(page_maps *p)
{
    for (int k = 0; k < p->n; k++)
        if (p->maps[k].derived != PAGE_RECORDED) free(p->maps[k].m.weights);
    free(p->maps);
    *p = (page_maps){0};
}

/* A new derived map like `like` (tokens, kind, layer), of one head, its values
 * zeroed, appended to p; NULL without memory. */
static page_map *add_derived(page_maps *p, const attn_attention_map *like, page_derived derived,
                             int layers)
{
    page_map *d = &p->maps[p->n];
    *d = (page_map){.m = *like, .derived = derived, .layers = layers};
    d->m.heads = 1;
    d->m.hard = false;
    d->m.head_dim = 0;
    d->m.q = d->m.k = d->m.gradient = NULL;
    if (layers > 0) snprintf(d->m.name, sizeof d->m.name, "%s", like->site);
    d->m.weights = calloc((size_t)like->rows * (size_t)like->cols, sizeof *d->m.weights);
    if (d->m.weights == NULL) return NULL;
    p->n++;
    return d;
}

static int by_layer(const void *a, const void *b)
{
    const attn_attention_map *x = *(const attn_attention_map *const *)a;
    const attn_attention_map *y = *(const attn_attention_map *const *)b;
    return (x->layer > y->layer) - (x->layer < y->layer);
}

/* The self-attention maps of r at site, in layer order, into layers; their
 * number. */
static int site_layers(const attn_record *r, const char *site, const attn_attention_map **layers)
{
    int n = 0;
    for (int k = 0; k < r->n_maps; k++)
        if (r->maps[k].kind == ATTN_MAP_SELF && strcmp(r->maps[k].site, site) == 0)
            layers[n++] = &r->maps[k];
    qsort(layers, (size_t)n, sizeof *layers, by_layer);
    return n;
}

/* Whether map k is the first self-attention map of its site in r. */
static bool first_of_site(const attn_record *r, int k)
{
    for (int e = 0; e < k; e++)
        if (r->maps[e].kind == ATTN_MAP_SELF && strcmp(r->maps[e].site, r->maps[k].site) == 0)
            return false;
    return true;
}

/* The rollout of every site of self-attention in two layers or more, and its
 * relevance when every layer has a gradient. */
static attn_status add_rollouts(page_maps *p, const attn_record *r)
{
    const attn_attention_map *layers[ATTN_RECORD_MAPS_MAX];
    for (int k = 0; k < r->n_maps; k++) {
        if (r->maps[k].kind != ATTN_MAP_SELF || !first_of_site(r, k)) continue;
        const int n = site_layers(r, r->maps[k].site, layers);
        if (n < 2) continue;
        bool gradients = true;
        for (int l = 0; l < n; l++) gradients &= layers[l]->gradient != NULL;
        const attn_attention_map *top = layers[n - 1];
        page_map *d = add_derived(p, top, PAGE_ROLLOUT, n);
        attn_status s = d == NULL ? ATTN_ERR_OUT_OF_MEMORY : attn_rollout(layers, n, d->m.weights);
        if (s == ATTN_OK && gradients) {
            d = add_derived(p, top, PAGE_RELEVANCE, n);
            s = d == NULL ? ATTN_ERR_OUT_OF_MEMORY : attn_gradient_rollout(layers, n, d->m.weights);
        }
        if (s != ATTN_OK) return s;
    }
    return ATTN_OK;
}

int page_maps_build(page_maps *p, const attn_record *r)
{
    /* At most: every map, a gradient-weighted map of each, and two of each site. */
    *p = (page_maps){.maps = malloc(4 * (size_t)(r->n_maps + 1) * sizeof *p->maps)};
    if (p->maps == NULL) {
        cli_message(stderr, "attn show: no memory for the page's maps\n");
        return EXIT_RUNTIME;
    }
    for (int k = 0; k < r->n_maps; k++) p->maps[p->n++] = (page_map){.m = r->maps[k]};
    attn_status s = ATTN_OK;
    for (int k = 0; k < r->n_maps && s == ATTN_OK; k++) {
        if (r->maps[k].gradient == NULL) continue;
        page_map *d = add_derived(p, &r->maps[k], PAGE_GRADIENT_WEIGHTED, 0);
        s = d == NULL ? ATTN_ERR_OUT_OF_MEMORY
                      : attn_map_gradient_weighted(&r->maps[k], d->m.weights);
    }
    if (s == ATTN_OK) s = add_rollouts(p, r);
    if (s == ATTN_OK) return EXIT_OK;
    if (s == ATTN_ERR_OUT_OF_MEMORY)
        cli_message(stderr, "attn show: no memory for the page's maps\n");
    else
        cli_message(stderr, "attn show: %s\n", attn_last_error());
    page_maps_free(p);
    return EXIT_RUNTIME;
}
