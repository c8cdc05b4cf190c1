"""``streamgrade compare``: are the experiments different, on which tasks, and by how much
beyond noise?

- :mod:`.load`: experiments from graded output folders or an experiments file.
- :mod:`.metrics`: what is measured per session (score, reward, pass, ...).
- :mod:`.stats`: bootstrap CIs, effect sizes, Holm's correction, pass@k and pass^k.
- :mod:`.significance`: the paired or independent-samples tests (scipy).
- :mod:`.analysis`: the whole comparison as one JSON-ready dict.
- :mod:`.plots`, :mod:`.report`: PNG figures, report.html, compare.json, summary.md.
"""
