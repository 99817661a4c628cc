/* attn.h: the whole public API of libattn.
 *
 *   #include <attn/attn.h>      cc app.c $(pkg-config --cflags --libs attn)
 *
 * Layers, from the bottom up: core (status, RNG, threads, CPU), kernels (GEMM),
 * io (safetensors), attention (the mechanisms as functions), nn (modules with
 * parameters). Each header documents shapes, ownership and failure.
 */
#ifndef ATTN_ATTN_H
#define ATTN_ATTN_H

#include "attn/core.h"
#include "attn/kernels.h"
#include "attn/io.h"
#include "attn/attention.h"
#include "attn/nn.h"
#include "attn/rnn.h"
#include "attn/transformer.h"
#include "attn/checkpoint.h"
#include "attn/train.h"
#include "attn/data.h"
#include "attn/capture.h"
#include "attn/seq2seq.h"
#include "attn/gpt.h"
#include "attn/model_file.h"

#endif
