/* The RNN models' teacher-forced forward and its backward: the loops over the
 * steps, each step the family's, and REINFORCE's rewards.
 *
 * The backward walks the steps in reverse, carrying the gradients of the states;
 * each step keeps its gate gradients so that every weight gradient of the
 * recurrence is one GEMM over all steps after the walk. */
#include <math.h>
#include <string.h>

#include "attn/kernels.h"
#include "attn/train.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

/* ---- the forward ---------------------------------------------------------------------- */

/* Exponential annealing from tau_start to tau_end over gumbel_anneal_steps. */
static float gumbel_tau(const attn_seq2seq_config *c, int64_t step)
{
    if (c->gumbel_anneal_steps <= 0) return c->gumbel_tau_end;
    double progress = (double)step / (double)c->gumbel_anneal_steps;
    if (progress > 1.0) progress = 1.0;
    return (float)(c->gumbel_tau_start *
                   pow((double)c->gumbel_tau_end / c->gumbel_tau_start, progress));
}

static s2s_pick training_pick(attn_attention_kind kind, bool training)
{
    if (kind == ATTN_ATTEND_SOFT) return S2S_PICK_SOFT;
    if (!training) return S2S_PICK_ARGMAX;
    return kind == ATTN_ATTEND_HARD_REINFORCE ? S2S_PICK_SAMPLE : S2S_PICK_GUMBEL;
}

static int max_of(const int32_t *a, int n)
{
    int m = a[0];
    for (int i = 1; i < n; i++)
        if (a[i] > m) m = a[i];
    return m;
}

/* The batch's ids, sources trimmed to their longest and targets time-major. */
static void gather_batch(s2s_run *run, const attn_batch *batch)
{
    const int B = run->R;
    for (int b = 0; b < B; b++) {
        memcpy(run->src + (size_t)b * run->S, batch->src + (size_t)b * batch->src_cap,
               (size_t)run->S * sizeof(int32_t));
        run->src_len[b] = batch->src_len[b];
        for (int t = 0; t < run->T; t++) {
            run->tgt_in[(size_t)t * B + b] = batch->tgt_in[(size_t)b * batch->tgt_cap + t];
            run->tgt_out[(size_t)t * B + b] = batch->tgt_out[(size_t)b * batch->tgt_cap + t];
        }
    }
}

static void count_correct(attn_seq2seq_stats *stats, const s2s_run *run, int V)
{
    int64_t tokens = 0, correct = 0;
    for (size_t i = 0; i < (size_t)run->T * run->R; i++) {
        if (run->tgt_out[i] == ATTN_TOKEN_PAD) continue;
        const float *x = run->logits + i * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (x[v] > x[best]) best = v;
        tokens++;
        correct += best == run->tgt_out[i];
    }
    stats->tokens = tokens;
    stats->correct = correct;
}

/* The forward of a pass, laying out the backward's arrays if the pass trains or
 * `keep` asks for them. */
static attn_status run_forward(attn_seq2seq *m, attn_seq2seq_stats *stats,
                               const attn_batch *batch, const attn_seq2seq_pass *pass, bool keep)
{
    s2s_rnn *r = attn_s2s_rnn(m);
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int B = batch->batch;
    attn_status s;
    r->has_forward = false;
    if ((s = attn_s2s_layout(r, B, 1, max_of(batch->src_len, B), max_of(batch->tgt_len, B),
                             pass->training || keep)))
        return s;
    run->training = pass->training;
    run->p = pass->training ? m->cfg.dropout : 0.0f;
    run->seed = pass->seed;
    run->step = pass->step;
    run->pick = training_pick(d->kind, pass->training);
    run->tau = gumbel_tau(&m->cfg, pass->step);
    run->label_smoothing = pass->label_smoothing;
    gather_batch(run, batch);
    if ((s = attn_s2s_encode(r)) || (s = attn_s2s_embed_targets(r, run->tgt_in))) return s;
    for (int t = 0; t < run->T; t++)
        if ((s = r->family->step(r, t))) return s;
    if ((s = attn_s2s_output(r)) ||
        (s = attn_cross_entropy_forward(&stats->loss, run->probs, run->row_loss, run->logits,
                                        run->tgt_out, run->T * B, d->V, ATTN_TOKEN_PAD,
                                        run->label_smoothing)))
        return s;
    count_correct(stats, run, d->V);
    return ATTN_OK;
}

