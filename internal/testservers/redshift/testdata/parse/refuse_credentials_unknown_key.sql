COPY t FROM 's3://b/k' CREDENTIALS 'aws_access_key=a;aws_secret_access_key=s'
