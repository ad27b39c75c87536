COPY t (a, b) FROM 's3://b/data/' FORMAT AS JSON 's3://b/paths.json' BZIP2 ACCESS_KEY_ID 'AKIA' SECRET_ACCESS_KEY 'secret' SESSION_TOKEN 'token'
