"""Augmented demonstrations: per-action captions, state transitions and structured hints
for recordings with frames (Clones desktop and web, OWA, DuckTrack).

:mod:`.templates` (offline captions and hints), :mod:`.transitions` (what changed on
screen, measured), :mod:`.captions` (the LLM's, batched with images), :mod:`.session`
(one recording), :mod:`.command` (``streamgrade augment OUT`` and ``[augment] enabled``
in a grade run). Results go to results.json ``augment``; they feed the judge's evidence
and the computer-use SFT rows as thoughts (:mod:`streamgrade.exports.computer_use`).
"""

from .command import AugmentRun, augment_job, run_augment
from .session import Recording, augment_recording

__all__ = ["AugmentRun", "Recording", "augment_job", "augment_recording", "run_augment"]
