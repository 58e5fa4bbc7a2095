#!/usr/bin/env bash
# The project's benchmark: the database's own floor (shared/bench/limit/run.sh) and every mode of
# examples/bench.rs, in one run on this machine, then the ratios the project tracks.
#
# Usage: scripts/bench.sh [--quick]
#   --quick   small job counts and 3-second floors: checks that everything runs, figures are noisy
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
#   CARGO_TARGET_DIR (where the release build goes), OBAN_SHARED (default ../shared from the repo),
#   LIMIT_SECONDS (length of each floor run, default 15).
# Output: every figure line as printed (`limit ...`, `bench mode=...`), then one `ratios ...` line.
# Run it on a quiet machine: both sides share the same cores.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${OBAN_SHARED:-$repo/../shared}
limit=$shared/bench/limit/run.sh
[[ -x $limit || -f $limit ]] || { echo "bench.sh: $limit not found (set OBAN_SHARED)" >&2; exit 1; }
command -v pgbench >/dev/null || PATH=$PATH:/usr/lib/postgresql/15/bin
command -v pgbench >/dev/null || PATH=$PATH:$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -n 1)
export PATH

quick=false
[[ ${1:-} == --quick ]] && quick=true
seconds=${LIMIT_SECONDS:-15}
if $quick; then
  seconds=3
  n=10000 n_single=4000 n_insert_single=2000 n_latency=100 n_bloat_rows=100000 n_rss=20000 reps=1
else
  n=100000 n_single=50000 n_insert_single=10000 n_latency=1000 n_bloat_rows=1000000 n_rss=200000 reps=3
fi

cd "$repo"
echo "# building examples/bench.rs (release)" >&2
cargo build --release --quiet --example bench
bin=${CARGO_TARGET_DIR:-$repo/target}/release/examples/bench

# Prints the line a command printed last on stdout and keeps it in $line.
line=
run() {
  line=$("$@" | tail -n 1)
  [[ -n $line ]] || { echo "bench.sh: no figures from: $*" >&2; exit 1; }
  echo "$line"
}
# The value of KEY in a figure line: get KEY "$line".
get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
# A ratio a/b with 3 decimals, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.3f\n", a / b }'; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run "$limit" 100 2 "$seconds";             limit_batched=$(get jobs_per_s "$line")
run "$limit" 1 8 "$seconds";               limit_single=$(get jobs_per_s "$line")
run "$bin" insert --jobs "$n" --reps "$reps";               insert=$line
run "$bin" insert-unique --jobs "$n" --reps "$reps";        insert_unique=$line
run "$bin" insert-single --jobs "$n_insert_single" --reps 1; insert_single=$line
run "$bin" drain --jobs "$n" --concurrency 50;              drain=$line
run "$bin" drain --jobs "$n" --concurrency 100;             drain100=$line
run "$bin" e2e --jobs "$n" --concurrency 50 --batch 1000;   e2e=$line
run "$bin" single --jobs "$n_single" --concurrency 50;      single=$line
run "$bin" latency --jobs "$n_latency";                     latency=$line
run "$bin" latency --jobs "$n_latency" --via pool;          latency_pool=$line
run "$bin" bloat --jobs "$n" --bloat-rows "$n_bloat_rows";  bloat=$line
run "$bin" rss --jobs "$n_rss" --concurrency 100;           rss=$line

echo "ratios" \
  "e2e_c50_vs_limit_100x2=$(ratio "$(get jobs_per_s "$e2e")" "$limit_batched")" \
  "drain_vs_limit_100x2=$(ratio "$(get jobs_per_s "$drain")" "$limit_batched")" \
  "drain_c100_vs_limit_100x2=$(ratio "$(get jobs_per_s "$drain100")" "$limit_batched")" \
  "single_vs_limit_1x8=$(ratio "$(get jobs_per_s "$single")" "$limit_single")" \
  "bloat_vs_drain=$(ratio "$(get jobs_per_s "$bloat")" "$(get jobs_per_s "$drain")")" \
  "latency_p50_ms=$(get p50_ms "$latency")" \
  "latency_p99_ms=$(get p99_ms "$latency")" \
  "latency_via_pool_p50_ms=$(get p50_ms "$latency_pool")" \
  "latency_via_pool_p99_ms=$(get p99_ms "$latency_pool")" \
  "rss_peak_mb=$(get peak_rss_mb "$rss")" \
  "insert_vs_sql_floor=$(get ratio_vs_floor "$insert")" \
  "unique_vs_plain_insert_all=$(get unique_vs_plain "$insert_unique")" \
  "unique_vs_plain_insert_single=$(get unique_vs_plain "$insert_single")"
