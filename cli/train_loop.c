/* What the training runs of every model kind share: gradient clipping, and the
 * messages of a run that stopped early or diverged. */
#include <math.h>
#include <stdio.h>

#include "attn/attn.h"
#include "cli.h"

int cli_train_stopped(int64_t step, int64_t steps, const char *out)
{
    bool interrupted = cli_interrupted();
    fprintf(stderr, "%s after step %lld of %lld; continue with: attn train --resume %s\n",
            interrupted ? "interrupted" : "stopped", (long long)step, (long long)steps, out);
    return interrupted ? EXIT_INTERRUPTED : EXIT_OK;
}

double cli_clip_gradients(attn_params *params, float clip)
{
    return attn_clip_grad_norm(params->grad, params->total, clip > 0 ? clip : INFINITY);
}

int cli_train_diverged(int64_t step, double loss, double norm, const char *out)
{
    fprintf(stderr,
            "attn train: diverged at step %lld (loss %g, gradient norm %g); the last good "
            "checkpoint is %s\n",
            (long long)step, loss, norm, out);
    return EXIT_RUNTIME;
}
