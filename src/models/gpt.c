/* The language model's configuration, parameters and initialisation, and the
 * pieces its passes share. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "core/names.h"
#include "models/gpt_impl.h"
#include "nn/param_specs.h"
#include "nn/transformer_impl.h"

static const attn_name POSITION_TABLE[] = {
    {ATTN_POS_LEARNED, "learned"},
    {ATTN_POS_SINUSOIDAL, "sinusoidal"},
    {ATTN_POS_ROPE, "rope"},
    {ATTN_POS_ALIBI, "alibi"},
};
static const attn_names POSITION_NAMES =
    ATTN_NAMES("position encoding", "position encodings", POSITION_TABLE);
ATTN_NAMES_FUNCTIONS(attn_position_kind, POSITION_NAMES, attn_position_name, attn_position_parse)

attn_gpt_config attn_gpt_defaults(void)
{
    return (attn_gpt_config){
        .vocab_size = 0,
        .block_size = 64,
        .n_layer = 4,
        .n_head = 4,
        .n_kv_head = 0,
        .n_embd = 128,
        .position = ATTN_POS_LEARNED,
        .rope_theta = 10000.0f,
        .window = 0,
        .bias = true,
        .tie_weights = true,
        .dropout = 0.0f,
    };
}

attn_status attn_gpt_check_config(const attn_gpt_config *c)
{
    attn_status s;
    if ((s = attn_check_not_null(c, "gpt config")) ||
        (s = attn_check_range(c->vocab_size, 1, ATTN_MAX_VOCAB, "vocab_size")) ||
        (s = attn_check_range(c->block_size, 1, ATTN_MAX_LENGTH, "block_size")) ||
        (s = attn_check_at_least(c->n_layer, 1, "n_layer")) ||
        (s = attn_check_range(c->n_head, 1, ATTN_MAX_WIDTH, "n_head")) ||
        (s = attn_check_range(c->n_kv_head, 0, ATTN_MAX_WIDTH, "n_kv_head")) ||
        (s = attn_check_range(c->n_embd, 1, ATTN_MAX_WIDTH, "n_embd")) ||
        (s = attn_check_range(c->window, 0, ATTN_MAX_LENGTH, "window")))
        return s;
    if (c->n_layer > ATTN_GPT_MAX_LAYERS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "n_layer %d exceeds %d", c->n_layer,
                          ATTN_GPT_MAX_LAYERS);
    if (c->n_embd % c->n_head != 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "n_embd %d is not divisible by n_head %d",
                          c->n_embd, c->n_head);
    if (c->n_kv_head > 0 && c->n_head % c->n_kv_head != 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "n_head %d is not divisible by n_kv_head %d",
                          c->n_head, c->n_kv_head);
    if (!attn_names_has(&POSITION_NAMES, (int)c->position))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "position kind %d is not an "
                          "attn_position_kind", (int)c->position);
    if (c->position == ATTN_POS_ROPE && (c->n_embd / c->n_head) % 2 != 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "rope needs an even head size, not %d (n_embd %d / n_head %d)",
                          c->n_embd / c->n_head, c->n_embd, c->n_head);
    if (c->position == ATTN_POS_ROPE && !(c->rope_theta > 0.0f && isfinite(c->rope_theta)))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "rope_theta %g is not finite and > 0",
                          (double)c->rope_theta);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "dropout %g is not in [0, 1)",
                          (double)c->dropout);
    return ATTN_OK;
}

/* ---- parameters ---- */

static void add_affine(attn_specs *s, const char *prefix, const char *name, bool bias, int out,
                       int in)
{
    char full[ATTN_PARAM_NAME_MAX];
    snprintf(full, sizeof full, "%s.weight", name);
    attn_specs_add(s, prefix, full, in ? 2 : 1, out, in);
    if (!bias) return;
    snprintf(full, sizeof full, "%s.bias", name);
    attn_specs_add(s, prefix, full, 1, out, 0);
}

/* cfg with n_kv_head resolved (0: as many as n_head). */
static attn_gpt_config resolved(const attn_gpt_config *cfg)
{
    attn_gpt_config c = *cfg;
    if (c.n_kv_head == 0) c.n_kv_head = c.n_head;
    return c;
}

/* The width of the fused q, k, v projection: (H + 2 Hkv) hd. */
static int qkv_width(const attn_gpt_config *c)
{
    return (c->n_head + 2 * c->n_kv_head) * (c->n_embd / c->n_head);
}

