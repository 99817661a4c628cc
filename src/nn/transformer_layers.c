/* torch.nn.TransformerEncoderLayer and TransformerDecoderLayer: one layer's stack
 * of sublayers with a parameter block of its own. */
#include <stdlib.h>

#include "core/error.h"
#include "nn/transformer_impl.h"

struct attn_transformer_encoder_layer {
    attn_tf_stack stack;
    attn_params params;
};

struct attn_transformer_decoder_layer {
    attn_tf_stack stack;
    attn_params params;
};

attn_transformer_layer_config attn_transformer_layer_defaults(int d_model, int nhead)
{
    return (attn_transformer_layer_config){.d_model = d_model,
                                           .nhead = nhead,
                                           .dim_feedforward = 2048,
                                           .dropout = 0.1f,
                                           .activation = ATTN_ACT_RELU,
                                           .layer_norm_eps = 1e-5f,
                                           .batch_first = false,
                                           .norm_first = false};
}

/* One layer, unprefixed names, its parameters initialised as the layer's
 * submodules do. On failure nothing is left allocated. */
static attn_status build(attn_tf_stack *st, attn_params *p,
                         const attn_transformer_layer_config *cfg, bool decoder, uint64_t seed)
{
    attn_status s;
    if ((s = attn_tf_check_layer_config(cfg)) ||
        (s = attn_tf_stack_init(st, cfg, decoder, false, 1, seed)))
        return s;
    attn_specs specs = {0};
    attn_tf_stack_specs(st, &specs, "");
    s = attn_specs_layout(&specs, p);
    if (!s) {
        attn_rng rng;
        attn_rng_init(&rng, attn_tf_seed(seed, 0, 1));
        s = attn_tf_stack_bind(st, p, "", &rng);
    }
    if (s) {
        attn_params_free(p);
        attn_tf_stack_free(st);
    }
    return s;
}

attn_status attn_transformer_encoder_layer_create(attn_transformer_encoder_layer **out,
                                                  const attn_transformer_layer_config *cfg,
                                                  uint64_t seed)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out"))) return s;
    *out = NULL;
    attn_transformer_encoder_layer *l = calloc(1, sizeof *l);
    if (l == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the layer");
    if ((s = build(&l->stack, &l->params, cfg, false, seed))) {
        free(l);
        return s;
    }
    *out = l;
    return ATTN_OK;
}

void attn_transformer_encoder_layer_free(attn_transformer_encoder_layer *l)
{
    if (l == NULL) return;
    attn_tf_stack_free(&l->stack);
    attn_params_free(&l->params);
    free(l);
}

attn_params *attn_transformer_encoder_layer_params(attn_transformer_encoder_layer *l)
{
    return l ? &l->params : NULL;
}

attn_status attn_transformer_encoder_layer_forward(attn_transformer_encoder_layer *l, float *out,
                                                   const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(l, "encoder layer")) ||
        (s = attn_check_not_null(in, "transformer input")))
        return s;
    return attn_tf_stack_forward(&l->stack, out, in->src, NULL, in, in->dropout_seed);
}

attn_status attn_transformer_encoder_layer_backward(attn_transformer_encoder_layer *l, float *dsrc,
                                                    const float *dout)
{
    attn_status s;
    if ((s = attn_check_not_null(l, "encoder layer"))) return s;
    return attn_tf_stack_backward(&l->stack, dsrc, NULL, dout);
}

attn_status attn_transformer_decoder_layer_create(attn_transformer_decoder_layer **out,
                                                  const attn_transformer_layer_config *cfg,
                                                  uint64_t seed)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out"))) return s;
    *out = NULL;
    attn_transformer_decoder_layer *l = calloc(1, sizeof *l);
    if (l == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the layer");
    if ((s = build(&l->stack, &l->params, cfg, true, seed))) {
        free(l);
        return s;
    }
    *out = l;
    return ATTN_OK;
}

void attn_transformer_decoder_layer_free(attn_transformer_decoder_layer *l)
{
    if (l == NULL) return;
    attn_tf_stack_free(&l->stack);
    attn_params_free(&l->params);
    free(l);
}

attn_params *attn_transformer_decoder_layer_params(attn_transformer_decoder_layer *l)
{
    return l ? &l->params : NULL;
}

attn_status attn_transformer_decoder_layer_forward(attn_transformer_decoder_layer *l, float *out,
                                                   const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(l, "decoder layer")) ||
        (s = attn_check_not_null(in, "transformer input")))
        return s;
    return attn_tf_stack_forward(&l->stack, out, in->tgt, in->memory, in, in->dropout_seed);
}

attn_status attn_transformer_decoder_layer_backward(attn_transformer_decoder_layer *l, float *dtgt,
                                                    float *dmemory, const float *dout)
{
    attn_status s;
    if ((s = attn_check_not_null(l, "decoder layer"))) return s;
    return attn_tf_stack_backward(&l->stack, dtgt, dmemory, dout);
}
