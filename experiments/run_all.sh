#!/usr/bin/env bash
# Re-run every study on the embedded model and copy its report into experiments/<study>/results/.
# Usage: experiments/run_all.sh [a b c d e]   (default: all; each run resumes if interrupted)
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
    mkdir -p "experiments/${DIR[$k]}/results"
    cp outputs/smollm2-135m/"${OUT[$k]}"/report/* "experiments/${DIR[$k]}/results/"
    echo "$secs" > "experiments/${DIR[$k]}/results/wall_seconds.txt"
    echo "study $k: ${secs}s -> experiments/${DIR[$k]}/results/report.md"
  done
done