/* The parameters of a model of the resolved config c. */
static void model_specs(attn_specs *s, const attn_gpt_config *c)
{
    const int C = c->n_embd;
    attn_specs_add(s, "transformer.", "wte.weight", 2, c->vocab_size, C);
    if (c->position == ATTN_POS_LEARNED)
        attn_specs_add(s, "transformer.", "wpe.weight", 2, c->block_size, C);
    for (int l = 0; l < c->n_layer; l++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "transformer.h.%d.", l);
        add_affine(s, prefix, "ln_1", c->bias, C, 0);
        add_affine(s, prefix, "attn.c_attn", c->bias, qkv_width(c), C);
        add_affine(s, prefix, "attn.c_proj", c->bias, C, C);
        add_affine(s, prefix, "ln_2", c->bias, C, 0);
        add_affine(s, prefix, "mlp.c_fc", c->bias, 4 * C, C);
        add_affine(s, prefix, "mlp.c_proj", c->bias, C, 4 * C);
    }
    add_affine(s, "transformer.", "ln_f", c->bias, C, 0);
    if (!c->tie_weights) attn_specs_add(s, "", "lm_head.weight", 2, c->vocab_size, C);
}

static gpt_affine bind(const attn_params *p, const char *prefix, const char *name)
{
    char w[ATTN_PARAM_NAME_MAX], b[ATTN_PARAM_NAME_MAX];
    snprintf(w, sizeof w, "%s%s.weight", prefix, name);
    snprintf(b, sizeof b, "%s%s.bias", prefix, name);
    return (gpt_affine){.w = attn_params_data(p, w),
                        .b = attn_params_data(p, b),
                        .dw = attn_params_grad(p, w),
                        .db = attn_params_grad(p, b)};
}

static void bind_all(attn_gpt *m)
{
    const attn_params *p = &m->params;
    m->wte = attn_params_data(p, "transformer.wte.weight");
    m->dwte = attn_params_grad(p, "transformer.wte.weight");
    m->wpe = attn_params_data(p, "transformer.wpe.weight");
    m->dwpe = attn_params_grad(p, "transformer.wpe.weight");
    for (int l = 0; l < m->cfg.n_layer; l++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "transformer.h.%d.", l);
        gpt_layer *L = &m->layers[l];
        L->ln_1 = bind(p, prefix, "ln_1");
        L->c_attn = bind(p, prefix, "attn.c_attn");
        L->attn_proj = bind(p, prefix, "attn.c_proj");
        L->ln_2 = bind(p, prefix, "ln_2");
        L->c_fc = bind(p, prefix, "mlp.c_fc");
        L->mlp_proj = bind(p, prefix, "mlp.c_proj");
    }
    m->ln_f = bind(p, "transformer.", "ln_f");
    m->head = m->cfg.tie_weights ? m->wte : attn_params_data(p, "lm_head.weight");
    m->dhead = m->cfg.tie_weights ? m->dwte : attn_params_grad(p, "lm_head.weight");
}

/* nanoGPT's initialisation: every matrix normal(0, 0.02), the projections back
 * into the residual stream scaled down by sqrt(2 n_layer) (two per block), biases
 * 0 and LayerNorm weights 1. The draws come from a stream derived from the seed,
 * not the seed's own, which the text batches of the same seed use. */
static void init_params(attn_gpt *m, uint64_t seed)
{
    attn_rng rng;
    attn_rng_init(&rng, attn_tf_seed(seed, 0x677074 /* "gpt" */, 0));
    const float residual_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < m->params.count; i++) {
        const attn_param *p = &m->params.items[i];
        float *x = m->params.data + p->offset;
        if (p->ndim == 2) {
            const bool residual = strstr(p->name, "c_proj.weight") != NULL;
            attn_rng_fill_normal(&rng, x, p->numel, 0.0f, residual ? residual_std : 0.02f);
        } else if (strstr(p->name, "ln_") != NULL && strstr(p->name, ".weight") != NULL) {
            for (size_t j = 0; j < p->numel; j++) x[j] = 1.0f;
        } /* biases stay 0 */
    }
}

attn_status attn_gpt_param_count(const attn_gpt_config *cfg, int64_t *count)
{
    attn_status s;
    if ((s = attn_check_not_null(count, "count")) || (s = attn_gpt_check_config(cfg))) return s;
    const attn_gpt_config c = resolved(cfg);
    attn_specs specs = {0};
    model_specs(&specs, &c);
    return attn_specs_count(&specs, count);
}

