#!/usr/bin/env bash
# GPU check: one command, under 8 minutes on one H100, that measures what the paper-scale run needs to know.
#
# Usage: bash benchmarks/gpu_check.sh [--cpu] [--out FILE]     (PYTHON=... picks the interpreter; default python)
#
# Steps (benchmarks/gpu_check.py; each under its own time limit, so one slow step cannot eat the others'):
#   env      GPU name, torch / CUDA / cuDNN versions                      (limit 40 s)
#   sampler  nucleus sampler vs generate, GPT-2-medium shape, bf16, N = 20 and 100   (limit 170 s)
#   train    HRED and VHRED-LGM20 training pairs/s at paper dimensions, fp32 and bf16 autocast   (limit 160 s)
#   loss     one HRED training step's loss on the GPU and on the CPU, same weights and batch   (limit 70 s)
#   table    the Markdown table (printed and written to --out, default gpu_check.md), with the projected
#            paper-scale times (teacher sampling, one 1-GT epoch)
# --cpu runs the same steps on the CPU at small sizes (about a minute on 2 cores): a check of the script.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
mode=gpu
out=gpu_check.md
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) mode=cpu ;;
        --out) out="${2:?--out needs a file}"; shift ;;
        --out=*) out="${1#*=}" ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
python="${PYTHON:-python}"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

declare -A limit=([env]=40 [sampler]=170 [train]=160 [loss]=70)
if [ "$mode" = cpu ]; then
    limit=([env]=40 [sampler]=90 [train]=60 [loss]=40)
fi

for step in env sampler train loss; do
    start=$SECONDS
    timeout --kill-after=10 "${limit[$step]}" "$python" "$here/gpu_check.py" "$step" --mode "$mode" --dir "$work" \
        > "$work/$step.log" 2>&1
    status=$?
    echo "$status" > "$work/$step.status"
    echo "gpu_check: step $step: exit $status after $((SECONDS - start)) s (limit ${limit[$step]} s)" >&2
    if [ "$step" = env ] && [ "$status" -ne 0 ]; then
        tail -n 3 "$work/env.log" >&2
        exit 1
    fi
done
"$python" "$here/gpu_check.py" table --mode "$mode" --dir "$work" --out "$out"
echo "gpu_check: table written to $out" >&2
