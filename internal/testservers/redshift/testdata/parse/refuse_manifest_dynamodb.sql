COPY t FROM 'dynamodb://Products' IAM_ROLE 'arn:aws:iam::123456789012:role/copy' MANIFEST
