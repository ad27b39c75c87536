COPY t FROM 's3://b/k' ACCESS_KEY_ID 'a'
