#!/usr/bin/python3
"""attn analyze on records written here with known weights: each map's entropy
against sums in Python (causal maps relative to the keys up to the query), the
dates alignment (heads averaged, outputs not of the form YYYY-MM-DD and sources
that are not dates left out), the rollout against a product in Python and the
attention flow against a maximum flow in Python, gradient-weighted attention
and its relevance (Chefer et al.) against sums and products in Python, several
files pooled, and usage and runtime errors. Debian's Python, standard library only.

    check_analyze.py PATH_TO_ATTN
"""

import json
import math
import os
import random
import subprocess
import tempfile

from analyze_checks import ATTN, analyze, check, expect, finish

SEED = int(os.environ.get("ATTN_TEST_SEED", random.randrange(1 << 30)))
RNG = random.Random(SEED)


def close(a, b, what, tol=1e-5):
    check(a is not None and abs(a - b) <= tol * max(1.0, abs(b)), f"{what}: {a} != {b}")


def peaked_row(cols, peak, mass):
    """A row with `mass` at peak and the rest spread at random over the others."""
    rest = [RNG.random() + 0.1 for _ in range(cols - 1)]
    total = sum(rest)
    row = [(1 - mass) * r / total for r in rest]
    row.insert(peak, mass)
    return row


def random_row(cols, visible=None):
    visible = cols if visible is None else visible
    row = [RNG.random() + 0.05 for _ in range(visible)]
    total = sum(row)
    return [w / total for w in row] + [0.0] * (cols - visible)


def entropy(row):
    return -sum(w * math.log(w) for w in row if w > 0)


def record(path, model, queries, keys, maps):
    with open(path, "w") as f:
        json.dump({"format": "attn-attention", "version": 1, "model": model, "task": "dates",
                   "queries": queries, "keys": keys, "maps": maps}, f)
    return path


def cross_map(site, layer, weights, hard=False):
    """A map as attn writes it: named by its site with the layer for "*"."""
    return {"name": site.replace("*", str(layer), 1), "site": site, "layer": layer,
            "kind": "cross", "hard": hard,
            "heads": len(weights), "rows": len(weights[0]), "cols": len(weights[0][0]),
            "weights": weights}


def self_map(site, layer, weights, tokens="keys"):
    m = cross_map(site, layer, weights)
    m["kind"] = "self"
    m["tokens"] = tokens
    return m


def rnn_records(directory):
    """Three records of one RNN model: an aligned one with one digit astray, one whose
    output is not a date, one whose source is not. Returns the files and their rows."""
    source = list("24/11/2026")  # day 0-1, month 3-4, year 6-9
    output = list("2026-11-24") + ["</s>"]
    # The key each output step looks at most: the year's digits at the year, the
    # month's at the month, the first day digit at the day, the second at the month.
    peaks = [6, 7, 8, 9, 5, 3, 4, 2, 0, 4, 9]
    first = [peaked_row(len(source), p, 0.6 + 0.3 * RNG.random()) for p in peaks]
    second = [random_row(len(source)) for _ in range(9)]
    third = [random_row(5) for _ in range(11)]
    files = [
        record(os.path.join(directory, "a.json"), "gru-bahdanau", output, source,
               [cross_map("decoder.attention", 0, [first])]),
        record(os.path.join(directory, "b.json"), "gru-bahdanau", list("2026-1-2") + ["</s>"],
               source, [cross_map("decoder.attention", 0, [second])]),
        record(os.path.join(directory, "c.json"), "gru-bahdanau", output, list("hello"),
               [cross_map("decoder.attention", 0, [third])]),
    ]
    return files, first + second + third


def check_rnn(directory):
    files, rows = rnn_records(directory)
    got = analyze(*files)
    if got is None:
        return
    check(got["records"] == 3 and got["model"] == "gru-bahdanau", f"header {got}")
    check(got["alignment"] == {"scored": 1, "not_iso": 1, "not_a_date": 1},
          f"alignment counts {got['alignment']}")
    (m,) = got["maps"]
    check(m["rows"] == 31 and m["records"] == 3 and m["heads"] == 1, f"map {m}")
    close(m["entropy"][0], sum(entropy(r) for r in rows) / len(rows), "pooled entropy")
    close(m["relative_entropy"][0], sum(entropy(r) / math.log(len(r)) for r in rows) / len(rows),
          "pooled relative entropy")
    a = m["alignment"]
    check((a["all"]["digits"], a["all"]["aligned"]) == (8, 7), f"alignment {a['all']}")
    check((a["year"]["aligned"], a["month"]["aligned"], a["day"]["aligned"]) == (4, 2, 1),
          f"alignment by field {a}")
    close(a["all"]["score"], 7 / 8, "alignment score")
    check(got["rollout"] == [], "no rollout for one cross map")
    text = subprocess.run([ATTN, "analyze", files[0]], capture_output=True, text=True).stdout
    check("alignment: 87.5% of 8 digits (year 100.0%, month 100.0%, day 50.0%)" in text,
          f"text output {text!r}")


def matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


def residual_mean(heads):
    n = len(heads[0])
    a = [[sum(h[i][j] for h in heads) / len(heads) + (i == j) for j in range(n)]
         for i in range(n)]
    return [[w / sum(row) for w in row] for row in a]


def attention_flow(mats):
    """The maximum flow from each token i of the top level to each input token j
    of the network whose edge from token x at level l to token y at level l - 1
    carries mats[l - 1][x][y]: Edmonds-Karp on the whole graph, written apart
    from attn's Dinic."""
    L, n = len(mats), len(mats[0])
    nodes = (L + 1) * n

    def flow(i, j):
        cap = [[0.0] * nodes for _ in range(nodes)]
        for level, a in enumerate(mats, start=1):
            for x in range(n):
                for y in range(n):
                    cap[level * n + x][(level - 1) * n + y] = a[x][y]
        source, total = L * n + i, 0.0
        while True:
            parent, queue = {source: None}, [source]
            for u in queue:
                for v in range(nodes):
                    if v not in parent and cap[u][v] > 1e-12:
                        parent[v] = u
                        queue.append(v)
            if j not in parent:
                return total
            path, v = [], j
            while parent[v] is not None:
                path.append((parent[v], v))
                v = parent[v]
            push = min(cap[u][v] for u, v in path)
            for u, v in path:
                cap[u][v] -= push
                cap[v][u] += push
            total += push

    return [[flow(i, j) for j in range(n)] for i in range(n)]


def check_tops(r, prefix, want, what, other=True):
    """r's top key and (other) top other key of each query (r[prefix + "top_key"],
    ...) against the matrix want: the largest with any weight, up to ties."""
    for i, row in enumerate(want):
        tops = [(r[prefix + "top_key"][i], [j for j in range(len(row)) if row[j] > 0])]
        if other:
            tops.append((r[prefix + "top_other_key"][i],
                         [j for j in range(len(row)) if j != i and row[j] > 0]))
        for top, keys in tops:
            if not keys:
                check(top is None, f"{what} query {i}: {top}, want none")
                continue
            best = max(keys, key=row.__getitem__)
            check(top is not None and top[0] in keys and row[top[0]] >= row[best] - 1e-6,
                  f"{what} query {i}: key {top}, want {best}")
            close(top and top[1], row[best], f"{what} query {i} weight")


