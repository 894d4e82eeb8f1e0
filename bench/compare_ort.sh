#!/usr/bin/env bash
# kiln vs ONNX Runtime, same model/threads/batch, alternating runs: see compare_ort.py --help.
exec /usr/bin/python3 "$(dirname "$0")/compare_ort.py" "$@"
