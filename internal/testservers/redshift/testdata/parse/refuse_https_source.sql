COPY t FROM 'https://b.s3.amazonaws.com/k' IAM_ROLE 'arn:aws:iam::123456789012:role/copy'
