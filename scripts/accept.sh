#!/bin/bash
# accept.sh — the long acceptance runs of the likelihood families (issue 8 and 9), on this
# machine's cores, with the protocol printed beside every number:
#   binarized MNIST (fixed Larochelle-Murray binarization, ../shared/data/binarized-mnist):
#     train on the 50,000 training images, early stopping on the 10,000 validation images
#     (best.safetensors), test NLL in nats on the 10,000 test images;
#   NICE on Fashion-MNIST: exactly one epoch as ../shared/peers/nice.py, test log-likelihood.
# Usage: scripts/accept.sh [BUILD_DIR] [MODEL...]   models: fvsbn nade made made500 made32 vae nice
#   (table: no training, just the table of the runs already there)
# Results: BUILD_DIR/accept/<model>/ (run directory, eval.json) and BUILD_DIR/accept/table.md.
# Environment: THREADS (2), MAX_STEPS (cap on the training steps of the binarized-MNIST runs),
# RESUME=1 (continue interrupted runs from their checkpoints).
set -euo pipefail
BUILD=${1:-build}
shift || true
MODELS=${*:-fvsbn nade made made32 vae nice}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
BMNIST="mnist:$SHARED/data/binarized-mnist"
U="$BUILD/unigen"
OUT="$BUILD/accept"
THREADS=${THREADS:-2}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# Early stopping: validation every epoch (500 steps of 100), patience in epochs.
common=(--data "$BMNIST" --batch 100 --lr 1e-3 --valid-every 500 --log-every 500 --threads "$THREADS")
train() {   # name, max steps, patience, model flags...
    local name=$1 steps=${MAX_STEPS:-$2} patience=$3
    shift 3
    local t0=$(date +%s) prev=0 how=(--out "$OUT/$name")
    # RESUME=1 continues an interrupted run from its latest checkpoint (--save-every keeps one);
    # the training seconds add up over the pieces.
    if [ "${RESUME:-0}" = 1 ] && [ -f "$OUT/$name/checkpoint.safetensors" ]; then
        how=(--resume "$OUT/$name")
        prev=$(cat "$OUT/$name/train_seconds" 2>/dev/null || echo 0)
    fi
    # (set -e is off inside a function called from an && list: check the status explicitly.)
    "$U" train "${common[@]}" --steps "$steps" --patience "$patience" "${how[@]}" "$@" || exit 1
    echo $(( prev + $(date +%s) - t0 )) > "$OUT/$name/train_seconds"
    echo "$THREADS" > "$OUT/$name/threads"
}
evaluate() {   # name, eval flags...
    local name=$1
    shift
    local t0=$(date +%s)
    "$U" eval --ckpt "$OUT/$name/best.safetensors" --data "$BMNIST" --nll --json --threads "$THREADS" "$@" \
        | tail -1 > "$OUT/$name/eval.json" || exit 1
    echo $(( $(date +%s) - t0 )) > "$OUT/$name/eval_seconds"
    cat "$OUT/$name/eval.json"
}

