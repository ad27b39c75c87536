COPY t FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/copy' ACCESS_KEY_ID 'a' SECRET_ACCESS_KEY 's'
