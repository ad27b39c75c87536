COPY t TO 's3://b/k'
