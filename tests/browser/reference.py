"""What the page's neuron view and derived maps should show, computed here in
float64 from a record's float32 values (attn/capture.h), independently of
libattn: the scores of the neuron view, gradient-weighted attention, rollout
and the gradient-weighted relevance (Chefer et al., 2021). Lists of lists;
Python's standard library only."""
import math
import struct


def f32(x):
    """x rounded to float32, as libattn reads a record's JSON."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def score_terms(q, k, scale):
    """Each dimension's contribution q_d k_d scale to the score of key k."""
    return [f32(a) * f32(b) * scale for a, b in zip(q, k)]


def softmax(scores):
    top = max(scores)
    e = [math.exp(s - top) for s in scores]
    return [v / sum(e) for v in e]


def gradient_weighted(m):
    """E_h[(gradient . weights)+]: (rows, cols)."""
    heads = range(m["heads"])
    return [[sum(max(0.0, f32(m["gradient"][h][i][j]) * f32(m["weights"][h][i][j]))
                 for h in heads) / m["heads"] for j in range(m["cols"])]
            for i in range(m["rows"])]


def identity(n):
    return [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]


def matmul(a, b):
    return [[sum(a[i][t] * b[t][j] for t in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


def residual_mean(m):
    """The heads' mean plus the identity, each row over its sum: rollout's A'."""
    n = m["rows"]
    a = [[sum(f32(m["weights"][h][i][j]) for h in range(m["heads"])) / m["heads"] +
          (1.0 if i == j else 0.0) for j in range(n)] for i in range(n)]
    return [[v / sum(row) for v in row] for row in a]


def rollout(layers):
    """A'_L ... A'_1 over the maps of one site, in layer order."""
    r = residual_mean(layers[0])
    for m in layers[1:]:
        r = matmul(residual_mean(m), r)
    return r


def relevance(layers):
    """R = I, then R <- R + G R for each layer from the first."""
    n = layers[0]["rows"]
    r = identity(n)
    for m in layers:
        g = gradient_weighted(m)
        r = matmul([[g[i][j] + (1.0 if i == j else 0.0) for j in range(n)] for i in range(n)], r)
    return r
