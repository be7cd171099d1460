"""The qualitative claims of Zhao et al. (2021) and Li et al. (2021) as data, with verdicts from the runs.

:mod:`multiref.claims.spec` holds the claims (the configuration's ``claims`` section), :mod:`multiref.claims.stats`
the hierarchical bootstrap and the verdict rules, :mod:`multiref.claims.evaluate` the evidence table and
``claims.md``. The method, the margins and every claim's source sentence: docs/claims.md.
"""

from multiref.claims.evaluate import (
    ContextScores,
    RunScores,
    claims_markdown,
    compare,
    evaluate,
    read_run_scores,
    summarise,
    synthetic_kl,
)
from multiref.claims.spec import (
    DIRECTIONS,
    METRICS,
    PAPERS,
    Claim,
    Claims,
    Comparison,
    Metric,
    RunRef,
    parse_claim,
    parse_claims,
    problems,
    run_dirs,
)
from multiref.claims.stats import aggregate, hierarchical_interval, interval_level, seed_interval, verdict

__all__ = [
    "DIRECTIONS", "METRICS", "PAPERS", "Claim", "Claims", "Comparison", "ContextScores", "Metric", "RunRef", "RunScores",
    "aggregate", "claims_markdown", "compare", "evaluate", "hierarchical_interval", "interval_level", "parse_claim",
    "parse_claims", "problems", "read_run_scores", "run_dirs", "seed_interval", "summarise", "synthetic_kl", "verdict",
]
