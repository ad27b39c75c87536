COPY t FROM 's3://b/k' MANIFEST JSON 'auto'