def check_transformer(directory):
    source = list("Nov 24, 2026")  # month 0-2, day 4-5, year 8-11
    output = list("2026-11-24") + ["</s>"]
    S, T, H = len(source), len(output), 2
    encoder = [[[random_row(S) for _ in range(S)] for _ in range(H)] for _ in range(2)]
    decoder = [[[random_row(T, i + 1) for i in range(T)] for _ in range(H)] for _ in range(2)]
    # Head 0 looks hard at the wrong place, head 1 harder at the right one: their
    # mean looks at the right one.
    right = [8, 9, 10, 11, 3, 0, 1, 7, 4, 5, 11]
    wrong = [(p + 6) % S for p in right]
    cross = [[[peaked_row(S, p, 0.55) for p in wrong], [peaked_row(S, p, 0.9) for p in right]],
             [[random_row(S) for _ in range(T)] for _ in range(H)]]
    maps = []
    for layer in range(2):
        maps.append(self_map("transformer.encoder.layers.*.self_attn", layer,
                             encoder[layer]))
        maps.append(self_map("transformer.decoder.layers.*.self_attn", layer,
                             decoder[layer], "queries"))
        maps.append(cross_map("transformer.decoder.layers.*.multihead_attn", layer,
                              cross[layer]))
    path = record(os.path.join(directory, "t.json"), "transformer", output, source, maps)
    got = analyze(path)
    if got is None:
        return
    by_name = {m["name"]: m for m in got["maps"]}
    dec = by_name["transformer.decoder.layers.1.self_attn"]
    for h in range(H):
        rows = decoder[1][h]
        close(dec["entropy"][h], sum(entropy(r) for r in rows) / T, f"causal entropy head {h}")
        close(dec["relative_entropy"][h],
              sum(entropy(rows[i]) / math.log(i + 1) for i in range(1, T)) / (T - 1),
              f"causal relative entropy head {h}")
    enc = by_name["transformer.encoder.layers.0.self_attn"]
    close(enc["mean_relative_entropy"],
          sum(entropy(r) / math.log(S) for h in encoder[0] for r in h) / (H * S),
          "encoder relative entropy")
    first = by_name["transformer.decoder.layers.0.multihead_attn"]["alignment"]["all"]
    check((first["digits"], first["aligned"]) == (8, 8), f"heads' mean alignment {first}")
    check(by_name["transformer.encoder.layers.0.self_attn"]["alignment"] is None,
          "self maps have no alignment")
    rollouts = {r["site"]: r for r in got["rollout"]}
    check(sorted(rollouts) == ["transformer.decoder.layers.*.self_attn",
                               "transformer.encoder.layers.*.self_attn"],
          f"rollout sites {sorted(rollouts)}")
    for site, layers, tokens in (("transformer.encoder.layers.*.self_attn", encoder, source),
                                 ("transformer.decoder.layers.*.self_attn", decoder, output)):
        r = rollouts.get(site)
        if r is None:
            continue
        mats = [residual_mean(layers[0]), residual_mean(layers[1])]
        check(r["layers"] == 2 and r["tokens"] == tokens, f"rollout {site} tokens {r}")
        check_tops(r, "", matmul(mats[1], mats[0]), f"rollout {site}")
        check(r["flow"] is True, f"attention flow {site} computed")
        check_tops(r, "flow_", attention_flow(mats), f"attention flow {site}")


def gradient_weighted(weights, gradient):
    """The heads' mean of the positive part of gradient * weights: (rows, cols)."""
    heads, rows, cols = len(weights), len(weights[0]), len(weights[0][0])
    return [[sum(max(0.0, gradient[h][i][j] * weights[h][i][j]) for h in range(heads)) / heads
             for j in range(cols)] for i in range(rows)]


def random_gradient(weights):
    return [[[RNG.uniform(-1, 1) for _ in row] for row in head] for head in weights]


