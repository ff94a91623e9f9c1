"""Head specialisation: cluster heads by what they measure and how their attention spreads.

Each head is described by its metric profile (mean distance as a share of the image diagonal,
normalised entropy, attention to the class token, attention to itself) and its attention
pattern (the share of its attention falling in each band of distance, and on prefix tokens).
Features are standardised, heads are clustered with k-means (k chosen by the silhouette score
when not given) and projected to two dimensions with PCA or t-SNE for plotting.
"""

from __future__ import annotations

import numpy as np

from vitbench.attention.options import PROJECTIONS
from vitbench.errors import VitbenchError


def head_features(profile: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """(heads, metrics) and (heads, bins) -> (heads, features), dropping columns with a NaN.

    A column is missing for some heads when a family has no class token or no patch queries in
    some layers; such columns cannot tell those heads apart and are left out.
    """
    feats = np.concatenate([profile, pattern], axis=1)
    keep = ~np.isnan(feats).any(axis=0)
    return feats[:, keep]


def cluster_heads(
    features: np.ndarray,
    n_clusters: int | None = None,
    projection: str = "pca",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels (heads,) and a 2-D projection (heads, 2) of standardised features."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    if projection not in PROJECTIONS:
        raise VitbenchError(
            f"projection must be one of {', '.join(PROJECTIONS)}, got '{projection}'"
        )
    n = features.shape[0]
    if n < 3 or features.shape[1] == 0:
        return np.zeros(n, dtype=int), np.zeros((n, 2))
    x = StandardScaler().fit_transform(features)
    x = np.nan_to_num(x)  # constant columns standardise to 0/0
    if n_clusters is None:
        best = (-2.0, None)
        for k in range(2, min(8, n - 1) + 1):
            labels = KMeans(k, n_init=10, random_state=seed).fit_predict(x)
            if len(set(labels)) < 2:
                continue
            score = silhouette_score(x, labels)
            if score > best[0]:
                best = (score, labels)
        labels = best[1] if best[1] is not None else np.zeros(n, dtype=int)
    else:
        labels = KMeans(min(n_clusters, n), n_init=10, random_state=seed).fit_predict(x)
    if projection == "tsne":
        xy = TSNE(
            2, perplexity=min(30.0, (n - 1) / 3), random_state=seed, init="pca"
        ).fit_transform(x)
    else:
        dims = min(2, x.shape[1])
        xy = np.zeros((n, 2))
        xy[:, :dims] = PCA(dims, random_state=seed).fit_transform(x)
    return np.asarray(labels, dtype=int), xy
