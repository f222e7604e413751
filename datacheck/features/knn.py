"""The audit's one kNN graph: the nearest neighbours of every embedded sample, built once.

Every check that needs neighbours in embedding space (outliers, non_iid, ...) reads this
graph instead of searching again. It is built with as many neighbours as the most demanding
detector of the audit asks for; a detector that wants fewer reads the first columns (the
search ranks neighbours by distance, so the first ``k`` columns of a larger graph are the
``k``-graph), which keeps each check's findings independent of which others run.

Search: exact (blocked matrix products on the device, :func:`datacheck.engine.knn.knn_cosine`)
up to :data:`EXACT_MAX` samples, where it takes seconds; above, where exact search grows
as N² (100k x 512: about a minute on 2 cores, 1M: hours), an inverted file: ``sqrt(8·N)``
lists whose centres faiss trains (``IndexIVFFlat``'s coarse K-means, inner product on unit
vectors, an HNSW graph over the centres to find a sample's nearest lists). Every sample is a
query, so for long vectors the search goes list by list: one matrix product of the queries
probing a list against its members (the neighbours faiss's per-query scan finds with the same
probes, at BLAS speed), with numpy on the CPU and torch on an accelerator; vectors of at most
:data:`FAISS_SCAN_MAX_DIM` values are searched by faiss's own per-query scan on the CPU, faster
there (:class:`_FaissLists`). ``nprobe`` is raised until the
recall@k measured against exact search on a sample of queries reaches :data:`TARGET_RECALL`, or
until a query would scan more than :func:`max_scanned` samples (embeddings an inverted file
cannot index: then the graph says so, ``recall_target_met`` false). The method and the measured
recall are recorded in ``summary.json``. Memory: the graph (N·k), one block of queries (at most
:data:`_QUERY_BLOCK` x D float32), its table of best neighbours per probed list (at most
:data:`_SLOT_BYTES`) and the inputs; each list is read from the embeddings (a
memory map is never copied whole), but for the short vectors faiss scans, of which its index
holds a copy (at most 1 KB a sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine.similarity import other_than_self

#: Most neighbours a detector may ask of the graph (its ``k`` parameter), checked before any
#: work: the graph holds N x k of them, so k = 10**12 was an allocation failure, not an error.
MAX_NEIGHBOURS = 1000
#: Up to this many embedded samples the graph is exact.
EXACT_MAX = 50_000
#: Recall@k the approximate graph must reach on the sampled queries (when nprobe allows).
TARGET_RECALL = 0.95
#: Queries on which the approximate graph's recall is measured against exact search.
RECALL_QUERIES = 1_000
#: nprobe tried first; it doubles until the recall target is met.
_FIRST_NPROBE = 4
#: Training points per inverted list (faiss warns below 39).
_TRAIN_PER_LIST = 40
#: Up to this many lists the coarse K-means assigns its points exactly (see :func:`_ivf_graph`).
_FLAT_TRAINING_MAX_LISTS = 1600
#: Rows per block of normalisation, adding and searching: bounded temporaries at any N.
_BLOCK = 65_536
#: Queries per block of the approximate search: bounds its (queries x nprobe) probe table and
#: the per-list gathers, while each list's matrix product stays large enough for BLAS.
_QUERY_BLOCK = 65_536
#: Candidates the HNSW graph over the list centres explores at least (faiss's default).
_HNSW_EF_SEARCH = 16
#: Distance slack when a found neighbour is compared with the true k-th (float32 rounding of
#: one cosine by two summation orders is ~1e-7).
_RECALL_TOLERANCE = 1e-5
#: Bound on a query block's table of per-list best neighbours (:meth:`_InvertedLists._scan`).
_SLOT_BYTES = 256 * 2**20
#: Up to this dimension the approximate graph is searched by faiss's own inverted file on the
#: CPU (:class:`_FaissLists`), above it list by list with BLAS (:class:`_InvertedLists`).
FAISS_SCAN_MAX_DIM = 256
#: Values (samples x dimensions) one query of the approximate graph may compare: bounds its
#: search where the recall target would need most of the data scanned (:func:`max_scanned`).
_SCAN_VALUES = 2**23


@dataclass(frozen=True)
class KnnGraph:
    """Nearest neighbours by cosine distance over the embedded samples.

    Attributes
    ----------
    rows : ndarray of shape (M,), int64
        Manifest rows of the embedded samples (finite embedding), ascending.
    indices : ndarray of shape (M, k), int64
        Neighbours of each of them as positions in ``rows`` (so ``rows[indices]`` are
        manifest rows), nearest first; never the sample itself; -1 where the approximate
        search found fewer than k.
    distances : ndarray of shape (M, k), float32
        ``1 - cosine similarity``, ascending along each row (``inf`` where ``indices`` is -1).
    method : str
        ``"exact"`` or ``"ivf"``.
    info : dict
        How it was built: ``method``, ``k``, ``samples``, and for ``ivf`` ``nlist``,
        ``nprobe`` and the measured ``recall_at_k`` (recorded in ``summary.json``).
    """

    rows: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    method: str = "exact"
    info: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def first(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` of the ``k`` nearest (k <= :attr:`k`), each (M, k)."""
        if k > self.k:
            raise ValueError(f"the graph has {self.k} neighbours per sample, {k} were asked for")
        return self.distances[:, :k], self.indices[:, :k]


