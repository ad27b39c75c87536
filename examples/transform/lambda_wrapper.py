# Runs a Firehose data-transformation Lambda handler as a sluice transform command:
#   transform: {command: [python3, lambda_wrapper.py, handler.lambda_handler]}
import importlib, json, sys
sys.path.insert(0, ".")  # the handler's module is in the working directory
module, function = sys.argv[1].rsplit(".", 1)
handler = getattr(importlib.import_module(module), function)
for line in sys.stdin:
    print(json.dumps(handler(json.loads(line), None)), flush=True)