attn_status attn_s2s_rnn_forward(attn_seq2seq *m, attn_seq2seq_stats *stats,
                                 const attn_batch *batch, const attn_seq2seq_pass *pass)
{
    attn_status s = run_forward(m, stats, batch, pass, false);
    attn_s2s_rnn(m)->has_forward = s == ATTN_OK && pass->training;
    return s;
}

attn_status attn_s2s_rnn_forward_kept(attn_seq2seq *m, const attn_batch *batch)
{
    const attn_seq2seq_pass pass = {.training = false};
    attn_seq2seq_stats stats;
    return run_forward(m, &stats, batch, &pass, true);
}

/* ---- the backward --------------------------------------------------------------------- */

/* db: (cols) += the column sums of d: (rows, cols), summed in double. */
static void add_column_sums(float *db, const float *d, size_t rows, int cols)
{
    for (int c = 0; c < cols; c++) {
        double sum = 0.0;
        for (size_t i = 0; i < rows; i++) sum += d[i * cols + c];
        db[c] += (float)sum;
    }
}

/* The weight gradients of the recurrence, each one GEMM over all steps. */
static void recurrence_weight_grads(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int rows = run->T * run->R, H = d->H, GH = d->GH;
    for (int l = 0; l < d->L; l++) {
        const float *dgx = attn_s2s_at(run, run->dgx, l, 0, (size_t)GH);
        const float *dgh = d->mode == ATTN_GRU ? attn_s2s_at(run, run->dgh, l, 0, (size_t)GH) : dgx;
        /* States t = 0 .. T-1 of layer l are contiguous: the cells' h inputs. */
        const float *h_in = attn_s2s_state(run, run->hs, l, 0, H);
        attn_gemm(r->precision, true, false, GH, H, rows, 1.0f, dgh, GH, h_in, H, 1.0f,
                  r->g.w_hh[l], H);
        add_column_sums(r->g.b_hh[l], dgh, (size_t)rows, GH);
        add_column_sums(r->g.b_ih[l], dgx, (size_t)rows, GH);
        if (l > 0) {
            attn_gemm(r->precision, true, false, GH, H, rows, 1.0f, dgx, GH,
                      attn_s2s_at(run, run->x, l, 0, H), H, 1.0f, r->g.w_ih[l], H);
            continue;
        }
        /* Layer 0's input is [emb; ctx] (Bahdanau) or [emb; h~ of the step before]. */
        attn_gemm(r->precision, true, false, GH, d->E, rows, 1.0f, dgx, GH, run->emb, d->E, 1.0f,
                  r->g.w_ih[0], d->in0);
        const int width = d->in0 - d->E;
        attn_gemm(r->precision, true, false, GH, width, rows, 1.0f, dgx, GH, run->in0_rest, width,
                  1.0f, r->g.w_ih[0] + d->E, d->in0);
    }
}

/* REINFORCE: each sequence's reward is minus its mean token loss; its advantage
 * over the baseline weighs the log-probabilities of its picks. Returns the mean
 * reward, for the baseline's update.
 * The reward is a mean, not a sum, over the sequence's tokens: summed, the
 * surrogate's gradient is about T times the cross-entropy's, takes over the
 * clipped gradient norm and slows everything else down (on the dates task
 * lstm-bahdanau reached 58% instead of 98% in 3000 steps). */
static double reinforce_advantages(s2s_rnn *r, float *advantage)
{
    s2s_run *run = &r->run;
    const int B = run->R;
    double mean = 0.0;
    for (int b = 0; b < B; b++) {
        double loss = 0.0;
        int tokens = 0;
        for (int t = 0; t < run->T; t++) {
            loss += run->row_loss[(size_t)t * B + b];
            tokens += run->tgt_out[(size_t)t * B + b] != ATTN_TOKEN_PAD;
        }
        advantage[b] = (float)(-loss / tokens);
        mean += advantage[b];
    }
    mean /= B;
    const double baseline = *r->baseline != 0.0f ? *r->baseline : mean;
    for (int b = 0; b < B; b++) advantage[b] = (float)(advantage[b] - baseline);
    return mean;
}

/* The surrogate's coefficients at step t, for the rows whose target counts:
 * pg = advantage / B, ent = entropy_weight / tokens. */
