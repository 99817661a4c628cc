/* attn show: draws the attention a model recorded (attn translate or attn generate
 * with --attention FILE) as a heatmap picture, or as an interactive page. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"
#include "heatmap.h"
#include "html_page.h"

typedef struct show_options {
    const char *file, *out, *map, *title, *html; /* out: NULL for a page alone */
    heatmap_format format;                       /* out's */
    long layer;                                  /* -1: not chosen */
    long head;
    long cell; /* 0: chosen from the map's size */
    heatmap_view view;
    bool view_given;
    html_window window; /* --window: the page's rows held exactly */
    char default_out[CLI_PATH_MAX];
} show_options;

static void print_help(void)
{
    printf("usage: attn show FILE [options]\n"
           "\n"
           "Draws the attention recorded in FILE (by 'attn translate --attention FILE'\n"
           "or 'attn generate --attention FILE') as a heatmap: a row per query token, a\n"
           "column per key token, darker where the model attended more, with a colour\n"
           "scale. Hard attention is drawn as the chosen cells.\n"
           "\n"
           "  --out OUT     the picture, PNG, SVG or PDF by its extension (.png, .svg,\n"
           "                .pdf; default: FILE with .png, none with --html alone)\n"
           "  --html PAGE   an interactive page of every map: pick a map and a head,\n"
           "                hover a token to see what it attends to; a model view of\n"
           "                every map and head; for a language model, a step slider;\n"
           "                for a record with q and k (--qk), the neuron view of a\n"
           "                query: q, each key's k and each dimension's share of the\n"
           "                score (the %d keys it weighs most, past %d); beside the\n"
           "                weights, the maps attn analyze derives: with gradients\n"
           "                (--gradient) each map's gradient-weighted attention, and\n"
           "                for self-attention over several layers the rollout (and\n"
           "                with gradients the relevance)\n"
           "  --window FIRST:COUNT  the query rows whose weights the page holds exactly\n"
           "                (default: all if the record's maps and those derived from\n"
           "                them have at most %d values, else the last rows that\n"
           "                fit); the page draws the others only in its thumbnails,\n"
           "                each value the mean of the cells it covers (%d values\n"
           "                a side at most), and says so\n"
           "  --map NAME    the map to draw (default: the first cross-attention map, else\n"
           "                the last layer's self-attention)\n"
           "  --layer L     the map of layer L (cross-attention if the record has any)\n"
           "  --head H      one head\n"
           "  --average     the mean over the heads (the default)\n"
           "  --grid        every head: with --map or --layer, the map's heads side by\n"
           "                side; else the model view, a row per map and a column per\n"
           "                head, each a small heatmap, all on one colour scale\n"
           "  --cell PX     a cell's side, 2 to 200 pixels (default 28, less for long\n"
           "                sequences; in the model view, maps of at most 128 pixels)\n"
           "  --title TEXT  the title (default: the model, the map and the head; for\n"
           "                the model view, the model and \"model view\")\n"
           "  -h, --help    this help\n",
           HTML_NEURON_TOP, HTML_NEURON_ALL, HTML_WEIGHTS_MAX, HTML_THUMB_SIDE);
}

static int set_view(show_options *o, heatmap_view view, const char *option)
{
    if (o->view_given && o->view != view)
        return cli_usage_error("show", "%s: give one of --head, --average and --grid", option);
    o->view = view;
    o->view_given = true;
    return EXIT_OK;
}

/* FILE with its extension replaced by .png (added if it has none, or if FILE
 * already ends in .png, so the record is never overwritten). */
static bool default_out(const char *file, char *out, size_t size)
{
    const char *slash = strrchr(file, '/');
    const char *base = slash ? slash + 1 : file;
    const char *dot = strrchr(base, '.');
    size_t stem = dot != NULL && dot != base && strcmp(dot, ".png") != 0 ? (size_t)(dot - file)
                                                                         : strlen(file);
    int n = snprintf(out, size, "%.*s.png", (int)stem, file);
    return n >= 0 && (size_t)n < size;
}

/* Checks what the options say of the picture and the page; the picture's own
 * options need a picture. */
static int check_outputs(show_options *o)
{
    const cli_path record = {"FILE", o->file};
    if (o->window.given && o->html == NULL)
        return cli_usage_error("show", "--window chooses the rows of the page: give --html too");
    if (o->html != NULL && o->out == NULL) {
        if (o->map || o->layer >= 0 || o->view_given || o->cell || o->title)
            return cli_usage_error("show", "--map, --layer, --head, --average, --grid, --cell "
                                           "and --title shape the picture: give --out too");
        return cli_check_paths("show", &record, 1, &(cli_path){"--html", o->html}, 1);
    }
    if (o->map != NULL && o->layer >= 0)
        return cli_usage_error("show", "--map and --layer both choose the map: give one");
    if (o->out == NULL) {
        if (!default_out(o->file, o->default_out, sizeof o->default_out))
            return cli_usage_error("show", "the file name '%s' is too long", o->file);
        o->out = o->default_out;
    }
    if (!heatmap_format_from_path(o->out, &o->format))
        return cli_usage_error("show", "--out '%s' has no known extension: use .png, .svg or .pdf",
                               o->out);
    const cli_path outputs[] = {{"--out", o->out}, {"--html", o->html}};
    return cli_check_paths("show", &record, 1, outputs, 2);
}

