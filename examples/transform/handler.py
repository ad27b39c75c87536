# A Firehose data-transformation Lambda handler, as written for AWS: it
# drops health checks, fails server errors (standing for records it cannot
# transform), and adds a field and the partition key "method" to the others.
import base64
import json


def lambda_handler(event, context):
    output = []
    for record in event["records"]:
        payload = json.loads(base64.b64decode(record["data"]))
        if "/health" in payload.get("path", ""):
            output.append({"recordId": record["recordId"], "result": "Dropped", "data": record["data"]})
            continue
        if payload.get("status", 0) >= 500:
            output.append({"recordId": record["recordId"], "result": "ProcessingFailed", "data": record["data"]})
            continue
        payload["slow"] = payload.get("latency_ms", 0) > 250
        output.append({
            "recordId": record["recordId"],
            "result": "Ok",
            "data": base64.b64encode(json.dumps(payload).encode()).decode(),
            "metadata": {"partitionKeys": {"method": payload.get("method", "none")}},
        })
    return {"records": output}
