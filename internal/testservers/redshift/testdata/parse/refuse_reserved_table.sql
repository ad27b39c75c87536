COPY from FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/copy'
