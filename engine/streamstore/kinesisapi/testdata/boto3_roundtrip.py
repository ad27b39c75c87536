"""Puts 10,000 records with random partition keys into a new 4-shard
stream with boto3, reads every shard from TRIM_HORIZON, and prints what it
put and what it read as JSON for the Go test to check."""
import json
import random
import sys

import boto3

endpoint, name = sys.argv[1], sys.argv[2]
c = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
c.create_stream(StreamName=name, ShardCount=4)
c.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
rng = random.Random(11)
put = {}
for b in range(20):
    recs = []
    for i in range(500):
        data = "boto-%05d" % (b * 500 + i)
        key = "%x" % rng.getrandbits(64)
        put[data] = key
        recs.append({"Data": data.encode(), "PartitionKey": key})
    out = c.put_records(StreamName=name, Records=recs)
    if out["FailedRecordCount"]:
        sys.exit("put_records: %d failed" % out["FailedRecordCount"])
read = []
for sh in c.list_shards(StreamName=name)["Shards"]:
    it = c.get_shard_iterator(StreamName=name, ShardId=sh["ShardId"],
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it:
        out = c.get_records(ShardIterator=it, Limit=5000)
        for r in out["Records"]:
            read.append({"shard": sh["ShardId"], "seq": r["SequenceNumber"],
                         "key": r["PartitionKey"], "data": r["Data"].decode(),
                         "arrival": r["ApproximateArrivalTimestamp"].timestamp()})
        if not out["Records"]:
            break
        it = out.get("NextShardIterator")
json.dump({"put": put, "read": read}, sys.stdout)
