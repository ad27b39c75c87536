COPY t FROM 's3://b/k IAM_ROLE default
