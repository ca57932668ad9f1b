#!/usr/bin/env bash
# Re-run every study on the embedded model, keep its records in experiments/<study>/records/ and
# rebuild its report from them into experiments/<study>/results/.
# Usage: experiments/run_all.sh [a b c d e]   (default: all; an interrupted run resumes)
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A EXP=([a]=cheating_dose_response [b]=blackmail [c]=early_warning [d]=ablate_desperation [e]=steering_vs_prompting)
declare -A DIR=([a]=a_cheating_dose_response [b]=b_blackmail [c]=c_early_warning [d]=d_ablation [e]=e_steering_vs_prompting)
declare -A OUT=([a]=study_a_cheating [b]=study_b_blackmail [c]=study_c_early_warning [d]=study_d_ablation [e]=study_e_prompting)
for s in "${@:-a b c d e}"; do
  for k in $s; do
    start=$(date +%s)
    .venv/bin/steer-run experiment="${EXP[$k]}" progress=false
    secs=$(( $(date +%s) - start ))
    study="experiments/${DIR[$k]}"
    rm -rf "$study/records" "$study/results"
    mkdir -p "$study/records" "$study/results"
    cp outputs/smollm2-135m/"${OUT[$k]}"/records/*.jsonl "$study/records/"
    .venv/bin/steer-run task=report report.records="$study/records" report.out="$study/results" \
      hydra.run.dir=outputs/smollm2-135m/report_"${DIR[$k]}" > /dev/null
    echo "$secs" > "$study/results/wall_seconds.txt"
    echo "study $k: ${secs}s -> $study/results/report.md"
  done
done
