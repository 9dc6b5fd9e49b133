"""Run folders as files: the report CSV, per-image logs, per-pair scores and ``run.json``, read
back as a :class:`~benchmark.report.files.Run`; the summary, the charts and ``compare``. Imports
``protocol`` only (no model library), so reading and comparing runs is quick."""
