/* torch.nn.Transformer: an encoder stack and a decoder stack, each with its final
 * norm; the decoder attends over the encoder's output. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/transformer_impl.h"

struct attn_transformer {
    attn_tf_transformer core;
    attn_params params;
};

static attn_status check_config(const attn_transformer_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(cfg, "transformer config")) ||
        (s = attn_tf_check_layer_config(&cfg->layer)) ||
        (s = attn_check_at_least(cfg->num_encoder_layers, 1, "num_encoder_layers")) ||
        (s = attn_check_at_least(cfg->num_decoder_layers, 1, "num_decoder_layers")))
        return s;
    return ATTN_OK;
}

attn_status attn_tf_transformer_init(attn_tf_transformer *t, const attn_transformer_config *cfg,
                                     uint64_t seed)
{
    memset(t, 0, sizeof *t);
    attn_status s;
    if ((s = check_config(cfg))) return s;
    t->cfg = *cfg;
    if ((s = attn_tf_stack_init(&t->encoder, &cfg->layer, false, true, cfg->num_encoder_layers,
                                attn_tf_seed(seed, 0, 2))) ||
        (s = attn_tf_stack_init(&t->decoder, &cfg->layer, true, true, cfg->num_decoder_layers,
                                attn_tf_seed(seed, 1, 2))))
        attn_tf_transformer_free(t);
    return s;
}

void attn_tf_transformer_free(attn_tf_transformer *t)
{
    attn_tf_stack_free(&t->encoder);
    attn_tf_stack_free(&t->decoder);
    attn_activations_free(&t->acts);
    memset(t, 0, sizeof *t);
}

void attn_tf_transformer_set_precision(attn_tf_transformer *t, attn_precision precision)
{
    attn_tf_stack_set_precision(&t->encoder, precision);
    attn_tf_stack_set_precision(&t->decoder, precision);
}

/* "<prefix>encoder." and "<prefix>decoder.", or a message if they do not fit. */
static attn_status half_prefix(char *buf, size_t size, const char *prefix, const char *half)
{
    int n = snprintf(buf, size, "%s%s", prefix, half);
    if (n < 0 || (size_t)n >= size)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter prefix '%s' is too long", prefix);
    return ATTN_OK;
}

void attn_tf_transformer_specs(const attn_tf_transformer *t, attn_specs *specs,
                               const char *prefix)
{
    char enc[ATTN_PARAM_NAME_MAX], dec[ATTN_PARAM_NAME_MAX];
    attn_status s;
    if ((s = half_prefix(enc, sizeof enc, prefix, "encoder.")) ||
        (s = half_prefix(dec, sizeof dec, prefix, "decoder."))) {
        if (!specs->status) specs->status = s;
        return;
    }
    attn_tf_stack_specs(&t->encoder, specs, enc);
    attn_tf_stack_specs(&t->decoder, specs, dec);
}

attn_status attn_tf_transformer_bind(attn_tf_transformer *t, const attn_params *p,
                                     const char *prefix, attn_rng *rng)
{
    char enc[ATTN_PARAM_NAME_MAX], dec[ATTN_PARAM_NAME_MAX];
    attn_status s;
    if ((s = half_prefix(enc, sizeof enc, prefix, "encoder.")) ||
        (s = half_prefix(dec, sizeof dec, prefix, "decoder.")) ||
        (s = attn_tf_stack_bind(&t->encoder, p, enc, rng)) ||
        (s = attn_tf_stack_bind(&t->decoder, p, dec, rng)))
        return s;
    attn_tf_init_xavier(p, prefix, rng);
    return ATTN_OK;
}

/* The dropout streams of the two halves within one call's. */
static uint64_t encoder_seed(const attn_transformer_input *in)
{
    return attn_tf_seed(in->dropout_seed, 0, 3);
}

static uint64_t decoder_seed(const attn_transformer_input *in)
{
    return attn_tf_seed(in->dropout_seed, 1, 3);
}

attn_status attn_tf_transformer_encode(attn_tf_transformer *t, float *memory,
                                       const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(in, "transformer input"))) return s;
    t->has_forward = false;
    return attn_tf_stack_forward(&t->encoder, memory, in->src, NULL, in, encoder_seed(in));
}

