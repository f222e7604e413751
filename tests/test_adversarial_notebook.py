"""An adversarial pass over ``datacheck.audit`` as a notebook user with arrays calls it.

pred_probs, labels and embeddings held in memory as a cleanlab or scikit-learn user has them
(``cross_val_predict(..., method="predict_proba")``, pandas objects, views, one sample); each
test pins a bug found that way. Tiny arrays and checks that train no model: seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import datacheck


# --------------------------------------------------------------------------- one sample


def test_one_sample_with_embeddings_scores_it_and_flags_nothing():
    """A graph of one sample has no neighbours (k = 0): the duplicate checks reshaped its rows
    with ``reshape(-1, 0)``, numpy's ValueError ("cannot reshape array of size 0") was a traceback."""
    probs = np.array([[0.8, 0.1, 0.1]])
    embeddings = np.array([[0.5, -1.0, 2.0, 0.25]])
    result = datacheck.audit(pred_probs=probs, labels=[0], embeddings=embeddings)
    checks = result.summary["checks"]
    for check in ("exact_duplicates", "near_duplicates", "issue_score"):
        assert (checks[check]["flagged"], checks[check]["scored"]) == (0, 1), check
    assert result.issues().empty
    for check in ("exact_duplicates", "near_duplicates"):
        alone = datacheck.audit(pred_probs=probs, labels=[0], embeddings=embeddings, checks=check)
        assert alone.summary["checks"][check]["scored"] == 1
