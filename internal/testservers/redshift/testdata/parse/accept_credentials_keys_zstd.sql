COPY t FROM 's3://b/k' CREDENTIALS 'aws_access_key_id=AKIAEXAMPLE;aws_secret_access_key=SECRET' JSON 'auto ignorecase' ZSTD REGION 'eu-west-1' MAXERROR 10