for m in $MODELS; do
    case $m in
    fvsbn)  train fvsbn 200000 10 --family ar --model fvsbn && evaluate fvsbn ;;
    nade)   train nade 40000 20 --family ar --model nade --hidden 500 --lr-schedule cosine \
                && evaluate nade ;;
    # MADE, one mask: the published 88.40 comes from the original code's search, which chose a
    # hidden layer of 8000 units with direct input-output connections; made500 is the same
    # recipe at 500 units (the width of the paper's Figure 2).
    made)   train made 20000 10 --family ar --model made --hidden 8000 --direct 1 --lr 5e-4 \
                --lr-schedule cosine && evaluate made ;;
    made500) train made500 50000 10 --family ar --model made --hidden 500 --direct 1 \
                --lr-schedule cosine && evaluate made500 ;;
    # 32 masks, each its own random ordering and connectivity ("Full" shuffling of the original
    # code), cycled one per minibatch; two hidden layers of 8000 with direct connections (the
    # original code's README command for the paper's best, 86.64, there with Adagrad 0.01; here
    # the single-mask recipe's Adam 5e-4 with cosine decay); validation = the 32-mask ensemble
    # on 2,000 validation images every 10 epochs; a checkpoint every 1,000 steps (RESUME=1
    # continues). One hidden layer of 8000 ended at 87.93 on test (validation 88.37). With two,
    # the validation ensemble was 100.21 / 92.98 / 90.70 / 89.42 / 88.58 / 88.03 at 5-30 k steps,
    # and the best checkpoint at 30 k gave 87.50 on test (session 15). 2.6-3 steps/s undisturbed
    # on 2 cores: about 6 h for the 60 k steps, each validation about 50 s.
    made32) train made32 60000 10 --family ar --model made --hidden 8000,8000 --direct 1 --lr 5e-4 \
                --masks 32 --order random --mask-mode cycle --lr-schedule cosine \
                --valid-every 5000 --valid-n 2000 --save-every 1000 --keep 1 \
                && evaluate made32 --ensemble 32 ;;
    # Two tanh layers of 300 each way, 40 latents (the VampPrior paper's static-MNIST sizes).
    vae)    train vae 100000 30 --family vae --model vae --hidden 300,300 --latent 40 \
                --lr-schedule cosine && evaluate vae --iwae-k 5000 ;;
    nice)
        # One epoch of ../shared/peers/nice.py: batch 200, Adam 1e-3, 300 steps, no EMA.
        t0=$(date +%s)
        "$U" train --family flow --model nice-mnist --data fashion-mnist --batch 200 --steps 300 \
            --lr 1e-3 --log-every 50 --threads "$THREADS" --out "$OUT/nice"
        echo $(( $(date +%s) - t0 )) > "$OUT/nice/train_seconds"
        "$U" eval --ckpt "$OUT/nice/checkpoint.safetensors" --data fashion-mnist --nll --json \
            --threads "$THREADS" | tail -1 > "$OUT/nice/eval.json"
        cat "$OUT/nice/eval.json" ;;
    table) ;;   # only print the table of the runs already in BUILD_DIR/accept
    *) echo "accept: unknown model $m (fvsbn nade made made500 made32 vae nice)" >&2; exit 2 ;;
    esac
done

# The table: test NLL (nats), the published figure and the issue's bar.
{
    echo "| model | test NLL (nats) | published | bar | train s | eval s | protocol |"
    echo "|---|---|---|---|---|---|---|"
    for m in fvsbn nade made made500 made32 vae; do
        [ -f "$OUT/$m/eval.json" ] || continue
        case $m in fvsbn) pub=97.45 bar=98.5;; nade) pub=88.86 bar=89.9;; made) pub=88.40 bar=89.4;; made500) pub="~94.5 (karpathy/pytorch-made, paper Fig. 2)" bar=-;;
                   made32) pub=86.64 bar=87.7;; vae) pub="86.76 (IWAE paper, VAE k=1)" bar=90;; esac
        nll=$(sed -n 's/.*"nll": \([0-9.e+-]*\).*/\1/p' "$OUT/$m/eval.json")
        echo "| $m | $nll | $pub | <= $bar | $(cat "$OUT/$m/train_seconds") | $(cat "$OUT/$m/eval_seconds") | fixed binarization, early stopping on valid, best.safetensors, $(cat "$OUT/$m/threads" 2>/dev/null || echo "?") threads |"
    done
    if [ -f "$OUT/nice/eval.json" ]; then
        nll=$(sed -n 's/.*"nll": \([0-9.e+-]*\).*/\1/p' "$OUT/nice/eval.json")
        echo "| nice-mnist (Fashion-MNIST, 1 epoch) | $nll (test LL -$nll) | peer nice.py LL -858.97 | LL >= peer | $(cat "$OUT/nice/train_seconds") | | dequantized (p+u)/256 |"
    fi
} | tee "$OUT/table.md"
