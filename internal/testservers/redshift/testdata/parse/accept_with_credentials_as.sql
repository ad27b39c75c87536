COPY t FROM 's3://b/k' WITH CREDENTIALS AS 'aws_iam_role=arn:aws:iam::123456789012:role/r' FORMAT JSON AS 'auto'
