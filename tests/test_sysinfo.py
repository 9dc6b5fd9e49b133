"""Peak memory: a short-lived allocation inside the block counts, one before it does not."""
import numpy as np

from benchmark.run.sysinfo import PeakMemory


def test_peak_rss_sees_a_freed_allocation_and_forgets_earlier_ones():
    size_mb = 300
    before = np.ones(size_mb * 2**20 // 8)  # touched pages: RSS grows by ~300 MB, then is given back
    del before
    with PeakMemory() as idle:
        pass
    with PeakMemory() as busy:
        block = np.ones(size_mb * 2**20 // 8)
        del block
    assert busy.peak_rss_mb - idle.peak_rss_mb > 0.9 * size_mb, (idle.peak_rss_mb, busy.peak_rss_mb)
