#!/usr/bin/env bash
# The tiny study (docs/results-tiny/): the five rows the paper's claims need with training seeds
# 1, 2 and 3, then the other three rows with seeds 1 and 2, then the report over all of them.
# One run at a time on both cores. Resumable: after any interruption run it again. Every
# finished run's records (no weights) are kept in docs/results-tiny/runs, to commit as they come:
# a later session or machine restores them instead of training again. The probes continue 200
# held-out stories per run (the default 50 leaves about 35 that name anyone: too few to compare
# converged models whose consistency is above 0.9).
#
#   MLA_LAB=path/to/mla-lab-built-with-tch experiments/tiny/run.sh [stage ...]
#
# Stages, in order when none is named:
#   study    the rows above, seeds 1-3 (and 1-2);
#   beyond   rows beyond the paper, one seed each: GLA-2 at MLA+RoPE r = d/2's cache
#            (gla2_rope_half.ron) and GTA-2 (gta2_rope.ron);
#   seeds    seeds 4-10 of mha, mha_rope, mla_half and mla_rope_half (ten seeds decide
#            the loss claims, see the report's "seeds to decide");
#   convert  beyond the paper: MHA and MHA+RoPE, seeds 1-3, trained again with their weights
#            kept, each converted to MLA at r = d/2 (experiments/tiny-convert/) and fine-tuned
#            300 steps, and fine-tuned unchanged as its control (mha_continued.ron,
#            mha_rope_continued.ron), records in docs/results-tiny/convert; and MLA+RoPE
#            r = d/2 without its latent norm from scratch (mla_rope_half_no_norm.ron), seeds
#            1-3: what a converted model's missing norm costs;
#   pilot    the internal pilot of the "+0.3%" decision (docs/results-tiny/pilot-rule.md):
#            seeds 1-6 of mha_rope and mla_rope_half drawn by path, both rows of a seed before
#            the next seed, on PILOT_BACKEND (default cpu, flex), records in
#            docs/results-tiny/pilot; not part of the default stages;
#   long     the failed seed-1 runs of mha and mla_half again at twice the budget
#            (experiments/tiny-long/), records in docs/results-tiny/long;
#   report   the report over every run in docs/results-tiny/runs, with the learning-rate sweep
#            (docs/results-tiny/lr-sweep) to judge the loss claims again at each row's best peak.
#            REPORTER names the binary that writes it (default MLA_LAB): the current one, where
#            the runs are trained with an older build (the seeds 4-10: 87ff8c5).
# About 20-25 minutes a run on LibTorch: seeds is 28 runs, long 2 runs of twice that.
set -euo pipefail
cd "$(dirname "$0")/../.."
MLA_LAB=${MLA_LAB:-target/release/mla-lab}
ART=${ART:-$HOME/.cache/mla-lab/tiny-study}
BACKEND=${BACKEND:-libtorch}
RECORDS=docs/results-tiny/runs
REPORTER=${REPORTER:-$MLA_LAB}

study() {
    local seeds=$1 report=$2
    shift 2
    "$MLA_LAB" --backend "$BACKEND" study "${@/#/experiments/tiny/}" --seeds "$seeds" \
        --probe-stories 200 --records "$RECORDS" --artifacts "$ART" --out "$ART/$report"
}

long() {
    local file name
    for file in experiments/tiny-long/*.ron; do
        "$MLA_LAB" --backend "$BACKEND" study "$file" --probe-stories 200 \
            --records docs/results-tiny/long --artifacts "$ART" --out "$ART/report-long"
    done
}

for stage in "${@:-study beyond seeds convert long report}"; do
    for s in $stage; do
        case $s in
        study)
            study 1,2,3 report-claims mha.ron mha_rope.ron mla_half.ron mla_rope_half.ron \
                mla_rope_full.ron
            study 1,2 report-others mla_rope_half_joint.ron mla_rope_quarter.ron gqa.ron
            ;;
        beyond) study 1 report-beyond gla2_rope_half.ron gta2_rope.ron ;;
        seeds) study 4,5,6,7,8,9,10 report-seeds mha.ron mha_rope.ron mla_half.ron mla_rope_half.ron ;;
        convert)
            "$MLA_LAB" --backend "$BACKEND" study experiments/tiny/mha.ron \
                experiments/tiny-convert/mha_to_mla_half.ron experiments/tiny/mha_rope.ron \
                experiments/tiny-convert/mha_rope_to_mla_rope_half.ron \
                experiments/tiny-convert/mha_continued.ron \
                experiments/tiny-convert/mha_rope_continued.ron --seeds 1,2,3 \
                --contexts 64,256 --records docs/results-tiny/convert --artifacts "$ART/convert" \
                --out "$ART/report-convert"
            study 1,2,3 report-no-norm mla_rope_half_no_norm.ron
            ;;
        long) long ;;
        pilot)
            for seed in 1 2 3 4 5 6; do
                "$MLA_LAB" --backend "${PILOT_BACKEND:-cpu}" study experiments/tiny/mha_rope.ron \
                    experiments/tiny/mla_rope_half.ron --seeds "$seed" --probe-stories 200 \
                    --records docs/results-tiny/pilot --artifacts "$ART/pilot" \
                    --out "$ART/report-pilot"
            done
            ;;
        report)
            "$REPORTER" report "$RECORDS"/*_tiny-s[0-9]* \
                docs/results-tiny/convert/*_{to,continued}_*-s[0-9]* \
                --sweep docs/results-tiny/lr-sweep/* --out docs/results-tiny \
                --splice docs/results-tiny/README.md docs/results.md README.md
            ;;
        *)
            echo "usage: run.sh [study|beyond|seeds|convert|long|pilot|report ...]" >&2
            exit 2
            ;;
        esac
    done
done