static void reinforce_step(s2s_rnn *r, const float *advantage, int t, float ent, int64_t tokens)
{
    s2s_run *run = &r->run;
    const int B = run->R;
    for (int b = 0; b < B; b++) {
        const bool counted = run->tgt_out[(size_t)t * B + b] != ATTN_TOKEN_PAD;
        run->pg[b] = counted ? advantage[b] / (float)B : 0.0f;
        run->ent[b] = counted ? ent / (float)tokens : 0.0f;
    }
}

static void swap(float **a, float **b)
{
    float *t = *a;
    *a = *b;
    *b = t;
}

/* The walk back over the decoder's steps from dfeat, carrying the states'
 * gradients into run->dh (of the initial states at the end); REINFORCE's
 * surrogate at each step when `reinforce` (advantage and tokens). */
static attn_status steps_backward(attn_seq2seq *m, bool reinforce, const float *advantage,
                                  int64_t tokens)
{
    s2s_rnn *r = attn_s2s_rnn(m);
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const size_t carry = (size_t)d->L * run->R * d->H;
    attn_status s;
    memset(run->dh, 0, carry * sizeof(float));
    memset(run->dh_prev, 0, carry * sizeof(float));
    if (d->mode == ATTN_LSTM) {
        memset(run->dc, 0, carry * sizeof(float));
        memset(run->dc_prev, 0, carry * sizeof(float));
    }
    memset(run->dkeys, 0, (size_t)run->Bs * run->S * d->Ka * sizeof(float));
    memset(run->denc, 0, (size_t)run->Bs * run->S * 2 * d->H * sizeof(float));
    for (int t = run->T - 1; t >= 0; t--) {
        if (reinforce) reinforce_step(r, advantage, t, m->cfg.entropy_weight, tokens);
        if ((s = r->family->step_backward(r, t))) return s;
        swap(&run->dh, &run->dh_prev);
        memset(run->dh_prev, 0, carry * sizeof(float));
        if (d->mode == ATTN_LSTM) {
            swap(&run->dc, &run->dc_prev);
            memset(run->dc_prev, 0, carry * sizeof(float));
        }
    }
    return ATTN_OK;
}

attn_status attn_s2s_rnn_weights_backward(attn_seq2seq *m, float *weights_grad)
{
    s2s_run *run = &attn_s2s_rnn(m)->run;
    attn_status s = attn_s2s_output_backward_logits(attn_s2s_rnn(m));
    if (s) return s;
    run->weights_grad = weights_grad;
    s = steps_backward(m, false, NULL, 0);
    run->weights_grad = NULL;
    return s;
}

attn_status attn_s2s_rnn_backward(attn_seq2seq *m)
{
    s2s_rnn *r = attn_s2s_rnn(m);
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    if (!r->has_forward)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "backward needs a training forward first (none since the last "
                          "backward or decode)");
    r->has_forward = false;
    const int R = run->R, H = d->H, LH = d->L * H;
    const bool reinforce = d->kind == ATTN_ATTEND_HARD_REINFORCE;
    float *advantage = run->advantage;
    double mean_reward = 0.0;
    int64_t tokens = 0;
    if (reinforce) {
        mean_reward = reinforce_advantages(r, advantage);
        for (size_t i = 0; i < (size_t)run->T * R; i++) tokens += run->tgt_out[i] != ATTN_TOKEN_PAD;
    }
    attn_status s;
    if ((s = attn_s2s_output_backward(r)) || (s = steps_backward(m, reinforce, advantage, tokens)))
        return s;
    recurrence_weight_grads(r);
    r->family->weight_grads(r);
    if ((s = attn_s2s_embed_targets_backward(r))) return s;
    /* The initial states: row block l of init is layer l's (the LSTM's cell starts
     * at the constant 0). */
    for (int b = 0; b < R; b++)
        for (int l = 0; l < d->L; l++)
            memcpy(run->dinit + (size_t)b * LH + l * H, run->dh + ((size_t)l * R + b) * H,
                   (size_t)H * sizeof(float));
    if ((s = attn_s2s_encode_backward(r))) return s;
    if (reinforce) {
        const float decay = m->cfg.baseline_decay;
        const double used = *r->baseline != 0.0f ? *r->baseline : mean_reward;
        *r->baseline = (float)(decay * used + (1.0 - decay) * mean_reward);
    }
    return ATTN_OK;
}