def check_gradient(directory):
    source = list("24.11.2026")  # day 0-1, month 3-4, year 6-9
    output = list("2026-11-24") + ["</s>"]
    S, T, H = len(source), len(output), 2
    encoder = [[[random_row(S) for _ in range(S)] for _ in range(H)] for _ in range(2)]
    cross = [[[random_row(S) for _ in range(T)] for _ in range(H)] for _ in range(2)]
    maps, grads = [], {}
    for layer in range(2):
        for m in (self_map("transformer.encoder.layers.*.self_attn", layer, encoder[layer]),
                  cross_map("transformer.decoder.layers.*.multihead_attn", layer,
                            cross[layer])):
            m["gradient"] = random_gradient(m["weights"])
            grads[m["name"]] = gradient_weighted(m["weights"], m["gradient"])
            maps.append(m)
    path = os.path.join(directory, "g.json")
    with open(path, "w") as f:
        json.dump({"format": "attn-attention", "version": 1, "model": "transformer",
                   "task": "dates", "queries": output, "keys": source, "maps": maps,
                   "gradient_step": -1}, f)
    got = analyze("--gradient", path)
    if got is None:
        return
    weighted = {w["map"]: w for w in got["gradient_weighted"]}
    check(sorted(weighted) == sorted(grads), f"gradient-weighted maps {sorted(weighted)}")
    for name, want in grads.items():
        w = weighted.get(name)
        if w is None:
            continue
        check(w["gradient_step"] == -1 and w["file"] == path, f"{name}: {w['gradient_step']}")
        self = "encoder" in name
        check_tops(w, "", want, f"gradient-weighted {name}", other=self)
        check(("top_other_key" in w) == self, f"{name}: top other keys for self maps only")
    # Chefer's rule: R = I, R <- R + A R from the first layer
    site = "transformer.encoder.layers.*.self_attn"
    relevance = [[float(i == j) for j in range(S)] for i in range(S)]
    for layer in range(2):
        a = grads[site.replace("*", str(layer))]
        step = matmul(a, relevance)
        relevance = [[relevance[i][j] + step[i][j] for j in range(S)] for i in range(S)]
    r = {x["site"]: x for x in got["rollout"]}.get(site)
    check(r is not None and r["gradient"] is True, f"relevance of {site} computed")
    if r is not None:
        check_tops(r, "gradient_", relevance, f"relevance {site}")
    # the alignment of the gradient-weighted cross-attention
    fields = [1, 1, 0, 2, 2, 0, 3, 3, 3, 3]  # day 1, month 2, year 3 of each source char
    want_field = [3, 3, 3, 3, 0, 2, 2, 0, 1, 1]
    for layer in range(2):
        a = grads[f"transformer.decoder.layers.{layer}.multihead_attn"]
        hits = sum(fields[max(range(S), key=a[i].__getitem__)] == want_field[i]
                   for i in range(10) if want_field[i])
        m = {x["name"]: x for x in got["maps"]}[f"transformer.decoder.layers.{layer}.multihead_attn"]
        al = m["alignment"]["all"]
        check((al["gradient_digits"], al["gradient_aligned"]) == (8, hits),
              f"gradient-weighted alignment layer {layer}: {al}, want 8 digits, {hits} aligned")
    text = subprocess.run([ATTN, "analyze", path], capture_output=True, text=True).stdout
    check("gradient-weighted attention of transformer.decoder.layers.1.multihead_attn "
          "(log p of the whole output)" in text and "gradient-weighted alignment:" in text
          and "gradient-weighted relevance of " + site in text, f"analyze text: {text}")
    # gradients on the cross maps only: no relevance of the self-attention
    for m in maps:
        if m["kind"] == "self":
            del m["gradient"]
    with open(path, "w") as f:
        json.dump({"format": "attn-attention", "version": 1, "model": "transformer",
                   "task": "dates", "queries": output, "keys": source, "maps": maps,
                   "gradient_step": -1}, f)
    got = analyze(path)
    check(got is not None and len(got["gradient_weighted"]) == 2 and
          all(r["gradient"] is False for r in got["rollout"]),
          "some maps with gradients: theirs reported, no relevance without every layer's")
    # without gradients: nothing of them, and a clear refusal when they are asked for
    for m in maps:
        m.pop("gradient", None)
    plain = record(os.path.join(directory, "plain.json"), "transformer", output, source, maps)
    got = analyze(plain)
    check(got is not None and got["gradient_weighted"] == [] and
          all(r["gradient"] is False for r in got["rollout"]), "no gradients, none reported")
    expect(1, "plain.json has no gradients; record them with 'attn translate' or 'attn generate' "
              "--attention FILE --gradient", "--gradient", plain)


def check_errors(directory):
    files, _ = rnn_records(directory)
    other = record(os.path.join(directory, "o.json"), "lstm-bahdanau", list("1999-01-02"),
                   list("2/1/1999"), [cross_map("decoder.attention", 0,
                                                [[random_row(8) for _ in range(10)]])])
    expect(0, "usage: attn analyze", "--help")
    expect(2, "give one or more record FILEs")
    expect(2, "unknown option '--bogus'", "--bogus", files[0])
    expect(1, "missing.json", os.path.join(directory, "missing.json"))
    expect(1, "analyse one model's records at a time", files[0], other)
    broken = os.path.join(directory, "broken.json")
    with open(broken, "w") as f:
        f.write('{"format": "attn-attention", "version": 1, "model"')
    expect(1, "broken.json", broken)
    # A map's name must be what its site names in its layer.
    moved = cross_map("decoder.layers.*.attention", 1, [[random_row(8) for _ in range(10)]])
    moved["layer"] = 2
    expect(1, "is not what its site 'decoder.layers.*.attention' names in layer 2",
           record(os.path.join(directory, "moved.json"), "lstm-bahdanau", list("1999-01-02"),
                  list("2/1/1999"), [moved]))
    # A record written before maps had sites is read, each map a site of its own.
    old = cross_map("decoder.attention", 0, [[random_row(8) for _ in range(10)]])
    del old["site"]
    expect(0, "decoder.attention",
           record(os.path.join(directory, "old.json"), "lstm-bahdanau", list("1999-01-02"),
                  list("2/1/1999"), [old]))


def main():
    with tempfile.TemporaryDirectory() as directory:
        for part in (check_rnn, check_transformer, check_gradient, check_errors):
            os.makedirs(os.path.join(directory, part.__name__))
            part(os.path.join(directory, part.__name__))
    finish("analyze", f" (repeat with ATTN_TEST_SEED={SEED})")


if __name__ == "__main__":
    main()
