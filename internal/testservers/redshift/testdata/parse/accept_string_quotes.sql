COPY t FROM 's3://b/it''s here' IAM_ROLE 'arn:aws:iam::123456789012:role/copy' NULL AS 'n/a' COMPUPDATE
