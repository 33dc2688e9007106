"""Prints how busy each given core was over half a second, in percent, one number per core:
`python3 scripts/bench/cpu_busy.py 0 1` -> `12 3`. Used by scripts/bench.sh and
scripts/flamegraph.sh to wait for a quiet machine before they measure."""
import sys
import time


def read():
    out = {}
    for line in open("/proc/stat"):
        f = line.split()
        if f[0].startswith("cpu") and f[0] != "cpu":
            v = list(map(int, f[1:9]))
            out[f[0]] = (sum(v) - v[3] - v[4], sum(v))
    return out


a = read()
time.sleep(0.5)
b = read()
cores = [f"cpu{c}" for c in sys.argv[1:]]
print(" ".join(str(round(100 * (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]))) for c in cores))
