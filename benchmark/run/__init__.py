"""Running the benchmark: the runner, the engine seam and its local pipeline, croppers, the
resumable cache, per-method process isolation, INT8 calibration and system info. Writes run
folders through ``report``; scores through ``protocol``."""
