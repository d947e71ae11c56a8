#!/usr/bin/env bash
# tests/0602-voice_convert.sh - models/voice/convert.py (ONNX initializers ->
# safetensors + config.json) is deterministic and produces exactly the files
# checksummed in models/voice/weights.sha256, and it refuses a file that is
# not a Piper voice. Needs the fetched voice (make voices) and the `onnx`
# package in var/venv; skips (77) without them.
. "$(dirname "$0")/lib.sh"
src=$KILN_SRC
voice=${KILN_VOICE:-$src/var/models/voices/en_US-joe-medium}
py=$src/var/venv/bin/python
[ -f "$voice/en_US-joe-medium.onnx" ] || { echo "skip - voice not fetched (make voices)"; exit 77; }
"$py" -c 'import onnx' 2>/dev/null || { echo "skip - no onnx in var/venv"; exit 77; }

out=$TMPROOT/conv
"$py" "$src/models/voice/convert.py" "$voice/en_US-joe-medium.onnx" "$voice/en_US-joe-medium.onnx.json" "$out" > "$TMPROOT/conv.log" 2>&1
check "convert.py succeeds" [ $? -eq 0 ]
check "converted files match weights.sha256" bash -c "cd '$out' && sums() { grep -E ' (model.safetensors|config.json)\$' '$src/models/voice/weights.sha256'; }; sums | sha256sum --quiet -c -"
check "350 tensors reported" grep -q '350 tensors' "$TMPROOT/conv.log"
check "config has the decoder rates" grep -q '"upsample_rates"' "$out/config.json"

# not a voice: a one-node ONNX graph
"$py" - "$TMPROOT/bad.onnx" <<'PY'
import sys, onnx
from onnx import helper, TensorProto
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
onnx.save(helper.make_model(g), sys.argv[1])
PY
"$py" "$src/models/voice/convert.py" "$TMPROOT/bad.onnx" "$voice/en_US-joe-medium.onnx.json" "$TMPROOT/bad" > "$TMPROOT/bad.log" 2>&1
rc=$?
check "convert.py refuses a graph that is not a voice" [ $rc -ne 0 ]
check "and leaves no model behind" [ ! -f "$TMPROOT/bad/model.safetensors" ]
finish
