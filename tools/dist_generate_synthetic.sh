#!/usr/bin/env bash
# Synthesis on one node with torchrun, one shard of the bank a process:
# tools/dist_generate_synthetic.sh CONFIG GPUS --num N --out DIR [generate_synthetic.py args]
# NNODES, NODE_RANK, PORT and MASTER_ADDR may be set for several nodes (DIR on a shared disk).
set -euo pipefail
CONFIG=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
DIR="$(cd "$(dirname "$0")" && pwd)"

# '--' ends torchrun's own options: it would otherwise take --num for an abbreviation of its
# --numa-binding.
PYTHONPATH="$DIR/..:${PYTHONPATH:-}" exec python -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    -- "$DIR/generate_synthetic.py" "$CONFIG" "$@"