def build_knn_graph(embeddings: np.ndarray | None, k: int, device: str = "cpu", *, exact_max: int | None = None,
                    seed: int = 0, recall_k: int | None = None) -> KnnGraph:
    """The ``k``-nearest-neighbour graph of the finite rows of ``embeddings`` by cosine distance.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D) or None
        May be a memory map: it is read in blocks. Rows with a NaN are left out (not embedded).
    k : int
        Neighbours per sample; fewer when there are not ``k + 1`` embedded samples.
    device : str
        torch device of the exact search.
    exact_max : int, optional
        Largest number of embedded samples searched exactly (default :data:`EXACT_MAX`).
    seed : int
        Seeds the index's training sample and the recall queries.
    recall_k : int, optional
        The approximate graph's recall target is met on each sample's ``recall_k`` nearest
        (default ``k``). A reader that needs only the nearest few with certainty (duplicate
        candidates: a copy is its original's nearest) asks for fewer; the graph still has
        ``k`` columns.
    """
    if embeddings is None:
        empty = np.zeros(0, np.int64)
        return KnnGraph(empty, np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32), info={"method": "none"})
    rows = _finite_rows(embeddings)
    m = len(rows)
    k = min(k, m - 1)
    if k < 1:  # no neighbour to find: fewer than 2 embedded samples, or none asked for
        return KnnGraph(rows, np.zeros((m, 0), np.int64), np.zeros((m, 0), np.float32),
                        info={"method": "exact", "k": 0, "samples": m})
    if m <= (EXACT_MAX if exact_max is None else exact_max):
        from ..engine.knn import knn_cosine  # torch: only once a graph is needed

        distances, indices = knn_cosine(_take(embeddings, rows), k, device=device)
        return KnnGraph(rows, indices, distances, "exact", {"method": "exact", "k": k, "samples": m})
    return _ivf_graph(embeddings, rows, k, seed, device, min(recall_k or k, k))


