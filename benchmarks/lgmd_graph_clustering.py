"""LGMD's learned graph and representation: support recovery (F1) and clustering (ACC / NMI).

1. Synthetic data with a known sparse column precision Theta_V (a chain plus random edges, p = 60):
   V ~ MN(0, Theta_V^-1, I_k), X = U V^T + noise. F1 of the learned Theta_V's edges against the truth, for a
   few rho values, next to graphical lasso on the covariance of X's columns (the same ADMM, best-case
   baseline), a kNN graph of the SVD factors, and |correlation| thresholded at the true edge count.
2. Clustering: k-means on the row embedding (U) of scikit-learn's digits (500 images, 10 classes; 30% of the
   pixels hidden), ACC with Hungarian matching and NMI over k-means seeds, against PCA, NMF, SVD imputation
   and fixed-kNN-graph MF; "LGMD" learns attractive graphs, "LGMD (glasso)" unconstrained ones. Then real items: Beauty's cf_embedding from ``hf-simcit lgmd`` (if the run folder
   given by --beauty-run exists) against truncated-SVD item factors of the same training matrix, labels =
   the top-level category of each item.

Run: ``nice -n 10 .venv/bin/python benchmarks/lgmd_graph_clustering.py [--beauty-run DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from hf_simcit.lgmd import LGMD, admm_graphical_lasso

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reporting  # noqa: E402
from lgmd_completion import em_svd  # noqa: E402


def edge_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    iu = np.triu_indices_from(truth, 1)
    p, t = pred[iu] != 0, truth[iu] != 0
    tp = (p & t).sum()
    if tp == 0:
        return 0.0
    precision, recall = tp / p.sum(), tp / t.sum()
    return float(2 * precision * recall / (precision + recall))


def sparse_precision(p: int, rng) -> np.ndarray:
    theta = np.eye(p)
    for i in range(p - 1):
        theta[i, i + 1] = theta[i + 1, i] = 0.4
    for _ in range(p // 2):
        i, j = rng.choice(p, 2, replace=False)
        theta[i, j] = theta[j, i] = rng.choice([-0.3, 0.3])
    shift = max(0.0, 0.1 - np.linalg.eigvalsh(theta)[0])
    return theta + shift * np.eye(p)


def support_recovery(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    p, k, m = 60, 40, 300
    theta = sparse_precision(p, rng)
    cov = np.linalg.inv(theta)
    V = rng.multivariate_normal(np.zeros(p), cov, size=k).T  # (p, k): columns i.i.d. N(0, Theta^-1)
    U = rng.standard_normal((m, k))
    X = U @ V.T + 0.5 * rng.standard_normal((m, p))
    out = []
    for rho in (0.2, 0.5, 1.0):
        model = LGMD(k, rho_u=0.5, rho_v=rho, max_iter=15).fit(X)
        out.append({"method": f"LGMD Theta_V (rho={rho})", "f1": edge_f1(model.theta_v_.toarray(), theta),
                    "edges": (model.theta_v_.nnz - p) // 2})
    S = np.cov(X.T)
    for lam_rel in (0.05, 0.1, 0.2):
        lam = lam_rel * np.diag(S).mean()
        est, _, _ = admm_graphical_lasso(torch.tensor(S), lam, max_iter=2000)
        out.append({"method": f"glasso on cov(X) (lam={lam_rel})", "f1": edge_f1(est.numpy(), theta),
                    "edges": int(((est.numpy() != 0).sum() - p) // 2)})
    n_true = int((np.triu(theta, 1) != 0).sum())
    corr = np.abs(np.corrcoef(X.T))
    np.fill_diagonal(corr, 0)
    iu = np.triu_indices(p, 1)
    cut = np.sort(corr[iu])[-n_true]
    out.append({"method": "|corr(X)| top-E", "f1": edge_f1((corr >= cut).astype(float), theta), "edges": n_true})
    u, s, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    factors = vt[:k].T * s[:k]
    from sklearn.neighbors import kneighbors_graph

    knn = kneighbors_graph(factors, 3).toarray()
    out.append({"method": "kNN(3) of SVD factors", "f1": edge_f1(np.maximum(knn, knn.T), theta),
                "edges": int(np.maximum(knn, knn.T)[iu].sum())})
    for row in out:
        row["true_edges"] = n_true
    return out


def cluster_scores(emb: np.ndarray, labels: np.ndarray, seeds=(0, 1, 2)) -> tuple[float, float, float, float]:
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    classes = np.unique(labels)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    accs, nmis = [], []
    for seed in seeds:
        pred = KMeans(len(classes), n_init=10, random_state=seed).fit_predict(emb)
        table = np.zeros((len(classes), len(classes)))
        for c, t in zip(pred, np.searchsorted(classes, labels)):
            table[c, t] += 1
        r, c = linear_sum_assignment(-table)
        accs.append(table[r, c].sum() / len(labels))
        nmis.append(normalized_mutual_info_score(labels, pred))
    return float(np.mean(accs)), float(np.std(accs)), float(np.mean(nmis)), float(np.std(nmis))


ATTRACTIVE = {"attractive": True, "base": 0.3, "prior_weight": 3.0, "rho_u": 0.05, "rho_v": 0.05, "ridge": 0.3,
              "admm_iter": 50}


def digits_clustering() -> list[dict]:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import NMF, PCA

    data = load_digits()
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(data.target == d), 50, replace=False) for d in range(10)])
    X, y = data.data[rows] / 16.0, data.target[rows]
    mask = rng.random(X.shape) >= 0.3
    k = 10
    means = np.nanmean(np.where(mask, X, np.nan), axis=0)
    filled = np.where(mask, X, np.nan_to_num(means))
    embeddings = {"raw pixels (mean-imputed)": filled}
    embeddings["PCA"] = PCA(k, random_state=0).fit_transform(filled)
    embeddings["NMF"] = NMF(k, init="nndsvda", max_iter=500, random_state=0).fit_transform(filled)
    low = em_svd(np.nan_to_num(X), mask, k)
    u, s, _ = np.linalg.svd(low, full_matrices=False)
    embeddings["SVD-impute"] = u[:, :k] * s[:k]
    embeddings["fixed-kNN MF"] = LGMD(k, max_iter=20, center=True, learn_graph=False, graph_weight=1.0).fit(
        X, mask).U_
    t0 = time.time()
    embeddings["LGMD (glasso)"] = LGMD(k, max_iter=20, center=True).fit(X, mask).U_
    t1 = time.time()
    # attractive graphs, with the options the completion benchmark picks on digits (held-out entries)
    embeddings["LGMD"] = LGMD(k, max_iter=20, center=True, **ATTRACTIVE).fit(X, mask).U_
    lgmd_s = time.time() - t1
    glasso_s = t1 - t0
    out = []
    for name, emb in embeddings.items():
        acc, acc_sd, nmi, nmi_sd = cluster_scores(emb, y)
        out.append({"data": "digits (500, 30% missing)", "method": name, "acc": acc, "acc_sd": acc_sd,
                    "nmi": nmi, "nmi_sd": nmi_sd})
    out[-1]["note"] = f"LGMD fit {lgmd_s:.1f} s, LGMD (glasso) {glasso_s:.1f} s"
    return out


def beauty_clustering(run: Path) -> list[dict]:
    from datasets import load_from_disk
    from sklearn.decomposition import TruncatedSVD

    from hf_simcit.data import load_prepared, training_matrix

    items = load_from_disk(str(run / "lgmd" / "items"))
    rec = load_prepared(run / "data")
    tsv = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon2014_beauty" / "items.tsv"
    category = {}
    for line in tsv.read_text().splitlines()[1:]:
        parts = line.split("\t")
        cats = [c.strip() for c in parts[3].split("|")] if len(parts) > 3 else []
        if len(cats) > 1 and cats[1]:
            category[parts[0]] = cats[1]
    ids = items["item_id"]
    lgmd = items["cf_embedding"]
    keep = [i for i, (iid, e) in enumerate(zip(ids, lgmd)) if e is not None and iid in category]
    labels_all = np.array([category[ids[i]] for i in keep])
    common = [c for c, n in zip(*np.unique(labels_all, return_counts=True)) if n >= 100]
    sel = np.array([lab in common for lab in labels_all])
    keep = np.array(keep)[sel]
    labels = labels_all[sel]
    lgmd_emb = np.asarray([lgmd[i] for i in keep], dtype=np.float32)
    svd = TruncatedSVD(lgmd_emb.shape[1], random_state=0).fit(training_matrix(rec).T.tocsr())
    svd_emb = svd.transform(training_matrix(rec).T.tocsr())[keep]
    out = []
    for name, emb in (("truncated SVD (32)", svd_emb), ("LGMD cf_embedding (32)", lgmd_emb)):
        acc, acc_sd, nmi, nmi_sd = cluster_scores(emb, labels)
        out.append({"data": f"Beauty items ({len(keep)}, {len(common)} categories)", "method": name,
                    "acc": acc, "acc_sd": acc_sd, "nmi": nmi, "nmi_sd": nmi_sd})
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beauty-run", default=None, help="folder with data/ and lgmd/ from hf-simcit")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    start = time.time()
    support = [row | {"seed": s} for s in range(args.seeds) for row in support_recovery(s)]
    by_method: dict[str, list] = {}
    for row in support:
        by_method.setdefault(row["method"], []).append(row)
    lines = ["| method | edge F1 (mean over seeds) | edges found | true edges |", "|---|---|---|---|"]
    for method, rows in by_method.items():
        lines.append(f"| {method} | {np.mean([r['f1'] for r in rows]):.3f} | "
                     f"{np.mean([r['edges'] for r in rows]):.0f} | {rows[0]['true_edges']} |")
    support_table = "\n".join(lines)
    print(support_table, flush=True)
    clusters = digits_clustering()
    if args.beauty_run and (Path(args.beauty_run) / "lgmd" / "items").is_dir():
        clusters += beauty_clustering(Path(args.beauty_run))
    lines = ["| data | method | ACC (mean +- sd, 3 k-means seeds) | NMI | note |", "|---|---|---|---|---|"]
    for r in clusters:
        lines.append(f"| {r['data']} | {r['method']} | {r['acc']:.3f} +- {r['acc_sd']:.3f} | "
                     f"{r['nmi']:.3f} +- {r['nmi_sd']:.3f} | {r.get('note', '')} |")
    cluster_table = "\n".join(lines)
    print(cluster_table)
    total = time.time() - start
    cmd = "nice -n 10 .venv/bin/python benchmarks/lgmd_graph_clustering.py" + (
        f" --beauty-run {args.beauty_run}" if args.beauty_run else "")
    reporting.append_results(
        f"\n## LGMD support recovery and clustering ({reporting.utc_minute()})\n\n"
        f"Machine: 2 shared CPU cores (torch 1 thread). Total {total:.0f} s. Command: `{cmd}`\n\n"
        "Support recovery: p = 60 columns, chain + 30 random edges, rank 40, 300 rows, noise 0.5, "
        f"{args.seeds} seeds.\n\n" + support_table + "\n\nClustering (k-means on L2-normalised embeddings):\n\n"
        + cluster_table + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
