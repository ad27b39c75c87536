"""Runs the AWS CLI (its own driver, in this one process, so that each
command does not pay Python's start-up) against an endpoint: creates a
4-shard stream, puts 10,000 records with random partition keys in 20
put-records calls, reads every shard from TRIM_HORIZON with
get-shard-iterator and get-records, and prints what it put and what it
read as JSON for the Go test to check."""
import base64
import contextlib
import io
import json
import os
import random
import sys
import tempfile

from awscli.clidriver import create_clidriver

endpoint, name = sys.argv[1], sys.argv[2]
driver = create_clidriver()


def aws(*args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = driver.main(["--endpoint-url", endpoint, "--output", "json", "kinesis", *args])
    if rc != 0:
        sys.exit("aws kinesis %s exited %d" % (args[0], rc))
    text = out.getvalue()
    return json.loads(text) if text.strip() else {}


aws("create-stream", "--stream-name", name, "--shard-count", "4")
aws("wait", "stream-exists", "--stream-name", name)
rng = random.Random(5)
put = {}
tmp = tempfile.mkdtemp()
for b in range(20):
    recs = []
    for i in range(500):
        data = "cli-%05d" % (b * 500 + i)
        key = "%x" % rng.getrandbits(64)
        put[data] = key
        # AWS CLI v1 sends a blob given in JSON input as its raw text.
        recs.append({"Data": data, "PartitionKey": key})
    path = os.path.join(tmp, "batch%d.json" % b)
    with open(path, "w") as f:
        json.dump({"StreamName": name, "Records": recs}, f)
    out = aws("put-records", "--cli-input-json", "file://" + path)
    if out["FailedRecordCount"]:
        sys.exit("put-records: %d failed" % out["FailedRecordCount"])
read = []
for sh in aws("list-shards", "--stream-name", name)["Shards"]:
    it = aws("get-shard-iterator", "--stream-name", name, "--shard-id", sh["ShardId"],
             "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    while it:
        out = aws("get-records", "--shard-iterator", it)
        for r in out["Records"]:
            read.append({"shard": sh["ShardId"], "seq": r["SequenceNumber"], "key": r["PartitionKey"],
                         "data": base64.b64decode(r["Data"]).decode()})
        if not out["Records"]:
            break
        it = out.get("NextShardIterator")
json.dump({"put": put, "read": read}, sys.stdout)