attn_status attn_tf_transformer_decode(attn_tf_transformer *t, float *out,
                                       const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(in, "transformer input"))) return s;
    t->has_forward = false;
    return attn_tf_stack_forward(&t->decoder, out, in->tgt, in->memory, in, decoder_seed(in));
}

attn_status attn_tf_transformer_forward(attn_tf_transformer *t, float *out,
                                        const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(in, "transformer input")) ||
        (s = attn_check_at_least(in->batch, 1, "batch")) ||
        (s = attn_check_at_least(in->src_len, 1, "src_len")))
        return s;
    t->has_forward = false;
    const int64_t floats = (int64_t)in->batch * in->src_len * t->cfg.layer.d_model;
    if (floats > INT_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "batch %d times src_len %d is too many rows",
                          in->batch, in->src_len);
    const attn_activation_view views[] = {{&t->memory, (size_t)floats},
                                          {&t->dmemory, (size_t)floats}};
    if ((s = attn_activations_layout(&t->acts, views, 2)) ||
        (s = attn_tf_stack_forward(&t->encoder, t->memory, in->src, NULL, in, encoder_seed(in))) ||
        (s = attn_tf_stack_forward(&t->decoder, out, in->tgt, t->memory, in, decoder_seed(in))))
        return s;
    t->has_forward = true;
    return ATTN_OK;
}

attn_status attn_tf_transformer_backward(attn_tf_transformer *t, float *dsrc, float *dtgt,
                                         const float *dout)
{
    if (!t->has_forward)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "attn_transformer_backward needs a successful attn_transformer_forward "
                          "first, with no encode or decode after it");
    attn_status s;
    memset(t->dmemory, 0, (size_t)t->encoder.rows * (size_t)t->cfg.layer.d_model * sizeof(float));
    if ((s = attn_tf_stack_backward(&t->decoder, dtgt, t->dmemory, dout)) ||
        (s = attn_tf_stack_backward(&t->encoder, dsrc, NULL, t->dmemory)))
        return s;
    return ATTN_OK;
}

/* ---- the public module ---- */

attn_status attn_transformer_create(attn_transformer **out, const attn_transformer_config *cfg,
                                    uint64_t seed)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out"))) return s;
    *out = NULL;
    attn_transformer *t = calloc(1, sizeof *t);
    if (t == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the transformer");
    if ((s = attn_tf_transformer_init(&t->core, cfg, seed))) {
        free(t);
        return s;
    }
    attn_specs specs = {0};
    attn_tf_transformer_specs(&t->core, &specs, "");
    s = attn_specs_layout(&specs, &t->params);
    if (!s) {
        attn_rng rng;
        attn_rng_init(&rng, attn_tf_seed(seed, 2, 2));
        s = attn_tf_transformer_bind(&t->core, &t->params, "", &rng);
    }
    if (s) {
        attn_transformer_free(t);
        return s;
    }
    *out = t;
    return ATTN_OK;
}

void attn_transformer_free(attn_transformer *t)
{
    if (t == NULL) return;
    attn_tf_transformer_free(&t->core);
    attn_params_free(&t->params);
    free(t);
}

attn_params *attn_transformer_params(attn_transformer *t) { return t ? &t->params : NULL; }

const attn_transformer_config *attn_transformer_get_config(const attn_transformer *t)
{
    return t ? &t->core.cfg : NULL;
}

attn_status attn_transformer_forward(attn_transformer *t, float *out,
                                     const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(t, "transformer"))) return s;
    return attn_tf_transformer_forward(&t->core, out, in);
}

attn_status attn_transformer_backward(attn_transformer *t, float *dsrc, float *dtgt,
                                      const float *dout)
{
    attn_status s;
    if ((s = attn_check_not_null(t, "transformer")) || (s = attn_check_not_null(dout, "dout")))
        return s;
    return attn_tf_transformer_backward(&t->core, dsrc, dtgt, dout);
}

attn_status attn_transformer_encode(attn_transformer *t, float *memory,
                                    const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(t, "transformer"))) return s;
    return attn_tf_transformer_encode(&t->core, memory, in);
}

attn_status attn_transformer_decode(attn_transformer *t, float *out,
                                    const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(t, "transformer"))) return s;
    return attn_tf_transformer_decode(&t->core, out, in);
}
