# The walkthrough's consumer, its calls unchanged. The test points boto3
# at sluice serve with AWS_ENDPOINT_URL_KINESIS and shortens the pause
# between polls (CONSUMER_SLEEP), so that it runs in seconds.
import os, time
_sleep = time.sleep
time.sleep = lambda s: _sleep(float(os.environ.get("CONSUMER_SLEEP", s)))

import boto3, time
kinesis_client = boto3.client('kinesis', region_name='ap-northeast-1')
shard_id_list = [shard['ShardId'] for shard in kinesis_client.describe_stream(StreamName='sample')['StreamDescription']['Shards']]
first_shard_id = shard_id_list[0]
shard_iterator = kinesis_client.get_shard_iterator(StreamName='sample', ShardId=first_shard_id, ShardIteratorType='LATEST')['ShardIterator']
while True:
    out = kinesis_client.get_records(ShardIterator=shard_iterator, Limit=2)
    print('. ', end='')
    if len(out['Records']):
        print()
        print(out['Records'])
    shard_iterator = out['NextShardIterator']
    time.sleep(5)