attn_status attn_gpt_allocate(attn_gpt **out, const attn_gpt_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "gpt output")) || (s = attn_gpt_check_config(cfg))) return s;
    *out = NULL;
    attn_gpt *m = calloc(1, sizeof *m);
    if (m == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the model");
    m->cfg = resolved(cfg);
    m->head_dim = cfg->n_embd / cfg->n_head;
    m->qkv_width = qkv_width(&m->cfg);

    attn_specs specs = {0};
    model_specs(&specs, &m->cfg);
    s = attn_specs_layout(&specs, &m->params);
    if (!s && cfg->position == ATTN_POS_SINUSOIDAL) {
        m->sinusoids = malloc((size_t)cfg->block_size * cfg->n_embd * sizeof *m->sinusoids);
        s = m->sinusoids ? attn_sinusoidal_positions(m->sinusoids, cfg->block_size, cfg->n_embd)
                         : attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d positions",
                                      cfg->block_size);
    }
    if (!s && cfg->position == ATTN_POS_ALIBI) {
        m->slopes = malloc((size_t)cfg->n_head * sizeof *m->slopes);
        s = m->slopes ? attn_alibi_slopes(m->slopes, cfg->n_head)
                      : attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for ALiBi slopes");
    }
    if (s) {
        attn_gpt_free(m);
        return s;
    }
    bind_all(m);
    *out = m;
    return ATTN_OK;
}

attn_status attn_gpt_create(attn_gpt **out, const attn_gpt_config *cfg, uint64_t seed)
{
    attn_status s = attn_gpt_allocate(out, cfg);
    if (s == ATTN_OK) init_params(*out, seed);
    return s;
}

attn_status attn_gpt_replicate(attn_gpt **out, const attn_gpt *m)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_gpt_allocate(out, &m->cfg))) return s;
    attn_gpt *replica = *out;
    free(replica->params.data);
    replica->params.data = m->params.data;
    replica->shares_values = true;
    replica->precision = m->precision;
    bind_all(replica);
    return ATTN_OK;
}

void attn_gpt_free(attn_gpt *m)
{
    if (m == NULL) return;
    if (m->shares_values) m->params.data = NULL;
    attn_params_free(&m->params);
    free(m->sinusoids);
    free(m->slopes);
    free(m->arena);
    free(m->params16);
    free(m);
}

const attn_gpt_config *attn_gpt_get_config(const attn_gpt *m) { return m ? &m->cfg : NULL; }

attn_params *attn_gpt_params(attn_gpt *m) { return m ? &m->params : NULL; }

attn_status attn_gpt_set_precision(attn_gpt *m, attn_precision precision)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_check_precision(precision))) return s;
    m->precision = precision;
    return ATTN_OK;
}

attn_precision attn_gpt_get_precision(const attn_gpt *m) { return m ? m->precision : ATTN_FLOAT32; }

/* ---- pieces the passes share ---- */

attn_status attn_gpt_check_ids(const attn_gpt *m, const int32_t *ids, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "%s id %d at position %lld is outside the vocabulary [0, %d)", what,
                              (int)ids[i], (long long)i, m->cfg.vocab_size);
    return ATTN_OK;
}

uint64_t attn_gpt_dropout_seed(const attn_gpt *m, uint64_t site)
{
    return attn_tf_seed(m->pass.seed, (uint64_t)m->pass.step, site);
}

float attn_gpt_dropout(const attn_gpt *m)
{
    return m->pass.training ? m->cfg.dropout : 0.0f;
}

void attn_gpt_copy_tile(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * ld_dst, src + (size_t)r * ld_src, (size_t)cols * sizeof *dst);
}

void attn_gpt_embed(const attn_gpt *m, float *x, const int32_t *ids, int T, int pos0)
{
    const int C = m->cfg.n_embd;
    const float *table = m->wpe ? m->wpe : m->sinusoids;
    for (int t = 0; t < T; t++) {
        const float *token = m->wte + (size_t)ids[t] * C;
        float *row = x + (size_t)t * C;
        if (table) {
            const float *pos = table + (size_t)(pos0 + t) * C;
            for (int c = 0; c < C; c++) row[c] = token[c] + pos[c];
        } else {
            memcpy(row, token, (size_t)C * sizeof *row);
        }
    }
}

const uint16_t *attn_gpt_rounded(const attn_gpt *m, const uint16_t *params16, const float *w)
{
    return params16 ? params16 + (w - m->params.data) : NULL;
}
