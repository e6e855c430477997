"""The engine behind the CLI and the TUI: a Session over one index, built from parts with one job each.

- `session.Session`: steering state (mode, per-mode selection, step size, undo history) and edits;
- `terms.TermVectors`: unit vectors of terms (CLIP text/image, index rows, directions) and queries;
- `codes.SAECodes`: SAE codes of queries from per-term projections;
- `directions.Directions`: the SAE / PCA / random providers;
- `searcher.Searcher`: ANN top-k with a result cache, answering ResultPages;
- `features.FeatureReadings`: what the feature panel (PanelData: the pinned direction, the query's
  and the results' features) and the feature gallery (every live SAE feature, rows encoded once) show;
- `library`: saved queries, history, bookmarks and exports.

Threading model (the only one; the TUI follows it):

- The Session is driven from one thread (the UI): edits (`set_query`, `step`, `undo`, …) and
  the snapshots workers need (`query`, `mode`, `stepped_query(±1)`) are computed there.
- Workers receive immutable snapshots (a Query and a mode) and call only the answering methods,
  `results(k, query)`, `active_directions(n, mode, query)`, `prepare(query)` and the `features`
  part's `panel`, `of_rows` and `gallery`. These read immutable data and caches; the locks live
  inside the engine (each LRUCache has one, the CLIP model has one, PCA and the feature stats are
  computed once under one), so no caller ever takes a lock.
- Timing figures are not stored: `results` returns a ResultPage carrying the milliseconds of
  that call, and whoever shows the page shows its figure (a prefetch changes nothing on screen).

The engine never prints; it raises MemetuiError subclasses.
"""

from .searcher import ResultPage, SearchResult
from .session import Session

__all__ = ["ResultPage", "SearchResult", "Session"]
