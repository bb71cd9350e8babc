#!/usr/bin/env bash
# Every measured figure of docs/performance.md, docs/instances.md and docs/timelapse.md, one
# benchmark after the other on an otherwise idle machine (about 2.5 hours on 2 CPU cores).
# Budgets are wall-clock time: run nothing else meanwhile. Results: $OUT/*.txt and jsonl files.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/quiet-suite-$(date +%Y%m%d-%H%M)}
mkdir -p "$OUT"
run() { local name=$1; shift; echo "== $name: $*"; "$PY" "$@" 2>&1 | tee "$OUT/$name.txt"; }

# instances and membranes at 12 minutes: lapseg's defaults vs the MONAI recipe (issue 10)
for protocol in hela psc usiigaci isbi; do
  run "accuracy-$protocol" benchmarks/bench_accuracy.py "$protocol" --minutes 12 --out "$OUT/accuracy"
done
# temporal context k = 2 against the k = 0 default at the same budget (issue 11)
for protocol in psc hela; do
  run "accuracy-$protocol-k2" benchmarks/bench_accuracy.py "$protocol" --minutes 12 --tools lapseg \
    --set temporal.context=2 --tag=-k2 --out "$OUT/accuracy"
done
# time-to-accuracy: the training loop against the bare step (issue 10)
run training-loop benchmarks/bench_training_loop.py --protocol hela
# memory and time per frame do not grow with the movie (issue 11)
run long-movies benchmarks/bench_long_movies.py --frames 200 2000
# images larger than memory (issue 13)
run large-image benchmarks/bench_large_image.py --sizes 5000 10000 20000
# engines incl. INT8, and Dask workers (issue 13)
run engines benchmarks/bench_engines.py --size 2048 --rounds 3
run dask benchmarks/bench_dask_predict.py --images 24 --size 1024 --rounds 3 --workers 1 2
echo "results in $OUT"
