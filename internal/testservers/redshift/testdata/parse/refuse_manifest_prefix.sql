COPY t FROM 's3://b/staging/' IAM_ROLE 'arn:aws:iam::123456789012:role/copy' MANIFEST