/* "FIRST:COUNT" into *w. */
static bool parse_window(const char *text, html_window *w)
{
    const char *colon = strchr(text, ':');
    char first[32];
    if (colon == NULL || (size_t)(colon - text) >= sizeof first) return false;
    memcpy(first, text, (size_t)(colon - text));
    first[colon - text] = '\0';
    w->given = cli_parse_int(first, 0, 2147483647L, &w->first) &&
               cli_parse_int(colon + 1, 1, 2147483647L, &w->count);
    return w->given;
}

static int parse_options(int argc, char **argv, show_options *o)
{
    static const struct option options[] = {
        {"out", required_argument, NULL, 'o'},   {"html", required_argument, NULL, 'W'},
        {"map", required_argument, NULL, 'm'},   {"layer", required_argument, NULL, 'l'},
        {"head", required_argument, NULL, 'H'},  {"average", no_argument, NULL, 'a'},
        {"grid", no_argument, NULL, 'g'},        {"cell", required_argument, NULL, 'c'},
        {"title", required_argument, NULL, 't'}, {"window", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (show_options){.layer = -1, .view = HEATMAP_AVERAGE};
    int c, status = EXIT_OK;
    opterr = 0;
    while (status == EXIT_OK && (c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o': o->out = optarg; break;
        case 'W': o->html = optarg; break;
        case 'm': o->map = optarg; break;
        case 'l':
            if (!cli_parse_int(optarg, 0, ATTN_RECORD_MAPS_MAX, &o->layer))
                return cli_usage_error("show", "--layer takes 0 to %d, not '%s'",
                                       ATTN_RECORD_MAPS_MAX, optarg);
            break;
        case 'H':
            if (!cli_parse_int(optarg, 0, 2147483647L, &o->head))
                return cli_usage_error("show", "--head takes 0 to 2147483647, not '%s'", optarg);
            status = set_view(o, HEATMAP_HEAD, "--head");
            break;
        case 'a': status = set_view(o, HEATMAP_AVERAGE, "--average"); break;
        case 'g': status = set_view(o, HEATMAP_GRID, "--grid"); break;
        case 'c':
            if (!cli_parse_int(optarg, 2, 200, &o->cell))
                return cli_usage_error("show", "--cell takes 2 to 200 pixels, not '%s'", optarg);
            break;
        case 't': o->title = optarg; break;
        case 'w':
            if (!parse_window(optarg, &o->window))
                return cli_usage_error("show", "--window takes FIRST:COUNT, a first row from 0 "
                                               "and a count from 1, not '%s'", optarg);
            break;
        case 'h': print_help(); return -1;
        case ':': return cli_usage_error("show", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("show", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (status != EXIT_OK) return status;
    if (optind == argc) return cli_usage_error("show", "a record FILE is required");
    if (optind + 1 < argc)
        return cli_usage_error("show", "unexpected argument '%s'", argv[optind + 1]);
    o->file = argv[optind];
    return check_outputs(o);
}

static void list_maps(const attn_record *r)
{
    for (int i = 0; i < r->n_maps; i++) {
        const attn_attention_map *m = &r->maps[i];
        cli_message(stderr, "  %s  (layer %d, %s%s, %d head%s, %d x %d)\n", m->name, m->layer,
                    attn_map_kind_name(m->kind), m->hard ? ", hard" : "", m->heads,
                    m->heads == 1 ? "" : "s", m->rows, m->cols);
    }
}

/* The map of `layer` (any if < 0) the default draws: the first cross map if the
 * record has one (its outputs against its inputs), else the first self map of the
 * highest layer, where the model is nearest its output; any map of the layer if
 * it has none of that kind. */
static const attn_attention_map *default_map(const attn_record *r, long layer)
{
    bool any_cross = false;
    for (int i = 0; i < r->n_maps; i++) any_cross |= r->maps[i].kind == ATTN_MAP_CROSS;
    attn_map_kind kind = any_cross ? ATTN_MAP_CROSS : ATTN_MAP_SELF;
    const attn_attention_map *best = NULL, *any = NULL;
    for (int i = 0; i < r->n_maps; i++) {
        const attn_attention_map *m = &r->maps[i];
        if (layer >= 0 && m->layer != layer) continue;
        if (any == NULL) any = m;
        if (m->kind != kind) continue;
        if (kind == ATTN_MAP_CROSS) return m;
        if (best == NULL || m->layer > best->layer) best = m;
    }
    return best != NULL ? best : any;
}

/* The map the options choose and a head it has, or NULL after saying why (a
 * usage error). */
static const attn_attention_map *choose_map(const attn_record *r, const show_options *o)
{
    const attn_attention_map *m;
    if (o->map != NULL) {
        if ((m = attn_record_find(r, o->map)) == NULL) {
            cli_message(stderr, "attn show: no map named '%s' in %s; its maps are:\n", o->map,
                        o->file);
            list_maps(r);
            return NULL;
        }
    } else if ((m = default_map(r, o->layer)) == NULL) {
        int lo = r->maps[0].layer, hi = lo;
        for (int i = 1; i < r->n_maps; i++) {
            if (r->maps[i].layer < lo) lo = r->maps[i].layer;
            if (r->maps[i].layer > hi) hi = r->maps[i].layer;
        }
        cli_message(stderr, "attn show: no map of layer %ld in %s; its layers are %d to %d\n",
                    o->layer, o->file, lo, hi);
        return NULL;
    }
    if (o->view == HEATMAP_HEAD && o->head >= m->heads) {
        cli_usage_error("show", "--head %ld does not exist: map '%s' has %d head%s (0 to %d)",
                        o->head, m->name, m->heads, m->heads == 1 ? "" : "s", m->heads - 1);
        return NULL;
    }
    return m;
}

static int draw_picture(const attn_record *r, const attn_attention_map *m, const show_options *o)
{
    heatmap_options ho = {
        .view = o->view, .head = (int)o->head, .cell = (double)o->cell, .title = o->title};
    char err[512];
    if (!heatmap_write(r, m, &ho, o->out, o->format, err, sizeof err)) {
        cli_message(stderr, "attn show: %s\n", err);
        return EXIT_RUNTIME;
    }
    printf("wrote %s: %s (%s), ", o->out, m->name, attn_map_kind_name(m->kind));
    if (o->view == HEATMAP_HEAD) printf("head %ld", o->head);
    else if (m->heads == 1) printf("1 head");
    else if (o->view == HEATMAP_GRID) printf("%d heads", m->heads);
    else printf("mean of %d heads", m->heads);
    printf(", %d x %d\n", m->rows, m->cols);
    return EXIT_OK;
}

/* Every head of every map: --grid without a map chosen. */
static int draw_model_view(const attn_record *r, const show_options *o)
{
    heatmap_options ho = {.cell = (double)o->cell, .title = o->title};
    char err[512];
    if (!heatmap_write_model(r, &ho, o->out, o->format, err, sizeof err)) {
        cli_message(stderr, "attn show: %s\n", err);
        return EXIT_RUNTIME;
    }
    int least = r->maps[0].heads, most = least;
    for (int i = 1; i < r->n_maps; i++) {
        if (r->maps[i].heads < least) least = r->maps[i].heads;
        if (r->maps[i].heads > most) most = r->maps[i].heads;
    }
    printf("wrote %s: model view, %d map%s x %s%d head%s\n", o->out, r->n_maps,
           r->n_maps == 1 ? "" : "s", least < most ? "up to " : "", most, most == 1 ? "" : "s");
    return EXIT_OK;
}

/* The page first, then the picture, once both are known to be possible. */
static int show(const attn_record *r, const show_options *o)
{
    if (r->n_maps == 0) {
        cli_message(stderr, "attn show: %s holds no attention maps\n", o->file);
        return EXIT_RUNTIME;
    }
    bool model_view = o->view == HEATMAP_GRID && o->map == NULL && o->layer < 0;
    const attn_attention_map *m = NULL;
    if (o->out != NULL && !model_view && (m = choose_map(r, o)) == NULL) return EXIT_USAGE;
    if (o->html != NULL) {
        int windowed;
        int status = cli_show_html(r, o->html, &o->window, &windowed);
        if (status != EXIT_OK) return status;
        printf("wrote %s: a page of %d map%s", o->html, r->n_maps, r->n_maps == 1 ? "" : "s");
        if (windowed == 0) printf(", every weight held exactly\n");
        else printf(", %d held exactly only for a window of rows (--window; the page says which)\n",
                    windowed);
    }
    if (o->out == NULL) return EXIT_OK;
    return model_view ? draw_model_view(r, o) : draw_picture(r, m, o);
}

int cmd_show(int argc, char **argv)
{
    show_options o;
    int status = parse_options(argc, argv, &o);
    if (status != EXIT_OK) return status < 0 ? EXIT_OK : status;
    attn_record r;
    if (attn_record_load(&r, o.file) != ATTN_OK) return cli_fail("show");
    status = show(&r, &o);
    attn_record_free(&r);
    heatmap_release_caches();
    return status;
}
