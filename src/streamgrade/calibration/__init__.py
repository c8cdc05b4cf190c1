"""Calibration on the user's own labels: P(success) of a graded session from its
scores.jsonl record (the judge's components and generic trajectory features), fitted by
``streamgrade calibrate`` with scikit-learn and applied at grade time without it.

- :mod:`.features`: the record -> feature vector rules (generic across formats);
- :mod:`.metrics`: AUROC, ECE, Brier of probabilities against binary outcomes;
- :mod:`.model`: the model file (JSON), its validation and its plain-Python evaluation;
- :mod:`.fit`: the labelled set, k-fold cross-validation and the final fit (scikit-learn);
- :mod:`.report`: figures of the ``p_success`` already in an output folder, and tables.

Importing this package (or :mod:`.model`) never imports scikit-learn.
"""

from .model import CalibrationModel, load_model

__all__ = ["CalibrationModel", "load_model"]
