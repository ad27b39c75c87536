COPY t FROM '/tmp/data.csv' IAM_ROLE 'arn:aws:iam::123456789012:role/copy'