def _ivf_graph(embeddings: np.ndarray, rows: np.ndarray, k: int, seed: int, device: str, recall_k: int) -> KnnGraph:
    import faiss

    m, d = len(rows), embeddings.shape[1]
    rng = np.random.default_rng(seed)
    # A query costs about nlist·D (finding its lists) + nprobe·(N/nlist)·D (scanning them),
    # least at nlist = sqrt(nprobe·N); an HNSW graph over the list centres makes the first term
    # small too (a flat one costs N·nlist·D at add and again at search: 1M did not finish in 17 min).
    nlist = int(max(1, min(max(16, np.sqrt(_FIRST_NPROBE * 2 * m)), m // _TRAIN_PER_LIST)))  # 1: a small exact_max
    quantizer = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed % 2**31  # the coarse K-means: deterministic for a seed (faiss takes a C int)
    # The coarse K-means dominates the build if trained as faiss suggests (256 points per list,
    # 25 iterations: 65 s of a 100k x 512 graph); 40 points and 10 iterations place the lists
    # well enough for the recall target, which nprobe then secures (measured below).
    index.cp.niter = 10
    # Each K-means step assigns the training points to their nearest centre through the
    # quantizer itself unless told otherwise: through the HNSW graph, rebuilt every step. Up
    # to a few thousand lists an exact assignment (one BLAS product per step) is cheaper:
    # 100k x 512 (894 lists) trained in 3.9 s instead of 11.8 s, 100k image descriptors in
    # 2.0 s instead of 4.5 s; at 1M x 512 (2,828 lists) it took 41 s against 22 s.
    if nlist <= _FLAT_TRAINING_MAX_LISTS:
        index.clustering_index = faiss.IndexFlatIP(d)
    train = np.sort(rng.choice(m, size=min(m, _TRAIN_PER_LIST * nlist), replace=False))
    index.train(_unit(_take(embeddings, rows[train])))  # trains the quantizer: the list centres
    if d <= FAISS_SCAN_MAX_DIM and str(device).startswith("cpu"):
        lists = _FaissLists.build(embeddings, rows, index, quantizer)
    else:
        lists = _InvertedLists.build(embeddings, rows, quantizer, nlist)

    # Recall against exact search on a sample of queries; nprobe doubles until it is reached.
    queries = np.sort(rng.choice(m, size=min(m, RECALL_QUERIES), replace=False))
    true_distances = _exact_distances(embeddings, rows, queries, k)
    query_vectors = _unit(_take(embeddings, rows[queries]))
    # The scan is bounded (see max_scanned): where the target needs more, the graph is built
    # at the last nprobe within the bound and says so (``recall_target_met``).
    most = max_scanned(m, d)
    nprobe = min(_FIRST_NPROBE, nlist)
    while True:
        found = lists.search(query_vectors, nprobe, k, queries, device)[0]
        recall = _recall(found[:, :recall_k], true_distances[:, :recall_k])
        wider = min(2 * nprobe, nlist)
        if recall >= TARGET_RECALL or nprobe >= nlist or lists.scanned(query_vectors, wider) > most:
            break
        nprobe = wider
    distances, indices = lists.search_all(nprobe, k, device)
    info = {"method": "ivf", "k": k, "samples": m, "nlist": nlist, "nprobe": int(nprobe),
            "recall_at_k": _shown_recall(recall), "recall_k": recall_k, "recall_queries": len(queries),
            "scanned_per_query": int(round(lists.scanned(query_vectors, nprobe))),
            "recall_target_met": bool(recall >= TARGET_RECALL)}
    return KnnGraph(rows, indices, distances, "ivf", info)


@dataclass
class _InvertedLists:
    """The embedded samples grouped by their nearest list centre (positions only: each list's
    vectors are read from the embeddings, a memory map or not, when it is scanned).

    Searching an inverted file one query at a time reads each probed list from memory again
    per query (faiss ``IndexIVFFlat``: 9 minutes for 1M x 512 on 2 cores). When every sample
    is a query, the queries can go list by list instead: the queries that probe a list against
    its members is one matrix product, which finds exactly the neighbours the per-query scan
    finds with the same probes, at BLAS speed. No grouped copy of the vectors is kept (N·D
    float32: 2 GB at 1M x 512); a list is gathered and normalised when a query block scans it.

    Attributes
    ----------
    embeddings : ndarray of shape (N, D)
        The audit's embeddings (rows not in ``rows`` are never read).
    rows : ndarray of shape (M,), int64
        The graph's rows of ``embeddings``.
    order : ndarray of shape (M,), int64
        Graph positions list by list (ascending within a list, so a list is read in row order).
    starts : ndarray of shape (nlist + 1,), int64
        List ``l`` is ``order[starts[l]:starts[l + 1]]``.
    quantizer : faiss.Index
        The trained list centres: finds a vector's nearest lists.
    """

    embeddings: np.ndarray
    rows: np.ndarray
    order: np.ndarray
    starts: np.ndarray
    quantizer: object

    @classmethod
    def build(cls, embeddings: np.ndarray, rows: np.ndarray, quantizer, nlist: int) -> _InvertedLists:
        m = len(rows)
        assigned = np.empty(m, np.int64)
        for start in range(0, m, _BLOCK):
            assigned[start : start + _BLOCK] = quantizer.search(
                _unit(_take(embeddings, rows[start : start + _BLOCK])), 1)[1][:, 0]
        order = np.argsort(assigned, kind="stable")
        starts = np.searchsorted(assigned[order], np.arange(nlist + 1)).astype(np.int64)
        return cls(embeddings, rows, order, starts, quantizer)

    def search(self, queries: np.ndarray, nprobe: int, k: int, positions: np.ndarray, device: str,
               ) -> tuple[np.ndarray, np.ndarray]:
        """k nearest of each unit ``queries`` row (Q, D), whose graph position is ``positions``
        (Q,) and which is left out of its own neighbours, among the ``nprobe`` lists nearest to
        it: ``(distances, indices)``, (Q, k) each, indices as graph positions (-1: none)."""
        probes = _probes(self.quantizer, queries, nprobe)
        best_s, best_p = self._scan(queries, probes, k + 1, device)
        best_i = np.where(best_p >= 0, self.order[np.maximum(best_p, 0)], -1)
        return _without_self(best_s, best_i, positions, k)

    def search_all(self, nprobe: int, k: int, device: str) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with every sample as a query, in graph order: (M, k) each."""
        return _search_every_sample(self, nprobe, k, device, scan_block(nprobe, k))

    def scanned(self, queries: np.ndarray, nprobe: int) -> float:
        """Mean samples a ``queries`` row (Q, D) scans at ``nprobe``."""
        return _mean_scanned(self.quantizer, queries, nprobe, np.diff(self.starts))

    def _scan(self, queries: np.ndarray, probes: np.ndarray, k: int, device: str) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` similarities and list positions of each query over its probed lists,
        list by list: (Q, k) each, best first (-inf / -1 where the lists held fewer).

        Each list's best ``k`` for a query go to that query's slot for the list (a
        (Q, nprobe, k) table, :func:`scan_block` bounds it); one selection over the slots
        at the end ranks them. Merging into a running best after every list cost as much
        again as the products when the vectors are short (120-value image descriptors).

        On the CPU with numpy (BLAS products and ``argpartition``: as fast as torch there, and an
        image audit of a large folder then never imports torch); on an accelerator with torch.
        """
        nprobe = probes.shape[1]
        if str(device).startswith("cpu"):
            return self._scan_numpy(queries, self._visits(probes), nprobe, k)
        return self._scan_torch(queries, self._visits(probes), nprobe, k, device)

    def _visits(self, probes: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``(list, entries)`` for each probed list that has members: the entries of the flat
        (Q x nprobe) probe table that probe it (query ``e // nprobe``, its slot ``e % nprobe``)."""
        flat = probes.ravel()
        by_list = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[by_list], np.arange(len(self.starts)))
        return [(lst, by_list[bounds[lst] : bounds[lst + 1]]) for lst in np.flatnonzero(np.diff(bounds))
                if self.starts[lst + 1] > self.starts[lst]]

    def _members(self, lst: int) -> np.ndarray:
        """List ``lst``'s vectors, unit rows (n, D)."""
        return _unit(_take(self.embeddings, self.rows[self.order[self.starts[lst] : self.starts[lst + 1]]]))

    def _scan_numpy(self, queries: np.ndarray, visits: list, nprobe: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        slot_s = np.full((len(queries), nprobe, k), -np.inf, np.float32)
        slot_p = np.full((len(queries), nprobe, k), -1, np.int64)
        for lst, entries in visits:
            who, slot = entries // nprobe, entries % nprobe
            sims = queries[who] @ self._members(lst).T  # (w, n)
            top = _top_unsorted(sims, k)
            slot_s[who, slot, : top.shape[1]] = np.take_along_axis(sims, top, 1)
            slot_p[who, slot, : top.shape[1]] = top + self.starts[lst]
        flat_s, flat_p = slot_s.reshape(len(queries), -1), slot_p.reshape(len(queries), -1)
        at = _top_unsorted(flat_s, k)
        best_s, best_p = np.take_along_axis(flat_s, at, 1), np.take_along_axis(flat_p, at, 1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_p, order, 1)

    def _scan_torch(self, queries: np.ndarray, visits: list, nprobe: int, k: int, device: str,
                    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        q_count = len(queries)
        slot_s = torch.full((q_count, nprobe, k), -torch.inf, device=device)
        slot_p = torch.full((q_count, nprobe, k), -1, dtype=torch.int64, device=device)
        q_all = torch.from_numpy(queries).to(device)
        for lst, entries in visits:
            entries = torch.from_numpy(entries).to(device)
            who, slot = entries // nprobe, entries % nprobe
            members = torch.from_numpy(self._members(lst)).to(device)
            # Unsorted selections (half the time of sorted ones); each row is sorted once at the end.
            top_s, top_p = (q_all[who] @ members.T).topk(min(k, len(members)), dim=1, sorted=False)
            slot_s[who, slot, : top_s.shape[1]] = top_s
            slot_p[who, slot, : top_s.shape[1]] = top_p + int(self.starts[lst])
        best_s, at = slot_s.reshape(q_count, -1).topk(k, dim=1, sorted=False)
        best_p = slot_p.reshape(q_count, -1).gather(1, at)
        best_s, at = best_s.sort(dim=1, descending=True, stable=True)
        return best_s.cpu().numpy(), best_p.gather(1, at).cpu().numpy()


@dataclass
class _FaissLists:
    """The embedded samples in faiss's inverted file, each query scanning its probed lists
    (``IndexIVFFlat.search``: vectorised distances and a heap of the best per query, queries
    spread over the cores), for short vectors on the CPU.

    The list-by-list products of :class:`_InvertedLists` pay for long vectors, where the
    products are the work; for short ones, choosing each query's best among every list's
    members is the work, and ``argpartition`` over the products costs about 4x the products
    (100k image descriptors of 120 values, nprobe 32: the graph in 28.4 s that way, 16.8 s
    here, best of three alternated runs on a busy machine; at 512 values the two are level).
    The index holds its own copy of the vectors (N·D float32: 480 MB for 1M descriptors),
    which for short vectors is a few hundred bytes per sample.

    Attributes
    ----------
    embeddings, rows : ndarray
        As :class:`_InvertedLists`' (the queries of :meth:`search_all` are read from them).
    index : faiss.IndexIVFFlat
        Trained; every graph position added in order, so faiss's ids are graph positions.
    quantizer : faiss.IndexHNSWFlat
        The index's list centres (its ``hnsw`` settings are set per search).
    sizes : ndarray of shape (nlist,), int64
        Members per list.
    """

    embeddings: np.ndarray
    rows: np.ndarray
    index: object
    quantizer: object
    sizes: np.ndarray

    @classmethod
    def build(cls, embeddings: np.ndarray, rows: np.ndarray, index, quantizer) -> _FaissLists:
        for start in range(0, len(rows), _BLOCK):
            index.add(_unit(_take(embeddings, rows[start : start + _BLOCK])))
        sizes = np.array([index.invlists.list_size(i) for i in range(index.nlist)], np.int64)
        return cls(embeddings, rows, index, quantizer, sizes)  # held here: the index does not own its quantizer

    def search(self, queries: np.ndarray, nprobe: int, k: int, positions: np.ndarray, device: str,
               ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`_InvertedLists.search`."""
        self.index.nprobe = nprobe
        self.quantizer.hnsw.efSearch = max(_HNSW_EF_SEARCH, 2 * nprobe)  # see _probes
        sims, found = self.index.search(queries, k + 1)
        return _without_self(sims, found, positions, k)

    def search_all(self, nprobe: int, k: int, device: str) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with every sample as a query, in graph order: (M, k) each."""
        return _search_every_sample(self, nprobe, k, device, _BLOCK)

    def scanned(self, queries: np.ndarray, nprobe: int) -> float:
        """Mean samples a ``queries`` row (Q, D) scans at ``nprobe``."""
        return _mean_scanned(self.quantizer, queries, nprobe, self.sizes)


def _probes(quantizer, queries: np.ndarray, nprobe: int) -> np.ndarray:
    """The ``nprobe`` lists nearest to each ``queries`` row: (Q, nprobe), -1 where fewer."""
    # The HNSW graph over the centres explores efSearch candidates (faiss: 16) to find a
    # query's nprobe nearest lists; asked for more lists than that, it missed some of them
    # (200 lists probed of 200: 4 % missing, and recall@10 stalled at 0.86 on random
    # 64-d vectors), so it explores twice the lists asked for.
    quantizer.hnsw.efSearch = max(_HNSW_EF_SEARCH, 2 * nprobe)
    return quantizer.search(queries, nprobe)[1]


def _mean_scanned(quantizer, queries: np.ndarray, nprobe: int, sizes: np.ndarray) -> float:
    """Mean of ``sizes`` (nlist,) summed over each query's ``nprobe`` nearest lists."""
    probes = _probes(quantizer, queries, nprobe)
    return float(np.where(probes >= 0, sizes[np.maximum(probes, 0)], 0).sum(axis=1).mean()) if len(queries) else 0.0


def _search_every_sample(lists, nprobe: int, k: int, device: str, block: int) -> tuple[np.ndarray, np.ndarray]:
    """``lists.search`` (:class:`_InvertedLists` or :class:`_FaissLists`) with every graph
    position as a query, ``block`` queries at a time, each read and normalised from
    ``lists.embeddings``: ``(distances, indices)``, (M, k) each, in graph order."""
    m = len(lists.rows)
    distances = np.empty((m, k), np.float32)
    indices = np.empty((m, k), np.int64)
    for start in range(0, m, block):
        stop = min(start + block, m)
        queries = _unit(_take(lists.embeddings, lists.rows[start:stop]))
        distances[start:stop], indices[start:stop] = lists.search(queries, nprobe, k, np.arange(start, stop), device)
    return distances, indices


def recall_notes(info: dict, searched: str = "the kNN graph", vectors: str = "the embeddings",
                 effect: str = "the checks that read neighbours (outliers, non_iid, near duplicates, clusters' "
                               "rare groups) read approximate ones") -> list[str]:
    """What a user should know of a graph built as ``info`` (:attr:`KnnGraph.info`) says: a
    sentence where the scan bound stopped it short of the recall target, else none.

    Parameters
    ----------
    info : dict
        The graph's :attr:`KnnGraph.info` (exact graphs and graphs that met the target: no note).
    searched, vectors : str
        What was searched, and what it searched, as the sentence names them.
    effect : str
        What the shortfall means for the checks that read the graph.
    """
    if info.get("recall_target_met", True):
        return []
    recall = info["recall_at_k"]
    shown = f"{recall:.2f}" if round(recall, 2) < TARGET_RECALL else f"{recall:.4f}"  # not "0.95, short of 0.95"
    return [f"{searched}'s recall@{info['recall_k']} is {shown}, short of the {TARGET_RECALL} target: "
            f"{vectors} have little structure for an inverted file to use, and the search stopped at its "
            f"bound ({info['scanned_per_query']:,} samples scanned per query, nprobe {info['nprobe']} of "
            f"{info['nlist']:,} lists), so {effect}"]


def _shown_recall(recall: float) -> float:
    """``recall`` to 4 decimals, as ``summary.json`` records it; rounded down where rounding
    would reach the target it falls short of (0.94997 of 30 neighbours by 1,000 queries is
    0.9499, not 0.95 beside ``recall_target_met`` false)."""
    shown = round(recall, 4)
    return shown if (shown >= TARGET_RECALL) == (recall >= TARGET_RECALL) else float(np.floor(recall * 1e4) / 1e4)


def max_scanned(m: int, d: int) -> float:
    """Most samples one query of the approximate graph may scan (on average over the sampled
    queries), for ``m`` samples of ``d`` values.

    Where the embeddings have no structure an inverted file can use (every sample about as far
    from every other of its class: isotropic noise in many dimensions, the lists' K-means then
    piling most samples into a few lists), no nprobe short of scanning the whole class reaches
    the recall target: 1M x 512 of 10 Gaussian classes needed 128 of 2,828 lists (about its
    class, 100,000 samples, per query: some 40 minutes at the 24 ns a sample measured at nprobe 8
    on 2 cores; the audit was stopped after 16). The bound: :data:`_SCAN_VALUES` compared values per
    query (16,384 samples of 512 values; the clustered 1M x 512 of ``benchmarks/scale.py``
    meets the target at 4,500), or what exact search of twice :data:`EXACT_MAX` samples
    compares in all, whichever is more: up to about 600,000 samples the second, so a graph just
    above the exact limit may still probe every list, and 200,000 Gaussian-class samples reach
    the target (their whole class, 19,400 samples, per query). It depends on the sizes only, so
    the graph stays the same for the same input and seed."""
    return max(_SCAN_VALUES / d, (2 * EXACT_MAX) ** 2 / m)


def _top_unsorted(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest of each row of ``values`` (R, n), in no order:
    (R, min(k, n))."""
    n = values.shape[1]
    if k >= n:
        return np.broadcast_to(np.arange(n), (len(values), n))
    return np.argpartition(values, n - k, axis=1)[:, n - k :]


def scan_block(nprobe: int, k: int) -> int:
    """Queries per block of :meth:`_InvertedLists.search_all`: :data:`_QUERY_BLOCK`, fewer where
    the block's slot table (12 bytes per query, probe and neighbour) would pass :data:`_SLOT_BYTES`."""
    return int(max(1024, min(_QUERY_BLOCK, _SLOT_BYTES // (12 * nprobe * (k + 1)))))


def _without_self(sims: np.ndarray, found: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop each query's own entry (or its last, where the search did not return itself) from
    its k + 1 best: ``(distances, indices)``, (Q, k) each."""
    keep = other_than_self(found, positions)
    found = found[keep].reshape(len(found), k)
    sims = sims[keep].reshape(len(found), k)
    distances = np.where(found >= 0, np.clip(1.0 - sims, 0.0, 2.0), np.inf).astype(np.float32)
    return distances, found.astype(np.int64)


def _exact_distances(embeddings, rows: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Cosine distances (Q, k) of the ``queries`` positions' exact k nearest among ``rows``
    (each query itself left out), nearest first, scanning all rows in blocks."""
    import faiss

    q = _unit(_take(embeddings, rows[queries]))
    best_s = np.full((len(q), k + 1), -np.inf, np.float32)
    best_i = np.full((len(q), k + 1), -1, np.int64)
    for start in range(0, len(rows), _BLOCK):
        block = _unit(_take(embeddings, rows[start : start + _BLOCK]))
        flat = faiss.IndexFlatIP(block.shape[1])
        flat.add(block)
        s, i = flat.search(q, min(k + 1, len(block)))
        s_all = np.concatenate([best_s, s], axis=1)
        i_all = np.concatenate([best_i, i + start], axis=1)
        order = np.argsort(-s_all, axis=1, kind="stable")[:, : k + 1]
        best_s, best_i = np.take_along_axis(s_all, order, 1), np.take_along_axis(i_all, order, 1)
    keep = other_than_self(best_i, queries)
    return np.clip(1.0 - best_s[keep].reshape(len(q), k), 0.0, 2.0).astype(np.float32)


def _recall(found: np.ndarray, true: np.ndarray) -> float:
    """Recall@k of the approximate search: the share of its k neighbours (their distances,
    (Q, k), inf where missing) that are no farther than the true k-th nearest (``true``, (Q, k)
    exact distances), as ann-benchmarks counts it. Counted by distance, not by identity: among
    ties (copies of one vector) any is a true neighbour, and counting identities made the
    search on duplicated embeddings probe every list (exact search, N²) chasing recall 0.54."""
    threshold = true[:, -1:] + _RECALL_TOLERANCE
    return float((found <= threshold).sum() / true.size) if true.size else 1.0


def _finite_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows whose embedding is all finite, read in blocks (a memory map is never loaded whole)."""
    parts = [np.flatnonzero(np.isfinite(embeddings[s : s + _BLOCK]).all(axis=1)) + s
             for s in range(0, len(embeddings), _BLOCK)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _take(embeddings: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``embeddings[rows]`` as float32; a contiguous range is sliced rather than gathered."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return np.asarray(embeddings[rows[0] : rows[-1] + 1], dtype=np.float32)
    return np.asarray(embeddings[rows], dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine = inner product), as a C-contiguous float32 copy."""
    x = np.array(x, dtype=np.float32, order="C")
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x
